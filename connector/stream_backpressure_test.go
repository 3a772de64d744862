package connector

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// Sizes of TestStreamedFileUnderBackpressure. sbpRing is the server's receive queue
// (MaxQueueSize); the small messages carry sbpPayload bytes each, so that the kernel buffer of
// the application's unix socket (recvSockBuf, doubled by Linux) fills in a few dozen of them;
// sbpMaxSmall bounds the fill (far beyond what any kernel buffer takes). The file is a few MiB
// over rxStreamMin, so it is streamed, and its bytes stay far under backpressureInbound.
const (
	sbpRing     = 8
	sbpPayload  = 256 << 10
	sbpMaxSmall = 200
	sbpFileSize = rxStreamMin + 3<<20 + 4321
)

// sbpContent is the file's deterministic content. Its first four bytes, read as a frame
// prefix, announce a body over MaxFrame (what a receiver that lost the header runs into).
func sbpContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + i>>11)
	}
	return b
}

// appOutbound reads, on its event loop (onLoop), the output the connection of rt to its
// application holds beyond the kernel's socket buffer. ok is false while rt has no connection,
// or if its loop did not answer in 1 s.
func appOutbound(rt *recvType) (int, bool) {
	c := rt.conn.Load()
	if c == nil {
		return 0, false
	}
	return onLoop(c, c.OutboundBuffered)
}

// TestStreamedFileUnderBackpressure: two connectors over plaintext TCP; the server's receive
// queue of type "any" is small and its application accepts the connector's connection but reads
// nothing. Small "any" messages fill the kernel buffer of the application socket (the ring's
// consumer then stops) and then the ring itself, exactly to MaxQueueSize. The client then sends
// a file of type "any" large enough to be streamed: its header meets the full ring, and the
// link must keep the whole frame buffered (receive backpressure, seen on the link's loop: block
// set, the file's header and bytes held) instead of consuming the header and parsing the file's
// bytes as frames. Then the application reads: every small message arrives in order, then the
// file's message, the file is stored byte-identical, nothing is dropped, and the link is the
// same one (no reconnection) and still carries frames.
func TestStreamedFileUnderBackpressure(t *testing.T) {
	dir := shortDir(t)
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := newConnector(t, dir, serverConf(dir, 0, opts{"debug_msg_counts": true,
		"file_recv_config": map[string]any{"any": map[string]any{"target_directory": in}}}),
		func(o *config.Options) { o.MaxQueueSize = sbpRing })
	cli := newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, "client1", nil), nil)
	dumpLogs(t, srv, cli)
	waitLinked(t, srv, cli, "client1")
	var sp, cp *peer
	eventually(t, "the link identified on both sides", func() bool {
		sp, cp = srv.peerByName("client1"), cli.peerByName(cli.serverPeer)
		return sp != nil && cp != nil && sp.ident.Load() && cp.ident.Load() && !sp.conn.Closed() && !cp.conn.Closed()
	})
	reconnects := cli.stats.reconnects.Load()
	rt := srv.recv["any"]
	if rt.q.Cap() != sbpRing {
		t.Fatalf("receive ring of any holds %d, want %d", rt.q.Cap(), sbpRing)
	}
	processed := func() int64 { return srv.stats.queueRecv.Load() } // frames past the backpressure gate
	base := processed()

	app := listenApp(t, srv.Paths().ReceivePath("any"))
	send := dialUnix(t, cli.Paths().SendToConnector)
	js := []byte(`{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) + `}`)

	// 1. Fill, one message at a time, each taken by the server's link (counted, and its loop
	// answered after the read burst that pushed it to the ring): first the application socket's
	// kernel buffer, until the ring's consumer holds output it cannot write (it then pops no
	// more: the application never reads), then the ring, to exactly MaxQueueSize.
	var conn net.Conn // the connector dials the application with the first message
	small, stalled := 0, false
	for rt.q.Len() < sbpRing {
		if small == sbpMaxSmall {
			t.Fatalf("%d messages of %d bytes sent, ring at %d, consumer stalled %v: never full", small, sbpPayload, rt.q.Len(), stalled)
		}
		write(t, send, bpFrame(js, small, sbpPayload))
		small++
		if conn == nil {
			conn = app.accept(t)
		}
		eventually(t, "message "+strconv.Itoa(small)+" taken by the server's link", func() bool { return processed()-base >= int64(small) })
		if n := processed() - base; n != int64(small) {
			t.Fatalf("the server processed %d frames for %d messages sent", n, small)
		}
		st, ok := probeLink(sp)
		if !ok {
			t.Fatal("the server's link closed, or its loop did not answer in 1 s")
		}
		if !st.blockedSince.IsZero() {
			t.Fatalf("the link blocked on small message %d, before the ring was full (ring %d)", small-1, rt.q.Len())
		}
		if !stalled {
			n, ok := appOutbound(rt)
			stalled = ok && n > 0
		}
		if !stalled && rt.q.Len() == sbpRing {
			t.Fatalf("ring full (%d) before the application socket's buffer: the fill would not last", rt.q.Len())
		}
	}
	if n := rt.q.Len(); n != sbpRing {
		t.Fatalf("ring at %d, want exactly %d", n, sbpRing)
	}
	if st, ok := probeLink(sp); !ok || !st.blockedSince.IsZero() || st.held != 0 {
		t.Fatalf("before the file: link answered %v, blocked since %v, holding %d bytes", ok, st.blockedSince, st.held)
	}
	t.Logf("ring full after %d messages of %d bytes", small, sbpPayload)

	// 2. The client sends the file: streamed, its header meets the full ring.
	content := sbpContent(sbpFileSize)
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	write(t, send, fileMsg(cli, src, "any", "streamed.bin", `, "delete": false`))

	// The link holds the whole frame: blocked, more than the file's bytes buffered (its header
	// too), nothing of it taken.
	var st linkState
	eventually(t, "the file frame held whole under backpressure", func() bool {
		s, ok := probeLink(sp)
		if !ok {
			t.Fatal("the server's link closed while the file frame met the full ring (or its loop did not answer in 1 s)")
		}
		st = s
		return !s.blockedSince.IsZero() && s.held > sbpFileSize
	})
	readStart := time.Now()
	blockedFor := readStart.Sub(st.blockedSince)
	if n := processed() - base; n != int64(small) {
		t.Fatalf("%d frames processed while blocked, want %d", n, small)
	}
	if rt.q.Len() != sbpRing {
		t.Fatalf("ring at %d while blocked", rt.q.Len())
	}
	if _, err := os.Stat(filepath.Join(in, "streamed.bin")); err == nil {
		t.Fatal("the file was stored while its message was held")
	}

	// 3. The application reads, starting from the block signal: the small messages in order,
	// then the file's message.
	r := &frameReader{c: conn}
	next := 0
	var fileFrame []byte
	deadline := time.Now().Add(20 * time.Second)
	for fileFrame == nil {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: %d of %d small messages read, no file message (%d dropped)", next, small, srv.stats.dropQueueFull.Load())
		}
		if sp.conn.Closed() {
			t.Fatalf("the server's link closed after %d of %d small messages", next, small)
		}
		if d := srv.stats.dropQueueFull.Load(); d != 0 && next == small {
			break // judged below
		}
		f, body, ok := r.body(t, 50*time.Millisecond, next)
		if !ok {
			continue
		}
		if next < small {
			if len(body.Data) != sbpPayload || string(body.Data[:8]) != fmt.Sprintf("%08d", next) {
				t.Fatalf("small message %d: got %.200q", next, f)
			}
			next++
			continue
		}
		fileFrame = f
	}
	dropped := srv.stats.dropQueueFull.Load()
	t.Logf("blocked after the fill, reading began %v into the block (link holding %d bytes); %d dropped",
		blockedFor.Round(time.Millisecond), st.held, dropped)
	switch {
	case dropped != 0 && blockedFor < backpressureMax/2:
		t.Fatalf("%d messages dropped although the application read %v into the block (drops only after %v)",
			dropped, blockedFor.Round(time.Millisecond), backpressureMax)
	case dropped > 1:
		t.Fatalf("%d messages dropped: at most the file's message may be, after %v blocked", dropped, backpressureMax)
	}
	if fileFrame != nil {
		body, err := codec.ParseBody(fileFrame[codec.LenPrefix:])
		if err != nil || !bytes.Contains(body.JSON, []byte(`"dst_name": "streamed.bin"`)) || bytes.Contains(body.JSON, []byte("with_binary")) ||
			string(body.Data) != "f" || len(body.Binary) != 0 || len(fileFrame) > 1000 {
			t.Fatalf("file message: %v, %.300q", err, fileFrame)
		}
	}

	// The file, byte-identical at its destination (stored before its message was delivered).
	got, err := os.ReadFile(filepath.Join(in, "streamed.bin"))
	if err != nil {
		t.Fatalf("stored file: %v", err)
	}
	if !bytes.Equal(got, content) {
		i := 0
		for i < min(len(got), len(content)) && got[i] == content[i] {
			i++
		}
		t.Fatalf("stored file: %d bytes, want %d; first difference at %d", len(got), len(content), i)
	}

	// 4. The same link carries the next message; nothing was dropped or refused, no reconnection.
	write(t, send, bpFrame(js, small, sbpPayload))
	f, err := r.next(5 * time.Second)
	if err != nil || f == nil {
		t.Fatalf("message after the file not delivered: %v", err)
	}
	if body, err := codec.ParseBody(f[codec.LenPrefix:]); err != nil || len(body.Data) < 8 || string(body.Data[:8]) != fmt.Sprintf("%08d", small) {
		t.Fatalf("expected message %d after the file, got %.200q", small, f)
	}
	if d := srv.stats.dropTooLarge.Load() + srv.stats.dropNoListener.Load() + srv.stats.dropTypeNotAllowed.Load(); d != 0 {
		t.Fatalf("%d messages refused or dropped by the server", d)
	}
	if r := cli.stats.reconnects.Load(); r != reconnects {
		t.Fatalf("the client reconnected %d times", r-reconnects)
	}
	if srv.peerByName("client1") != sp || cli.peerByName(cli.serverPeer) != cp || sp.conn.Closed() || cp.conn.Closed() {
		t.Fatal("the link that carried the file was replaced")
	}
}
