package connector

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// truncateALOLog cuts the client's only log segment after the record numbered keep, as a
// machine crash losing the unsynced tail would.
func truncateALOLog(t *testing.T, dir string, keep uint64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "aioconn_alo_send_*"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	seg, err := readSegHeader(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	off := seg.hlen
	for off+aloRecHead <= len(b) && binary.LittleEndian.Uint64(b[off+8:]) <= keep {
		off += aloRecHead + int(binary.LittleEndian.Uint32(b[off:]))
	}
	if off == len(b) {
		t.Fatalf("no record after %d to cut", keep)
	}
	if err := os.Truncate(segs[0], int64(off)); err != nil {
		t.Fatal(err)
	}
}

// TestALOMachineCrash: messages are sent once written, before they are fsynced, so a machine
// crash can lose the tail of the sender's log after the receiver saw it. After a reboot the
// sender must not reuse those numbers (the receiver would drop the new messages as duplicates):
// it skips a block of numbers, tells the receiver, and both go on; a later restart in the same
// boot keeps the gap.
func TestALOMachineCrash(t *testing.T) {
	oldBoot := aloBootID
	t.Cleanup(func() { aloBootID = oldBoot })
	aloBootID = func() string { return "boot-1" }
	e := newALORestartEnv(t)
	got, startSrv, cdir, port, al := e.got, e.startSrv, e.cdir, e.port, e.al
	srv := startSrv()
	conf := clientConf(cdir, port, "client1", al)
	cli := newConnector(t, cdir, conf, nil)
	dumpLogs(t, srv, cli)
	acked := func(c *Connector) {
		s := c.alo.existingSender(c.serverPeer)
		eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
	}
	bootFile := filepath.Join(cdir, "aioconn_alo_boot_"+cli.alnumID)
	aloSendRange(t, cli, 0, 80, true) // numbers 1..80
	got.waitAll(t, 80)
	acked(cli)
	cli.Close()
	if b, _ := os.ReadFile(bootFile); string(b) != "boot-1 clean" {
		t.Fatalf("boot file after a clean close: %q", b)
	}

	aloBootID = func() string { return "boot-2" } // a reboot after a clean close: nothing skipped
	cli = newConnector(t, cdir, conf, nil)
	dumpLogs(t, cli)
	if next := cli.alo.existingSender(cli.serverPeer).assigned() + 1; next != 81 {
		t.Fatalf("after a clean close and a reboot the next number is %d, want 81", next)
	}
	aloSendRange(t, cli, 80, 90, true) // 81..90
	got.waitAll(t, 90)
	acked(cli)
	cli.Close()
	srv.Close()

	// A machine crash: the boot file without its clean mark, and the log's tail lost after the
	// server saw it (71..90).
	os.WriteFile(bootFile, []byte("boot-2"), 0o644)
	truncateALOLog(t, cdir, 70)
	aloBootID = func() string { return "boot-3" }
	cli = newConnector(t, cdir, conf, nil)
	dumpLogs(t, cli)
	s := cli.alo.existingSender(cli.serverPeer)
	if next := s.assigned() + 1; next != 71+aloBlock {
		t.Fatalf("after the crash the next number is %d, want %d", next, 71+aloBlock)
	}
	if g := skippedRuns(s); len(g) != 1 || g[0] != [2]uint64{71, 70 + aloBlock} {
		t.Fatalf("gaps to announce %v", g)
	}
	srv = startSrv()
	dumpLogs(t, srv)
	aloSendRange(t, cli, 90, 100, true)
	got.waitAll(t, 100)
	eventually(t, "client log acknowledged past the gap", func() bool { return s.unacked() == 0 })
	cli.Close()

	cli = newConnector(t, cdir, conf, nil) // the same boot: the gap is in the log's segments
	dumpLogs(t, cli)
	if next := cli.alo.existingSender(cli.serverPeer).assigned() + 1; next != 81+aloBlock {
		t.Fatalf("after a restart in the same boot the next number is %d, want %d", next, 81+aloBlock)
	}
	aloSendRange(t, cli, 100, 110, true)
	got.waitAll(t, 110)
	acked(cli)
	if got.dups() != 0 || got.leaked != 0 {
		t.Fatalf("dups %d, leaked %d", got.dups(), got.leaked)
	}
}

// TestALOTrackerSkip: a skip marks only unseen numbers; one accepted but not yet delivered still
// holds the delivered point until it is delivered, and a range past the window is refused.
func TestALOTrackerSkip(t *testing.T) {
	var id [8]byte
	tr := &aloTracker{base: 1}
	tr.setStream(id)
	ep, ok, err := tr.accept(3)
	if !ok || err != nil {
		t.Fatalf("accept 3: %v %v", ok, err)
	}
	if moved, err := tr.skip(id, 1, 10, false); !moved || err != nil || tr.base != 3 {
		t.Fatalf("skip 1-10: moved %v, %v, base %d", moved, err, tr.base)
	}
	if !tr.set(3, ep, 2) || tr.base != 11 {
		t.Fatalf("after delivering 3 the base is %d, want 11", tr.base)
	}
	if _, ok, _ := tr.accept(7); ok {
		t.Fatal("a skipped number was accepted")
	}
	if moved, err := tr.skip([8]byte{1}, 100, 120, true); moved || err != nil || tr.base != 11 {
		t.Fatalf("skip of another stream, first on its link: moved %v, %v, base %d", moved, err, tr.base)
	}
	if _, err := tr.skip(id, 11, 11+aloWindowMax, false); !errors.Is(err, errALOProtocol) {
		t.Fatalf("skip past the window: %v", err)
	}
}

// TestALOSendsOnceWritten: a covered message is sent once written, without waiting for its
// fsync (the syncer is paced here to one round an hour), while SendDurable still gets its fsync
// at once.
func TestALOSendsOnceWritten(t *testing.T) {
	old := aloSyncEvery
	aloSyncEvery = time.Hour
	t.Cleanup(func() { aloSyncEvery = old })
	cli, s, got := aloDurableThenTwenty(t)
	ctx := context.Background()
	if d := s.durable.Load(); d >= 21 {
		t.Fatalf("durable point %d: the paced syncer ran again", d)
	}
	if err := cli.Local().SendDurable(ctx, aloFrame(21)); err != nil {
		t.Fatal(err)
	}
	if d := s.durable.Load(); d < 22 {
		t.Fatalf("SendDurable returned with the durable point at %d", d)
	}
	got.waitAll(t, 22)
}

// TestALORecoverLeadingGap: a log whose first segment is empty and whose records start a block
// later (a fresh segment rolled, then a crash and a reboot before the skip was acknowledged):
// the numbers before the first record are a gap too, announced first on the link, so a
// receiver that never saw the stream still delivers the records and acknowledges them.
func TestALORecoverLeadingGap(t *testing.T) {
	oldBoot := aloBootID
	t.Cleanup(func() { aloBootID = oldBoot })
	aloBootID = func() string { return "boot-x" }
	e := newALORestartEnv(t)
	cdir := e.cdir
	conf := clientConf(cdir, e.port, "client1", e.al)
	c1 := newConnector(t, cdir, conf, nil)
	peer, base := c1.serverPeer, c1.alnumID
	prefix := c1.alo.logPrefix(peer)
	c1.Close()
	var id [8]byte
	copy(id[:], "leadgap!")
	os.WriteFile(prefix+fmt.Sprintf("%020d", 1), appendSegHeader(nil, id, 1, peer), 0o644)
	seg := appendSegHeader(nil, id, 1+aloBlock, peer)
	for i := uint64(0); i < 5; i++ {
		seq := 1 + aloBlock + i
		js := fmt.Sprintf(`{"message_type": "any", "aioconn_seq": %d}`, seq)
		seg = appendALORecord(seg, seq, codec.AppendFrame(nil, []byte(js), []byte(strconv.Itoa(int(i))), nil, false))
	}
	os.WriteFile(prefix+fmt.Sprintf("%020d", 1+aloBlock), seg, 0o644)
	os.WriteFile(filepath.Join(cdir, "aioconn_alo_boot_"+base), []byte("boot-x"), 0o644) // same boot, not clean

	cli := newConnector(t, cdir, conf, nil)
	s := cli.alo.existingSender(peer)
	if g := skippedRuns(s); len(g) != 1 || g[0] != [2]uint64{1, aloBlock} || s.assigned() != 5+aloBlock || s.unacked() != int(aloBlock)+5 {
		t.Fatalf("recovered: gaps %v, assigned %d, unacked %d", g, s.assigned(), s.unacked())
	}
	got := e.got
	srv := e.startSrv()
	dumpLogs(t, srv, cli)
	got.waitAll(t, 5)
	eventually(t, "client log acknowledged past the gap", func() bool { return s.unacked() == 0 })
	if got.dups() != 0 || got.leaked != 0 {
		t.Fatalf("dups %d, leaked %d", got.dups(), got.leaked)
	}
}

// TestALOFsyncFailureFreezes: after a failed fdatasync (Linux may report a later one as
// successful over lost pages) nothing more is made durable: SendDurable fails at once, messages
// still go out once written, and the boot file makes the next start skip as after a crash.
func TestALOFsyncFailureFreezes(t *testing.T) {
	fail := injectSyncFailure(t, func(string) bool { return true })
	srv, cli, got := aloPairCounting(t)
	ctx := context.Background()
	if err := cli.Local().SendDurable(ctx, aloFrame(0)); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	aloSendRange(t, cli, 1, 5+1, false)
	got.waitAll(t, 6)
	if err := cli.Local().SendDurable(ctx, aloFrame(6)); !errors.Is(err, ErrALOLog) {
		t.Fatalf("SendDurable after a failed fdatasync: %v", err)
	}
	s := cli.alo.existingSender(cli.serverPeer)
	if d := s.durable.Load(); d != 1 {
		t.Fatalf("durable point %d after the failure, want 1", d)
	}
	bootFile := filepath.Join(cli.cfg.ConnectorFilesDirpath, "aioconn_alo_boot_"+cli.alnumID)
	cli.Close()
	if b, _ := os.ReadFile(bootFile); string(b) != aloSyncFailedMark {
		t.Fatalf("boot file %q after a failed fdatasync, want %q (the next start skips)", b, aloSyncFailedMark)
	}
	last := s.assigned()
	fail.Store(false)
	dir := cli.cfg.ConnectorFilesDirpath
	cli = newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, "client1", opts{"at_least_once": true}), nil)
	if next := cli.alo.existingSender(cli.serverPeer).assigned() + 1; next != last+1+aloBlock {
		t.Fatalf("the start after a failed fdatasync assigns %d next, want %d (a block skipped)", next, last+1+aloBlock)
	}
}

// TestALOWriteFailureRetries: a write that fails after writing part of its records is retried
// in a new segment; SendDurable returns once it succeeds, and a restart recovers every record
// once (the torn part of the first segment is cut, nothing after it is lost).
func TestALOWriteFailureRetries(t *testing.T) {
	var fails atomic.Int32
	fails.Store(1)
	old := aloWrite
	aloWrite = func(f *os.File, b []byte) (int, error) {
		if fails.Add(-1) >= 0 {
			n, _ := old(f, b[:len(b)/2+7])
			return n, errors.New("injected ENOSPC")
		}
		return old(f, b)
	}
	t.Cleanup(func() { aloWrite = old })
	e := newALORestartEnv(t)
	conf := clientConf(e.cdir, e.port, "client1", e.al)
	c1 := newConnector(t, e.cdir, conf, nil)
	dumpLogs(t, c1)
	fr := append(append(aloFrame(0), aloFrame(1)...), aloFrame(2)...) // the failed write tears them
	if n, err := c1.Local().SendBatch(fr); n != 3 || err != nil {
		t.Fatalf("SendBatch: %d %v", n, err)
	}
	aloSendRange(t, c1, 3, 5, true)
	if fails.Load() >= 0 {
		t.Fatal("the injected failure did not happen")
	}
	c1.Close()
	// The retry went to a segment of its own (same first number, another name); the torn one,
	// holding nothing the other lacks, was removed.
	segs, _ := filepath.Glob(filepath.Join(e.cdir, "aioconn_alo_send_*"))
	if len(segs) != 1 || !strings.HasSuffix(segs[0], "_1") {
		t.Fatalf("segments after a failed write: %v", segs)
	}
	c2 := newConnector(t, e.cdir, conf, nil)
	s := c2.alo.existingSender(c2.serverPeer)
	if s.unacked() != 5 || s.assigned() != 5 {
		t.Fatalf("recovered %d unacknowledged, last number %d; want 5 and 5", s.unacked(), s.assigned())
	}
	srv := e.startSrv()
	dumpLogs(t, srv, c2)
	e.got.waitAll(t, 5)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
	if e.got.dups() != 0 {
		t.Fatalf("%d duplicates", e.got.dups())
	}
}

// TestALOBrokerFsyncFailure: a broker whose log for a subscriber cannot be fsynced acknowledges
// no publication from then on (their copies are not durable) but keeps delivering, and closes
// (its receive commit once waited for that log for ever).
func TestALOBrokerFsyncFailure(t *testing.T) {
	fail := injectSyncFailure(t, func(name string) bool { return strings.Contains(name, "_to_sub1_") })
	brk, _, pub, got := aloPubsubTrio(t, true)
	publish := func(i int) {
		f := fr(`{"message_type": "_pubsub", "message_type_publish": "t1"}`, strconv.Itoa(i))
		if err := pub.Local().SendDurable(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
	publish(0)
	got.waitAll(t, 1)
	ps := pub.alo.existingSender(pub.serverPeer)
	eventually(t, "publisher log acknowledged", func() bool { return ps.unacked() == 0 })
	fail.Store(true)
	for i := 1; i < 5; i++ {
		publish(i)
	}
	got.waitAll(t, 5) // sent once written
	bs := brk.alo.existingSender("sub1")
	eventually(t, "the broker's log for sub1 frozen", func() bool { return bs.failed.Load() })
	if n := ps.unacked(); n != 4 {
		t.Fatalf("publisher has %d unacknowledged, want 4 (nothing acknowledged after the failure)", n)
	}
	done := make(chan struct{})
	go func() { brk.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("broker Close still waiting after 10 s")
	}
}

// TestStartAfterClose: a closed connector does not start again (its at_least_once logs are
// closed and may be marked clean).
func TestStartAfterClose(t *testing.T) {
	dir := shortDir(t)
	c := newConnector(t, dir, clientConf(dir, freePort(t), "client1", opts{"at_least_once": true}), nil)
	c.Close()
	if err := c.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// aloPairCounting starts a server and a client with at_least_once, the server's "any" listener
// counting into got.
// aloDurableThenTwenty starts a counted pair (aloPairCounting), sends message 0 with SendDurable
// and messages 1 to 20 with Send, and waits until the server's application got all 21; s is
// the client's sender to the server.
func aloDurableThenTwenty(t *testing.T) (cli *Connector, s *aloSender, got *aloCounter) {
	t.Helper()
	_, cli, got = aloPairCounting(t)
	if err := cli.Local().SendDurable(context.Background(), aloFrame(0)); err != nil {
		t.Fatal(err)
	}
	s = cli.alo.existingSender(cli.serverPeer)
	aloSendRange(t, cli, 1, 20+1, false)
	got.waitAll(t, 21)
	return cli, s, got
}

func aloPairCounting(t *testing.T) (srv, cli *Connector, got *aloCounter) {
	t.Helper()
	srv, cli = startPair(t, opts{"at_least_once": true}, opts{"at_least_once": true}, nil, nil)
	got = newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	dumpLogs(t, srv, cli)
	return srv, cli, got
}

// injectSyncFailure makes the syncer's fdatasync fail, once the returned flag is set, for the
// log files whose base name match accepts. Call it before starting connectors: its cleanup,
// registered first, restores the real fdatasync after theirs.
func injectSyncFailure(t *testing.T, match func(name string) bool) *atomic.Bool {
	fail := new(atomic.Bool)
	old := aloSync
	aloSync = func(f *os.File) error {
		if fail.Load() && match(filepath.Base(f.Name())) {
			return errors.New("injected EIO")
		}
		return old(f)
	}
	t.Cleanup(func() { aloSync = old })
	return fail
}

// skippedRuns lists the runs of skipped numbers in s's window (first, last), as take announces
// them.
func skippedRuns(s *aloSender) [][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var runs [][2]uint64
	for _, m := range s.mem[s.memHead:] {
		switch {
		case m.b != nil:
		case len(runs) > 0 && runs[len(runs)-1][1]+1 == m.seq:
			runs[len(runs)-1][1] = m.seq
		default:
			runs = append(runs, [2]uint64{m.seq, m.seq})
		}
	}
	return runs
}

// TestALORecoverySync: a restart fsyncs the recovered segments only when the logs may hold
// written but unsynced records (no clean close); after a clean close it does not.
func TestALORecoverySync(t *testing.T) {
	var syncs atomic.Int32
	old := aloSync
	aloSync = func(f *os.File) error {
		if strings.HasPrefix(filepath.Base(f.Name()), "aioconn_alo_send_") {
			syncs.Add(1)
		}
		return old(f)
	}
	t.Cleanup(func() { aloSync = old })
	e := newALORestartEnv(t)
	conf := clientConf(e.cdir, e.port, "client1", e.al)
	c := newConnector(t, e.cdir, conf, nil)
	bootFile := filepath.Join(e.cdir, "aioconn_alo_boot_"+c.alnumID)
	for i := 0; i < 3; i++ {
		if err := c.Local().SendDurable(context.Background(), aloFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	syncs.Store(0)
	c = newConnector(t, e.cdir, conf, nil)
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d segment fsyncs at a start after a clean close", n)
	}
	c.Close()
	b, _ := os.ReadFile(bootFile)
	os.WriteFile(bootFile, bytes.TrimSuffix(b, []byte(" "+aloCleanMark)), 0o644) // as a SIGKILL leaves it
	syncs.Store(0)
	newConnector(t, e.cdir, conf, nil)
	if n := syncs.Load(); n == 0 {
		t.Fatal("no segment fsync at a start after an unclean stop")
	}
}

// TestALOSendCap: nothing more than aloBlock numbers past the durable point is sent (a machine
// crash can then cost at most that many numbers), and a paced syncer runs early once half of
// that is written and not synced, so that a busy link does not wait for its pace.
func TestALOSendCap(t *testing.T) {
	oldBlock, oldEvery := aloBlock, aloSyncEvery
	aloBlock, aloSyncEvery = 8, time.Hour
	t.Cleanup(func() { aloBlock, aloSyncEvery = oldBlock, oldEvery })
	fail := injectSyncFailure(t, func(string) bool { return true })
	// Paced for an hour, but 20 messages are more than half a block: the syncer runs early and
	// the link never waits at the cap.
	cli, s, got := aloDurableThenTwenty(t)
	// The durable point frozen by a failed fdatasync: the link stops aloBlock past it.
	fail.Store(true)
	aloSendRange(t, cli, 21, 50, false)
	eventually(t, "all written", func() bool {
		s.fmu.Lock()
		defer s.fmu.Unlock()
		return s.wlast == 50
	})
	eventually(t, "the fdatasync failed", func() bool { return s.failed.Load() })
	d := s.durable.Load()
	if sendable := s.sendable.Load(); sendable != d+aloBlock {
		t.Fatalf("sendable %d with durable %d, want durable + %d", sendable, d, aloBlock)
	}
	got.waitAll(t, int(d+aloBlock))
}

// TestALOFullWindowAtApplicationClose: an application writes more covered messages than the
// peer's at_least_once window takes and closes its connection. What the window refuses cannot
// wait for room once the application is gone: it is dropped and counted, not lost unseen.
func TestALOFullWindowAtApplicationClose(t *testing.T) {
	old := aloSendMaxMsgs
	aloSendMaxMsgs = 2
	t.Cleanup(func() { aloSendMaxMsgs = old })
	dir := shortDir(t)
	_, port := fakeServer(t) // never accepted: nothing is acknowledged, the window stays full
	cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"at_least_once": true}), nil)
	js := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) + `}`
	var out []byte
	for i := range 4 {
		out = append(out, frameOf(js, strconv.Itoa(i))...)
	}
	c := dialUnix(t, cli.Paths().SendToConnector)
	c.Write(out)
	c.Close()
	eventually(t, "two messages logged and two counted as dropped", func() bool {
		s := cli.alo.existingSender(cli.serverPeer)
		return s != nil && s.unacked() == 2 && cli.stats.dropQueueFull.Load() == 2
	})
}

// TestALOUnknownBootID: where the machine's boot id cannot be read, the boot file is still
// written at the first start (empty id), so that a later unclean start skips a block, as after
// a crash, instead of taking the logs for an older aioconn's fully synced ones.
func TestALOUnknownBootID(t *testing.T) {
	oldBoot := aloBootID
	t.Cleanup(func() { aloBootID = oldBoot })
	aloBootID = func() string { return "" }
	dir := shortDir(t)
	_, port := fakeServer(t) // never accepted: what is sent stays unacknowledged in the log
	conf := clientConf(dir, port, "client1", opts{"at_least_once": true})
	cli := newConnector(t, dir, conf, nil)
	bootFile := filepath.Join(dir, "aioconn_alo_boot_"+cli.alnumID)
	if _, err := os.Stat(bootFile); err != nil {
		t.Fatalf("no boot file after a start with an unknown boot id: %v", err)
	}
	for i := range 5 {
		if err := cli.Local().Send(aloFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "five messages logged", func() bool { return s.assigned() == 5 })
	cli.Close()
	os.WriteFile(bootFile, nil, 0o644) // an unclean stop under an unknown boot id
	cli = newConnector(t, dir, conf, nil)
	if next := cli.alo.existingSender(cli.serverPeer).assigned() + 1; next != 6+aloBlock {
		t.Fatalf("after an unclean stop with an unknown boot id the next number is %d, want %d", next, 6+aloBlock)
	}
}

// aloSendRange hands messages aloFrame(from) to aloFrame(to-1) to c's embedded API, with
// SendDurable (durable) or Send, failing the test at the first error.
func aloSendRange(t *testing.T, c *Connector, from, to int, durable bool) {
	t.Helper()
	for i := from; i < to; i++ {
		var err error
		if durable {
			err = c.Local().SendDurable(context.Background(), aloFrame(i))
		} else {
			err = c.Local().Send(aloFrame(i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
