package connector

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// The sender side of at_least_once: one aloSender per peer name, holding the peer's log.
//
// Log files: dir/aioconn_alo_send_<B>_to_<alnum(peer)>_<first seq, 20 digits>, one per segment.
//
//	segment = header record*
//	header  = "\x89AIOALO\n" u32le version(1) [8]stream u64le first u16le n name[n] u32le crc
//	record  = u32le len u32le crc u64le seq frame[len]
//
// crc is CRC32C (Castagnoli): of the header bytes before it, or of seq and frame. first is the
// sequence number the segment's first record has (or would have); the stream id and the peer
// name make a restarted connector continue the same numbering. The frame is the message as sent
// (aioconn_seq included).
//
// Concurrency: append, take and ack may be called from any goroutine (they take s.mu, never
// across I/O). Two goroutines own the files: the writer (write, rotation, removal of
// acknowledged segments) and the syncer (fdatasync of what the writer wrote, closing the
// segments the writer retired). No event loop ever waits for the disk.
//
// A message is sent once it is written (in the page cache), not once it is fsynced: a SIGKILL
// cannot lose it, and the send no longer waits for the disk. Only a machine crash (power cut,
// kernel crash) can lose the unsynced tail of the log after the receiver has seen part of it.
// Two rules keep the numbering safe then:
//   - nothing past durable+aloBlock is ever sent, so the lost tail holds at most aloBlock
//     numbers;
//   - a connector that finds its log written in an earlier boot (aloState.bootChanged) treats
//     the aloBlock numbers after the log's last record as possibly seen: it continues after
//     them, in a new segment, and the gap between two records or segments is announced to the
//     receiver by a `_aioconn_skip` frame sent in the gap's place, in number order (take).

var aloMagic = []byte("\x89AIOALO\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const aloRecHead = 16

// aloBlock is how far past the durable point messages may be sent, and so how many numbers a
// machine crash can make unusable (skipped).
var aloBlock uint64 = 1 << 17 // a variable for tests

// aloWindowMax bounds how far past a receiver's delivered point a number (or a skip) may lie:
// a sender's window holds at most aloMaxMsgs messages, plus the skipped numbers of a few machine
// crashes. Beyond it a receiver sees a protocol error, and a recovering sender refuses its log.
const aloWindowMax = 4 * aloMaxMsgs

// aloSyncEvery paces the syncer when nobody waits for durability (SendDurable, a broker's
// receive commit): the link does not wait for it, so fewer fsyncs cost only how long a machine
// crash's window stays open. A variable for tests and benchmarks.
var aloSyncEvery = 100 * time.Millisecond

// aloRetryEvery paces the writer's retries after a failed write (each in a new segment).
const aloRetryEvery = 100 * time.Millisecond

type aloSeg struct {
	path  string
	peer  string
	first uint64
	last  uint64 // last seq written (first-1: none)
	id    [8]byte
	hlen  int
}

type aloMsg struct {
	seq uint64
	b   *bytebufferpool.ByteBuffer // the stamped frame; nil: a skipped number (never sent)
}

type aloSender struct {
	a         *aloState
	peer      string
	stream    [8]byte
	streamHex string

	mu       sync.Mutex
	next     uint64   // next sequence number to assign
	acked    uint64   // acknowledged by the receiver: mem starts at acked+1
	mem      []aloMsg // unacknowledged messages from memHead on, in order
	memHead  int
	memBytes int64
	pend     []byte // records not yet written
	spare    []byte
	pendLast uint64
	jbuf     []byte
	closing  bool

	failed   atomic.Bool                   // an fdatasync failed: the durable point is frozen
	durable  atomic.Uint64                 // highest sequence number fsynced
	waiters  atomic.Int32                  // goroutines in waitDurable
	sendable atomic.Uint64                 // highest sequence number the link may send
	durCh    atomic.Pointer[chan struct{}] // closed at each durable advance
	link     atomic.Pointer[peer]          // the negotiated link, woken when more is sendable
	kick     chan struct{}
	syncKick chan struct{}
	quit     chan struct{}
	syncQuit chan struct{}
	done     chan struct{}
	syncDone chan struct{}

	// fmu hands the writer's files over to the syncer.
	fmu      sync.Mutex
	wlast    uint64     // highest sequence number written (or skipped)
	retired  []*os.File // segments the writer closed, to be synced and closed by the syncer
	dirDirty bool       // a segment was created: the directory must be synced
	f        *os.File   // current segment (written by the writer under fmu)

	// writer-owned
	segs     []aloSeg
	fsize    int64
	rollNext bool // a write failed: the next write starts a new segment
}

func newALOSender(a *aloState, name string, id [8]byte, next uint64) *aloSender {
	s := &aloSender{a: a, peer: name, stream: id, streamHex: hex.EncodeToString(id[:]), next: next, acked: next - 1,
		kick: make(chan struct{}, 1), syncKick: make(chan struct{}, 1), quit: make(chan struct{}),
		syncQuit: make(chan struct{}), done: make(chan struct{}), syncDone: make(chan struct{}), wlast: next - 1}
	s.durable.Store(next - 1)
	s.sendable.Store(next - 1)
	ch := make(chan struct{})
	s.durCh.Store(&ch)
	return s
}

func (s *aloSender) start() {
	go s.syncRun()
	go s.run()
}

// stop writes and syncs what is left and stops the goroutines; true: the log is synced to its end.
func (s *aloSender) stop() bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.closing = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	s.mu.Lock()
	pending := len(s.pend) > 0
	s.mu.Unlock()
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return !pending && !s.failed.Load() && s.durable.Load() == s.wlast
}

func (s *aloSender) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *aloSender) signalSync() {
	select {
	case s.syncKick <- struct{}{}:
	default:
	}
}

// append numbers one message, stamps aioconn_seq into its JSON and queues the record for the
// committer. It returns the sequence number, or errALOFull while the window is full.
func (s *aloSender) append(json, data, binary []byte, withBinary bool) (uint64, error) {
	s.mu.Lock()
	if len(s.mem)-s.memHead >= aloSendMaxMsgs || s.memBytes >= aloMaxBytes {
		s.mu.Unlock()
		s.signal()
		return 0, errALOFull
	}
	seq := s.next
	var num [20]byte
	js, err := codec.SetKey(s.jbuf[:0], json, aloSeqKey, strconv.AppendUint(num[:0], seq, 10))
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	s.jbuf = js
	b := bytebufferpool.Get()
	b.B = codec.AppendFrame(b.B[:0], js, data, binary, withBinary)
	s.next++
	s.pend = appendALORecord(s.pend, seq, b.B)
	s.pendLast = seq
	s.mem = append(s.mem, aloMsg{seq: seq, b: b})
	s.memBytes += int64(len(b.B))
	s.mu.Unlock()
	s.signal()
	return seq, nil
}

func appendALORecord(dst []byte, seq uint64, frame []byte) []byte {
	var h [aloRecHead]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(frame)))
	binary.LittleEndian.PutUint64(h[8:], seq)
	crc := crc32.Update(0, castagnoli, h[8:16])
	binary.LittleEndian.PutUint32(h[4:], crc32.Update(crc, castagnoli, frame))
	dst = append(dst, h[:]...)
	return append(dst, frame...)
}

// take appends to dst the sendable messages after seq `after`, up to maxBytes, and returns the
// last sequence number taken (after when none); a run of skipped numbers becomes one
// `_aioconn_skip` frame. strip: a Python peer (aioconn_seq removed, skips left out).
func (s *aloSender) take(dst []byte, after uint64, maxBytes int, strip bool) ([]byte, uint64) {
	dur := s.sendable.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := max(after+1, s.acked+1)
	start := len(dst)
	for ; seq <= dur && len(dst)-start < maxBytes; seq++ {
		i := s.memHead + int(seq-s.acked-1)
		if i >= len(s.mem) {
			break
		}
		if s.mem[i].b == nil { // a run of skipped numbers: announced in its place
			end := seq
			for end < dur && i+1 < len(s.mem) && s.mem[i+1].b == nil {
				end++
				i++
			}
			if !strip {
				dst = s.a.cn.appendALOSkip(dst, s.streamHex, seq, end)
			}
			seq = end
			continue
		}
		fr := s.mem[i].b.B
		if strip {
			if f, err := codec.ParseBody(fr[codec.LenPrefix:]); err == nil {
				if js, err := codec.DeleteKey(s.jbuf[:0], f.JSON, aloSeqKey); err == nil {
					s.jbuf = js
					dst = codec.AppendFrame(dst, js, f.Data, f.Binary, f.HasBinary)
					continue
				}
			}
		}
		dst = append(dst, fr...)
	}
	return dst, seq - 1
}

// ack trims the window up to seq (cumulative acknowledgement).
func (s *aloSender) ack(seq uint64) {
	s.mu.Lock()
	if seq >= s.next {
		seq = s.next - 1
	}
	if seq <= s.acked {
		s.mu.Unlock()
		return
	}
	n := int(seq - s.acked)
	for i := s.memHead; i < s.memHead+n && i < len(s.mem); i++ {
		if b := s.mem[i].b; b != nil {
			s.memBytes -= int64(len(b.B))
			bytebufferpool.Put(b)
		}
		s.mem[i] = aloMsg{}
	}

	s.memHead += n
	if s.memHead > len(s.mem) {
		s.memHead = len(s.mem)
	}
	if s.memHead >= 4096 && s.memHead*2 >= len(s.mem) {
		k := copy(s.mem, s.mem[s.memHead:])
		clear(s.mem[k:])
		s.mem = s.mem[:k]
		s.memHead = 0
	}
	s.acked = seq
	s.mu.Unlock()
}

// unacked is the number of messages not yet acknowledged.
func (s *aloSender) unacked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mem) - s.memHead
}

// assigned is the last sequence number handed out.
func (s *aloSender) assigned() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next - 1
}

// waitDurable blocks until seq is fsynced in the log, or ctx ends.
func (s *aloSender) waitDurable(ctx context.Context, seq uint64) error {
	if s.durable.Load() >= seq {
		return nil
	}
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	for {
		ch := *s.durCh.Load()
		if s.durable.Load() >= seq {
			return nil
		}
		if s.failed.Load() {
			return fmt.Errorf("%w: log for %s: an fdatasync failed; nothing more is made durable until the connector restarts", ErrALOLog, s.peer)
		}
		s.signal()
		s.signalSync()
		if ctx == nil {
			<-ch
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run is the writer: it writes what was appended, publishes what may be sent, wakes the link and
// the syncer, and removes segments that are wholly acknowledged.
func (s *aloSender) run() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
		case <-s.quit:
			s.writeRound()
			close(s.syncQuit)
			<-s.syncDone
			s.fmu.Lock()
			if s.f != nil {
				s.f.Close()
			}
			s.fmu.Unlock()
			return
		}
		s.writeRound()
	}
}

func (s *aloSender) writeRound() {
	cn := s.a.cn
	s.mu.Lock()
	buf, last := s.pend, s.pendLast
	s.pend = s.spare[:0]
	s.spare = nil
	acked := s.acked
	s.mu.Unlock()
	if len(buf) > 0 {
		first := binary.LittleEndian.Uint64(buf[8:16])
		err := s.write(buf, first, last)
		if err != nil {
			cn.log.Errorf("%s at_least_once log for %s: %v (retrying in a new segment)", cn.sourceID, s.peer, err)
			s.mu.Lock() // keep the records, in order, for the next round
			s.pend = append(buf, s.pend...)
			s.mu.Unlock()
			s.rollNext = true // never after what a failed write may have left
			time.AfterFunc(aloRetryEvery, s.signal)
			return
		}
		s.publish(last)
		s.signalSync()
		s.mu.Lock()
		if s.spare == nil && cap(buf) <= 4<<20 {
			s.spare = buf[:0]
		}
		s.mu.Unlock()
	}
	s.gc(acked)
}

// publish records written (the writer's last record; 0: none new, the syncer) and makes
// sendable what is written and within aloBlock of the durable point, waking the link when that
// moved.
func (s *aloSender) publish(written uint64) {
	s.fmu.Lock()
	if written > s.wlast { // the writer only: it also reads wlast without fmu
		s.wlast = written
	}
	v := min(s.wlast, s.durable.Load()+aloBlock)
	moved := v > s.sendable.Load()
	if moved {
		s.sendable.Store(v)
	}
	s.fmu.Unlock()
	if moved {
		if p := s.link.Load(); p != nil {
			p.conn.Wake()
		}
	}
}

// syncRun is the syncer: it fsyncs what the writer wrote and publishes the durable point.
func (s *aloSender) syncRun() {
	defer close(s.syncDone)
	var last time.Time // start of the last round
	for {
		select {
		case <-s.syncKick:
		case <-s.syncQuit:
			s.syncRound()
			return
		}
		if !s.syncPace(last) {
			s.syncRound()
			return
		}
		last = time.Now()
		s.syncRound()
	}
}

// syncPace waits until aloSyncEvery after the last round, unless a SendDurable caller waits (it
// is woken by the kick that follows its write) or the link nears its cap (aloBlock/2 written
// and not synced); false: the sender stops.
func (s *aloSender) syncPace(last time.Time) bool {
	d := time.Until(last.Add(aloSyncEvery))
	if d <= 0 || s.syncDue() {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-s.syncKick:
			if s.syncDue() {
				return true
			}
		case <-s.syncQuit:
			return false
		}
	}
}

// syncDue reports whether the paced syncer must run now: a durable send waits, or the link
// nears its cap (half of aloBlock written and not synced).
func (s *aloSender) syncDue() bool {
	if s.waiters.Load() > 0 {
		return true
	}
	s.fmu.Lock()
	behind := s.wlast - min(s.wlast, s.durable.Load())
	s.fmu.Unlock()
	return behind >= aloBlock/2
}

// syncRound fsyncs the retired segments (then closes them), the current one and, after a
// segment was created, the directory; false: an error, which freezes the durable point until
// a restart (markSyncFailed).
func (s *aloSender) syncRound() bool {
	s.fmu.Lock()
	if s.failed.Load() {
		retired := s.retired
		s.retired = nil
		s.fmu.Unlock()
		for _, r := range retired {
			r.Close()
		}
		return false
	}
	f, retired, target, dirDirty := s.f, s.retired, s.wlast, s.dirDirty
	s.retired, s.dirDirty = nil, false
	s.fmu.Unlock()
	if target <= s.durable.Load() && len(retired) == 0 && !dirDirty {
		return true
	}
	var err error
	for _, r := range retired {
		if err == nil {
			err = aloSync(r)
		}
		r.Close()
	}
	if err == nil && f != nil {
		err = aloSync(f)
	}
	if err == nil && dirDirty {
		err = syncDir(s.a.dir)
	}
	if err != nil {
		// After a failed fdatasync the kernel may have dropped the dirty pages and a retry
		// would succeed over lost data: the durable point stays where it is until a restart
		// (which recovers what the files hold), and sending stops aloBlock past it.
		s.failed.Store(true)
		ch := make(chan struct{})
		close(*s.durCh.Swap(&ch)) // waiters see the failure
		s.a.cn.log.Errorf("%s at_least_once log for %s: %v: nothing more is made durable until the connector restarts", s.a.cn.sourceID, s.peer, err)
		// The pages that failed may read back as written until they are evicted: the next start
		// must not trust the log's tail, as after a machine crash.
		s.a.markSyncFailed()
		return false
	}
	if target > s.durable.Load() {
		s.durable.Store(target)
		ch := make(chan struct{})
		close(*s.durCh.Swap(&ch))
		s.publish(0)
	}
	return true
}

// aloSync and aloWrite are the syncer's fdatasync and the writer's write (variables for the
// fault tests).
var (
	aloSync  = fdatasync
	aloWrite = (*os.File).Write
)

// fdatasync flushes f's data; f may be closed concurrently (the writer retiring it): the
// descriptor stays valid during the call.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("%w: %s: fdatasync: %v", ErrALOLog, f.Name(), serr)
	}
	return nil
}

// write appends buf (records first..last) to the current segment, rotating first if needed.
// The syncer fsyncs it.
func (s *aloSender) write(buf []byte, first, last uint64) error {
	if s.f == nil || s.fsize >= aloSegMax || s.rollNext {
		if err := s.roll(first); err != nil {
			return err
		}
		s.rollNext = false
	}
	if _, err := aloWrite(s.f, buf); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrALOLog, s.segs[len(s.segs)-1].path, err)
	}
	s.fsize += int64(len(buf))
	s.segs[len(s.segs)-1].last = last
	return nil
}

// roll starts a segment whose first record will be first; the current one is handed to the
// syncer, which fsyncs and closes it.
func (s *aloSender) roll(first uint64) error {
	seg := aloSeg{path: s.a.logPrefix(s.peer) + fmt.Sprintf("%020d", first), peer: s.peer, first: first,
		last: first - 1, id: s.stream}
	for _, o := range s.segs { // a retry after a failed write starts at the same number
		if o.path == seg.path {
			seg.path += fmt.Sprintf("_%d", len(s.segs))
			break
		}
	}
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrALOLog, err)
	}
	h := appendSegHeader(nil, s.stream, first, s.peer)
	if _, err := f.Write(h); err != nil {
		f.Close()
		return fmt.Errorf("%w: %s: %v", ErrALOLog, seg.path, err)
	}
	s.fmu.Lock()
	if s.f != nil {
		s.retired = append(s.retired, s.f)
	}
	s.f, s.dirDirty = f, true
	s.fmu.Unlock()
	seg.hlen = len(h)
	s.fsize = int64(len(h))
	s.segs = append(s.segs, seg)
	return nil
}

// gc removes the segments whose records are all acknowledged; the current one is kept (it
// carries the stream and the next number) but replaced by a fresh one once it is wholly
// acknowledged and larger than 1 MiB.
func (s *aloSender) gc(acked uint64) {
	for len(s.segs) > 1 && s.segs[0].last <= acked && s.segs[1].first <= acked+1 {
		os.Remove(s.segs[0].path)
		s.segs = s.segs[1:]
	}
	if n := len(s.segs); n == 1 && s.f != nil && s.fsize > 1<<20 && s.segs[0].last <= acked &&
		s.segs[0].last == s.wlast {
		if s.roll(s.segs[0].last+1) == nil {
			os.Remove(s.segs[0].path)
			s.segs = s.segs[1:]
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrALOLog, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrALOLog, dir, err)
	}
	return nil
}

func appendSegHeader(dst []byte, id [8]byte, first uint64, name string) []byte {
	start := len(dst)
	dst = append(dst, aloMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, aloVersion)
	dst = append(dst, id[:]...)
	dst = binary.LittleEndian.AppendUint64(dst, first)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// parseSegHeader decodes a segment header at the start of b.
func parseSegHeader(path string, b []byte) (aloSeg, error) {
	seg := aloSeg{path: path}
	const fixed = 8 + 4 + 8 + 8 + 2
	if len(b) < fixed+4 || !bytes.Equal(b[:8], aloMagic) {
		return seg, fmt.Errorf("%w: %s: not a log segment", ErrALOLog, path)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != aloVersion {
		return seg, fmt.Errorf("%w: %s: version %d", ErrALOLog, path, v)
	}
	copy(seg.id[:], b[12:20])
	seg.first = binary.LittleEndian.Uint64(b[20:])
	n := int(binary.LittleEndian.Uint16(b[28:]))
	if len(b) < fixed+n+4 {
		return seg, fmt.Errorf("%w: %s: truncated header", ErrALOLog, path)
	}
	if crc32.Checksum(b[:fixed+n], castagnoli) != binary.LittleEndian.Uint32(b[fixed+n:]) {
		return seg, fmt.Errorf("%w: %s: header checksum", ErrALOLog, path)
	}
	seg.peer = string(b[fixed : fixed+n])
	seg.hlen = fixed + n + 4
	seg.last = seg.first - 1
	return seg, nil
}

func readSegHeader(path string) (aloSeg, error) {
	f, err := os.Open(path)
	if err != nil {
		return aloSeg{path: path}, fmt.Errorf("%w: %v", ErrALOLog, err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, _ := f.Read(b)
	return parseSegHeader(path, b[:n])
}

// recoverSender rebuilds a sender from its segments (sorted by first): every intact record is
// unacknowledged until the receiver says otherwise; a torn tail of the last segment is cut.
func recoverSender(a *aloState, name string, segs []aloSeg) (*aloSender, error) {
	cn := a.cn
	// Only the newest stream counts (an older one was wholly acknowledged before it was replaced).
	id := segs[len(segs)-1].id
	var keep []aloSeg
	for _, sg := range segs {
		if sg.id != id {
			os.Remove(sg.path)
			continue
		}
		keep = append(keep, sg)
	}
	segs = keep
	var mem []aloMsg
	var memBytes int64
	lastSeq := segs[0].first - 1
	for i := range segs {
		sg := &segs[i]
		b, err := os.ReadFile(sg.path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrALOLog, err)
		}
		off := sg.hlen
		for off+aloRecHead <= len(b) {
			l := int(binary.LittleEndian.Uint32(b[off:]))
			if l < codec.LenPrefix+6 || off+aloRecHead+l > len(b) {
				break
			}
			seq := binary.LittleEndian.Uint64(b[off+8:])
			fr := b[off+aloRecHead : off+aloRecHead+l]
			crc := crc32.Update(crc32.Update(0, castagnoli, b[off+8:off+16]), castagnoli, fr)
			if crc != binary.LittleEndian.Uint32(b[off+4:]) {
				break
			}
			if seq <= lastSeq { // written again in a new segment after a failed write
				off += aloRecHead + l
				continue
			}
			if _, err := codec.ParseBody(fr[codec.LenPrefix:]); err != nil {
				break
			}
			m := bytebufferpool.Get()
			m.B = append(m.B[:0], fr...)
			mem = append(mem, aloMsg{seq: seq, b: m})
			memBytes += int64(len(fr))
			lastSeq = seq
			sg.last = seq
			off += aloRecHead + l
		}
		if off < len(b) {
			cn.log.Errorf("%s at_least_once log %s: %d damaged or torn bytes at offset %d cut (never acknowledged as durable)",
				cn.sourceID, sg.path, len(b)-off, off)
			if err := os.Truncate(sg.path, int64(off)); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrALOLog, err)
			}
		}
	}
	for _, sg := range segs { // after a SIGKILL, written records may not be fsynced yet
		if a.logsSynced {
			break
		}
		f, err := os.Open(sg.path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrALOLog, err)
		}
		err = aloSync(f) // names the file
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	next := max(lastSeq+1, segs[len(segs)-1].first)
	if a.bootChanged {
		// The machine restarted since the log was written: its unsynced tail may be lost while
		// the receiver saw part of it. Continue past every number that can have been sent, in a
		// segment of its own (its first number keeps the gap across later restarts).
		next += aloBlock
	}
	s := newALOSender(a, name, id, next)
	// Every number from the first segment's first on is a record or a gap (between records, or
	// before a segment's first number): a number never to be sent. A skipped entry stands for
	// it in the window, and the link announces the run (take).
	full := make([]aloMsg, 0, len(mem))
	expect := segs[0].first
	addGap := func(from, to uint64) error {
		if to-from+1 > aloWindowMax || len(full)+int(to-from+1) > aloWindowMax {
			return fmt.Errorf("%w: log for %s: numbers %d-%d missing (damaged segments?): move its files aside to start a new stream",
				ErrALOLog, name, from, to)
		}
		for q := from; q <= to; q++ {
			full = append(full, aloMsg{seq: q})
		}
		return nil
	}
	for _, m := range mem {
		if m.seq > expect {
			if err := addGap(expect, m.seq-1); err != nil {
				return nil, err
			}
		}
		full = append(full, m)
		expect = m.seq + 1
	}
	if next > expect {
		if err := addGap(expect, next-1); err != nil {
			return nil, err
		}
	}
	s.acked = segs[0].first - 1
	s.mem, s.memBytes = full, memBytes
	s.segs = segs
	if a.bootChanged {
		if err := s.roll(next); err != nil {
			return nil, err
		}
		if !s.syncRound() { // the new segment must be durable before anything past it is sent
			return nil, fmt.Errorf("%w: %s: new segment not durable", ErrALOLog, s.segs[len(s.segs)-1].path)
		}
		return s, nil
	}
	last := &s.segs[len(s.segs)-1]
	if f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0); err == nil {
		if st, err := f.Stat(); err == nil {
			s.f, s.fsize = f, st.Size()
		} else {
			f.Close()
		}
	}
	return s, nil
}
