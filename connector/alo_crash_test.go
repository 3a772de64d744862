package connector

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
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
	dir := shortDir(t)
	port := freePort(t)
	al := opts{"at_least_once": true}
	sdir, cdir := filepath.Join(dir, "s"), filepath.Join(dir, "c")
	os.Mkdir(sdir, 0o755)
	os.Mkdir(cdir, 0o755)
	got := newALOCounter()
	srv := newConnector(t, sdir, serverConf(sdir, port, al), nil)
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	conf := clientConf(cdir, port, "client1", al)
	cli := newConnector(t, cdir, conf, nil)
	dumpLogs(t, srv, cli)
	ctx := context.Background()
	send := func(c *Connector, from, to int) {
		for i := from; i < to; i++ {
			if err := c.Local().SendDurable(ctx, aloFrame(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(cli, 0, 80) // numbers 1..80
	got.waitAll(t, 80)
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
	cli.Close()

	truncateALOLog(t, cdir, 60) // 61..80 seen by the server, lost by the client's disk
	aloBootID = func() string { return "boot-2" }
	cli = newConnector(t, cdir, conf, nil)
	dumpLogs(t, cli)
	s = cli.alo.existingSender(cli.serverPeer)
	if first := s.assigned() + 1; first != 61+aloBlock {
		t.Fatalf("after the reboot the next number is %d, want %d", first, 61+aloBlock)
	}
	if g := s.pendingGaps(); len(g) != 1 || g[0] != (aloGap{61, 60 + aloBlock}) {
		t.Fatalf("gaps to announce %v", g)
	}
	send(cli, 80, 100)
	got.waitAll(t, 100)
	eventually(t, "client log acknowledged past the gap", func() bool { return s.unacked() == 0 && len(s.pendingGaps()) == 0 })
	cli.Close()

	cli = newConnector(t, cdir, conf, nil) // same boot: the gap is in the log's segments
	dumpLogs(t, cli)
	s = cli.alo.existingSender(cli.serverPeer)
	if next := s.assigned() + 1; next <= 80+aloBlock {
		t.Fatalf("after a restart in the same boot the next number is %d, want more than %d", next, 80+aloBlock)
	}
	send(cli, 100, 110)
	got.waitAll(t, 110)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
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
	if moved, err := tr.skip(id, 1, 10); !moved || err != nil || tr.base != 3 {
		t.Fatalf("skip 1-10: moved %v, %v, base %d", moved, err, tr.base)
	}
	if !tr.set(3, ep, 2) || tr.base != 11 {
		t.Fatalf("after delivering 3 the base is %d, want 11", tr.base)
	}
	if _, ok, _ := tr.accept(7); ok {
		t.Fatal("a skipped number was accepted")
	}
	if moved, err := tr.skip([8]byte{1}, 11, 20); moved || err != nil || tr.base != 11 {
		t.Fatalf("skip of another stream: moved %v, %v, base %d", moved, err, tr.base)
	}
	if _, err := tr.skip(id, 11, 11+aloMaxMsgs); !errors.Is(err, errALOProtocol) {
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
	srv, cli := startPair(t, opts{"at_least_once": true}, opts{"at_least_once": true}, nil, nil)
	got := newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	dumpLogs(t, srv, cli)
	ctx := context.Background()
	if err := cli.Local().SendDurable(ctx, aloFrame(0)); err != nil {
		t.Fatal(err)
	}
	s := cli.alo.existingSender(cli.serverPeer)
	for i := 1; i <= 20; i++ {
		if err := cli.Local().Send(aloFrame(i)); err != nil {
			t.Fatal(err)
		}
	}
	got.waitAll(t, 21)
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
