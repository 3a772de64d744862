package loop

import (
	gotls "crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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

// newGroup starts a group of loops loops, closed when the test ends.
func newGroup(t *testing.T, loops int) *Group {
	t.Helper()
	g, err := NewGroup(loops)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(5 * time.Second) })
	return g
}

// startMember starts a member engine of g on a unix listener in the test's directory (no Handler
// of its own: connections are enrolled).
func startMember(t *testing.T, g *Group) *Engine {
	t.Helper()
	e, err := g.Start([]Listener{{Addr: "unix://" + filepath.Join(t.TempDir(), "s"), Handler: nop{}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGroupMembers: two engines on one group's loop each serve their own unix listener and an
// enrolled TCP connection; stopping one closes its listener (the socket file goes) and its
// connections only, refuses its later enrollments, and the other goes on.
func TestGroupMembers(t *testing.T) {
	g := newGroup(t, 1)
	dir := t.TempDir()
	var err error
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
	g := newGroup(t, 2)
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
	two := []Listener{{Addr: "tcp://127.0.0.1:0", Handler: h}, {Addr: "tcp://127.0.0.1:0", Handler: h}}
	if _, err := g.Start(two, Options{}); err == nil {
		t.Fatal("two tcp listeners were accepted (an engine of its own takes one)")
	}
}

// counting records which Handler calls a connection got.
type counting struct{ opened, closed atomic.Int32 }

func (h *counting) OnOpen(*Conn)          { h.opened.Add(1) }
func (h *counting) OnTraffic(*Conn) error { return nil }
func (h *counting) OnClose(*Conn, error)  { h.closed.Add(1) }

// TestGroupEnrollDuringStop: an Enroll that passed the stop check when its member's Stop ran
// (enrollHook stops the member right there) is refused at OnOpen: ErrStopped, and its Handler
// sees neither OnOpen nor OnClose, as with an engine of its own stopped first.
func TestGroupEnrollDuringStop(t *testing.T) {
	e := startMember(t, newGroup(t, 1))
	enrollHook = func(he *Engine) {
		if he == e {
			e.Stop(5 * time.Second)
		}
	}
	defer func() { enrollHook = nil }()
	a, b := tcpPair(t)
	defer a.Close()
	h := &counting{}
	if _, err := e.Enroll(b, h, nil); !errors.Is(err, ErrStopped) {
		t.Fatalf("Enroll during Stop: %v, want ErrStopped", err)
	}
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the refused connection: read %v, want EOF", err)
	}
	if h.opened.Load() != 0 || h.closed.Load() != 0 {
		t.Fatalf("Handler saw OnOpen %d, OnClose %d; want neither", h.opened.Load(), h.closed.Load())
	}
}

// TestGroupStartFails: a Start whose second listener cannot bind returns the error and leaves
// nothing behind: the first listener's socket file is gone and the path can be used again.
func TestGroupStartFails(t *testing.T) {
	g := newGroup(t, 1)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p := filepath.Join(t.TempDir(), "s")
	h := &counting{}
	if _, err := g.Start([]Listener{{Addr: "unix://" + p, Handler: h}, {Addr: "tcp://" + busy.Addr().String(), Handler: h}}, Options{}); err == nil ||
		!strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("Start with a busy port: %v, want an error naming it", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed Start's socket file: %v", err)
	}
	e, err := g.Start([]Listener{{Addr: "unix://" + p, Handler: h}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if h.opened.Load() != 0 {
		t.Fatalf("%d connections opened", h.opened.Load())
	}
}

// TestGroupStopTLSBacklog: a member's Stop closes a TLS link whose peer reads nothing without
// waiting for its queued output (close_notify, then close), as gnet's stop of an engine of its
// own does.
func TestGroupStopTLSBacklog(t *testing.T) {
	e := startMember(t, newGroup(t, 1))
	cli, c := enrollPair(t, e, gotls.VersionTLS13, nop{})
	defer cli.Close()
	done := make(chan error, 1)
	c.AsyncWrite(make([]byte, 32<<20), func(err error) { done <- err })
	<-done
	if err := e.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop with a TLS backlog: %v", err)
	}
}
