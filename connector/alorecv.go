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

	"github.com/aioconn/aioconn/uds"
	"golang.org/x/sys/unix"
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
func (t *aloTracker) accept(seq uint64) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.base {
		return 0, false
	}
	i := t.head + int(seq-t.base)
	for len(t.win) <= i {
		t.win = append(t.win, 0)
	}
	if t.win[i] != 0 {
		return 0, false
	}
	t.win[i] = 1
	return t.epoch, true
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
	moved := false
	for t.head < len(t.win) && t.win[t.head] == 2 {
		t.head++
		t.base++
		moved = true
	}
	t.compact()
	return moved
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
		a.recv.signal()
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
	r := &aloRecvState{a: a, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
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

func (r *aloRecvState) run() {
	defer close(r.done)
	defer func() {
		for _, f := range r.files {
			f.Close()
		}
	}()
	for {
		select {
		case <-r.kick:
		case <-r.quit:
			r.commit()
			return
		}
		r.commit()
	}
}

type aloCommitted struct {
	t      *aloTracker
	stream string
	seq    uint64
	epoch  uint32
}

// commit writes the delivered points, fsyncs, and then acknowledges them on the links. On a
// broker, the logs of the subscribers' senders are made durable first: a publication is
// acknowledged to its publisher only once every fan-out copy is in a log.
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
			changed = append(changed, aloCommitted{t: t, stream: t.streamHex, seq: d, epoch: t.epoch})
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
	if a.cn.cfg.PubsubCentralBroker {
		for _, s := range a.senderList() {
			s.waitDurable(nil, s.assigned())
		}
	}
	f := r.files[(r.gen+1)%2]
	if _, err := f.WriteAt(r.buf, 0); err == nil {
		f.Truncate(int64(len(r.buf)))
		err = unix.Fdatasync(int(f.Fd()))
		if err != nil {
			a.cn.log.Errorf("%s at_least_once state %s: %v", a.cn.sourceID, f.Name(), err)
			return
		}
	} else {
		a.cn.log.Errorf("%s at_least_once state %s: %v", a.cn.sourceID, f.Name(), err)
		return
	}
	r.gen++
	for _, c := range changed {
		c.t.mu.Lock()
		if c.t.epoch == c.epoch && c.seq > c.t.committed {
			c.t.committed = c.seq
		}
		c.t.mu.Unlock()
		// The link's loop writes it (never in the middle of a streamed file frame).
		c.t.ackMsg.Store(&aloAckMsg{stream: c.stream, seq: c.seq})
		if p := c.t.link.Load(); p != nil {
			p.conn.Wake()
		}
	}
}
