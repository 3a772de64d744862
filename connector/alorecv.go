package connector

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/uds"
)

// The receiver side of at_least_once: one aloTracker per peer name (the peer's current stream),
// and one state file per connector committed by a committer goroutine.
//
// A tracker's window holds, for each sequence number from base on, whether the message is
// unseen (0), accepted into a receive ring (1) or handed to the application (2). base-1 is
// therefore the cumulative "delivered" point; committed is the part of it that is in the state
// file (fsynced), and only committed numbers are acknowledged. Duplicates (a number below base,
// or already accepted) are dropped. A message handed over is marked by the ring's consumer via
// the tag appended behind its frame in the ring buffer (aloTag).
//
// State file: dir/aioconn_alo_recv_<B>.0 and .1, written alternately (a torn write leaves the
// other intact):
//
//	state = "\x89AIOARS\n" u64le generation u32le count entry* u32le crc
//	entry = u16le n name[n] [8]stream u64le committed

var aloStateMagic = []byte("\x89AIOARS\n")

// aloTagLen is the size of the tag appended behind a frame in a receive ring.
const aloTagLen = 16

type aloTag struct {
	seq   uint64
	idx   uint32
	epoch uint32
}

func (t aloTag) appendTo(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, t.seq)
	dst = binary.LittleEndian.AppendUint32(dst, t.idx)
	return binary.LittleEndian.AppendUint32(dst, t.epoch)
}

// splitALOTag separates a ring buffer into its frame and, when present, its tag.
func splitALOTag(b []byte) ([]byte, aloTag, bool) {
	if len(b) < 4 {
		return b, aloTag{}, false
	}
	n := 4 + int(binary.LittleEndian.Uint32(b))
	if len(b) != n+aloTagLen {
		return b, aloTag{}, false
	}
	t := b[n:]
	return b[:n], aloTag{seq: binary.LittleEndian.Uint64(t), idx: binary.LittleEndian.Uint32(t[8:]),
		epoch: binary.LittleEndian.Uint32(t[12:])}, true
}

type aloTracker struct {
	a    *aloState
	peer string
	idx  uint32

	mu        sync.Mutex
	stream    [8]byte
	streamHex string
	has       bool
	epoch     uint32
	committed uint64
	base      uint64
	win       []uint8
	head      int
	dirty     bool

	link   atomic.Pointer[peer]      // the negotiated link, where acknowledgements go
	ackMsg atomic.Pointer[aloAckMsg] // committed, to be acknowledged by the link

	// committer-owned: the last acknowledgement queued for the link
	ackSeq   uint64
	ackEpoch uint32
	ackAt    time.Time
}

// aloAckMsg is an acknowledgement waiting for the link's loop.
type aloAckMsg struct {
	stream string
	seq    uint64
}

// setStream makes id the peer's current stream and returns what is committed of it (0 for a
// new stream: the state starts over).
func (t *aloTracker) setStream(id [8]byte) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.has && t.stream == id {
		return t.committed
	}
	if t.has {
		t.a.cn.log.Infof("%s at_least_once: %s starts stream %x (was %s)", t.a.cn.sourceID, t.peer, id, t.streamHex)
	}
	t.stream, t.streamHex, t.has = id, hex.EncodeToString(id[:]), true
	t.epoch++
	t.committed, t.base, t.win, t.head, t.dirty = 0, 1, t.win[:0], 0, true
	return 0
}

// firstOnLink is called with the first numbered message of a link: the sender starts each link
// at its lowest unacknowledged number, so anything below it that this side never saw was
// acknowledged in the past (a state file lost or replaced): the window moves up to it.
func (t *aloTracker) firstOnLink(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.firstOnLinkLocked(seq)
}

func (t *aloTracker) firstOnLinkLocked(seq uint64) {
	if seq <= t.base {
		return
	}
	n := int(min(seq-t.base, uint64(len(t.win)-t.head)))
	for _, st := range t.win[t.head : t.head+n] {
		if st != 0 {
			return
		}
	}
	t.a.cn.log.Warnf("%s at_least_once: %s resumes stream %s at %d, this side expected %d (state lost?)",
		t.a.cn.sourceID, t.peer, t.streamHex, seq, t.base)
	t.head += n
	t.base = seq
	t.compact()
}

// accept records seq as taken into a ring; false: a duplicate, drop it.
func (t *aloTracker) accept(seq uint64) (uint32, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.base {
		return 0, false, nil
	}
	// A sender never has more than aloWindowMax numbers unacknowledged, and we acknowledged up to
	// base-1 at most: a number further ahead is a protocol error (and would make the window,
	// or its index, overflow).
	gap := seq - t.base
	if gap >= aloWindowMax {
		return 0, false, fmt.Errorf("%w: %s %d is %d past the receive window (at most %d)", errALOProtocol, aloSeqKey, seq, gap, aloWindowMax)
	}
	i := t.head + int(gap)
	if n := i + 1 - len(t.win); n > 0 {
		t.win = append(t.win, make([]uint8, n)...)
	}
	if t.win[i] != 0 {
		return 0, false, nil
	}
	t.win[i] = 1
	return t.epoch, true, nil
}

// set changes the state of an accepted seq (2: delivered, 0: to be received again).
func (t *aloTracker) set(seq uint64, epoch uint32, st uint8) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if epoch != t.epoch || seq < t.base {
		return false
	}
	i := t.head + int(seq-t.base)
	if i >= len(t.win) {
		return false
	}
	t.win[i] = st
	return t.advance()
}

// advance moves the delivered point over the delivered numbers at the window's head and reports
// whether it moved. Called with t.mu held.
func (t *aloTracker) advance() bool {
	moved := false
	for t.head < len(t.win) && t.win[t.head] == 2 {
		t.head++
		t.base++
		moved = true
	}
	t.compact()
	return moved
}

// skip marks the unseen numbers from..to of stream id as done: the sender announced it will never
// send them; first: nothing numbered came on the link before it. It reports whether the delivered
// point moved. A range further past the window than
// a sender can have unacknowledged is a protocol error.
func (t *aloTracker) skip(id [8]byte, from, to uint64, first bool) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.has || id != t.stream {
		return false, nil
	}
	if first { // sent in place of the link's first numbers (take): it starts the link
		t.firstOnLinkLocked(from)
	}
	if to < t.base {
		return false, nil
	}
	from = max(from, t.base)
	if to-t.base >= aloWindowMax {
		return false, fmt.Errorf("%w: %s %d-%d is %d past the receive window (at most %d)", errALOProtocol, aloSkipType, from, to, to-t.base, aloWindowMax)
	}
	end := t.head + int(to-t.base) + 1
	if n := end - len(t.win); n > 0 {
		t.win = append(t.win, make([]uint8, n)...)
	}
	for i := t.head + int(from-t.base); i < end; i++ {
		if t.win[i] == 0 {
			t.win[i] = 2
		}
	}
	return t.advance(), nil
}

func (t *aloTracker) compact() {
	if t.head == len(t.win) {
		t.win, t.head = t.win[:0], 0
	} else if t.head >= 4096 && t.head*2 >= len(t.win) {
		k := copy(t.win, t.win[t.head:])
		t.win, t.head = t.win[:k], 0
	}
}

// resetAccepted forgets the messages accepted but not delivered (their rings were discarded).
func (t *aloTracker) resetAccepted() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := t.head; i < len(t.win); i++ {
		if t.win[i] == 1 {
			t.win[i] = 0
		}
	}
}

// aloDelivered marks tagged messages handed to the application. Concurrency-safe.
func (c *Connector) aloDelivered(tags []aloTag) {
	a := c.alo
	if a == nil {
		return
	}
	moved := false
	for _, tg := range tags {
		if t := a.trackerAt(tg.idx); t != nil && t.set(tg.seq, tg.epoch, 2) {
			moved = true
		}
	}
	if moved {
		a.recv.delivered(int64(len(tags)))
	}
}

// aloFailed marks tagged messages that could not be handed to the application: they become
// unseen again and the peer's link is closed so that its sender resends them.
func (c *Connector) aloFailed(tags []aloTag) {
	a := c.alo
	if a == nil {
		return
	}
	for _, tg := range tags {
		if t := a.trackerAt(tg.idx); t != nil && t.set(tg.seq, tg.epoch, 0) {
			a.recv.signal()
		}
	}
	closed := map[*peer]bool{}
	for _, tg := range tags {
		if t := a.trackerAt(tg.idx); t != nil {
			if p := t.link.Load(); p != nil && !closed[p] {
				closed[p] = true
				c.log.Warnf("%s at_least_once: %d message(s) from %s not delivered (first %d); closing the link for a resend",
					c.sourceID, len(tags), t.peer, tg.seq)
				p.conn.Close()
			}
		}
	}
}

// --- state file and committer ---

type aloRecvState struct {
	a     *aloState
	paths [2]string
	files [2]*os.File
	gen   uint64
	kick  chan struct{}
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once
	buf   []byte
	sizes [2]int64      // committer-owned: sizes of the files as last written (-1: unknown)
	gens  atomic.Uint64 // committed generations (for tests)
	ackN  atomic.Uint64 // acknowledgements queued (for tests)
	// pending counts deliveries since the committer last started a commit (approximately: it
	// only paces the commits).
	pending atomic.Int64
	retry   bool // committer-owned: the last commit failed
	// pacing, from aloCommitEvery, aloCommitBatch, aloAckEvery and aloAckBatch at the start
	commitEvery time.Duration
	commitBatch int64
	ackEvery    time.Duration
	ackBatch    uint64
}

func (r *aloRecvState) signal() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *aloRecvState) stop() {
	if r == nil {
		return
	}
	r.once.Do(func() { close(r.quit) })
	<-r.done
}

// openRecv loads the newest intact state file and starts the committer.
func (a *aloState) openRecv() error {
	r := &aloRecvState{a: a, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		sizes: [2]int64{-1, -1}, commitEvery: aloCommitEvery, commitBatch: aloCommitBatch, ackEvery: aloAckEvery,
		ackBatch: aloAckBatch}
	for i := range r.paths {
		r.paths[i] = uds.Join(a.dir, fmt.Sprintf("aioconn_alo_recv_%s.%d", a.base, i))
	}
	var best []byte
	for _, p := range r.paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 { // absent, or created and never written
			continue
		}
		gen, ok := checkState(b)
		if !ok {
			a.cn.log.Warnf("%s at_least_once state file %s is damaged; the other one is used", a.cn.sourceID, p)
			continue
		}
		if best == nil || gen > r.gen {
			best, r.gen = b, gen
		}
	}
	if best != nil {
		off := 8 + 8 + 4
		n := int(binary.LittleEndian.Uint32(best[16:]))
		for ; n > 0; n-- {
			l := int(binary.LittleEndian.Uint16(best[off:]))
			name := string(best[off+2 : off+2+l])
			off += 2 + l
			t := a.trackerLocked(name)
			copy(t.stream[:], best[off:off+8])
			t.streamHex, t.has = hex.EncodeToString(t.stream[:]), true
			t.committed = binary.LittleEndian.Uint64(best[off+8:])
			t.base = t.committed + 1
			off += 16
		}
	}
	for i, p := range r.paths {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			for _, f := range r.files[:i] {
				f.Close()
			}
			return fmt.Errorf("%w: %v", ErrALOLog, err)
		}
		r.files[i] = f
	}
	syncDir(a.dir)
	a.recv = r
	go r.run()
	return nil
}

// checkState validates a state file and returns its generation.
func checkState(b []byte) (uint64, bool) {
	if len(b) < 8+8+4+4 || !bytes.Equal(b[:8], aloStateMagic) {
		return 0, false
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint32(b[16:]))
	off := 20
	for ; n > 0; n-- {
		if off+2 > len(body) {
			return 0, false
		}
		l := int(binary.LittleEndian.Uint16(b[off:]))
		off += 2 + l + 16
		if off > len(body) {
			return 0, false
		}
	}
	return binary.LittleEndian.Uint64(b[8:]), off == len(body)
}

// Pacing of the receive committer. A delivery is committed (state file written and fdatasynced)
// at most aloCommitEvery after it, or at once when aloCommitBatch deliveries are waiting, or at
// once after a quiet period: a receiver killed between a hand-over and its commit hands that
// message over again after its restart, so this bounds the duplicates of a receiver crash (to
// about aloCommitBatch messages, or aloCommitEvery's worth). A committed point is acknowledged to
// the link at once if the previous acknowledgement is older than aloAckEvery (or
// aloAckBatch numbers behind), else when it gets that old. Acknowledgements only let the sender
// trim its log: nothing on the data path waits for them. Committing and acknowledging on every
// delivery cost, with 100 senders at 40 msg/s each, one fdatasync per 3–4 messages on the
// receiver and one more wake-up per message on every sender (an ack frame to read), on a machine
// already short of CPU (docs/persistence.md). Variables for tests (read when the connector is
// created).
var (
	aloCommitEvery        = 5 * time.Millisecond
	aloCommitBatch int64  = 16
	aloAckEvery           = 100 * time.Millisecond
	aloAckBatch    uint64 = 1 << 16
)

// delivered counts n deliveries waiting for their commit and wakes the committer for the first
// one and when the batch is full. Concurrency-safe.
func (r *aloRecvState) delivered(n int64) {
	p := r.pending.Add(n)
	if p == n || (p >= r.commitBatch && p-n < r.commitBatch) {
		r.signal()
	}
}

func (r *aloRecvState) run() {
	defer close(r.done)
	defer func() {
		for _, f := range r.files {
			f.Close()
		}
	}()
	var last time.Time // of the last commit
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-r.kick:
		case <-timer.C:
		case <-r.quit:
			r.commit()
			r.acks(time.Now(), true)
			return
		}
		timer.Stop()
		now := time.Now()
		var wake time.Time
		if r.pending.Load() > 0 || r.retry {
			if r.pending.Load() >= r.commitBatch || now.Sub(last) >= r.commitEvery {
				r.pending.Store(0)
				r.commit()
				last = now
				now = time.Now()
				if r.retry { // the state file could not be written: try again later
					wake = now.Add(time.Second)
				}
			} else {
				wake = last.Add(r.commitEvery)
			}
		}
		if next := r.acks(now, false); !next.IsZero() && (wake.IsZero() || next.Before(wake)) {
			wake = next
		}
		if !wake.IsZero() {
			timer.Reset(max(wake.Sub(now), 0))
		}
	}
}

// acks queues for their links the acknowledgements of committed points that are due (all of
// them when all is set) and returns when the next one falls due (zero: none is waiting).
// Committer-owned.
func (r *aloRecvState) acks(now time.Time, all bool) time.Time {
	var next time.Time
	for _, t := range r.a.trackerList() {
		t.mu.Lock()
		seq, epoch, stream, has := t.committed, t.epoch, t.streamHex, t.has
		t.mu.Unlock()
		if !has || (seq == t.ackSeq && epoch == t.ackEpoch) {
			continue
		}
		if epoch != t.ackEpoch && seq == 0 { // a new stream: nothing of it to acknowledge yet
			t.ackSeq, t.ackEpoch = 0, epoch
			continue
		}
		due := t.ackAt.Add(r.ackEvery)
		if all || epoch != t.ackEpoch || seq-t.ackSeq >= r.ackBatch || !now.Before(due) {
			t.ackSeq, t.ackEpoch, t.ackAt = seq, epoch, now
			// The link's loop writes it (never in the middle of a streamed file frame).
			t.ackMsg.Store(&aloAckMsg{stream: stream, seq: seq})
			r.ackN.Add(1)
			if p := t.link.Load(); p != nil {
				p.conn.Wake()
			}
		} else if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

type aloCommitted struct {
	t     *aloTracker
	seq   uint64
	epoch uint32
}

// commit writes the delivered points and fsyncs; only then are they committed (and acknowledged
// by acks). On a broker, the logs of the subscribers' senders are made durable first: a
// publication is acknowledged to its publisher only once every fan-out copy is in a log.
// Committer-owned.
func (r *aloRecvState) commit() {
	a := r.a
	ts := a.trackerList()
	var changed []aloCommitted
	r.buf = append(r.buf[:0], aloStateMagic...)
	r.buf = binary.LittleEndian.AppendUint64(r.buf, r.gen+1)
	r.buf = binary.LittleEndian.AppendUint32(r.buf, 0)
	count := 0
	for _, t := range ts {
		t.mu.Lock()
		if !t.has {
			t.mu.Unlock()
			continue
		}
		d := t.base - 1
		if d != t.committed || t.dirty {
			changed = append(changed, aloCommitted{t: t, seq: d, epoch: t.epoch})
			t.dirty = false
		}
		r.buf = binary.LittleEndian.AppendUint16(r.buf, uint16(len(t.peer)))
		r.buf = append(r.buf, t.peer...)
		r.buf = append(r.buf, t.stream[:]...)
		r.buf = binary.LittleEndian.AppendUint64(r.buf, d)
		count++
		t.mu.Unlock()
	}
	if len(changed) == 0 {
		return
	}
	binary.LittleEndian.PutUint32(r.buf[16:], uint32(count))
	r.buf = binary.LittleEndian.AppendUint32(r.buf, crc32.Checksum(r.buf, castagnoli))
	var err error
	if a.cn.cfg.PubsubCentralBroker {
		for _, s := range a.senderList() {
			if err = s.waitDurable(nil, s.assigned()); err != nil {
				break // a subscriber's log cannot be made durable: acknowledge nothing
			}
		}
	}
	i := (r.gen + 1) % 2
	f, n := r.files[i], int64(len(r.buf))
	if err == nil {
		_, err = f.WriteAt(r.buf, 0)
		if err == nil && r.sizes[i] != n { // same size: only overwritten (no metadata to sync)
			err = f.Truncate(n)
		}
		if err == nil {
			err = fdatasync(f)
		}
		if err != nil {
			r.sizes[i] = -1
		}
	}
	if err != nil {
		a.cn.log.Errorf("%s at_least_once state %s: %v (retrying)", a.cn.sourceID, f.Name(), err)
		for _, c := range changed { // not committed: the next round takes them again
			c.t.mu.Lock()
			if c.t.epoch == c.epoch {
				c.t.dirty = true
			}
			c.t.mu.Unlock()
		}
		r.retry = true
		return
	}
	r.retry = false
	r.sizes[i] = n
	r.gen++
	r.gens.Add(1)
	for _, c := range changed {
		c.t.mu.Lock()
		if c.t.epoch == c.epoch && c.seq > c.t.committed {
			c.t.committed = c.seq
		}
		c.t.mu.Unlock()
	}
}
