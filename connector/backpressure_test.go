package connector

import (
	"encoding/binary"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/valyala/bytebufferpool"
)

// TestSendBackpressure: while the peer's queue is full (its send loop waits for an _ack), the
// connector stops reading the application instead of dropping; once the ack arrives every message
// is delivered, in order.
func TestSendBackpressure(t *testing.T) {
	dir := shortDir(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(dir + "/aioconnectors.log")
			t.Logf("log:\n%s", b)
		}
	})
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, strings.ReplaceAll(`{"is_server": false, "client_name": "client1",
 "server_sockaddr": ["127.0.0.1", PORT], "use_ssl": false, "connector_files_dirpath": "$DIR",
 "default_logger_dirpath": "$DIR", "debug_msg_counts": false, "send_message_types": ["any"]}`, "PORT", strconv.Itoa(port)),
		func(o *config.Options) { o.MaxQueueSize = 4 })
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	readRaw(t, tcp) // handshake
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	dst := "\"('127.0.0.1', " + strconv.Itoa(port) + ")\""
	send := dialUnix(t, cli.Paths().SendToConnector)
	send.Write(frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`, "wait_for_ack": true}`, "first"))
	const n = 20 // five times the queue cap
	var batch []byte
	for i := 0; i < n; i++ {
		batch = append(batch, frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`}`, strconv.Itoa(i))...)
	}
	send.Write(batch)
	first := readRaw(t, tcp)
	if !strings.Contains(string(first), `"transport_id": 1`) {
		t.Fatalf("first frame: %q", first)
	}
	tcp.Write(frameOf(`{"transport_id": 1, "message_type": "_ack", "source_id": "srv"}`, ""))
	for i := 0; i < n; i++ {
		got := readRaw(t, tcp)
		if !strings.HasSuffix(string(got), "\x00"+strconv.Itoa(i)) && !strings.HasSuffix(string(got), strconv.Itoa(i)) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
	if d := cli.stats.dropQueueFull.Load(); d != 0 {
		t.Fatalf("%d messages dropped despite backpressure", d)
	}
}

// TestHeldFramesRefusedByAFullRing: frames a link holds for a receive ring (pushRT) that
// another producer filled since the link's check are kept, in order, and the link takes no
// frame until they are in; they are dropped only after backpressureMax without progress, or
// when the link is gone.
func TestHeldFramesRefusedByAFullRing(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, serverConf(dir, 0, nil), func(o *config.Options) { o.MaxQueueSize = 8 })
	rt := srv.recv["any"]
	other := func(i int) { // another producer (a link on another loop)
		b := bytebufferpool.Get()
		b.B = append(b.B[:0], "other"+strconv.Itoa(i)...)
		if !rt.q.Push(b, len(b.B)) {
			t.Fatalf("ring refused the other producer's frame %d", i)
		}
	}
	for i := range 6 {
		other(i)
	}
	p := &peer{cn: srv}
	for i := range 4 {
		p.pushRT(rt, []byte(`{"message_type": "any"}`), []byte("held"+strconv.Itoa(i)), nil, false)
	}
	if p.flushRT() {
		t.Fatal("flushRT reported every held frame pushed into a ring with room for 2 of 4")
	}
	if len(p.rtBufs) != 2 || srv.stats.dropQueueFull.Load() != 0 {
		t.Fatalf("after a partial push: %d frames held, %d dropped; want 2 held, 0 dropped", len(p.rtBufs), srv.stats.dropQueueFull.Load())
	}
	// while frames are stuck, the link takes no frame of any type
	f := codec.Frame{JSON: []byte(`{"message_type": "nope", "source_id": "c"}`)}
	var h codec.Header
	if err := codec.ScanHeader(f.JSON, &h); err != nil {
		t.Fatal(err)
	}
	if err := p.process(f, h, -1); err != errBackpressure {
		t.Fatalf("process with frames stuck: %v; want errBackpressure", err)
	}
	// the consumer makes room: the rest goes in, in order
	for range 3 {
		if b, ok := rt.q.Pop(); ok {
			bytebufferpool.Put(b)
		}
	}
	if !p.flushRT() || len(p.rtBufs) != 0 || !p.rtStuckSince.IsZero() {
		t.Fatalf("flushRT after room was made: %d still held", len(p.rtBufs))
	}
	var got []string
	for {
		b, ok := rt.q.Pop()
		if !ok {
			break
		}
		if fr, err := codec.ParseBody(b.B[codec.LenPrefix:]); err == nil {
			got = append(got, string(fr.Data))
		} else {
			got = append(got, string(b.B))
		}
	}
	want := "other3 other4 other5 held0 held1 held2 held3"
	if strings.Join(got, " ") != want {
		t.Fatalf("ring holds %q, want %q", strings.Join(got, " "), want)
	}

	// no progress for backpressureMax: the held frames are dropped, counted and logged
	for i := range 8 {
		other(10 + i)
	}
	p.pushRT(rt, []byte(`{"message_type": "any"}`), []byte("late"), nil, false)
	if p.flushRT() {
		t.Fatal("flushRT into a full ring reported success")
	}
	p.rtStuckSince = time.Now().Add(-backpressureMax)
	if !p.flushRT() || len(p.rtBufs) != 0 || srv.stats.dropQueueFull.Load() != 1 {
		t.Fatalf("after backpressureMax: %d held, %d dropped; want 0 held, 1 dropped", len(p.rtBufs), srv.stats.dropQueueFull.Load())
	}
	// a link that is gone does not wait
	p.pushRT(rt, []byte(`{"message_type": "any"}`), []byte("closing"), nil, false)
	p.gone = true
	if !p.flushRT() || srv.stats.dropQueueFull.Load() != 2 {
		t.Fatalf("flushRT on a closed link: %d dropped; want 2", srv.stats.dropQueueFull.Load())
	}
}

// TestHeldFramesPushedOnRetryAreKicked: frames a full ring refused at the end of a read burst
// go in on a later retry that reads no new frame of their type; the ring's consumer must still
// be woken for them. The ring is made full by its byte cap: one burst of 12 frames of 10 KiB
// against 40 KiB.
func TestHeldFramesPushedOnRetryAreKicked(t *testing.T) {
	setRecvRingBytes(t, 40<<10)
	srv, cli := startPair(t, nil, nil, nil, nil)
	rt := srv.recv["any"]
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	send := dialUnix(t, cli.Paths().SendToConnector)
	js := []byte(`{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) + `}`)
	frame := func(i, size int) []byte {
		data := make([]byte, size)
		copy(data, strconv.Itoa(100000+i))
		return codec.AppendFrame(nil, js, data, nil, false)
	}
	if _, err := send.Write(frame(0, 10)); err != nil { // the connection to the application exists
		t.Fatal(err)
	}
	r := &frameReader{c: app.accept(t)}
	if _, _, ok := r.body(t, 5*time.Second, 0); !ok {
		t.Fatal("first message not delivered")
	}
	const n = 12
	var batch []byte
	for i := 1; i <= n; i++ {
		batch = append(batch, frame(i, 10<<10)...)
	}
	if _, err := send.Write(batch); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < n; got++ {
		_, b, ok := r.body(t, 5*time.Second, got)
		if !ok {
			t.Fatalf("%d of %d messages delivered in 5 s (%d in the ring, %d dropped)", got, n, rt.q.Len(), srv.stats.dropQueueFull.Load())
		}
		if want := strconv.Itoa(100001 + got); string(b.Data[:6]) != want {
			t.Fatalf("message %d is %q, want %s", got, b.Data[:6], want)
		}
	}
	if d := srv.stats.dropQueueFull.Load(); d != 0 {
		t.Fatalf("%d dropped", d)
	}
}

// TestHeldInputOfferedAtEOF: a peer sends more "any" frames than the server's ring takes (its
// application reads nothing yet), then one "b" frame, then closes. The input the link still
// holds when the EOF comes is offered to it before the close: "b" is delivered and every "any"
// frame is either delivered or counted as dropped, none lost unseen.
func TestHeldInputOfferedAtEOF(t *testing.T) {
	setRecvRingBytes(t, 200<<10)
	dir := shortDir(t)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any", "b"], "debug_msg_counts": false}`, nil)
	appA := listenApp(t, srv.Paths().ReceivePath("any"))
	appB := listenApp(t, srv.Paths().ReceivePath("b"))
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	const nA = 200
	out := frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello")
	for i := range nA {
		out = append(out, bpFrame([]byte(`{"message_type": "any", "source_id": "client1", "destination_id": "s"}`), i, 64<<10)...)
	}
	out = codec.AppendFrame(out, []byte(`{"message_type": "b", "source_id": "client1", "destination_id": "s"}`), []byte("the b message"), nil, false)
	if _, err := tcp.Write(out); err != nil {
		t.Fatal(err)
	}
	tcp.Close()
	connA := appA.accept(t) // not read until "b" arrived
	rb := &frameReader{c: appB.accept(t)}
	if _, b, ok := rb.body(t, 10*time.Second, 0); !ok || string(b.Data) != "the b message" {
		t.Fatalf("the \"b\" message behind the held \"any\" frames was not delivered (%q)", b.Data)
	}
	ra := &frameReader{c: connA}
	got, next := 0, 0
	for got+int(srv.stats.dropQueueFull.Load()) < nA {
		_, b, ok := ra.body(t, 5*time.Second, got)
		if !ok {
			t.Fatalf("%d \"any\" messages delivered and %d dropped of %d: the rest lost uncounted", got, srv.stats.dropQueueFull.Load(), nA)
		}
		n, _ := strconv.Atoi(string(b.Data[:8]))
		if n < next {
			t.Fatalf("message %d after %d", n, next-1)
		}
		next = n + 1
		got++
	}
	t.Logf("\"any\": %d delivered, %d dropped (counted)", got, srv.stats.dropQueueFull.Load())
}

// setRecvRingBytes makes the receive rings of the connectors this (non-parallel) test creates
// hold at most n bytes.
func setRecvRingBytes(t *testing.T, n int64) {
	old := recvRingBytes
	recvRingBytes = n
	t.Cleanup(func() { recvRingBytes = old })
}

// TestNonPreserveFrameUnderBackpressure: without uds_path_send_preserve_socket every frame comes
// on its own connection, which the connector closes once the frame is taken. A frame that meets
// a full peer queue is not taken yet: its connection must stay open until it is (the ack below
// empties the queue), never closed with the frame unread.
func TestNonPreserveFrameUnderBackpressure(t *testing.T) {
	dir := shortDir(t)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"uds_path_send_preserve_socket": false}),
		func(o *config.Options) { o.MaxQueueSize = 4 })
	tcp, r := acceptLink(t, ln, cli)
	js := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer)
	dialUnix(t, cli.Paths().SendToConnector).Write(frameOf(js+`, "wait_for_ack": true}`, "first"))
	if f, err := r.next(5 * time.Second); err != nil || f == nil {
		t.Fatalf("first frame not sent: %v", err)
	}
	const n = 8 // twice the queue's cap, one connection each, while the link waits for the ack
	for i := range n {
		dialUnix(t, cli.Paths().SendToConnector).Write(frameOf(js+`}`, strconv.Itoa(i)))
	}
	p := cli.peerByName(cli.serverPeer)
	eventually(t, "the peer's queue full", func() bool { return p.q.Len() >= cli.cfg.MaxQueueSize })
	tcp.Write(frameOf(`{"transport_id": 1, "message_type": "_ack", "source_id": "srv"}`, ""))
	got := 0
	for got+int(cli.stats.dropQueueFull.Load()) < n {
		f, err := r.next(5 * time.Second)
		if err != nil || f == nil {
			t.Fatalf("%d of %d delivered, %d counted as dropped: the rest lost", got, n, cli.stats.dropQueueFull.Load())
		}
		got++
	}
	if d := cli.stats.dropQueueFull.Load(); d != 0 {
		t.Fatalf("%d dropped although the queue emptied at once", d)
	}
}

// TestHeldFramesForAPeerThatLeft: frames an application holds for a peer's full queue (another
// producer filled it) when that peer disconnects are not pushed into the departed peer's queue
// (its close already persisted or dropped what it held): with disk_persistence_send they are
// persisted after it, without it dropped and counted.
func TestHeldFramesForAPeerThatLeft(t *testing.T) {
	for _, persisted := range []bool{false, true} {
		t.Run("persisted="+strconv.FormatBool(persisted), func(t *testing.T) {
			dir := shortDir(t)
			ln, port := fakeServer(t)
			extra := opts{}
			if persisted {
				extra["disk_persistence_send"] = true
			}
			cli := newConnector(t, dir, clientConf(dir, port, "client1", extra), func(o *config.Options) { o.MaxQueueSize = 4 })
			tcp, r := acceptLink(t, ln, cli)
			p := cli.peerByName(cli.serverPeer)
			js := stallLink(t, cli, r) // no _ack will come: the queue is not drained
			l := cli.Local()
			msg := func(s string) qmsg {
				b := bytebufferpool.Get()
				b.B = codec.AppendFrame(b.B[:0], []byte(js+`}`), []byte(s), nil, false)
				return qmsg{b: b}
			}
			for range 4 { // another producer fills the queue after this application's check
				m := msg("other")
				if !p.q.Push(m, len(m.b.B), 0) {
					t.Fatal("the queue refused the other producer")
				}
			}
			l.mu.Lock()
			for range 3 {
				m := msg("held")
				l.a.pend = append(l.a.pend, m)
				l.a.pendSz = append(l.a.pendSz, len(m.b.B))
				l.a.pendB += int64(len(m.b.B))
			}
			l.a.pendPeer, l.a.pendPrio = p, 0
			l.wakeTouched() // refused: held, a retry scheduled
			held := len(l.a.pend)
			l.mu.Unlock()
			if held != 3 {
				t.Fatalf("%d frames held, want 3", held)
			}
			stored0 := cli.stats.storePersistenceSend.Load()
			tcp.Close() // the peer leaves
			waitPeers(t, cli, "the peer gone", func(ps []string) bool { return len(ps) == 0 })
			eventually(t, "the held frames handled", func() bool { l.mu.Lock(); defer l.mu.Unlock(); return len(l.a.pend) == 0 })
			dropped, stored := cli.stats.dropQueueFull.Load(), cli.stats.storePersistenceSend.Load()-stored0
			switch {
			case p.q.Len() != 0:
				t.Fatalf("%d frames pushed into the departed peer's queue", p.q.Len())
			case persisted && (stored < 3 || dropped != 0):
				t.Fatalf("with disk_persistence_send: %d stored after the close, %d dropped; want the 3 held ones stored", stored, dropped)
			case !persisted && dropped != 3:
				t.Fatalf("%d counted as dropped, want 3", dropped)
			}
		})
	}
}

// TestFramesBeforeABadFrameAreSent: frames an application sent before a frame over the size
// limit (which closes its connection) are still sent: the close pushes them and wakes their peer.
func TestFramesBeforeABadFrameAreSent(t *testing.T) {
	dir := shortDir(t)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, clientConf(dir, port, "client1", nil), func(o *config.Options) { o.MaxFrame = 4096 })
	_, r := acceptLink(t, ln, cli)
	js := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) + `}`
	var out []byte
	for i := range 3 {
		out = append(out, frameOf(js, strconv.Itoa(i))...)
	}
	out = binary.LittleEndian.AppendUint32(out, 1<<20) // over MaxFrame: the connection is closed
	dialUnix(t, cli.Paths().SendToConnector).Write(out)
	for i := range 3 {
		if f, err := r.next(5 * time.Second); err != nil || f == nil {
			t.Fatalf("message %d not sent (%d in the peer's queue)", i, cli.peerByName(cli.serverPeer).q.Len())
		}
	}
}

// acceptLink accepts the client connector's link on a fakeServer listener, reads its handshake
// and waits until the client lists the link as connected. The connection is closed at the end.
func acceptLink(t *testing.T, ln net.Listener, cli *Connector) (net.Conn, *frameReader) {
	t.Helper()
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	r := &frameReader{c: tcp}
	if f, err := r.next(5 * time.Second); err != nil || f == nil {
		t.Fatalf("no handshake: %v", err)
	}
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	return tcp, r
}

// stallLink sends a wait_for_ack message from client1 through the embedded API and reads it
// off the link (r): until the test answers with an _ack for transport_id 1, the link sends
// nothing more and its queue fills. It returns the JSON of client1's messages to the server
// without its closing brace.
func stallLink(t *testing.T, cli *Connector, r *frameReader) string {
	t.Helper()
	js := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer)
	if err := cli.Local().Send(codec.AppendFrame(nil, []byte(js+`, "wait_for_ack": true}`), []byte("first"), nil, false)); err != nil {
		t.Fatal(err)
	}
	if f, err := r.next(5 * time.Second); err != nil || f == nil {
		t.Fatalf("first frame not sent: %v", err)
	}
	return js
}
