package ring

import (
	"math"
	"math/bits"
	"sync/atomic"
)

const (
	minSlots  = 64
	maxSlots  = 1 << 30
	closedBit = uint64(1) << 63

	// The MPSC's count and byte total share one atomic word so a Push or a PopBatch costs
	// one read-modify-write for both: count in the low countBits, bytes above.
	countBits = 24
	countMask = 1<<countBits - 1
	// MaxCount is the largest count cap an MPSC takes (larger caps are clamped). It leaves
	// room in the count field for transient over-reservations by refused producers.
	MaxCount = 1 << 22
	// MaxBytes is the largest byte cap an MPSC takes, and its cap when none is given.
	MaxBytes = int64(1) << 36
)

// cacheLine pads hot atomics apart to avoid false sharing.
type cacheLine [64]byte

// cell is one slot of a Vyukov bounded queue. seq == uint32(pos) means free for the
// producer taking position pos; seq == uint32(pos+1) means written and ready for the
// consumer at pos. 32-bit sequence numbers (compared as a signed difference) are exact while
// a segment has fewer than 2^31 slots, and keep a cell of a pointer type at 16 bytes.
type cell[T any] struct {
	seq  atomic.Uint32
	size uint32
	v    T
}

// segment is a power-of-two Vyukov ring. Producers reserve positions with a CAS on tail.
// When a producer finds the segment full it closes it (sets closedBit in tail, after which
// no position can be reserved in it) and links a segment twice as large; the consumer drains
// a closed segment up to its final tail and then moves to next. Closing before linking keeps
// each producer's items in push order: a producer only pushes into next after it has seen
// the segment closed.
type segment[T any] struct {
	next  atomic.Pointer[segment[T]]
	mask  uint64
	cells []cell[T]
	_     cacheLine
	tail  atomic.Uint64
	_     cacheLine
}

func newSegment[T any](n int) *segment[T] {
	s := &segment[T]{mask: uint64(n - 1), cells: make([]cell[T], n)}
	for i := range s.cells {
		s.cells[i].seq.Store(uint32(i))
	}
	return s
}

// MPSC is a bounded multi-producer single-consumer FIFO queue. Push may be called from any
// goroutine and never blocks (it is lock-free: a preempted producer never stops others from
// pushing). Pop and PopBatch must be called by one consumer goroutine at a time. Len and
// Bytes are safe anywhere.
//
// Ordering: items pushed by one goroutine are popped in push order; items of different
// goroutines are ordered by when they reserved their slot. Pop may report empty while a
// Push that reserved the next slot is still writing it.
//
// Caps: Push refuses an item when the count would exceed maxCount or the summed sizes would
// exceed maxBytes. The caps are never exceeded. Near a cap a Push may be refused while a
// concurrent refused Push is undoing its reservation (a transient over-count of at most the
// number of concurrent producers). An item larger than maxBytes (or than 4 GiB - 1, the
// largest frame the wire format can carry) is always refused.
// Declared sizes should be real memory sizes: the byte total shares a 64-bit word with the
// count and is exact only while in-flight reservations stay under 2^40 bytes.
//
// Memory: storage starts at 64 slots and doubles when a burst fills it, up to the smallest
// power of two >= maxCount; in steady state Push and Pop do not allocate.
type MPSC[T any] struct {
	maxCount uint64
	maxBytes uint64
	maxSeg   int
	_        cacheLine
	state    atomic.Uint64 // bytes<<countBits | count of reserved items
	_        cacheLine
	tailSeg  atomic.Pointer[segment[T]]
	_        cacheLine
	headSeg  *segment[T] // consumer only
	head     uint64      // consumer only: next position in headSeg
	_        cacheLine
}

// NewMPSC returns an empty queue holding at most maxCount items (clamped to [1, MaxCount])
// and at most maxBytes of declared sizes (maxBytes <= 0 or above MaxBytes: MaxBytes).
func NewMPSC[T any](maxCount int, maxBytes int64) *MPSC[T] {
	maxCount = min(max(maxCount, 1), MaxCount)
	if maxBytes <= 0 || maxBytes > MaxBytes {
		maxBytes = MaxBytes
	}
	ms := max(ceilPow2(maxCount), 2) // a Vyukov ring needs 2 slots to tell "ready" from "free"
	q := &MPSC[T]{maxCount: uint64(maxCount), maxBytes: uint64(maxBytes), maxSeg: ms}
	s := newSegment[T](min(minSlots, ms))
	q.tailSeg.Store(s)
	q.headSeg = s
	return q
}

// ceilPow2 returns the smallest power of two >= n, clamped to maxSlots.
func ceilPow2(n int) int {
	if n >= maxSlots {
		return maxSlots
	}
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(n-1))
}

// Push appends v with its declared size (negative counts as 0). It returns false, keeping
// nothing, when the queue is full by count or by bytes. Safe for concurrent use; never
// blocks; allocates only when the storage grows.
func (q *MPSC[T]) Push(v T, size int) bool {
	sz := uint64(max(size, 0))
	if sz > q.maxBytes || sz > math.MaxUint32 {
		return false
	}
	d := sz<<countBits | 1
	if st := q.state.Add(d); st&countMask > q.maxCount || st>>countBits > q.maxBytes {
		q.state.Add(-d)
		return false
	}
	q.enqueue(v, uint32(sz))
	return true
}

// enqueue writes v into the next free slot, closing a full segment and linking a larger one.
// The caller has reserved room for it in state. Safe for concurrent use.
func (q *MPSC[T]) enqueue(v T, sz uint32) {
	s := q.tailSeg.Load()
	for {
		pos := s.tail.Load()
		if pos&closedBit != 0 {
			s = q.advance(s)
			continue
		}
		c := &s.cells[pos&s.mask]
		dif := int32(c.seq.Load() - uint32(pos))
		if dif == 0 {
			if s.tail.CompareAndSwap(pos, pos+1) {
				c.v = v
				c.size = sz
				c.seq.Store(uint32(pos + 1))
				return
			}
		} else if dif < 0 {
			// Full segment: close it (if the tail has not moved) and go on to the next.
			if s.tail.CompareAndSwap(pos, pos|closedBit) {
				s = q.advance(s)
			}
		}
		// dif > 0 or a lost CAS: another producer took pos; reload.
	}
}

// PushBatch appends vs[i] with declared size sizes[i] for i in order (only the first
// min(len(vs), len(sizes)) are considered) and returns how many it took: a prefix of vs, all of
// it unless a cap refused an item (as Push would), in which case the rest is not taken. The
// batch costs one atomic add for the caps and, while the current segment has room, one CAS for
// all the slots, where Push costs one of each per item; another producer's items may interleave
// only where the batch crosses into a new segment. Safe for concurrent use; never blocks.
func (q *MPSC[T]) PushBatch(vs []T, sizes []int) int {
	n := min(len(vs), len(sizes))
	var total uint64
	for i := 0; i < n; i++ {
		sz := uint64(max(sizes[i], 0))
		total += sz
		if total > q.maxBytes || sz > math.MaxUint32 {
			return q.pushEach(vs[:n], sizes)
		}
	}
	if n == 0 {
		return 0
	}
	d := total<<countBits | uint64(n)
	if st := q.state.Add(d); st&countMask > q.maxCount || st>>countBits > q.maxBytes {
		q.state.Add(-d)
		return q.pushEach(vs[:n], sizes) // near a cap: find the prefix that fits
	}
	s := q.tailSeg.Load()
	for i := 0; i < n; {
		pos := s.tail.Load()
		if pos&closedBit != 0 {
			s = q.advance(s)
			continue
		}
		k := min(n-i, len(s.cells))
		last := pos + uint64(k) - 1
		// Slots are freed in order, so if the batch's last slot is free for this lap, all are.
		if k > 1 && s.cells[last&s.mask].seq.Load() == uint32(last) && s.tail.CompareAndSwap(pos, pos+uint64(k)) {
			for j := 0; j < k; j++ {
				c := &s.cells[(pos+uint64(j))&s.mask]
				c.v = vs[i+j]
				c.size = uint32(max(sizes[i+j], 0))
				c.seq.Store(uint32(pos + uint64(j) + 1))
			}
			i += k
			continue
		}
		// Not enough room in this segment (or one item left, or a lost race): one item the
		// ordinary way, which closes a full segment and moves on.
		q.enqueue(vs[i], uint32(max(sizes[i], 0)))
		i++
		s = q.tailSeg.Load()
	}
	return n
}

// pushEach pushes vs one at a time while they are accepted.
func (q *MPSC[T]) pushEach(vs []T, sizes []int) int {
	for i := range vs {
		if !q.Push(vs[i], sizes[i]) {
			return i
		}
	}
	return len(vs)
}

// advance returns the segment after the closed segment s, linking a new one twice the size
// of s (up to maxSeg) if nobody has yet, and moves tailSeg forward.
func (q *MPSC[T]) advance(s *segment[T]) *segment[T] {
	n := s.next.Load()
	if n == nil {
		n = newSegment[T](min(2*len(s.cells), q.maxSeg))
		if !s.next.CompareAndSwap(nil, n) {
			n = s.next.Load() // another producer linked first; ours is garbage
		}
	}
	q.tailSeg.CompareAndSwap(s, n)
	return n
}

// Pop removes and returns the oldest item, or false when the queue is (momentarily) empty.
// Consumer only. Does not allocate.
func (q *MPSC[T]) Pop() (T, bool) {
	var zero T
	s := q.headSeg
	for {
		pos := q.head
		c := &s.cells[pos&s.mask]
		if c.seq.Load() == uint32(pos+1) {
			v, sz := c.v, uint64(c.size)
			c.v = zero
			c.seq.Store(uint32(pos + s.mask + 1))
			q.head = pos + 1
			q.state.Add(-(sz<<countBits | 1))
			return v, true
		}
		if !q.nextSegment(s, pos) {
			return zero, false
		}
		s = q.headSeg
	}
}

// nextSegment moves the consumer to the next segment if s is closed and drained at pos.
func (q *MPSC[T]) nextSegment(s *segment[T], pos uint64) bool {
	t := s.tail.Load()
	if t&closedBit == 0 || t&^closedBit != pos {
		return false
	}
	n := s.next.Load()
	if n == nil {
		return false // the closer is about to link it
	}
	q.headSeg, q.head = n, 0
	return true
}

// PopBatch appends up to max items (max <= 0: none) to dst in queue order and returns the
// extended slice. Consumer only. Does not allocate unless dst must grow.
func (q *MPSC[T]) PopBatch(dst []T, max int) []T {
	var zero T
	s := q.headSeg
	var n, nb uint64
	for max > 0 {
		pos := q.head
		c := &s.cells[pos&s.mask]
		if c.seq.Load() == uint32(pos+1) {
			dst = append(dst, c.v)
			nb += uint64(c.size)
			c.v = zero
			c.seq.Store(uint32(pos + s.mask + 1))
			q.head = pos + 1
			n++
			max--
			continue
		}
		if !q.nextSegment(s, pos) {
			break
		}
		s = q.headSeg
	}
	if n > 0 {
		q.state.Add(-(nb<<countBits | n))
	}
	return dst
}

// Len returns the number of items queued, counting pushes in progress. Safe anywhere.
func (q *MPSC[T]) Len() int { return int(q.state.Load() & countMask) }

// Bytes returns the sum of the declared sizes queued, counting pushes in progress.
func (q *MPSC[T]) Bytes() int64 { return int64(q.state.Load() >> countBits) }

// Cap returns the count cap.
func (q *MPSC[T]) Cap() int { return int(q.maxCount) }

// slots returns the size of the segment producers currently push into (for tests).
func (q *MPSC[T]) slots() int { return len(q.tailSeg.Load().cells) }
