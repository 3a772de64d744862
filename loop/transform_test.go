package loop

import (
	"bufio"
	"bytes"
	gotls "crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// xorUnits is a test transform: units of u16 length + bytes XOR 0x5a; a unit of length 0 is corrupt.
type xorUnits struct{}

func (xorUnits) Encode(dst, src []byte) []byte {
	for len(src) > 0 {
		n := min(len(src), 60000)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
		for _, b := range src[:n] {
			dst = append(dst, b^0x5a)
		}
		src = src[n:]
	}
	return dst
}

var errCorrupt = errors.New("corrupt unit")

func (xorUnits) Decode(dst, src []byte, limit int) ([]byte, int, error) {
	used, start := 0, len(dst)
	for len(src)-used >= 2 && len(dst)-start < limit {
		n := int(binary.BigEndian.Uint16(src[used:]))
		if n == 0 {
			return dst, used, errCorrupt
		}
		if len(src)-used < 2+n {
			break
		}
		for _, b := range src[used+2 : used+2+n] {
			dst = append(dst, b^0x5a)
		}
		used += 2 + n
	}
	return dst, used, nil
}

// switcher echoes lines; after the line "SWITCH" (echoed plain) both directions go through
// xorUnits. A line "ASYNC" is answered with "async\n" through AsyncWrite from another goroutine.
type switcher struct {
	closeErr chan error
	lines    int
}

func (s *switcher) OnOpen(*Conn) {}
func (s *switcher) OnTraffic(c *Conn) error {
	for {
		b, _ := c.Peek(0)
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		line := string(b[:i+1])
		c.Write(b[:i+1])
		c.Discard(i + 1)
		s.lines++
		switch line {
		case "SWITCH\n":
			c.SetEncoder(xorUnits{})
			if err := c.SetDecoder(xorUnits{}); err != nil {
				return err
			}
		case "ASYNC\n":
			go c.AsyncWrite([]byte("async\n"), nil)
		}
	}
}
func (s *switcher) OnClose(c *Conn, err error) { s.closeErr <- err }

// enrollBoth enrolls the server end of a connection, plain or (tls) with EnrollTLS, and returns
// the client end to test with (a *tls.Conn over a when tls).
func enrollBoth(t *testing.T, e *Engine, h Handler, tls bool) net.Conn {
	t.Helper()
	if !tls {
		a, b := tcpPair(t)
		if _, err := e.Enroll(b, h, nil); err != nil {
			t.Fatal(err)
		}
		return a
	}
	cli, _ := enrollPair(t, e, gotls.VersionTLS13, h)
	return cli
}

// TestTransformSwitch: bytes before the switch line stay plain, bytes after it (even in the same
// read) are decoded, the answers are encoded, AsyncWrite too, and more than decodedLimit of
// input flows through (the wake after the limit); on a plain and on a TLS connection (the
// transform under the records: plaintext already decrypted when SetDecoder is called goes
// through the decoder).
func TestTransformSwitch(t *testing.T) {
	setDecodedLimit(t, 64<<10)
	for _, stream := range []bool{false, true} {
		e := startEngine(t)
		h := &switcher{closeErr: make(chan error, 1)}
		a := enrollBoth(t, e, h, stream)
		a.SetDeadline(time.Now().Add(30 * time.Second))
		var x xorUnits
		body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 30000) // 1.1 MB, many times decodedLimit
		out := append([]byte("plain\nSWITCH\n"), x.Encode(nil, []byte("coded\nASYNC\n"))...)
		go func() {
			a.Write(out)
			a.Write(x.Encode(nil, body))
		}()
		r := bufio.NewReader(a)
		for _, want := range []string{"plain\n", "SWITCH\n"} {
			if got, err := r.ReadString('\n'); got != want || err != nil {
				t.Fatalf("stream %v: %q %v, want %q", stream, got, err, want)
			}
		}
		// the rest is encoded: decode as it comes
		var dec []byte
		var raw []byte
		buf := make([]byte, 64<<10)
		want := len("coded\nASYNC\n") + len("async\n") + len(body)
		for len(dec) < want {
			n, err := r.Read(buf)
			if err != nil {
				t.Fatalf("stream %v: after %d bytes: %v", stream, len(dec), err)
			}
			raw = append(raw, buf[:n]...)
			var used int
			dec, used, err = x.Decode(dec, raw, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			raw = raw[used:]
		}
		got := string(dec)
		if n := bytes.Count(dec, []byte("async\n")); n != 1 || len(got) != want || !bytes.HasPrefix(dec, []byte("coded\nASYNC\n")) {
			t.Fatalf("stream %v: %d bytes, %d async", stream, len(got), n)
		}
		// a corrupt unit closes the connection with the decoder's error
		a.Write([]byte{0, 0})
		select {
		case err := <-h.closeErr:
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("stream %v: closed with %v", stream, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("stream %v: not closed", stream)
		}
		io.Copy(io.Discard, a)
		a.Close()
	}
}

// relay writes what it reads on conn A to conn B with WriteFrom (falling back to AsyncWrite),
// and records whether WriteFrom took it.
type relay struct {
	to     func() *Conn
	direct chan bool
}

func (r *relay) OnOpen(*Conn) {}
func (r *relay) OnTraffic(c *Conn) error {
	b, _ := c.Peek(0)
	if len(b) == 0 {
		return nil
	}
	out := append([]byte(nil), b...)
	c.Discard(len(b))
	to := r.to()
	ok := to.WriteFrom(c, out)
	if !ok {
		to.AsyncWrite(out, nil)
	}
	r.direct <- ok
	return nil
}
func (r *relay) OnClose(*Conn, error) {}

// TestWriteFrom: on one event loop a handler writes to another gnet connection at once; to a
// TLS connection WriteFrom declines (the caller falls back to AsyncWrite).
func TestWriteFrom(t *testing.T) {
	dir, _ := os.MkdirTemp("", "lp")
	defer os.RemoveAll(dir)
	e, err := Start([]Listener{{Addr: "unix://" + filepath.Join(dir, "s"), Handler: nop{}}}, Options{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(5 * time.Second)
	for _, stream := range []bool{false, true} {
		a1, a2 := tcpPair(t)
		var b1 net.Conn
		var bc *Conn
		r := &relay{to: func() *Conn { return bc }, direct: make(chan bool, 1)}
		if stream {
			var srv *gotls.Conn
			var hc *HandshakeConn
			b1, srv, hc = tlsPair(t, gotls.VersionTLS13, nil)
			bc, err = e.EnrollTLS(srv, hc, nop{}, nil)
		} else {
			var b2 net.Conn
			b1, b2 = tcpPair(t)
			bc, err = e.Enroll(b2, nop{}, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Enroll(a2, r, nil); err != nil {
			t.Fatal(err)
		}
		a1.Write([]byte("hello"))
		if got := <-r.direct; got == stream {
			t.Fatalf("stream %v: WriteFrom took it: %v", stream, got)
		}
		b1.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(b1, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("stream %v: relayed %q %v", stream, buf, err)
		}
		a1.Close()
		b1.Close()
	}
}
