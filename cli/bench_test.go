package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestProgressLine: on a terminal one line rewritten with \r and erased at the end; otherwise
// plain lines.
func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b, tty: true}
	p.show("a 1")
	p.show("a 2")
	p.end()
	p.end()
	if got, want := b.String(), "\ra 1\x1b[K\ra 2\x1b[K\r\x1b[K"; got != want {
		t.Errorf("tty: %q, want %q", got, want)
	}
	b.Reset()
	p = &progressLine{w: &b}
	p.show("a 1")
	p.show("a 2")
	p.end()
	p.show("late")
	if got, want := b.String(), "a 1\na 2\n"; got != want {
		t.Errorf("plain: %q, want %q", got, want)
	}
}

// TestBenchEmbeddedModes: --path embedded accepts throughput, reqrep, rate and pubsub only; the
// others are refused as bad options (exit 2) before any process starts.
func TestBenchEmbeddedModes(t *testing.T) {
	for _, mode := range []string{"file", "persist", "certstorm"} {
		var out, errb bytes.Buffer
		if code := runBench(context.Background(), []string{"--mode", mode, "--path", "embedded", "--bin", "/nonexistent"}, &out, &errb); code != 2 {
			t.Errorf("%s: exit %d, stderr %q", mode, code, errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := runBenchNode(context.Background(), []string{"--mode", "rate", "--role", "clients", "--size", "8"}, &out, &errb); code != 2 {
		t.Errorf("bench_node without --dir: exit %d", code)
	}
	out.Reset()
	errb.Reset()
	if code := runBenchNode(context.Background(), []string{"--mode", "certstorm", "--role", "clients", "--dir", t.TempDir(), "--port", "1"}, &out, &errb); code != 2 {
		t.Errorf("bench_node certstorm without --cert-dir: exit %d", code)
	}
	out.Reset()
	errb.Reset()
	if code := runBenchHost(context.Background(), nil, &out, &errb); code != 2 {
		t.Errorf("bench_host without a config: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"is_server": true,`), 0o644)
	errb.Reset()
	if code := runBenchHost(context.Background(), []string{bad}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "bad.json") {
		t.Errorf("bench_host with a bad config: exit %d, stderr %q", code, errb.String())
	}
}

// TestBenchHostStopsWhenOneFails: bench_host ends (exit 1) as soon as one of its connectors
// fails to start, stopping the others, instead of running on while the bench waits for sockets
// that never appear. Here a server cannot listen on a port the test holds, while a client
// beside it would dial forever.
func TestBenchHostStopsWhenOneFails(t *testing.T) {
	dir, err := os.MkdirTemp("", "ac") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	files := `"use_ssl": false, "connector_files_dirpath": "` + dir + `", "default_logger_dirpath": "` + dir + `", "send_message_types": ["any"]`
	cli, srv := filepath.Join(dir, "c.json"), filepath.Join(dir, "s.json")
	os.WriteFile(cli, []byte(`{"is_server": false, "client_name": "h1", "server_sockaddr": ["127.0.0.1", `+port+`], `+files+`}`), 0o644)
	os.WriteFile(srv, []byte(`{"is_server": true, "server_sockaddr": ["127.0.0.1", `+port+`], `+files+`}`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() { done <- runBenchHost(ctx, []string{cli, srv}, &out, &errb) }()
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("exit %d, want 1; stderr %q", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		cancel()
		<-done
		t.Fatalf("bench_host still running with one connector failed; stderr %q", errb.String())
	}
}
