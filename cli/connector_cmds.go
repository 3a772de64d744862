package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
)

func originalHelp() string { return config.HelpText }

// configArg enforces the original's `<command> <config file path>` form: exactly one argument,
// `--help` prints the usage (exit 0), anything else prints it and exits 1.
func configArg(name string, args []string, stdout io.Writer) (string, int, bool) {
	if len(args) == 1 && args[0] == "--help" {
		fmt.Fprintln(stdout, config.UsageLine(name))
		return "", 0, false
	}
	if len(args) != 1 {
		fmt.Fprintln(stdout, config.UsageLine(name))
		return "", 1, false
	}
	return args[0], 0, true
}

func runCreateConnector(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path, code, ok := configArg("create_connector", args, stdout)
	if !ok {
		return code
	}
	fmt.Fprintf(stderr, "Creating connector with config file %s\n", path)
	cfg, code := loadConnectorConfig(path, stderr)
	if cfg == nil {
		return code
	}
	defer startCPUProfile()()
	if prof := os.Getenv("AIOCONN_MEMPROFILE"); prof != "" { // heap profile at exit, for benchmarks
		defer func() {
			if f, err := os.Create(prof); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	// One event loop on one P is the fastest plaintext connector on small machines: measured on
	// 2 cores, 100 clients at 40 msg/s cost 80 µs of CPU per message instead of 300 (Go's
	// spinning Ms and P hand-offs around every wake-up), with the same peak throughput
	// (benchmarks/RESULTS.md). TLS links run on the loop too (loop.EnrollTLS); their handshakes
	// run on goroutines, and the server's RSA signatures in its nice-19 helper process. GOMAXPROCS
	// or AIOCONN_LOOPS in the environment override this.
	// Connectors that receive files keep every CPU too: their disk writer must run beside the
	// loop (on one P it starved and the socket's input piled up in memory: 10 GB for a 4 GB file).
	if os.Getenv("GOMAXPROCS") == "" && os.Getenv("AIOCONN_LOOPS") == "" && len(cfg.FileRecvConfig) == 0 {
		runtime.GOMAXPROCS(1)
	}
	cn, err := connector.New(cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "aioconn: %v\n", err)
		return 1
	}
	stopTelemetry, err := startTelemetry(cn, cfg, path)
	if err != nil {
		fmt.Fprintf(stderr, "aioconn: %v\n", err)
		cn.Close()
		return 1
	}
	defer stopTelemetry()
	if err := cn.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "aioconn: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "Connector stopped !")
	return 0
}

// loadConnectorConfig loads a connector's config file and applies the environment hooks of
// create_connector (AtLeastOnceEnv, LinkCompressionEnv); on error it prints why and returns a nil
// config with the exit code.
func loadConnectorConfig(path string, stderr io.Writer) (*config.Options, int) {
	cfg, err := config.Load(path)
	if err != nil {
		printConfigErrors(stderr, err)
		return nil, 2
	}
	// AIOCONN_AT_LEAST_ONCE (a JSON value: true, or a list of types) applies at_least_once when the
	// file does not set it: a hook for `aioconn bench`, whose connectors inherit the environment.
	if v := os.Getenv(AtLeastOnceEnv); v != "" && json.Valid([]byte(v)) {
		if _, inFile := cfg.Raw["at_least_once"]; !inFile {
			if cfg.Raw == nil {
				cfg.Raw = map[string]json.RawMessage{}
			}
			cfg.Raw["at_least_once"] = json.RawMessage(v)
		}
	}
	// AIOCONN_LINK_COMPRESSION (s2 or zstd) applies link_compression when the file does not set it
	// (the same kind of hook, for `aioconn bench` and the interop runner).
	if v := os.Getenv(LinkCompressionEnv); v != "" {
		if _, inFile := cfg.Raw["link_compression"]; !inFile {
			if v != "s2" && v != "zstd" && v != "off" {
				fmt.Fprintf(stderr, "%s: %q is not s2, zstd or off\n", LinkCompressionEnv, v)
				return nil, 2
			}
			if v == "off" {
				v = ""
			}
			cfg.LinkCompression = v
		}
	}
	return cfg, 0
}

// startCPUProfile starts the CPU profile AIOCONN_CPUPROFILE names (the profiling hook of
// `aioconn bench --profile-dir`) and returns its stop (a no-op when there is none).
func startCPUProfile() (stop func()) {
	if prof := os.Getenv("AIOCONN_CPUPROFILE"); prof != "" {
		if f, err := os.Create(prof); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				return func() { pprof.StopCPUProfile(); f.Close() }
			}
			f.Close()
		}
	}
	return func() {}
}

// MetricsListenEnv, when set and the config file has no metrics_listen, is the metrics_listen of
// create_connector (a hook for `aioconn bench`, whose connectors inherit the environment; use a
// port 0 address such as 127.0.0.1:0 when several connectors run).
const MetricsListenEnv = "AIOCONN_METRICS_LISTEN"

// AtLeastOnceEnv, when set and the config file has no at_least_once, is its value (JSON).
const AtLeastOnceEnv = "AIOCONN_AT_LEAST_ONCE"

// LinkCompressionEnv, when set and the config file has no link_compression, is its value.
const LinkCompressionEnv = "AIOCONN_LINK_COMPRESSION"

// startTelemetry applies detailed_stats and metrics_listen, and re-reads the config file on
// SIGHUP (connector.ReloadFile) until stop is called (it also stops the metrics server).
func startTelemetry(cn *connector.Connector, cfg *config.Options, path string) (stop func(), err error) {
	cn.SetDetailedStats(cfg.DetailedStats)
	listen := cfg.MetricsListen
	if _, inFile := cfg.Raw["metrics_listen"]; !inFile && listen == "" {
		listen = os.Getenv(MetricsListenEnv)
	}
	if listen != "" {
		if err := cn.SetMetricsListen(listen); err != nil {
			return nil, err
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			cn.Logger().Infof("%s SIGHUP: re-reading %s", cn.SourceID(), path)
			cn.ReloadFile(path)
		}
	}()
	return func() {
		signal.Stop(hup)
		close(hup)
		cn.SetMetricsListen("")
	}, nil
}

func runPrintConfigTemplates(_ context.Context, args []string, stdout, _ io.Writer) int {
	if len(args) > 0 && args[0] == "--help" {
		fmt.Fprintln(stdout, "print_config_templates : print the manager and API config templates of aioconnectors 1.0.33")
		return 0
	}
	io.WriteString(stdout, config.PrintConfigTemplates(config.DefaultFilesDir()))
	return 0
}

// runCheckConfig validates a manager config file: exit 0 when valid (warnings are printed), 2 with
// every problem listed otherwise.
func runCheckConfig(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "--help" {
		fmt.Fprintln(stdout, "usage: aioconn check_config <config file path>\n\nValidates an aioconnectors config file: exit 0 when valid, 2 listing every problem.")
		if len(args) == 1 {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(args[0])
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		printConfigErrors(stderr, err)
		return 2
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for _, k := range cfg.Unsupported {
		fmt.Fprintf(stdout, "warning: %s is accepted but not supported yet\n", k)
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}

// printConfigErrors prints each problem (errors.Join puts one per line) on its own line.
func printConfigErrors(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintf(w, "error: %s\n", line)
		}
	}
}
