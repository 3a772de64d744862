package main

// End-to-end tests of the aioconn binary: it is built once by TestMain and run as real processes
// (server and client connectors over TCP, kill -9 and restart, SIGTERM, command-line texts).
// Every process is started with exec.Command, killed only by its own PID and always waited.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/uds"
)

var (
	binPath  string // the built binary, "" when skipped
	skipWhy  string
	buildErr string
)

func TestMain(m *testing.M) {
	code := func() int {
		goBin, err := exec.LookPath("go")
		if err != nil {
			if _, e := os.Stat(filepath.Join(os.Getenv("GOROOT"), "bin", "go")); e == nil {
				goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
			} else {
				skipWhy = "go toolchain not found: cannot build the binary"
				return m.Run()
			}
		}
		dir, err := os.MkdirTemp("", "aioconn-bin")
		if err != nil {
			skipWhy = err.Error()
			return m.Run()
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "aioconn")
		out, err := exec.Command(goBin, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Sprintf("go build: %v\n%s", err, out)
			binPath = ""
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needBinary(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if buildErr != "" {
		t.Fatal(buildErr)
	}
}

// syncBuffer collects a process's output; safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is one running aioconn process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
}

// start runs the binary with args; the process is killed (by its PID) and waited at cleanup if
// still running.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binPath, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits (at most 10 s) for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("process %d did not exit; stdout:\n%s\nstderr:\n%s", p.cmd.Process.Pid, p.stdout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// run runs the binary to completion.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	p := start(t, args...)
	code = p.wait(t)
	return p.stdout.String(), p.stderr.String(), code
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ace")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes a connector config file and returns its path and parsed options.
func writeConfig(t *testing.T, dir, name string, m map[string]any) (string, *config.Options) {
	t.Helper()
	b, _ := json.Marshal(m)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

func paths(t *testing.T, cfg *config.Options) uds.Paths {
	t.Helper()
	p, err := uds.NewPaths(cfg.ConnectorFilesDirpath, cfg.IsServer, cfg.SourceID(), cfg.RecvMessageTypes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func serverConfig(dir string, port int, reuse bool) map[string]any {
	return map[string]any{"is_server": true, "server_sockaddr": []any{"127.0.0.1", port}, "use_ssl": false,
		"connector_files_dirpath": dir, "default_logger_dirpath": dir, "send_message_types": []string{"any"},
		"recv_message_types": []string{"any"}, "reuse_server_sockaddr": reuse,
		"reuse_uds_path_send_to_connector": reuse, "reuse_uds_path_commander_server": reuse, "silent": false}
}

// commandOnce sends one commander request and returns the reply text.
func commandOnce(path, cmd string) (string, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(codec.AppendCommand(nil, []byte(`{"cmd": "`+cmd+`", "kwargs": {}}`))); err != nil {
		return "", err
	}
	return readRecord(c, true)
}

// readRecord reads one u32-prefixed record; body only when bodyOnly, else prefix included.
func readRecord(c net.Conn, bodyOnly bool) (string, error) {
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return "", err
	}
	b := make([]byte, 4+binary.LittleEndian.Uint32(h[:]))
	copy(b, h[:])
	if _, err := io.ReadFull(c, b[4:]); err != nil {
		return "", err
	}
	if bodyOnly {
		return string(b[4:]), nil
	}
	return string(b), nil
}

// poll retries cond every 20 ms until it holds or the bound elapses.
func poll(t *testing.T, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(bound)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %s)", bound, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTCP waits until something accepts on port (the server's listener is up).
func waitTCP(t *testing.T, port int, p *proc) {
	t.Helper()
	poll(t, 10*time.Second, "server listening on port "+strconv.Itoa(port), func() (bool, string) {
		if p.exited() {
			t.Fatalf("server exited early; stdout:\n%s\nstderr:\n%s", p.stdout, p.stderr)
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// appListener is a raw test application listening on a receive_from_connector socket.
type appListener struct {
	ln    net.Listener
	conns chan net.Conn
}

func listenApp(t *testing.T, path string) *appListener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	a := &appListener{ln: ln, conns: make(chan net.Conn, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return a
}

// nextConn returns the next connection the connector opened to the application.
func (a *appListener) nextConn(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-a.conns:
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("the connector never connected to the application")
	}
	return nil
}

func frame(js, data string) string {
	return string(codec.AppendFrame(nil, []byte(js), []byte(data), nil, false))
}

// TestServerClientKillRestart: a server and a client process exchange a message; the server is
// killed with SIGKILL (socket files left behind), started again with reuse flags, the client
// reconnects and traffic flows again.
func TestServerClientKillRestart(t *testing.T) {
	needBinary(t)
	dir := shortDir(t)
	port := freePort(t)
	srvPath, srvCfg := writeConfig(t, dir, "server.json", serverConfig(dir, port, true))
	cliPath, cliCfg := writeConfig(t, dir, "client.json", map[string]any{"is_server": false, "client_name": "client1",
		"server_sockaddr": []any{"127.0.0.1", port}, "use_ssl": false, "connector_files_dirpath": dir,
		"default_logger_dirpath": dir, "send_message_types": []string{"any"}, "recv_message_types": []string{"any"}})
	sp, cp := paths(t, srvCfg), paths(t, cliCfg)
	app := listenApp(t, sp.Receive["any"])

	srv := start(t, "create_connector", srvPath)
	waitTCP(t, port, srv)
	cli := start(t, "create_connector", cliPath)
	serverSeen := `["('127.0.0.1', ` + strconv.Itoa(port) + `)"]`
	connected := func() (bool, string) {
		if cli.exited() {
			t.Fatalf("client exited; stderr:\n%s", cli.stderr)
		}
		r, err := commandOnce(cp.Commander, "show_connected_peers__sync")
		if err != nil {
			return false, err.Error()
		}
		return r == serverSeen, r
	}
	poll(t, 10*time.Second, "client connected", connected)

	send, err := net.Dial("unix", cp.SendToConnector)
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	want := func(d string) string {
		return frame(`{"message_type": "any", "destination_id": "('127.0.0.1', `+strconv.Itoa(port)+`)", "source_id": "client1"}`, d)
	}
	send.Write([]byte(frame(`{"message_type": "any"}`, "first")))
	got, err := readRecord(app.nextConn(t), false)
	if err != nil || got != want("first") {
		t.Fatalf("server app got %q, %v; want %q", got, err, want("first"))
	}

	// kill -9: nothing is cleaned up
	if err := srv.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	srv.wait(t)
	if _, err := os.Lstat(sp.Commander); err != nil {
		t.Fatalf("kill -9 should leave the commander socket behind: %v", err)
	}
	poll(t, 10*time.Second, "client noticed the server's death", func() (bool, string) {
		r, err := commandOnce(cp.Commander, "show_connected_peers__sync")
		return err == nil && r == "[]", r
	})
	srv2 := start(t, "create_connector", srvPath)
	waitTCP(t, port, srv2)
	// the client retries every 5 s (SLEEP_BETWEEN_START_FAILURES)
	poll(t, 10*time.Second, "client reconnected", connected)
	send.Write([]byte(frame(`{"message_type": "any"}`, "second")))
	got, err = readRecord(app.nextConn(t), false)
	if err != nil || got != want("second") {
		t.Fatalf("after restart the server app got %q, %v; want %q", got, err, want("second"))
	}

	for _, p := range []*proc{cli, srv2} {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr)
		}
	}
}

// TestSIGTERM: SIGTERM stops a connector cleanly: exit code 0, socket files removed,
// "Connector stopped !" printed.
func TestSIGTERM(t *testing.T) {
	needBinary(t)
	dir := shortDir(t)
	port := freePort(t)
	path, cfg := writeConfig(t, dir, "server.json", serverConfig(dir, port, false))
	p := paths(t, cfg)
	srv := start(t, "create_connector", path)
	waitTCP(t, port, srv)
	for _, f := range []string{p.Commander, p.SendToConnector} {
		if _, err := os.Lstat(f); err != nil {
			t.Fatalf("running connector has no %s: %v", f, err)
		}
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, srv.stderr)
	}
	for _, f := range []string{p.Commander, p.SendToConnector} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s left behind after SIGTERM", f)
		}
	}
	if out := srv.stdout.String(); !strings.Contains(out, "Connector stopped !\n") {
		t.Fatalf("stdout lacks \"Connector stopped !\":\n%s", out)
	}
}

// TestCheckConfig: exit 0 on a valid file; exit 2 listing every problem otherwise.
func TestCheckConfig(t *testing.T) {
	needBinary(t)
	dir := shortDir(t)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"is_server": true, "server_sockaddr": ["127.0.0.1", 10673], "use_ssl": false}`)
	out, errOut, code := run(t, "check_config", good)
	if code != 0 || !strings.Contains(out, good+": ok") {
		t.Fatalf("valid file: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"missing", filepath.Join(dir, "missing.json"), []string{"missing.json", "no such file or directory"}},
		{"bad_json", write("bad.json", "{\n  \"is_server\": true,\n  \"server_sockaddr\": [\n}"), []string{"bad.json", "line 4 column 1"}},
		{"types", write("types.json", `{"server_sockaddr": [1, 2, 3], "send_message_types": "any", "max_size_file_upload": "big"}`),
			[]string{`"server_sockaddr"`, `"send_message_types"`, `"max_size_file_upload"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := run(t, "check_config", tc.file)
			if code != 2 {
				t.Fatalf("code %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if tc.name == "types" {
				if n := strings.Count(errOut, "error: "); n != 3 {
					t.Errorf("%d problems listed, want 3:\n%s", n, errOut)
				}
			}
		})
	}
}

// TestPrintConfigTemplates: the output equals the 1.0.33 capture (made where /tmp exists).
func TestPrintConfigTemplates(t *testing.T) {
	needBinary(t)
	if _, err := os.Stat("/tmp"); err != nil {
		t.Skip("the capture assumes /tmp exists (default connector_files_dirpath /tmp/aioconnectors)")
	}
	want, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "print_config_templates_1.0.33.txt"))
	if err != nil {
		t.Skipf("capture not found: %v", err)
	}
	out, errOut, code := run(t, "print_config_templates")
	if code != 0 || out != string(want) {
		t.Fatalf("code %d, stderr %q, output differs from the capture:\n%s", code, errOut, out)
	}
}

// TestCreateConnectorUsage: no config path prints the original usage line and exits 1.
func TestCreateConnectorUsage(t *testing.T) {
	needBinary(t)
	out, _, code := run(t, "create_connector")
	if code != 1 || out != "Usage : create_connector <config file path>\n" {
		t.Fatalf("code %d, stdout %q", code, out)
	}
}

// TestCommanderPathInUse: a second connector with the same identity and no reuse flag fails,
// naming the commander socket path; the first keeps running.
func TestCommanderPathInUse(t *testing.T) {
	needBinary(t)
	dir := shortDir(t)
	port := freePort(t)
	path, cfg := writeConfig(t, dir, "server.json", serverConfig(dir, port, false))
	p := paths(t, cfg)
	first := start(t, "create_connector", path)
	waitTCP(t, port, first)
	_, errOut, code := run(t, "create_connector", path)
	if code == 0 {
		t.Fatal("second connector on the same commander path exited 0")
	}
	if !strings.Contains(errOut, p.Commander) {
		t.Fatalf("error does not name %s:\n%s", p.Commander, errOut)
	}
	if r, err := commandOnce(p.Commander, "show_log_level__sync"); err != nil || r != "INFO" {
		t.Fatalf("first connector no longer answers: %q, %v", r, err)
	}
	first.cmd.Process.Signal(syscall.SIGTERM)
	if code := first.wait(t); code != 0 {
		t.Fatalf("first connector exit code %d", code)
	}
}
