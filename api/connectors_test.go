package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/uds"
)

// Helpers that start real connectors (the Python reference 1.0.33, or aioconn's own binary
// named by $AIOCONN_BIN) on 127.0.0.1 with their files in a short temp directory, for the
// integration tests. Only processes started here are ever killed, by their PID.

const pyRefDir = "/work/ref-1.0.33"

// connectorKind says how to start a connector process.
type connectorKind struct {
	name string
	argv func(cfgPath string) []string
	env  []string
}

// pythonConnector returns the Python reference connector, or skips the test with the reason.
func pythonConnector(t *testing.T) connectorKind {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pyRefDir, "aioconnectors", "__main__.py")); err != nil {
		t.Skipf("Python reference not available: %v", err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 not available: %v", err)
	}
	return connectorKind{
		name: "python",
		argv: func(cfg string) []string { return []string{py, "-m", "aioconnectors", "create_connector", cfg} },
		env:  []string{"PYTHONPATH=" + pyRefDir, "PYTHONDONTWRITEBYTECODE=1"},
	}
}

// goConnector returns aioconn's connector from $AIOCONN_BIN, or skips.
func goConnector(t *testing.T) connectorKind {
	t.Helper()
	bin := os.Getenv("AIOCONN_BIN")
	if bin == "" {
		t.Skip("AIOCONN_BIN not set (go build -o /tmp/aioconn ./cmd/aioconn)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("AIOCONN_BIN: %v", err)
	}
	return connectorKind{name: "aioconn", argv: func(cfg string) []string { return []string{bin, "create_connector", cfg} }}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pair is a server connector and a client connector "client1" of it, plus the config file
// each was started with (valid for the API too).
type pair struct {
	dir                  string
	serverCfg, clientCfg string
}

// writeConnectorConfig writes a manager config (plaintext, types "any") and returns its path.
func writeConnectorConfig(t *testing.T, dir, name string, server bool, port int, extra map[string]any) string {
	t.Helper()
	logDir := filepath.Join(dir, "log_"+name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"is_server":                   server,
		"server_sockaddr":             []any{"127.0.0.1", port},
		"use_ssl":                     false,
		"connector_files_dirpath":     dir,
		"default_logger_dirpath":      logDir,
		"certificates_directory_path": dir,
		"send_message_types":          []string{"any"},
		"recv_message_types":          []string{"any"},
		"silent":                      true,
		"default_logger_log_level":    "INFO",
	}
	if !server {
		cfg["client_name"] = "client1"
	}
	for k, v := range extra {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startConnector runs kind with cfgPath; the process is killed (by PID) at cleanup and its
// output is logged if the test failed.
func startConnector(t *testing.T, kind connectorKind, cfgPath string) {
	t.Helper()
	argv := kind.argv(cfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = filepath.Dir(cfgPath)
	cmd.Env = append(os.Environ(), kind.env...)
	var out bytes.Buffer
	var mu sync.Mutex
	w := &lockedWriter{mu: &mu, b: &out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s connector: %v", kind.name, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill() // our own child, by PID
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s connector (pid %d, %s) output:\n%s", kind.name, pid, filepath.Base(cfgPath), out.String())
			mu.Unlock()
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// waitFor polls cond every 50 ms until it holds or the deadline passes (the connectors are
// other processes: there is no signal to wait on).
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// startPair starts a server connector, then a client connector, and waits until each one's
// commander lists the other as connected. extra keys are added to both config files.
func startPair(t *testing.T, server, client connectorKind, extra map[string]any) pair {
	t.Helper()
	dir := shortDir(t)
	port := freePort(t)
	p := pair{dir: dir,
		serverCfg: writeConnectorConfig(t, dir, "server", true, port, extra),
		clientCfg: writeConnectorConfig(t, dir, "client", false, port, extra),
	}
	scfg := loadAPIConfig(t, p.serverCfg)
	ccfg := loadAPIConfig(t, p.clientCfg)
	startConnector(t, server, p.serverCfg)
	waitFor(t, "the server's send socket", 10*time.Second, func() bool { return uds.Exists(scfg.SendToConnectorPath()) })
	startConnector(t, client, p.clientCfg)
	peers := func(cfg *config.APIOptions, want string) func() bool {
		tool := NewRemoteTool(cfg)
		return func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			out, err := tool.ShowConnectedPeers(ctx)
			return err == nil && strings.Contains(string(out), want)
		}
	}
	waitFor(t, "client1 connected to the server", 15*time.Second, peers(scfg, `"client1"`))
	waitFor(t, "the client connected", 5*time.Second, peers(ccfg, "127.0.0.1"))
	waitFor(t, "the client's send socket", 5*time.Second, func() bool { return uds.Exists(ccfg.SendToConnectorPath()) })
	return p
}

func loadAPIConfig(t *testing.T, path string) *config.APIOptions {
	t.Helper()
	cfg, err := config.LoadAPI(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
