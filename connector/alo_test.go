package connector

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	ctls "github.com/aioconn/aioconn/tls"
)

// aloCounter counts numbered test messages delivered to a Local listener.
type aloCounter struct {
	mu      sync.Mutex
	seen    map[int]int
	leaked  int // frames that still carried aioconn_seq
	changed chan struct{}
}

func newALOCounter() *aloCounter {
	return &aloCounter{seen: map[int]int{}, changed: make(chan struct{}, 1)}
}

func (c *aloCounter) handle(frame []byte) {
	f, err := codec.ParseBody(frame[codec.LenPrefix:])
	if err != nil {
		return
	}
	n, err := strconv.Atoi(string(f.Data))
	c.mu.Lock()
	if bytes.Contains(f.JSON, []byte(aloSeqKey)) {
		c.leaked++
	}
	if err == nil {
		c.seen[n]++
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitAll waits until 0..n-1 have all been seen (bounded).
func (c *aloCounter) waitAll(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.seen)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("delivered %d of %d", got, n)
		}
	}
}

func (c *aloCounter) dups() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := 0
	for _, k := range c.seen {
		d += k - 1
	}
	return d
}

func aloFrame(i int) []byte {
	return fr(`{"message_type": "any"}`, strconv.Itoa(i))
}

func TestALOPointToPoint(t *testing.T) {
	srv, cli := startPair(t, opts{"at_least_once": true}, opts{"at_least_once": []string{"any"}}, nil, nil)
	got := newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	back := newALOCounter()
	if err := cli.Local().Listen("any", back.handle); err != nil {
		t.Fatal(err)
	}
	dumpLogs(t, srv, cli)
	eventually(t, "at_least_once negotiated", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloOn
	})
	const n = 2000
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if err := cli.Local().SendDurable(ctx, aloFrame(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	// and the other way (server → client)
	for i := 0; i < 100; i++ {
		if err := srv.Local().SendDurable(ctx, codec.AppendFrame(nil, []byte(`{"message_type": "any", "destination_id": "client1"}`), []byte(strconv.Itoa(i)), nil, false)); err != nil {
			t.Fatal(err)
		}
	}
	got.waitAll(t, n)
	back.waitAll(t, 100)
	if got.dups() != 0 || got.leaked != 0 || back.leaked != 0 {
		t.Fatalf("dups %d, frames with %s: %d/%d", got.dups(), aloSeqKey, got.leaked, back.leaked)
	}
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
	// a type not covered is sent, but not durably
	if err := cli.Local().SendDurable(ctx, fr(`{"message_type": "_ping"}`, "x")); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("SendDurable of an uncovered type: %v", err)
	}
}

// A client with at_least_once and a server without it: the client's advertisement is ignored
// (as a Python server does), the client gives up waiting and sends plain messages.
func TestALOLegacyServer(t *testing.T) {
	aloHelloWait = 100 * time.Millisecond
	defer func() { aloHelloWait = aloHelloWaitDefault }()
	srv, cli := startPair(t, nil, opts{"at_least_once": true}, nil, nil)
	got := newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ { // logged while negotiating, then sent without their number
		cli.Local().Send(aloFrame(i))
	}
	got.waitAll(t, 50)
	eventually(t, "legacy mode", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloLegacy
	})
	for i := 50; i < 100; i++ {
		err := cli.Local().SendDurable(context.Background(), aloFrame(i))
		if !errors.Is(err, ErrNotDurable) {
			t.Fatalf("SendDurable to a legacy peer: %v", err)
		}
	}
	got.waitAll(t, 100)
	if got.dups() != 0 || got.leaked != 0 {
		t.Fatalf("dups %d, frames with %s: %d", got.dups(), aloSeqKey, got.leaked)
	}
}

// dumpLogs prints the tail of the connectors' log when the test failed (the connectors of a
// test share one log directory: the first one's is printed).
func dumpLogs(t testing.TB, cs ...*Connector) {
	t.Cleanup(func() {
		if t.Failed() && len(cs) > 0 {
			t.Logf("aioconnectors.log:\n%s", logTail(cs[0]))
		}
	})
}

// logText is the content of the log files in c's logger directory.
func logText(c *Connector) []byte {
	var out []byte
	ents, _ := os.ReadDir(c.cfg.DefaultLoggerDirpath)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") {
			b, _ := os.ReadFile(filepath.Join(c.cfg.DefaultLoggerDirpath, e.Name()))
			out = append(out, b...)
		}
	}
	return out
}

// logTail is the last 8000 bytes of logText.
func logTail(c *Connector) []byte {
	b := logText(c)
	return b[max(0, len(b)-8000):]
}

// logContains reports whether c's log holds s.
func logContains(c *Connector, s string) bool { return bytes.Contains(logText(c), []byte(s)) }

// TestALOTLS: allow-all negotiates in `_handshake_ssl`; strict TLS negotiates by ALPN and a
// `_aioconn` first frame (after the client got its own certificate through `_ssl`).
func TestALOTLS(t *testing.T) {
	for _, allowAll := range []bool{true, false} {
		t.Run("allow_all="+strconv.FormatBool(allowAll), func(t *testing.T) {
			dir := shortDir(t)
			certs := filepath.Join(dir, "c")
			if err := ctls.CreateCertificates(certs, nil); err != nil {
				t.Fatal(err)
			}
			mode := opts{"use_ssl": true, "ssl_allow_all": allowAll, "certificates_directory_path": certs, "at_least_once": true}
			srv := newConnector(t, dir, serverConf(dir, 0, mode), nil)
			cli := newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, "client1", mode), nil)
			dumpLogs(t, srv, cli)
			waitLinked(t, srv, cli, "client1")
			eventually(t, "at_least_once negotiated", func() bool {
				p := cli.peerByName(cli.serverPeer)
				sp := srv.peerByName("client1")
				return p != nil && p.aloMode.Load() == aloOn && sp != nil && sp.aloMode.Load() == aloOn
			})
			got := newALOCounter()
			if err := srv.Local().Listen("any", got.handle); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 200; i++ {
				if err := cli.Local().SendDurable(context.Background(), aloFrame(i)); err != nil {
					t.Fatal(err)
				}
			}
			got.waitAll(t, 200)
			if got.dups() != 0 || got.leaked != 0 {
				t.Fatalf("dups %d, leaked %d", got.dups(), got.leaked)
			}
		})
	}
}

// TestALORestarts: messages sent while the server is away are logged; the server restarts
// (new process state, same files) and the client is closed and recreated on the same files:
// everything arrives once.
func TestALORestarts(t *testing.T) {
	e := newALORestartEnv(t)
	got, startSrv, cdir, port, al := e.got, e.startSrv, e.cdir, e.port, e.al
	srv := startSrv()
	cli := newConnector(t, cdir, clientConf(cdir, port, "client1", al), nil)
	dumpLogs(t, srv, cli)
	aloSendRange(t, cli, 0, 100, true)
	got.waitAll(t, 100)
	srv.Close()
	aloSendRange(t, cli, 100, 300, true) // server away: durable in the client's log
	cli.Close()                          // the client restarts too, before the server is back
	srv = startSrv()
	cli = newConnector(t, cdir, clientConf(cdir, port, "client1", al), nil)
	got.waitAll(t, 300)
	aloSendRange(t, cli, 300, 400, true)
	got.waitAll(t, 400)
	if got.dups() != 0 || got.leaked != 0 {
		t.Fatalf("dups %d, leaked %d", got.dups(), got.leaked)
	}
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
}

// aloPubsubTrio starts a broker, a subscriber sub1 and a publisher pub1 of type t1, all with
// at_least_once (the publisher's value is pubALO), linked and subscribed, sub1's listener
// counting into got.
func aloPubsubTrio(t *testing.T, pubALO any) (brk, sub, pub *Connector, got *aloCounter) {
	t.Helper()
	dir := shortDir(t)
	types := opts{"send_message_types": []string{"t1"}, "recv_message_types": []string{"t1"}}
	brk = newConnector(t, dir, serverConf(dir, 0, mergeOpts(types, opts{"pubsub_central_broker": true, "at_least_once": true})), nil)
	sub = newConnector(t, dir, clientConf(dir, brk.TCPAddr().Port, "sub1", mergeOpts(types, opts{"at_least_once": true,
		"subscribe_message_types": []string{"t1"}})), nil)
	pub = newConnector(t, dir, clientConf(dir, brk.TCPAddr().Port, "pub1", mergeOpts(types, opts{"at_least_once": pubALO})), nil)
	dumpLogs(t, brk, sub, pub)
	waitLinked(t, brk, sub, "sub1")
	waitLinked(t, brk, pub, "pub1")
	got = newALOCounter()
	if err := sub.Local().Listen("t1", got.handle); err != nil {
		t.Fatal(err)
	}
	eventually(t, "subscription known", func() bool { return len(brk.subs.of("t1")) == 1 })
	return brk, sub, pub, got
}

// aloRestartEnv is a server and a client directory with at_least_once, for tests that restart
// either side: startSrv starts the server on the same port and files, its "any" listener counting
// into got.
type aloRestartEnv struct {
	sdir, cdir string
	port       int
	al         opts
	got        *aloCounter
	startSrv   func() *Connector
}

func newALORestartEnv(t *testing.T) *aloRestartEnv {
	dir := shortDir(t)
	e := &aloRestartEnv{port: freePort(t), al: opts{"at_least_once": true}, got: newALOCounter(),
		sdir: filepath.Join(dir, "s"), cdir: filepath.Join(dir, "c")}
	os.Mkdir(e.sdir, 0o755)
	os.Mkdir(e.cdir, 0o755)
	e.startSrv = func() *Connector {
		s := newConnector(t, e.sdir, serverConf(e.sdir, e.port, e.al), func(o *config.Options) { o.ReuseServerSockaddr = true })
		if err := s.Local().Listen("any", e.got.handle); err != nil {
			t.Fatal(err)
		}
		return s
	}
	return e
}

// TestALOPubsub: publisher → broker → subscriber, every link with at_least_once: durable
// publications arrive once; the broker acknowledges a publication only once it is in the
// subscriber's log.
func TestALOPubsub(t *testing.T) {
	brk, _, pub, got := aloPubsubTrio(t, []string{"t1"})
	for i := 0; i < 300; i++ {
		f := fr(`{"message_type": "_pubsub", "message_type_publish": "t1"}`, strconv.Itoa(i))
		if err := pub.Local().SendDurable(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
	got.waitAll(t, 300)
	if got.dups() != 0 || got.leaked != 0 {
		t.Fatalf("dups %d, leaked %d", got.dups(), got.leaked)
	}
	ps := pub.alo.existingSender(pub.serverPeer)
	eventually(t, "publisher log acknowledged", func() bool { return ps.unacked() == 0 })
	bs := brk.alo.existingSender("sub1")
	eventually(t, "broker log acknowledged", func() bool { return bs.unacked() == 0 })
}

// TestALOLogRecovery: a restarted connector reloads its unacknowledged log, cuts a torn tail,
// keeps the stream and continues the numbering; a damaged state file is ignored.
func TestALOLogRecovery(t *testing.T) {
	dir := shortDir(t)
	port := freePort(t) // nobody listens: everything stays in the log
	conf := clientConf(dir, port, "client1", opts{"at_least_once": true})
	c1 := newConnector(t, dir, conf, nil)
	for i := 0; i < 10; i++ {
		if err := c1.Local().SendDurable(context.Background(), aloFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	s1 := c1.alo.existingSender(c1.serverPeer)
	stream := s1.streamHex
	c1.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "aioconn_alo_send_*"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{50, 0, 0, 0, 1, 2, 3}) // a torn record
	f.Close()
	st0 := filepath.Join(dir, "aioconn_alo_recv_"+c1.alnumID+".0")
	os.WriteFile(st0, []byte("\x89AIOARS\ngarbage-garbage-garbage"), 0o644)

	c2 := newConnector(t, dir, conf, nil)
	s2 := c2.alo.existingSender(c2.serverPeer)
	if s2 == nil || s2.streamHex != stream || s2.unacked() != 10 || s2.assigned() != 10 {
		t.Fatalf("recovered sender %+v", s2)
	}
	if err := c2.Local().SendDurable(context.Background(), aloFrame(10)); err != nil {
		t.Fatal(err)
	}
	if s2.assigned() != 11 {
		t.Fatalf("next number %d, want 11", s2.assigned())
	}
	out, last := s2.take(nil, 0, 1<<20, false)
	if last != 11 || !bytes.Contains(out, []byte(`"aioconn_seq": 11`)) {
		t.Fatalf("take: last %d", last)
	}
}

// TestALOUndeliverable: the listener's socket file exists but nobody listens: the accepted
// messages cannot be handed over, so the receiver closes the link and the sender resends them
// (again and again) until the application listens; each then arrives once.
func TestALOUndeliverable(t *testing.T) {
	srv, cli := startPair(t, opts{"at_least_once": true}, opts{"at_least_once": true}, nil, nil)
	dumpLogs(t, srv, cli)
	path := srv.Paths().ReceivePath("any")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // a stale socket file
	for i := 0; i < 50; i++ {
		if err := cli.Local().SendDurable(context.Background(), aloFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a resend after a failed delivery", func() bool { return cli.stats.reconnects.Load() > 0 })
	os.Remove(path)
	app := listenApp(t, path)
	var c net.Conn
	seen := map[string]int{}
	for len(seen) < 50 {
		f, err := codec.ParseBody(app.next(t, &c)[codec.LenPrefix:])
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(f.Data)]++; seen[string(f.Data)] > 1 {
			t.Fatalf("message %s delivered twice", f.Data)
		}
	}
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
}

// The receive state is committed at most once per aloCommitEvery (fewer than aloCommitBatch
// deliveries waiting) and acknowledged at most once per aloAckEvery while deliveries keep coming,
// and the last deliveries are still committed and acknowledged after the stream stops.
func TestALOCommitPacing(t *testing.T) {
	oldC, oldB, oldA := aloCommitEvery, aloCommitBatch, aloAckEvery
	aloCommitEvery, aloCommitBatch, aloAckEvery = 20*time.Millisecond, 40, 150*time.Millisecond
	t.Cleanup(func() { aloCommitEvery, aloCommitBatch, aloAckEvery = oldC, oldB, oldA })
	srv, cli := startPair(t, opts{"at_least_once": true}, opts{"at_least_once": true}, nil, nil)
	got := newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	dumpLogs(t, srv, cli)
	eventually(t, "at_least_once negotiated", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloOn
	})
	r := srv.alo.recv
	gen0, ack0 := r.gens.Load(), r.ackN.Load()
	start := time.Now()
	const n = 100
	for i := 0; i < n; i++ { // one message at a time: unpaced, each delivery would be a commit
		if err := cli.Local().SendDurable(context.Background(), aloFrame(i)); err != nil {
			t.Fatal(err)
		}
		got.waitAll(t, i+1)
	}
	el := time.Since(start)
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
	commits, acks := r.gens.Load()-gen0, r.ackN.Load()-ack0
	t.Logf("%d deliveries in %v: %d commits, %d acknowledgements", n, el, commits, acks)
	if limit := uint64(el/aloCommitEvery) + n/uint64(aloCommitBatch) + 2; commits > limit {
		t.Fatalf("%d commits (at most %d expected)", commits, limit)
	}
	if limit := uint64(el/aloAckEvery) + 2; acks > limit {
		t.Fatalf("%d acknowledgements (at most %d expected)", acks, limit)
	}
	if got.dups() != 0 {
		t.Fatalf("%d duplicates", got.dups())
	}
}

// TestALOTrackerGap: a number further past the receive window than a sender can have
// unacknowledged is a protocol error (it once overflowed the window index and panicked the
// event loop), a legitimate gap grows the window in one step.
func TestALOTrackerGap(t *testing.T) {
	tr := &aloTracker{base: 1}
	if _, ok, err := tr.accept(1); !ok || err != nil {
		t.Fatalf("accept 1: %v %v", ok, err)
	}
	if _, ok, err := tr.accept(1 + aloWindowMax - 1); !ok || err != nil || len(tr.win) != aloWindowMax {
		t.Fatalf("largest legitimate gap: %v %v, window %d", ok, err, len(tr.win))
	}
	for _, seq := range []uint64{1 + aloWindowMax, 9223372036854775810, ^uint64(0)} {
		if _, ok, err := tr.accept(seq); ok || !errors.Is(err, errALOProtocol) {
			t.Fatalf("accept %d: %v %v", seq, ok, err)
		}
	}
}
