package benchmarks

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/uds"
)

// Payload layout of every bench message (little endian), at the start of the data:
//
//	[0:4]   stream id (client index; probeStream for warm-up probes, not counted)
//	[4:12]  sequence number within the stream, from 0
//	[12:20] send time, nanoseconds since the run's monotonic base
//
// The rest of the data is zero padding up to --size.
const (
	payloadMin  = 20
	probeStream = 0xFFFFFFFF
)

// clock is the run's monotonic time base: every timestamp is time.Since(base).
type clock struct{ base time.Time }

func (c *clock) now() int64 { return int64(time.Since(c.base)) }

func putPayload(d []byte, stream uint32, seq uint64, ts int64) {
	binary.LittleEndian.PutUint32(d, stream)
	binary.LittleEndian.PutUint64(d[4:], seq)
	binary.LittleEndian.PutUint64(d[12:], uint64(ts))
}

// counter counts what one receiver got, from the sequence numbers of the messages: unique,
// duplicated, reordered per stream, and the end-to-end latency of each first arrival. Safe for
// concurrent use (one mutex, taken once per read chunk).
type counter struct {
	mu        sync.Mutex
	seen      [][]uint64 // per stream bitmap of sequence numbers
	last      []int64    // per stream last sequence seen (reorder detection)
	dup, ooo  int64
	bad       int64 // frames whose payload is too short or whose stream is out of range
	probes    int64
	lat       []int64 // ns, one per first arrival
	keepLat   bool
	latFrom   int64 // clock time: arrivals sent before it are counted but keep no latency (warm-up)
	lastRecv  int64 // clock time of the last counted arrival
	firstRecv int64
	unique    atomic.Int64 // first arrivals (for windows and progress)
	// notify, when set, gets a non-blocking send after every batch with first arrivals (wakes
	// a sender waiting for window credit).
	notify chan struct{}
}

func newCounter(streams int, keepLat bool) *counter {
	c := &counter{seen: make([][]uint64, streams), last: make([]int64, streams), keepLat: keepLat}
	for i := range c.last {
		c.last[i] = -1
	}
	return c
}

// expectMax bounds the latency samples expect reserves (64 Mi samples, 512 MB): past it they
// grow as needed. A variable for tests.
var expectMax int64 = 1 << 26

// expect reserves room for n more latency samples, so that a phase of n messages appends
// without regrowing (copying) the slice while it is measured.
func (c *counter) expect(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keepLat && n > 0 {
		c.lat = slices.Grow(c.lat, int(min(n, expectMax)))
	}
}

// allProbed reports whether every counter of cnts counted at least one warm-up probe.
func allProbed(cnts []*counter) bool {
	for _, c := range cnts {
		c.mu.Lock()
		p := c.probes
		c.mu.Unlock()
		if p == 0 {
			return false
		}
	}
	return true
}

// addBatch counts the payloads of one read chunk, all received at time now.
func (c *counter) addBatch(datas [][]byte, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, d := range datas {
		if len(d) < payloadMin {
			c.bad++
			continue
		}
		st := binary.LittleEndian.Uint32(d)
		if st == probeStream {
			c.probes++
			continue
		}
		if int(st) >= len(c.seen) {
			c.bad++
			continue
		}
		seq := binary.LittleEndian.Uint64(d[4:])
		if seq > 1<<34 {
			c.bad++
			continue
		}
		w := int(seq / 64)
		bm := c.seen[st]
		if w >= len(bm) {
			bm = append(bm, make([]uint64, w+1-len(bm)+len(bm)/2)...)
			c.seen[st] = bm
		}
		bit := uint64(1) << (seq % 64)
		if bm[w]&bit != 0 {
			c.dup++
			continue
		}
		bm[w] |= bit
		if int64(seq) < c.last[st] {
			c.ooo++
		}
		c.last[st] = int64(seq)
		if c.keepLat {
			if ts := int64(binary.LittleEndian.Uint64(d[12:])); ts >= c.latFrom {
				c.lat = append(c.lat, now-ts)
			}
		}
		if n == 0 && c.firstRecv == 0 {
			c.firstRecv = now
		}
		n++
	}
	if n > 0 {
		c.lastRecv = now
		c.unique.Add(n)
		if c.notify != nil {
			select {
			case c.notify <- struct{}{}:
			default:
			}
		}
	}
}

// resetPhase forgets the latency samples and the duplicate, reorder and first-arrival counts
// (the bitmaps stay): the next phase uses other streams.
func (c *counter) resetPhase() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lat = nil
	c.dup, c.ooo, c.lastRecv, c.firstRecv = 0, 0, 0, 0
	c.unique.Store(0)
}

// missing counts, per stream, the sequence numbers in [0, sent[stream]) that never arrived: the
// loss, read from the bitmaps (not sent minus delivered).
func (c *counter) missing(sent []int64) (lost, delivered int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for st, n := range sent {
		var bm []uint64
		if st < len(c.seen) {
			bm = c.seen[st]
		}
		for seq := int64(0); seq < n; seq++ {
			w := int(seq / 64)
			if w < len(bm) && bm[w]&(1<<(seq%64)) != 0 {
				delivered++
			} else {
				lost++
			}
		}
	}
	return lost, delivered
}

// sink listens on a receive-from-connector socket (the application side) and feeds every
// message's data to a counter. Any number of connector connections may arrive.
type sink struct {
	ln    *net.UnixListener
	clk   *clock
	cnt   *counter
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	err   atomic.Pointer[error]
	// onFrame, when set, is called (from the reading goroutine, outside the counter lock) with
	// each frame's JSON and data; used by the reqrep responder.
	onBatch func(frames []codec.Frame)
}

func newSink(path string, clk *clock, cnt *counter) (*sink, error) {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, clk: clk, cnt: cnt, conns: map[net.Conn]struct{}{}}
	return s, nil
}

func (s *sink) start() {
	s.wg.Add(1)
	go s.accept()
}

func (s *sink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		c = uds.Wrap(c)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(c)
	}
}

func (s *sink) read(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	buf := make([]byte, 1<<18)
	have := 0
	var datas [][]byte
	var frames []codec.Frame
	for {
		m, err := c.Read(buf[have:])
		if err != nil {
			return
		}
		now := s.clk.now()
		have += m
		off := 0
		datas, frames = datas[:0], frames[:0]
		for {
			sz, err := codec.FrameSize(buf[off:have], 1<<26)
			if err != nil {
				s.fail(err)
				return
			}
			if sz == 0 || off+sz > have {
				if sz > len(buf) {
					nb := make([]byte, sz+len(buf))
					copy(nb, buf[off:have])
					buf, have, off = nb, have-off, 0
				}
				break
			}
			f, err := codec.ParseBody(buf[off+4 : off+sz])
			if err != nil {
				s.fail(err)
				return
			}
			datas = append(datas, f.Data)
			if s.onBatch != nil {
				frames = append(frames, f)
			}
			off += sz
		}
		if s.cnt != nil && len(datas) > 0 {
			s.cnt.addBatch(datas, now)
		}
		if s.onBatch != nil && len(frames) > 0 {
			s.onBatch(frames)
		}
		have = copy(buf, buf[off:have])
	}
}

func (s *sink) fail(err error) {
	s.err.CompareAndSwap(nil, &err)
}

func (s *sink) close() error {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Latency is a latency distribution in microseconds.
type Latency struct {
	Count int     `json:"count"`
	Min   float64 `json:"min_us"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	Max   float64 `json:"max_us"`
}

// latencyOf sorts ns (in place) and returns its percentiles in µs.
func latencyOf(ns []int64) *Latency {
	if len(ns) == 0 {
		return nil
	}
	slices.Sort(ns)
	us := func(v int64) float64 { return float64(v) / 1000 }
	q := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.5) - 1
		i = max(0, min(i, len(ns)-1))
		return us(ns[i])
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return &Latency{Count: len(ns), P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999),
		Max: us(ns[len(ns)-1]), Min: us(ns[0]), Mean: sum / float64(len(ns)) / 1000}
}

// waitUntil polls cond every 2 ms until it holds, stop is closed, or timeout passes.
func waitUntil(timeout time.Duration, stop <-chan struct{}, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-stop:
			return cond()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return true
}

var errWindow = errors.New("benchmarks: in-flight window stalled")
