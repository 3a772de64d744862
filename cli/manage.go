package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/config"
)

// manageCommands are the non-interactive forms of `aioconn cli`: `aioconn cli CMD [ARGS] --config FILE`.
var manageCommands = map[string]struct {
	args int // required positional arguments (-1: any number)
	help string
	run  func(ctx context.Context, t *api.RemoteTool, args []string) ([]byte, error)
}{
	"start": {0, "start the connector", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) { return t.StartConnector(ctx) }},
	"stop": {0, "stop gracefully", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.StopConnector(ctx, false, false, true, false)
	}},
	"stop_hard": {0, "stop hard", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.StopConnector(ctx, true, false, true, false)
	}},
	"restart": {0, "restart (stop, 2 s, start)", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.RestartConnector(ctx, false, 2*time.Second)
	}},
	"show_connected_peers": {0, "list connected peers", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.ShowConnectedPeers(ctx)
	}},
	"show_stats": {0, "every counter as JSON (aioconn)", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.SendCommand(ctx, "show_stats__sync", nil)
	}},
	"peek_queues": {0, "queue sizes", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) { return t.PeekQueues(ctx) }},
	"ignore_peer_traffic_show": {0, "show ignore_peer_traffic", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.IgnorePeerTrafficShow(ctx)
	}},
	"ignore_peer_traffic_enable": {0, "ignore all peer traffic", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.IgnorePeerTrafficEnable(ctx)
	}},
	"ignore_peer_traffic_enable_unique": {1, "ignore one peer's traffic: PEER", func(ctx context.Context, t *api.RemoteTool, a []string) ([]byte, error) {
		return t.IgnorePeerTrafficEnableUnique(ctx, a[0])
	}},
	"ignore_peer_traffic_disable": {0, "stop ignoring peer traffic", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.IgnorePeerTrafficDisable(ctx)
	}},
	"disconnect_client": {1, "disconnect a client: NAME", func(ctx context.Context, t *api.RemoteTool, a []string) ([]byte, error) {
		return t.DisconnectClient(ctx, a[0])
	}},
	"delete_client_certificate": {-1, "server: NAME; client: no argument", func(ctx context.Context, t *api.RemoteTool, a []string) ([]byte, error) {
		name := ""
		if len(a) > 0 {
			name = a[0]
		}
		return t.DeleteClientCertificate(ctx, name, false, true)
	}},
	"show_log_level": {0, "current log level", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) { return t.ShowLogLevel(ctx) }},
	"set_log_level": {1, "set the log level: ERROR|WARNING|INFO|DEBUG", func(ctx context.Context, t *api.RemoteTool, a []string) ([]byte, error) {
		return t.SetLogLevel(ctx, a[0])
	}},
	"show_subscribe_message_types": {0, "client: subscribed types", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.ShowSubscribeMessageTypes(ctx)
	}},
	"set_subscribe_message_types": {-1, "client: TYPE...", func(ctx context.Context, t *api.RemoteTool, a []string) ([]byte, error) {
		return t.SetSubscribeMessageTypes(ctx, a...)
	}},
	"delete_previous_persistence_remains": {0, "delete this connector's persistence files", func(ctx context.Context, t *api.RemoteTool, _ []string) ([]byte, error) {
		return t.DeletePreviousPersistenceRemains(ctx)
	}},
}

// runCli is `aioconn cli`: without arguments the interactive menu of the original (menu.go),
// with `CMD [ARGS] --config FILE` one management command whose reply bytes are printed as the
// original's menu prints them.
func runCli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return runMenu(ctx, stdin, stdout) // menu.go
	}
	if args[0] == "--help" || args[0] == "-h" {
		fmt.Fprintln(stdout, "usage: aioconn cli COMMAND [ARGS] --config CONFIG_FILE\n\ncommands:")
		for _, n := range sortedKeys(manageCommands) {
			fmt.Fprintf(stdout, "  %-36s %s\n", n, manageCommands[n].help)
		}
		return 0
	}
	var cfgPath string
	var pos []string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--config" && i+1 < len(args):
			cfgPath = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--config="):
			cfgPath = strings.TrimPrefix(args[i], "--config=")
		default:
			pos = append(pos, args[i])
		}
	}
	if len(pos) == 0 {
		fmt.Fprintf(stderr, "usage: aioconn cli COMMAND [ARGS] --config CONFIG_FILE (see aioconn cli --help)\n")
		return 2
	}
	mc, ok := manageCommands[pos[0]]
	if !ok || cfgPath == "" || (mc.args >= 0 && len(pos)-1 != mc.args) {
		fmt.Fprintf(stderr, "usage: aioconn cli COMMAND [ARGS] --config CONFIG_FILE (see aioconn cli --help)\n")
		return 2
	}
	cfg, err := config.LoadAPI(cfgPath)
	if err != nil {
		printConfigErrors(stderr, err)
		return 2
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reply, err := mc.run(cctx, api.NewRemoteTool(cfg), pos[1:])
	if err != nil {
		fmt.Fprintf(stderr, "aioconn cli %s: %v\n", pos[0], err)
		return 1
	}
	fmt.Fprintln(stdout, string(reply))
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
