// Package cli implements every subcommand of `python3 -m aioconnectors` (1.0.33) plus aioconn's own
// `bench`, `check_config` and `version`. It is the only package that prints for humans.
//
// Main is safe to call from several goroutines (tests do) as long as each call gets its own writers.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Version is aioconn's own version; CompatVersion is the aioconnectors release whose wire format and
// command line it reproduces (printed by `--version`, exactly as the original does).
const (
	Version       = "0.1.0"
	CompatVersion = "1.0.33"
)

// ErrNotYet is returned by subcommands whose issue is not done yet.
var ErrNotYet = errors.New("cli: not implemented yet")

type command struct {
	name    string
	summary string
	// run returns the process exit code.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands map[string]*command

func init() {
	list := []*command{
		{"create_connector", "run a connector from an aioconnectors config file (foreground)", runCreateConnector},
		{"create_certificates", "create the certificates/ tree for TLS", runCreateCertificates},
		{"print_config_templates", "print the config templates of aioconnectors 1.0.33", runPrintConfigTemplates},
		{"cli", "manage a running connector (CMD --config FILE; interactive menu later)", runCli},
		{"ping", "ping a peer through a connector", runPing},
		{"test_receive_messages", "print every message a connector delivers", runTestReceiveMessages},
		{"test_send_messages", "send test messages through a connector", runTestSendMessages},
		{"test_publish_messages", "publish test messages through a connector", runTestPublishMessages},
		{"chat", "two-station chat and file transfer", runChat},
		{"bench", "load generator: rate, throughput, pubsub, reqrep, file", runBench},
		{"check_config", "validate a config file; exit 2 listing every problem", runCheckConfig},
		{"version", "print aioconn's version", runVersion},
		{"bench_node", "child process of bench --path embedded (not listed)", runBenchNode},
		{"bench_host", "child process of bench --host-clients (not listed)", runBenchHost},
	}
	commands = make(map[string]*command, len(list))
	for _, c := range list {
		commands[c.name] = c
	}
}

// Main runs the command line args (without the program name) and returns the exit code.
// Dispatch follows aioconnectors: no argument or --help prints the help text (exit 0), --version
// prints the compatible aioconnectors version, an unknown command prints `Unknown command : X`.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" {
		io.WriteString(stdout, helpText())
		return 0
	}
	if args[0] == "--version" {
		fmt.Fprintln(stdout, CompatVersion)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stdout, "Unknown command : %s\n", args[0])
		return 0 // as the original: scripts that call it keep their exit status
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// helpText is the original HELP block followed by aioconn's additions.
func helpText() string {
	var b strings.Builder
	b.WriteString(originalHelp())
	b.WriteString("aioconn additions :\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		switch n {
		case "bench", "check_config", "version":
			fmt.Fprintf(&b, "    - %-14s %s\n", n, commands[n].summary)
		}
	}
	b.WriteString("Each command accepts --help.\n")
	return b.String()
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) int {
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
		fmt.Fprintln(stdout, "usage: aioconn version")
		return 0
	}
	fmt.Fprintf(stdout, "aioconn %s (aioconnectors %s compatible)\n", Version, CompatVersion)
	return 0
}
