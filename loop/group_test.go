package loop

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// echoOnce writes msg on nc and reads it back.
func echoOnce(t *testing.T, nc net.Conn, msg string) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q: got %q, %v", msg, got, err)
	}
}

// TestGroupMembers: two engines on one group's loop each serve their own unix listener and an
// enrolled TCP connection; stopping one closes its listener (the socket file goes) and its
// connections only, refuses its later enrollments, and the other goes on.
func TestGroupMembers(t *testing.T) {
	g, err := NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(5 * time.Second)
	dir := t.TempDir()
	var hs [2]*echo
	var es [2]*Engine
	var ncs [2]net.Conn
	for i := range es {
		hs[i] = &echo{closeErr: make(chan error, 4)}
		p := filepath.Join(dir, string(rune('a'+i)))
		if es[i], err = g.Start([]Listener{{Addr: "unix://" + p, Handler: hs[i]}}, Options{}); err != nil {
			t.Fatal(err)
		}
		if ncs[i], err = net.Dial("unix", p); err != nil {
			t.Fatal(err)
		}
		defer ncs[i].Close()
		echoOnce(t, ncs[i], "hello")
	}
	a, b := tcpPair(t)
	defer a.Close()
	if _, err := es[0].Enroll(b, hs[0], nil); err != nil {
		t.Fatal(err)
	}
	echoOnce(t, a, "over tcp")

	if err := es[0].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-es[0].Done()
	for _, nc := range []net.Conn{ncs[0], a} {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := nc.Read(make([]byte, 8)); err != io.EOF {
			t.Fatalf("a stopped member's connection: read %d, %v; want EOF", n, err)
		}
	}
	if got := hs[0].closed.Load(); got != 2 {
		t.Fatalf("OnClose ran %d times, want 2", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stopped member's socket file: %v", err)
	}
	c2, d2 := tcpPair(t)
	defer c2.Close()
	if _, err := es[0].Enroll(d2, hs[0], nil); err == nil {
		t.Fatal("a stopped member enrolled a connection")
	}
	echoOnce(t, ncs[1], "still here")
	if err := es[1].Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestGroupTCPListener: a member's TCP listener (port 0) reports its address and serves.
func TestGroupTCPListener(t *testing.T) {
	g, err := NewGroup(2)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(5 * time.Second)
	h := &echo{closeErr: make(chan error, 4)}
	e, err := g.Start([]Listener{{Addr: "tcp://127.0.0.1:0", Handler: h}}, Options{ReusePort: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(5 * time.Second)
	if e.TCPAddr() == nil {
		t.Fatal("no TCP address")
	}
	nc, err := net.Dial("tcp", e.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	echoOnce(t, nc, "ping")
	if _, err := g.Start([]Listener{{Addr: "udp://127.0.0.1:0", Handler: h}}, Options{}); err == nil {
		t.Fatal("a udp listener was accepted")
	}
}
