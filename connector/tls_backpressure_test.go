package connector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/loop"
	ctls "github.com/aioconn/aioconn/tls"
)

// Sizes of TestTLSReceiveBackpressure. What the server connector can take off the link while its
// application reads nothing: the receive ring (bpRing messages), the batch the ring's consumer
// popped and gnet holds (at most sendBatchMsgs), and the kernel buffer of the unix socket (the
// connector asks for recvSockBuf; Linux doubles it: 8 MiB, about 2000 messages of bpPayload).
// bpCount is well beyond that, and its bytes stay far under backpressureInbound (32 MiB), so
// the only bound the link can reach is backpressureMax.
const (
	bpRing    = 256
	bpPayload = 4 << 10
	bpCount   = 4000
)

// linkState is loop-owned state of a peer, read on its event loop.
type linkState struct {
	blockedSince time.Time // when receive backpressure began (zero: not blocked)
	held         int       // input bytes the link holds for its handler (loop.Conn.Held)
}

// onLoop runs f on c's event loop and returns its result: a zero-length AsyncWrite (on a TLS
// link it is queued for the loop, which runs its callback before the next OnTraffic; crypto/tls
// writes no record for it). ok is false if c closed or its loop did not answer in 1 s.
func onLoop[T any](c *loop.Conn, f func() T) (v T, ok bool) {
	ch := make(chan T, 1)
	err := c.AsyncWrite(nil, func(err error) {
		if err == nil { // nil only when run on the loop (a closed connection reports ErrClosed off it)
			ch <- f()
		}
	})
	if err != nil {
		return v, false
	}
	select {
	case v = <-ch:
		return v, true
	case <-time.After(time.Second):
		return v, false
	}
}

// probeLink reads p's loop-owned backpressure state on p's event loop (onLoop).
func probeLink(p *peer) (linkState, bool) {
	return onLoop(p.conn, func() linkState { return linkState{p.blockedSince, p.conn.Held()} })
}

// bpFrame is test message i: a payload of size bytes starting with its number ("%08d").
func bpFrame(js []byte, i, size int) []byte {
	data := bytes.Repeat([]byte{'x'}, size)
	copy(data, fmt.Sprintf("%08d", i))
	return codec.AppendFrame(nil, js, data, nil, false)
}

// frameReader splits a byte stream into u32-prefixed frames, across read timeouts.
type frameReader struct {
	c   net.Conn
	buf []byte
	rd  [64 << 10]byte
}

// next returns the next frame, or nil if none was whole within wait (err: the connection failed).
func (r *frameReader) next(wait time.Duration) ([]byte, error) {
	deadline := time.Now().Add(wait)
	for {
		if len(r.buf) >= codec.LenPrefix {
			n := codec.LenPrefix + int(binary.LittleEndian.Uint32(r.buf))
			if len(r.buf) >= n {
				f := append([]byte(nil), r.buf[:n]...)
				r.buf = r.buf[:copy(r.buf, r.buf[n:])]
				return f, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		r.c.SetReadDeadline(deadline)
		n, err := r.c.Read(r.rd[:])
		r.buf = append(r.buf, r.rd[:n]...)
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return nil, err
		}
	}
}

// body reads the next frame within wait and parses it; ok is false when none was whole in time.
// A read or parse failure fails the test (after: how many messages came before it).
func (r *frameReader) body(t *testing.T, wait time.Duration, after int) (f []byte, b codec.Frame, ok bool) {
	t.Helper()
	f, err := r.next(wait)
	if err != nil {
		t.Fatalf("reading the application socket after %d messages: %v", after, err)
	}
	if f == nil {
		return nil, b, false
	}
	if b, err = codec.ParseBody(f[codec.LenPrefix:]); err != nil {
		t.Fatalf("after %d messages: malformed frame (%v) %.200q", after, err, f)
	}
	return f, b, true
}

// TestTLSReceiveBackpressure: a strict TLS link (records on the event loop, loop/tlswire.go)
// between two connectors, the server's application accepting the connector's connection but
// reading nothing while the client sends bpCount messages. The server's receive ring fills and
// its link stops taking frames (seen on the link's loop: blockedSince set, input held), then the
// application reads: every message arrives exactly once and in order, on the same link (no
// reconnection). With at_least_once nothing may be dropped at any time; without it a frame may
// only be dropped once the link was blocked for backpressureMax (500 ms; the 32 MiB bound is out
// of reach here), and each drop is counted in drops.queue_full.
func TestTLSReceiveBackpressure(t *testing.T) {
	for _, alo := range []bool{true, false} {
		t.Run("at_least_once="+strconv.FormatBool(alo), func(t *testing.T) { tlsReceiveBackpressure(t, alo) })
	}
}

func tlsReceiveBackpressure(t *testing.T, alo bool) {
	dir := shortDir(t)
	certs := filepath.Join(dir, "c")
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	mode := opts{"use_ssl": true, "ssl_allow_all": false, "certificates_directory_path": certs}
	if alo {
		mode["at_least_once"] = true
	}
	srv := newConnector(t, dir, serverConf(dir, 0, mode), func(o *config.Options) { o.MaxQueueSize = bpRing })
	cli := newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, "client1", mode), nil)
	dumpLogs(t, srv, cli)
	// strict: the client gets its certificate on a first link, then reconnects with it; the
	// server names a client "client1" only on a link identified by that certificate
	waitLinked(t, srv, cli, "client1")
	var sp, cp *peer
	eventually(t, "the certificate link up on both sides", func() bool {
		sp, cp = srv.peerByName("client1"), cli.peerByName(cli.serverPeer)
		ok := sp != nil && cp != nil && sp.ident.Load() && cp.ident.Load() && !sp.conn.Closed() && !cp.conn.Closed()
		if ok && alo {
			ok = sp.aloMode.Load() == aloOn && cp.aloMode.Load() == aloOn
		}
		return ok
	})
	if cp.conn.NetConn() == nil || sp.conn.NetConn() == nil {
		t.Fatal("the link is not a TLS link on the event loop (EnrollTLS)")
	}
	reconnects := cli.stats.reconnects.Load()
	rt := srv.recv["any"]

	app := listenApp(t, srv.Paths().ReceivePath("any"))
	send := dialUnix(t, cli.Paths().SendToConnector)
	js := []byte(`{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) + `}`)
	start := time.Now()
	sent := make(chan error, 1)
	go func() {
		send.SetWriteDeadline(time.Now().Add(20 * time.Second))
		var batch []byte
		for i := 0; i < bpCount; i++ {
			batch = append(batch, bpFrame(js, i, bpPayload)...)
			if len(batch) >= 1<<20 || i == bpCount-1 {
				if _, err := send.Write(batch); err != nil {
					sent <- err
					return
				}
				batch = batch[:0]
			}
		}
		sent <- nil
	}()

	// The connector connects to the application, which does not read: the ring fills and the
	// link refuses the next frame, holding its input (TLS records and plaintext).
	conn := app.accept(t)
	var st linkState
	eventually(t, "receive backpressure on the server's link", func() bool {
		if rt.q.Len() < rt.q.Cap() {
			return false
		}
		s, ok := probeLink(sp)
		if !ok {
			t.Fatal("the server's link closed, or its loop did not answer in 1 s")
		}
		st = s
		return !s.blockedSince.IsZero() && s.held > 0
	})
	engaged := time.Since(start)
	if d := srv.stats.dropQueueFull.Load(); alo && d != 0 {
		t.Fatalf("at_least_once: %d messages dropped while the link was blocked", d)
	}

	// The application reads: everything arrives once, in order.
	r := &frameReader{c: conn}
	next, got := 0, 0
	deadline := time.Now().Add(20 * time.Second)
	for next < bpCount && got+int(srv.stats.dropQueueFull.Load()) < bpCount {
		if time.Now().After(deadline) {
			t.Fatalf("read %d messages (next expected %d) in 20 s, %d dropped", got, next, srv.stats.dropQueueFull.Load())
		}
		f, body, ok := r.body(t, 50*time.Millisecond, got)
		if !ok {
			continue
		}
		if len(body.Data) != bpPayload {
			t.Fatalf("message %d: %d bytes of data, want %d: %.200q", got, len(body.Data), bpPayload, f)
		}
		if bytes.Contains(body.JSON, []byte(aloSeqKey)) {
			t.Fatalf("message %d still carries %s: %s", got, aloSeqKey, body.JSON)
		}
		n, err := strconv.Atoi(string(body.Data[:8]))
		if err != nil || n < next || (alo && n != next) {
			t.Fatalf("message %d is number %q, expected %d (duplicated, reordered or lost)", got, body.Data[:8], next)
		}
		next = n + 1
		got++
	}
	readAll := time.Since(start)
	if err := <-sent; err != nil {
		t.Fatalf("client send socket: %v", err)
	}
	dropped := srv.stats.dropQueueFull.Load()
	t.Logf("backpressure seen after %v (link holding %d bytes); %d delivered, %d dropped, all read after %v",
		engaged.Round(time.Millisecond), st.held, got, dropped, readAll.Round(time.Millisecond))
	switch {
	case alo && (got != bpCount || dropped != 0):
		t.Fatalf("at_least_once: %d of %d delivered, %d dropped", got, bpCount, dropped)
	case got+int(dropped) != bpCount:
		t.Fatalf("%d delivered + %d counted as dropped != %d sent", got, dropped, bpCount)
	case dropped != 0 && readAll < backpressureMax:
		t.Fatalf("%d messages dropped although the link was never blocked for %v (everything was read %v after the first send)",
			dropped, backpressureMax, readAll.Round(time.Millisecond))
	}

	// Nothing more is delivered (a resend would come before this last message on the link), and
	// the link that carried everything is still the one up.
	send.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := send.Write(bpFrame(js, bpCount, bpPayload)); err != nil {
		t.Fatal(err)
	}
	f, err := r.next(5 * time.Second)
	if err != nil || f == nil {
		t.Fatalf("last message not delivered: %v", err)
	}
	if body, err := codec.ParseBody(f[codec.LenPrefix:]); err != nil || len(body.Data) < 8 || string(body.Data[:8]) != fmt.Sprintf("%08d", bpCount) {
		t.Fatalf("expected the last message %d, got %.100q", bpCount, f)
	}
	if alo {
		s := cli.alo.existingSender(cli.serverPeer)
		eventually(t, "the client's log acknowledged", func() bool { return s.unacked() == 0 })
	}
	if r := cli.stats.reconnects.Load(); r != reconnects {
		t.Fatalf("the client reconnected %d times under backpressure", r-reconnects)
	}
	if srv.peerByName("client1") != sp || cli.peerByName(cli.serverPeer) != cp || sp.conn.Closed() || cp.conn.Closed() {
		t.Fatal("the link under backpressure was replaced")
	}
}
