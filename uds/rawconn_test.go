package uds

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// rawPair returns a connected pair of unix connections, both wrapped.
func rawPair(t testing.TB) (client, server *Conn) {
	t.Helper()
	d, err := os.MkdirTemp("", "ac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	path := filepath.Join(d, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cw, ok1 := wrap(c).(*Conn)
	sw, ok2 := wrap(s).(*Conn)
	if !ok1 || !ok2 {
		t.Fatal("Wrap did not wrap a *net.UnixConn")
	}
	t.Cleanup(func() { cw.Close(); sw.Close() })
	return cw, sw
}

func TestRawConnWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a connection that is not a *net.UnixConn")
	}
	// a datagram unix socket keeps its message boundaries: wrap leaves it to net
	p := filepath.Join(t.TempDir(), "g")
	g, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if wrap(g) != net.Conn(g) {
		t.Fatal("wrap changed a unixgram connection")
	}
}

func TestRawConnReadWrite(t *testing.T) {
	c, s := rawPair(t)
	if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := c.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty Write = %d, %v", n, err)
	}
	buf := make([]byte, 16)
	if n, err := s.Read(buf[:0]); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
	n, err := io.ReadFull(s, buf[:5])
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	// a Read parked in the poller is woken by a later write
	done := make(chan error, 1)
	go func() {
		n, err := s.Read(buf)
		if err == nil && string(buf[:n]) != "late" {
			err = errors.New("read " + string(buf[:n]))
		}
		done <- err
	}()
	if _, err := c.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after peer close = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestRawConnDeadlineAndClose(t *testing.T) {
	c, s := rawPair(t)
	s.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := s.Read(make([]byte, 4))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past its deadline: %v; want a timeout wrapping os.ErrDeadlineExceeded", err)
	}
	s.SetReadDeadline(time.Time{})
	// Close from another goroutine interrupts a Read
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 4))
		done <- err
	}()
	s.Close() // whether the Read has parked yet or not, it must end with net.ErrClosed
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read interrupted by Close: %v; want net.ErrClosed", err)
	}
	// writing to a peer that is gone fails with EPIPE (no SIGPIPE kills the process)
	var werr error
	for range 100 {
		if _, werr = c.Write([]byte("x")); werr != nil {
			break
		}
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("Write to a closed peer: %v; want EPIPE", werr)
	}
	var op *net.OpError
	if !errors.As(werr, &op) || op.Op != "write" {
		t.Fatalf("Write error %#v is not a *net.OpError of op write", werr)
	}
}

// TestRawConnLargeWritesAndBuffers: a write far larger than one raw call moves (rawChunk) and
// than the socket buffer parks on EAGAIN and resumes; net.Buffers (the Go API's frames over
// 64 KiB) go through the wrapped connection's own writev.
func TestRawConnLargeWritesAndBuffers(t *testing.T) {
	c, s := rawPair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s)
		got <- b
	}()
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	bufs := net.Buffers{nil, big[:10], {}, big[10 : 1<<20], big[1<<20:]}
	if n, err := bufs.WriteTo(c); n != int64(len(big)) || err != nil {
		t.Fatalf("net.Buffers.WriteTo = %d, %v", n, err)
	}
	c.Close()
	want := append(append([]byte{}, big...), big...)
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("read %d bytes, want %d (content differs)", len(b), len(want))
	}
}

func BenchmarkRawConnRoundTrip(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "net"
		if raw {
			name = "raw"
		}
		b.Run(name, func(b *testing.B) {
			cw, sw := rawPair(b)
			var c, s net.Conn = cw.UnixConn, sw.UnixConn
			if raw {
				c, s = cw, sw
			}
			msg := make([]byte, 100)
			buf := make([]byte, 100)
			b.ReportAllocs()
			for b.Loop() {
				c.Write(msg)
				io.ReadFull(s, buf)
			}
		})
	}
}
