package loop

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
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

func enrollBoth(t *testing.T, e *Engine, nc net.Conn, h Handler, stream bool) {
	t.Helper()
	var err error
	if stream {
		_, err = e.EnrollStream(nc, h, nil)
	} else {
		_, err = e.Enroll(nc, h, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestTransformSwitch: bytes before the switch line stay plain, bytes after it (even in the same
// read) are decoded, the answers are encoded, AsyncWrite too, and more than decodedLimit of
// input flows through (the wake after the limit).
func TestTransformSwitch(t *testing.T) {
	old := decodedLimit
	decodedLimit = 64 << 10
	defer func() { decodedLimit = old }()
	for _, stream := range []bool{false, true} {
		e := startEngine(t)
		a, b := tcpPair(t)
		h := &switcher{closeErr: make(chan error, 1)}
		enrollBoth(t, e, b, h, stream)
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
