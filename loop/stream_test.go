package loop

import (
	"bytes"
	"crypto/rand"
	"io"
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

func startEngine(t *testing.T) *Engine {
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

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
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

// TestStreamEcho: a stream connection delivers bytes to OnTraffic in order and Write sends them
// back, in any split, for a few MiB (more than the inbound limit, so backpressure engages).
func TestStreamEcho(t *testing.T) {
	e := startEngine(t)
	a, b := tcpPair(t)
	defer a.Close()
	h := &echo{closeErr: make(chan error, 1)}
	c, err := e.EnrollStream(b, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Stream() || h.opened.Load() != 1 {
		t.Fatal("OnOpen not called before EnrollStream returned")
	}
	data := make([]byte, 6<<20)
	rand.Read(data)
	go func() {
		for off := 0; off < len(data); {
			n := 1 + int(data[off])*97
			if off+n > len(data) {
				n = len(data) - off
			}
			a.Write(data[off : off+n])
			off += n
		}
	}()
	got := make([]byte, len(data))
	a.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(a, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed bytes differ")
	}
	// peer EOF: OnClose with nil error
	a.Close()
	select {
	case err := <-h.closeErr:
		if err != nil {
			t.Fatalf("OnClose err = %v, want nil on EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose not called after EOF")
	}
}

// TestStreamAsyncWriteAndClose: AsyncWrite from another goroutine is written, Close flushes
// pending output before closing, and Engine.Stop closes remaining streams.
func TestStreamAsyncWriteAndClose(t *testing.T) {
	e := startEngine(t)
	a, b := tcpPair(t)
	defer a.Close()
	h := &echo{closeErr: make(chan error, 2)}
	c, err := e.EnrollStream(b, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	c.AsyncWrite([]byte("hello"), func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.Close()
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(a)
	if err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := <-h.closeErr; err != nil {
		t.Fatalf("OnClose err = %v", err)
	}
	if c.AsyncWrite([]byte("x"), nil) == nil {
		t.Fatal("AsyncWrite after Close succeeded")
	}
	// Stop closes live streams
	a2, b2 := tcpPair(t)
	defer a2.Close()
	if _, err := e.EnrollStream(b2, h, nil); err != nil {
		t.Fatal(err)
	}
	e.Stop(5 * time.Second)
	select {
	case <-h.closeErr:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not close the stream")
	}
	a3, b3 := tcpPair(t)
	defer a3.Close()
	if _, err := e.EnrollStream(b3, h, nil); err == nil {
		t.Fatal("EnrollStream after Stop succeeded")
	}
}
