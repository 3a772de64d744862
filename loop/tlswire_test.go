package loop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	gotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testTLSConfig(t testing.TB) *gotls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &gotls.Config{Certificates: []gotls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		InsecureSkipVerify: true, MinVersion: gotls.VersionTLS12}
}

// gatedConn holds the handshake's reads once it has written its flight, until gate is closed:
// the client's Finished and its first application records then arrive in one read.
type gatedConn struct {
	net.Conn
	wrote atomic.Bool
	gate  chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) { g.wrote.Store(true); return g.Conn.Write(b) }
func (g *gatedConn) Read(b []byte) (int, error) {
	if g.wrote.Load() {
		<-g.gate
	}
	return g.Conn.Read(b)
}

// enrollPair makes a TLS pair (tlsPair, no early data) and enrolls its server end on e with
// Handler h; it returns the client and the server's Conn.
func enrollPair(t testing.TB, e *Engine, version uint16, h Handler) (*gotls.Conn, *Conn) {
	t.Helper()
	cli, srv, hc := tlsPair(t, version, nil)
	c, err := e.EnrollTLS(srv, hc, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cli, c
}

// holdConn is the client's socket in tlsPair: while hold is set, writes are kept, and flush
// sends them with more bytes in one write (so that the server reads them together).
type holdConn struct {
	net.Conn
	hold bool
	buf  []byte
}

func (h *holdConn) Write(b []byte) (int, error) {
	if h.hold {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

func (h *holdConn) flush(more []byte) error {
	h.hold = false
	_, err := h.Conn.Write(append(h.buf, more...))
	return err
}

// tlsPair handshakes a client (returned) with a server-side *tls.Conn over a HandshakeConn.
// early is written by the client right after its handshake, before the server's handshake
// reads the client's last flight.
func tlsPair(t testing.TB, version uint16, early []byte) (*gotls.Conn, *gotls.Conn, *HandshakeConn) {
	t.Helper()
	a, b := tcpPair(t)
	cfg := testTLSConfig(t)
	cfg.MaxVersion = version
	g := &gatedConn{Conn: b, gate: make(chan struct{})}
	if version < gotls.VersionTLS13 { // the client writes only after the server's Finished
		close(g.gate)
	}
	hc := NewHandshakeConn(g)
	srv := gotls.Server(hc, cfg)
	done := make(chan error, 1)
	go func() { done <- srv.Handshake() }()
	cli := gotls.Client(&holdConn{Conn: a}, cfg)
	cli.SetDeadline(time.Now().Add(30 * time.Second))
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if len(early) > 0 {
		if _, err := cli.Write(early); err != nil {
			t.Fatal(err)
		}
	}
	if version >= gotls.VersionTLS13 {
		close(g.gate)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	hc.Conn = b // the loop gets the socket itself
	t.Cleanup(func() { a.Close() })
	return cli, srv, hc
}

// TestTLSWireEcho: records are decrypted and encrypted on the loop, for TLS 1.2 and 1.3:
// application data read along with the handshake's last flight is delivered, several MiB in any
// split come back intact with the decoded-bytes cap far below the transfer (the pending path),
// AsyncWrite goes through the record layer, and close_notify is a clean close (nil error).
func TestTLSWireEcho(t *testing.T) {
	setDecodedLimit(t, 64<<10)
	for _, v := range []uint16{gotls.VersionTLS12, gotls.VersionTLS13} {
		t.Run(gotls.VersionName(v), func(t *testing.T) {
			e := startEngine(t)
			cli, srv, hc := tlsPair(t, v, []byte("early bytes"))
			h := &echo{closeErr: make(chan error, 1)}
			c, err := e.EnrollTLS(srv, hc, h, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.NetConn() != srv {
				t.Fatal("EnrollTLS: want a gnet connection whose NetConn is the *tls.Conn")
			}
			got := make([]byte, len("early bytes"))
			if _, err := io.ReadFull(cli, got); err != nil || string(got) != "early bytes" {
				t.Fatalf("early data: %q, %v", got, err)
			}
			data := make([]byte, 3<<20)
			rand.Read(data)
			go func() {
				for off := 0; off < len(data); {
					n := 1 + int(data[off])*131
					if off+n > len(data) {
						n = len(data) - off
					}
					cli.Write(data[off : off+n])
					off += n
				}
			}()
			back := make([]byte, len(data))
			if _, err := io.ReadFull(cli, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, data) {
				t.Fatal("echoed bytes differ")
			}
			done := make(chan error, 1)
			c.AsyncWrite([]byte("async"), func(err error) { done <- err })
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			got = make([]byte, 5)
			if _, err := io.ReadFull(cli, got); err != nil || string(got) != "async" {
				t.Fatalf("AsyncWrite: %q, %v", got, err)
			}
			cli.Close()
			err = waitClosed(t, h.closeErr, "OnClose not called after close_notify")
			if err != nil {
				t.Fatalf("OnClose err = %v, want nil after close_notify", err)
			}
		})
	}
}

// badRecord is an application-data record (type 23, TLS 1.2 on the wire) of 40 bytes that is
// not sealed: it does not authenticate.
var badRecord = append([]byte{23, 3, 3, 0, 40}, bytes.Repeat([]byte{0x5a}, 40)...)

// TestTLSWireCorrupt: a record that does not authenticate closes the connection with the TLS
// error; the engine keeps serving others.
func TestTLSWireCorrupt(t *testing.T) {
	e := startEngine(t)
	h := &echo{closeErr: make(chan error, 1)}
	cli, _ := enrollPair(t, e, gotls.VersionTLS13, h)
	raw := cli.NetConn()
	if _, err := raw.Write(badRecord); err != nil {
		t.Fatal(err)
	}
	err := waitClosed(t, h.closeErr, "a corrupt record did not close the connection")
	if err == nil || !strings.Contains(err.Error(), "TLS read") {
		t.Fatalf("OnClose err = %v, want the TLS read error", err)
	}
	h2 := &echo{closeErr: make(chan error, 1)}
	cli2, _ := enrollPair(t, e, gotls.VersionTLS13, h2)
	cli2.Write([]byte("ping"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(cli2, got); err != nil || string(got) != "ping" {
		t.Fatalf("second connection: %q, %v", got, err)
	}
}

// TestTLSWireDecodePending: a decode that stops at its limit reports pending (records wait
// inside crypto/tls although every offered byte was taken), and a decode with no new input
// returns the rest.
func TestTLSWireDecodePending(t *testing.T) {
	cli, srv, hc := tlsPair(t, gotls.VersionTLS13, nil)
	data := make([]byte, 80<<10)
	rand.Read(data)
	if _, err := cli.Write(data); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	buf := make([]byte, 64<<10)
	hc.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(raw) < len(data)+5*22 {
		n, err := hc.Conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, buf[:n]...)
	}
	hc.mem = true
	w := &wireTLS{tc: srv, hc: hc}
	out, used, err := w.decode(nil, raw, 20<<10)
	if err != nil || len(out) < 20<<10 || !w.pending {
		t.Fatalf("first decode: %d bytes, pending %v, %v", len(out), w.pending, err)
	}
	raw = raw[used:]
	for i := 0; i < 10 && len(out) < len(data); i++ {
		out, used, err = w.decode(out, raw, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		raw = raw[used:]
	}
	if !bytes.Equal(out, data) || w.pending {
		t.Fatalf("decoded %d of %d bytes, pending %v", len(out), len(data), w.pending)
	}
}

// FuzzTLSWireDecode: any bytes after a completed handshake, offered in any split, give a
// decode error or plaintext; never a panic, and never more than the limit past one record.
func FuzzTLSWireDecode(f *testing.F) {
	f.Add([]byte{23, 3, 3, 0, 5, 1, 2, 3, 4, 5}, uint8(3))
	f.Add([]byte{21, 3, 3, 0, 2, 1, 0}, uint8(0))
	f.Add(append([]byte{23, 3, 3, 0x40, 0x11}, make([]byte, 40)...), uint8(7))
	cfg := testTLSConfig(f)
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		hc := NewHandshakeConn(b)
		srv := gotls.Server(hc, cfg)
		done := make(chan error, 1)
		go func() { done <- srv.Handshake() }()
		cli := gotls.Client(a, cfg)
		if err := cli.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		hc.mem = true
		w := &wireTLS{tc: srv, hc: hc}
		var out []byte
		for len(in) > 0 {
			n := min(len(in), 1+int(split))
			var used int
			var err error
			before := len(out)
			out, used, err = w.decode(out, in[:n], 1024)
			if err != nil {
				return
			}
			if len(out)-before > 1024+16<<10 || used > n {
				t.Fatalf("decode grew %d bytes, used %d of %d", len(out)-before, used, n)
			}
			in = in[used:]
			if used == 0 {
				in = in[n:]
			}
		}
	})
}

// TestTLSWireCloseNotify: Close on a TLS connection (from any goroutine) sends what was written
// before it, then the close_notify alert, as tls.Conn.Close does, then closes the socket.
func TestTLSWireCloseNotify(t *testing.T) {
	e := startEngine(t)
	cli, c := enrollPair(t, e, gotls.VersionTLS12, nop{}) // 1.2: the alert's record type is visible
	done := make(chan error, 1)
	c.AsyncWrite([]byte("last words"), func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.Close()
	raw := cli.NetConn()
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(raw)
	if err != nil {
		t.Fatal(err)
	}
	var types []byte
	for len(b) >= 5 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			break
		}
		types = append(types, b[0])
		b = b[5+n:]
	}
	if len(types) != 2 || types[0] != 23 || types[1] != 21 {
		t.Fatalf("records after the handshake: types %v, want [23 21] (data, close_notify alert)", types)
	}
}

// TestTLSWireCloseFlush: writes queued before Close (AsyncWrite from another goroutine, 8 MiB,
// far more than the socket takes at once) all reach the peer, then close_notify: the peer reads
// every byte and a clean EOF.
func TestTLSWireCloseFlush(t *testing.T) {
	e := startEngine(t)
	cli, c := enrollPair(t, e, gotls.VersionTLS13, nop{})
	data := make([]byte, 32<<20) // far more than the socket takes at once
	rand.Read(data)
	done := make(chan error, 1)
	c.AsyncWrite(data, func(err error) { done <- err })
	c.Close()
	// done runs on the loop in Close's turn, before the peer reads anything
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AsyncWrite done: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("AsyncWrite's done never called")
	}
	got, err := io.ReadAll(cli)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d of %d bytes before the close, err %v", len(got), len(data), err)
	}
}

// counter switches to xorUnits after the line "SWITCH\n" and counts what it consumes after it.
type counter struct {
	n      atomic.Int64
	closed chan error
	on     bool
}

func (k *counter) OnOpen(*Conn) {}
func (k *counter) OnTraffic(c *Conn) error {
	b, _ := c.Peek(0)
	if !k.on {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		c.Discard(i + 1)
		k.on = true
		if err := c.SetDecoder(xorUnits{}); err != nil {
			return err
		}
		b, _ = c.Peek(0)
	}
	k.n.Add(int64(len(b)))
	c.Discard(len(b))
	return nil
}
func (k *counter) OnClose(_ *Conn, err error) { k.closed <- err }

// TestTLSWireEOFWithDecoder: a peer that writes a burst through a decoder layered on TLS and
// closes (close_notify) has every byte handled before OnClose, although the close arrives while
// decoded and undecoded bytes still wait behind the cap.
func TestTLSWireEOFWithDecoder(t *testing.T) {
	setDecodedLimit(t, 16<<10)
	e := startEngine(t)
	k := &counter{closed: make(chan error, 1)}
	cli, _ := enrollPair(t, e, gotls.VersionTLS13, k)
	body := bytes.Repeat([]byte("0123456789"), 600000)
	var x xorUnits
	cli.Write(append([]byte("SWITCH\n"), x.Encode(nil, body)...))
	cli.Close()
	err := waitClosed(t, k.closed, "no OnClose")
	if err != nil || k.n.Load() != int64(len(body)) {
		t.Fatalf("handled %d of %d bytes before OnClose(%v)", k.n.Load(), len(body), err)
	}
}

// slow consumes at most 1 KiB per call.
type slow struct {
	n      atomic.Int64
	closed chan error
}

func (k *slow) OnOpen(*Conn) {}
func (k *slow) OnTraffic(c *Conn) error {
	b, _ := c.Peek(0)
	n := min(len(b), 1024)
	k.n.Add(int64(n))
	c.Discard(n)
	return nil
}
func (k *slow) OnClose(_ *Conn, err error) { k.closed <- err }

// TestTLSWireDrainAtEOF: input the Handler left when the peer closed (gnet closes at EOF at once)
// is offered to it before OnClose, as long as it takes some.
func TestTLSWireDrainAtEOF(t *testing.T) {
	e := startEngine(t)
	k := &slow{closed: make(chan error, 1)}
	cli, _ := enrollPair(t, e, gotls.VersionTLS13, k)
	cli.Write(make([]byte, 100<<10))
	cli.Close()
	waitClosed(t, k.closed, "no OnClose")
	if k.n.Load() != 100<<10 {
		t.Fatalf("handled %d of %d bytes before OnClose", k.n.Load(), 100<<10)
	}
}

// liner handles lines; "BAD" is consumed and refused (the connection closes with an error).
type liner struct {
	mu     sync.Mutex
	lines  []string
	closed chan error
}

func (k *liner) OnOpen(*Conn) {}
func (k *liner) OnTraffic(c *Conn) error {
	for {
		b, _ := c.Peek(0)
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil
		}
		line := string(b[:i])
		c.Discard(i + 1)
		k.mu.Lock()
		k.lines = append(k.lines, line)
		k.mu.Unlock()
		if line == "BAD" {
			return errCorrupt
		}
	}
}
func (k *liner) OnClose(_ *Conn, err error) { k.closed <- err }

// TestTLSWireCloseNotifyWithoutFIN: a peer that sends close_notify and keeps its TCP connection
// open (tls.Conn.CloseWrite) has what it sent before handled, and the connection is closed
// cleanly from our side: OnClose gets nil, and the peer reads our close_notify then EOF.
func TestTLSWireCloseNotifyWithoutFIN(t *testing.T) {
	for _, v := range []uint16{gotls.VersionTLS12, gotls.VersionTLS13} {
		e := startEngine(t)
		k := &liner{closed: make(chan error, 1)}
		cli, _ := enrollPair(t, e, v, k)
		if _, err := cli.Write([]byte("one\ntwo\n")); err != nil {
			t.Fatal(err)
		}
		if err := cli.CloseWrite(); err != nil { // close_notify, no FIN
			t.Fatal(err)
		}
		if err := waitClosed(t, k.closed, "no OnClose after the peer's close_notify"); err != nil {
			t.Errorf("version %x: OnClose error %v, want a clean close", v, err)
		}
		k.mu.Lock()
		lines := strings.Join(k.lines, ",")
		k.mu.Unlock()
		if lines != "one,two" {
			t.Errorf("version %x: handled %q before the close, want one,two", v, lines)
		}
		cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := cli.Read(make([]byte, 16)); n != 0 || err != io.EOF {
			t.Errorf("version %x: the peer read %d bytes, %v; want our close_notify (io.EOF)", v, n, err)
		}
	}
}

// TestTLSWireNoDrainAfterError: a Handler that refused a frame is not offered the input after
// it when the connection closes (the drain at close is for the peer's EOF only).
func TestTLSWireNoDrainAfterError(t *testing.T) {
	e := startEngine(t)
	k := &liner{closed: make(chan error, 1)}
	cli, _ := enrollPair(t, e, gotls.VersionTLS13, k)
	cli.Write([]byte("ok\nBAD\nAFTER\n"))
	err := waitClosed(t, k.closed, "no OnClose")
	k.mu.Lock()
	defer k.mu.Unlock()
	if !errors.Is(err, errCorrupt) || len(k.lines) != 2 {
		t.Fatalf("OnClose(%v) after lines %q, want the refusal and nothing after BAD", err, k.lines)
	}
}

// TestTLSWireBadRecordAfterGood: records that authenticate, read together with one that does
// not, reach the Handler before the connection closes with the TLS error; and a connection
// closed by a Handler's error ends with close_notify (TLS 1.2: the alert's record type shows).
func TestTLSWireBadRecordAfterGood(t *testing.T) {
	e := startEngine(t)
	k := &liner{closed: make(chan error, 1)}
	cli, _ := enrollPair(t, e, gotls.VersionTLS12, k)
	raw := cli.NetConn().(*holdConn)
	raw.hold = true
	cli.Write([]byte("good\n"))
	if err := raw.flush(badRecord); err != nil {
		t.Fatal(err)
	}
	err := waitClosed(t, k.closed, "no OnClose")
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "TLS read") || len(k.lines) != 1 || k.lines[0] != "good" {
		t.Fatalf("OnClose(%v) after lines %q, want the good line first, then the TLS read error", err, k.lines)
	}

	// a Handler's error: the peer gets close_notify before the socket closes
	k2 := &liner{closed: make(chan error, 1)}
	cli2, _ := enrollPair(t, e, gotls.VersionTLS12, k2)
	cli2.Write([]byte("BAD\n"))
	if err := <-k2.closed; !errors.Is(err, errCorrupt) {
		t.Fatalf("OnClose(%v), want the Handler's error", err)
	}
	in := cli2.NetConn()
	in.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(in)
	if err != nil || len(b) < 5 || b[0] != 21 {
		t.Fatalf("after the Handler's error the peer read % x (%v), want one alert record", b, err)
	}
}

// TestTLSWireHeld: Held counts the ciphertext waiting behind the decoded-bytes cap, so that
// backpressure bounds see all the input a connection holds (InboundBuffered sees the cap only).
func TestTLSWireHeld(t *testing.T) {
	setDecodedLimit(t, 16<<10)
	e := startEngine(t)
	cli, srv, hc := tlsPair(t, gotls.VersionTLS13, nil)
	held := make(chan [2]int, 64)
	h := &probe{f: func(c *Conn) { held <- [2]int{c.Held(), c.InboundBuffered()} }}
	if _, err := e.EnrollTLS(srv, hc, h, nil); err != nil {
		t.Fatal(err)
	}
	cli.Write(make([]byte, 512<<10))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case v := <-held:
			if v[1] > decodedLimit+tlsReadChunk {
				t.Fatalf("InboundBuffered %d beyond the cap", v[1])
			}
			if v[0] >= 256<<10 {
				return // Held sees the backlog although nothing was consumed
			}
		case <-deadline:
			t.Fatal("Held never counted the ciphertext behind the cap")
		}
	}
}

// probe consumes nothing and calls f on every OnTraffic.
type probe struct{ f func(*Conn) }

func (p *probe) OnOpen(*Conn)            {}
func (p *probe) OnTraffic(c *Conn) error { p.f(c); return nil }
func (p *probe) OnClose(*Conn, error)    {}
