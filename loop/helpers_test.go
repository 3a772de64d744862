package loop

import (
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

type echo struct {
	opened, closed atomic.Int32
	closeErr       chan error
}

func (e *echo) OnOpen(c *Conn) { e.opened.Add(1) }
func (e *echo) OnTraffic(c *Conn) error {
	b, _ := c.Peek(0)
	c.Write(b)
	c.Discard(len(b))
	return nil
}
func (e *echo) OnClose(c *Conn, err error) {
	e.closed.Add(1)
	e.closeErr <- err
}

type nop struct{}

func (nop) OnOpen(*Conn)          {}
func (nop) OnTraffic(*Conn) error { return nil }
func (nop) OnClose(*Conn, error)  {}

func startEngine(t testing.TB) *Engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "lp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e, err := Start([]Listener{{Addr: "unix://" + filepath.Join(dir, "s"), Handler: nop{}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(5 * time.Second) })
	return e
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// setDecodedLimit sets decodedLimit for one test; call it before startEngine, so that the
// restore runs after the engine stopped (cleanups run last first).
func setDecodedLimit(t *testing.T, n int) {
	old := decodedLimit
	decodedLimit = n
	t.Cleanup(func() { decodedLimit = old })
}

// waitClosed returns what a Handler's OnClose sent on ch, failing the test with msg after 10 s.
func waitClosed(t *testing.T, ch <-chan error, msg string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
		return nil
	}
}
