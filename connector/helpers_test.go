package connector

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// shortDir returns a short temporary directory (unix socket paths are limited to 104 chars).
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// newConnector builds and starts a connector from JSON config text (dir placeholders filled),
// with short timers for tests.
func newConnector(t testing.TB, dir string, cfgJSON string, tweak func(*config.Options)) *Connector {
	t.Helper()
	cfgJSON = strings.ReplaceAll(cfgJSON, "$DIR", dir)
	cfg, err := config.Parse([]byte(cfgJSON), "test.json")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.ReconnectInterval = 50 * time.Millisecond
	if tweak != nil {
		tweak(cfg)
	}
	c, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Start(); err != nil {
		c.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// readRaw reads one u32-prefixed record (frame or commander reply) and returns it whole.
func readRaw(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		t.Fatalf("read prefix: %v", err)
	}
	n := binary.LittleEndian.Uint32(h[:])
	b := make([]byte, 4+n)
	copy(b, h[:])
	if _, err := io.ReadFull(c, b[4:]); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

func dialUnix(t testing.TB, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// appListener is a test application listening on a receive_from_connector socket.
type appListener struct {
	ln    net.Listener
	conns chan net.Conn
}

func listenApp(t testing.TB, path string) *appListener {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
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

// next returns the next frame delivered to the application (accepting the connector's connection
// on first use).
func (a *appListener) next(t testing.TB, cur *net.Conn) []byte {
	t.Helper()
	if *cur == nil {
		select {
		case c := <-a.conns:
			*cur = c
			t.Cleanup(func() { c.Close() })
		case <-time.After(5 * time.Second):
			t.Fatal("connector never connected to the application listener")
		}
	}
	return readRaw(t, *cur)
}

// command sends one commander request and returns the reply payload.
func command(t testing.TB, path, cmd string, kwargs map[string]any) string {
	t.Helper()
	c := dialUnix(t, path)
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	kw, _ := json.Marshal(kwargs)
	req := []byte(fmt.Sprintf(`{"cmd": %q, "kwargs": %s}`, cmd, kw))
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(req)))
	c.Write(append(h[:], req...))
	return string(readRaw(t, c)[4:])
}

// waitPeers waits (on the connector's peer-change signal, at most 5 s) until cond holds.
func waitPeers(t testing.TB, c *Connector, what string, cond func([]string) bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		ch := c.PeerChange()
		if cond(c.ConnectedPeers()) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s (peers %v)", what, c.ConnectedPeers())
		}
	}
}

func repoRoot(t testing.TB) string {
	d, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		p := filepath.Dir(d)
		if p == d {
			t.Fatal("go.mod not found")
		}
		d = p
	}
}

// waitFile waits (bounded, polling a file the connector writes in the background: there is no
// event to wait on) until cond holds for the file's content.
func waitFile(t testing.TB, path string, cond func([]byte) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if cond(b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (content %q)", path, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGone waits (bounded) until path no longer exists.
func waitGone(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(path); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitQueued waits (bounded) until peek_queues shows n messages for peer.
func waitQueued(t testing.TB, c *Connector, peer string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, send := c.queueSizes()
		if send[peer] == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue of %s: %v, want %d", peer, send, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nextNonEmpty is next, skipping connections that close without a byte (probes).
func (a *appListener) nextNonEmpty(t testing.TB, cur *net.Conn) []byte {
	t.Helper()
	for {
		if *cur == nil {
			select {
			case c := <-a.conns:
				*cur = c
				t.Cleanup(func() { c.Close() })
			case <-time.After(5 * time.Second):
				t.Fatal("connector never connected to the application listener")
			}
		}
		(*cur).SetReadDeadline(time.Now().Add(5 * time.Second))
		var h [4]byte
		if _, err := io.ReadFull(*cur, h[:]); err != nil {
			*cur = nil
			continue
		}
		n := binary.LittleEndian.Uint32(h[:])
		b := make([]byte, 4+n)
		copy(b, h[:])
		if _, err := io.ReadFull(*cur, b[4:]); err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// appendFrame builds a frame with a binary section.
func appendFrame(js, data, bin []byte) []byte {
	return codec.AppendFrame(nil, js, data, bin, true)
}
