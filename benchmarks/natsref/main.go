// Command natsref measures a running nats-server (core NATS, no JetStream)
// with the same three workloads the aioconn benchmarks use, so that the two
// brokers can be compared on the same machine.
//
// It starts no server itself: point it at one with --url.
//
//	--mode rate        N publisher connections, each paced at --rate msgs/s,
//	                   into one subscriber connection; end-to-end latency
//	                   percentiles, loss and duplicates from sequence numbers.
//	--mode throughput  one publisher connection into one subscriber
//	                   connection as fast as possible; delivered msgs/s, loss.
//	--mode reqrep      one requester doing sequential nc.Request against one
//	                   responder connection; round-trip percentiles and rate.
//
// Every loop is bounded: rate mode by --warmup+--duration and a per-client count,
// throughput and reqrep by their count and by --max-time.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
)

const headerLen = 16 // 8-byte sequence (client<<40 | seq) + 8-byte send time (UnixNano)

const seqBits = 40 // low bits of the sequence word carry the per-client sequence

var (
	errSize    = errors.New("natsref: --size must be at least 16 (sequence + timestamp)")
	errMode    = errors.New("natsref: unknown --mode (want rate, throughput or reqrep)")
	errArg     = errors.New("natsref: invalid argument")
	errNoReply = errors.New("natsref: every request failed")
)

type options struct {
	URL          string
	Mode         string
	Clients      int
	Rate         float64
	Duration     time.Duration
	Warmup       time.Duration
	Size         int
	Count        int
	Subject      string
	Drain        time.Duration
	MaxTime      time.Duration
	ReqTimeout   time.Duration
	PendingMsgs  int
	PendingBytes int
	Seed         uint64
	JSON         bool
}

func main() {
	var o options
	flag.StringVar(&o.URL, "url", "nats://127.0.0.1:4222", "nats-server URL")
	flag.StringVar(&o.Mode, "mode", "rate", "rate | throughput | reqrep")
	flag.IntVar(&o.Clients, "clients", 100, "rate: publisher connections")
	flag.Float64Var(&o.Rate, "rate", 40, "rate: msgs/s per publisher")
	flag.DurationVar(&o.Duration, "duration", 20*time.Second, "rate: publishing time")
	flag.DurationVar(&o.Warmup, "warmup", 2*time.Second, "rate: publishing time before --duration whose messages are counted but left out of the latency figures (as aioconn bench --warmup; 0: none)")
	flag.IntVar(&o.Size, "size", 100, "payload bytes (>= 16)")
	flag.IntVar(&o.Count, "count", 0, "throughput/reqrep: messages or round trips (default 2000000 / 20000)")
	flag.StringVar(&o.Subject, "subject", "", "subject (default bench.rate, bench.tput or bench.req)")
	flag.DurationVar(&o.Drain, "drain", 5*time.Second, "wait at most this long without progress for the last messages after publishing ends")
	flag.DurationVar(&o.MaxTime, "max-time", 5*time.Minute, "hard bound on the publishing phase of throughput and reqrep (rate mode stops at --warmup+--duration)")
	flag.DurationVar(&o.ReqTimeout, "req-timeout", 2*time.Second, "reqrep: timeout of one request")
	flag.IntVar(&o.PendingMsgs, "pending-msgs", 50_000_000, "subscriber pending limit in messages (nats.go default 500000; negative = unlimited)")
	flag.IntVar(&o.PendingBytes, "pending-bytes", 8<<30, "subscriber pending limit in bytes (nats.go default 64 MiB; negative = unlimited)")
	flag.Uint64Var(&o.Seed, "seed", 0, "rate: seed of the start phases (0 = random)")
	flag.BoolVar(&o.JSON, "json", false, "print one JSON object instead of the table")
	flag.Parse()

	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if o.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	printTable(res)
}

// result is what one run prints; fields not relevant to a mode are omitted.
type result struct {
	Mode          string  `json:"mode"`
	URL           string  `json:"url"`
	ServerVersion string  `json:"server_version"`
	ClientVersion string  `json:"nats_go_version"`
	GoVersion     string  `json:"go_version"`
	GOMAXPROCS    int     `json:"gomaxprocs"`
	NumCPU        int     `json:"num_cpu"`
	Size          int     `json:"size"`
	Clients       int     `json:"clients,omitempty"`
	RatePerClient float64 `json:"rate_per_client,omitempty"`
	DurationS     float64 `json:"duration_s,omitempty"`
	WarmupS       float64 `json:"warmup_s,omitempty"`
	Count         int     `json:"count,omitempty"`

	Sent      int64 `json:"sent"`
	Delivered int64 `json:"delivered"`
	Lost      int64 `json:"lost"`
	Dup       int64 `json:"dup"`
	// Dropped is nats.go's own count of messages it discarded on the
	// subscription for exceeding the pending limits (client-side slow consumer);
	// nil when the server closed the subscription (nats.go then counts no more).
	Dropped       *int64   `json:"client_dropped,omitempty"`
	SlowConsumer  int64    `json:"slow_consumer_events"`
	Disconnects   int64    `json:"subscriber_disconnects"`
	LastError     string   `json:"last_error,omitempty"`
	PublishS      float64  `json:"publish_s,omitempty"`
	ElapsedS      float64  `json:"elapsed_s"`
	SendRate      float64  `json:"sent_per_s,omitempty"`
	DeliverRate   float64  `json:"delivered_per_s,omitempty"`
	DeliverMBps   float64  `json:"delivered_mb_per_s,omitempty"`
	RoundTripsPS  float64  `json:"round_trips_per_s,omitempty"`
	Errors        int64    `json:"errors,omitempty"`
	Latency       *latency `json:"latency_us,omitempty"`
	LatencySample int      `json:"latency_samples,omitempty"`
}

// latency holds exact percentiles (nearest rank over all samples) in µs.
type latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

func run(o options) (*result, error) {
	if o.Size < headerLen {
		return nil, errSize
	}
	if o.MaxTime <= 0 || o.Drain <= 0 {
		return nil, fmt.Errorf("%w: --max-time and --drain must be positive", errArg)
	}
	if o.PendingMsgs == 0 || o.PendingBytes == 0 {
		return nil, fmt.Errorf("%w: pending limits must not be 0", errArg)
	}
	switch o.Mode {
	case "rate":
		if o.Clients <= 0 || o.Clients >= 1<<(64-seqBits) || o.Rate <= 0 || o.Duration <= 0 {
			return nil, fmt.Errorf("%w: rate mode needs --clients in 1..%d, --rate > 0 and --duration > 0", errArg, 1<<(64-seqBits)-1)
		}
		if o.Subject == "" {
			o.Subject = "bench.rate"
		}
		return runRate(o)
	case "throughput":
		if o.Count == 0 {
			o.Count = 2_000_000
		}
		if o.Count < 0 {
			return nil, fmt.Errorf("%w: --count must be positive", errArg)
		}
		if o.Subject == "" {
			o.Subject = "bench.tput"
		}
		return runThroughput(o)
	case "reqrep":
		if o.Count == 0 {
			o.Count = 20_000
		}
		if o.Count < 0 || o.ReqTimeout <= 0 {
			return nil, fmt.Errorf("%w: --count and --req-timeout must be positive", errArg)
		}
		if o.Subject == "" {
			o.Subject = "bench.req"
		}
		return runReqRep(o)
	}
	return nil, fmt.Errorf("%w: %q", errMode, o.Mode)
}

func newResult(o options) *result {
	return &result{
		Mode:          o.Mode,
		URL:           o.URL,
		ClientVersion: nats.Version,
		GoVersion:     runtime.Version(),
		GOMAXPROCS:    runtime.GOMAXPROCS(0),
		NumCPU:        runtime.NumCPU(),
		Size:          o.Size,
	}
}

// subStats is the receiving side's counters. The subscription handler is the
// only writer of the non-atomic fields (nats.go calls one subscription's
// handler from a single goroutine); mu guards them against the final read.
type subStats struct {
	delivered    atomic.Int64
	slowConsumer atomic.Int64
	disconnects  atomic.Int64
	closed       chan struct{}
	closeOnce    sync.Once

	mu      sync.Mutex
	lastErr string
}

func (s *subStats) setErr(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

// connectSub opens the subscriber connection with handlers that count
// slow-consumer events and disconnects. No reconnects: a server-side
// slow-consumer disconnect must show as loss, not be papered over.
func connectSub(o options, name string, st *subStats) (*nats.Conn, error) {
	st.closed = make(chan struct{})
	return nats.Connect(o.URL,
		nats.Name(name),
		nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				st.slowConsumer.Add(1)
			}
			st.setErr(err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			st.disconnects.Add(1)
			st.setErr(err)
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			st.closeOnce.Do(func() { close(st.closed) })
		}),
	)
}

func connectPub(o options, name string) (*nats.Conn, error) {
	return nats.Connect(o.URL, nats.Name(name), nats.NoReconnect())
}

// waitDelivered waits until want messages have arrived, the subscriber
// connection closes, or no progress is seen for drain.
func waitDelivered(st *subStats, want int64, drain time.Duration) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last := st.delivered.Load()
	progress := time.Now()
	for last < want {
		select {
		case <-st.closed:
			return
		case now := <-tick.C:
			n := st.delivered.Load()
			if n != last {
				last, progress = n, now
			} else if now.Sub(progress) > drain {
				return
			}
		}
	}
}

// bitset records which sequence numbers were seen; it grows on demand up to
// a bound so that a corrupt sequence cannot allocate without limit.
type bitset struct{ w []uint64 }

const maxSeq = 1 << 34 // 2 GiB of bits at most per bitset

// mark sets bit i and reports whether it was already set; ok is false when
// i is beyond maxSeq.
func (b *bitset) mark(i uint64) (dup, ok bool) {
	if i >= maxSeq {
		return false, false
	}
	w := i >> 6
	if w >= uint64(len(b.w)) {
		n := max(2*len(b.w), int(w)+1, 64)
		b.w = append(b.w, make([]uint64, n-len(b.w))...)
	}
	m := uint64(1) << (i & 63)
	dup = b.w[w]&m != 0
	b.w[w] |= m
	return dup, true
}

// openSub connects role's connection (named name) to the server, records the server's version
// in res, subscribes h to the subject with the configured pending limits and flushes, so that
// the server has registered the subscription before anything is published.
func openSub(o options, res *result, st *subStats, name, role string, h nats.MsgHandler) (*nats.Conn, *nats.Subscription, error) {
	nc, err := connectSub(o, name, st)
	if err != nil {
		return nil, nil, fmt.Errorf("natsref: %s connect %s: %w", role, o.URL, err)
	}
	res.ServerVersion = nc.ConnectedServerVersion()
	sub, err := nc.Subscribe(o.Subject, h)
	if err == nil {
		err = sub.SetPendingLimits(o.PendingMsgs, o.PendingBytes)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("natsref: %s subscribe %s: %w", role, o.Subject, err)
	}
	return nc, sub, nil
}

// finish fills res with what the subscriber side saw: drops by nats.go, slow-consumer events,
// disconnects and the last error. Call with s.mu held.
func (s *subStats) finish(res *result, clientDropped *int64) {
	res.Dropped = clientDropped
	res.SlowConsumer = s.slowConsumer.Load()
	res.Disconnects = s.disconnects.Load()
	res.LastError = s.lastErr
}

func putHeader(buf []byte, seq uint64) {
	binary.LittleEndian.PutUint64(buf[0:8], seq)
	binary.LittleEndian.PutUint64(buf[8:16], uint64(time.Now().UnixNano()))
}

// ---------------------------------------------------------------- rate mode

func runRate(o options) (*result, error) {
	res := newResult(o)
	res.Clients, res.RatePerClient, res.DurationS, res.WarmupS = o.Clients, o.Rate, o.Duration.Seconds(), o.Warmup.Seconds()
	var warmEnd atomic.Int64 // send timestamps before it keep no latency sample (set before the first send)
	warmEnd.Store(math.MaxInt64)

	expected := int(float64(o.Clients) * o.Rate * (o.Warmup + o.Duration).Seconds() * 1.05)
	expected = min(max(expected, 1024), 100_000_000)

	var st subStats
	var (
		seen    = make([]bitset, o.Clients)
		samples = make([]int64, 0, expected)
		dup     int64
		bad     int64
	)
	sc, sub, err := openSub(o, res, &st, "natsref-rate-sub", "subscriber", func(m *nats.Msg) {
		now := time.Now().UnixNano()
		st.mu.Lock()
		if len(m.Data) < headerLen {
			bad++
			st.mu.Unlock()
			return
		}
		seq := binary.LittleEndian.Uint64(m.Data[0:8])
		ts := int64(binary.LittleEndian.Uint64(m.Data[8:16]))
		cid := seq >> seqBits
		if cid >= uint64(len(seen)) {
			bad++
			st.mu.Unlock()
			return
		}
		d, ok := seen[cid].mark(seq & (1<<seqBits - 1))
		switch {
		case !ok:
			bad++
		case d:
			dup++
		default:
			if ts >= warmEnd.Load() {
				samples = append(samples, now-ts)
			}
			st.delivered.Add(1)
		}
		st.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	defer sc.Close()

	pubs := make([]*nats.Conn, o.Clients)
	for i := range pubs {
		pubs[i], err = connectPub(o, fmt.Sprintf("natsref-rate-pub-%d", i))
		if err != nil {
			for _, p := range pubs[:i] {
				p.Close()
			}
			return nil, fmt.Errorf("natsref: publisher %d connect: %w", i, err)
		}
	}
	defer func() {
		for _, p := range pubs {
			p.Close()
		}
	}()

	seed := o.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	rng := rand.New(rand.NewPCG(seed, 0x6e617473))
	interval := time.Duration(float64(time.Second) / o.Rate)
	if interval <= 0 {
		interval = 1
	}
	maxPerClient := int64(math.Ceil((o.Warmup+o.Duration).Seconds()*o.Rate)) + 1

	var (
		sent    atomic.Int64
		pubErrs atomic.Int64
		wg      sync.WaitGroup
	)
	start := time.Now().Add(50 * time.Millisecond) // all goroutines running before the first send
	warmEnd.Store(start.Add(o.Warmup).UnixNano())
	stop := start.Add(o.Warmup + o.Duration)
	for i, nc := range pubs {
		phase := time.Duration(rng.Int64N(int64(interval)))
		wg.Add(1)
		go func(cid uint64, nc *nats.Conn, phase time.Duration) {
			defer wg.Done()
			buf := make([]byte, o.Size)
			timer := time.NewTimer(time.Until(start.Add(phase)))
			defer timer.Stop()
			var n int64
			for next := start.Add(phase); next.Before(stop) && n < maxPerClient; next = next.Add(interval) {
				if d := time.Until(next); d > 0 {
					timer.Reset(d)
					<-timer.C
				}
				putHeader(buf, cid<<seqBits|uint64(n))
				if err := nc.Publish(o.Subject, buf); err != nil {
					pubErrs.Add(1)
					continue
				}
				n++
				sent.Add(1)
			}
			if err := nc.Flush(); err != nil {
				pubErrs.Add(1)
			}
		}(uint64(i), nc, phase)
	}
	wg.Wait()
	pubEnd := time.Now()
	waitDelivered(&st, sent.Load(), o.Drain)
	end := time.Now()
	clientDropped := dropped(sub)
	_ = sub.Unsubscribe()

	st.mu.Lock()
	defer st.mu.Unlock()
	res.Sent = sent.Load()
	res.Delivered = st.delivered.Load()
	res.Lost = res.Sent - res.Delivered
	res.Dup = dup
	res.Errors = pubErrs.Load() + bad
	st.finish(res, clientDropped)
	res.PublishS = pubEnd.Sub(start).Seconds()
	res.ElapsedS = end.Sub(start).Seconds()
	res.SendRate = float64(res.Sent) / res.PublishS
	res.DeliverRate = float64(res.Delivered) / res.PublishS
	res.Latency = percentiles(samples)
	res.LatencySample = len(samples)
	return res, nil
}

// dropped is sub's client-side drop count, nil when the subscription is closed.
func dropped(sub *nats.Subscription) *int64 {
	n, err := sub.Dropped()
	if err != nil {
		return nil
	}
	v := int64(n)
	return &v
}

// percentiles sorts s in place and returns nearest-rank percentiles in µs.
func percentiles(s []int64) *latency {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		i = min(max(i, 0), len(s)-1)
		return float64(s[i]) / 1e3
	}
	var sum float64
	for _, v := range s {
		sum += float64(v)
	}
	return &latency{
		Min:  float64(s[0]) / 1e3,
		Mean: sum / float64(len(s)) / 1e3,
		P50:  at(0.50),
		P90:  at(0.90),
		P99:  at(0.99),
		P999: at(0.999),
		Max:  float64(s[len(s)-1]) / 1e3,
	}
}

// ---------------------------------------------------------- throughput mode

func runThroughput(o options) (*result, error) {
	res := newResult(o)
	res.Count = o.Count

	var st subStats
	var (
		seen     bitset
		dup, bad int64
		lastRecv atomic.Int64
	)
	seen.w = make([]uint64, o.Count/64+1)
	sc, sub, err := openSub(o, res, &st, "natsref-tput-sub", "subscriber", func(m *nats.Msg) {
		st.mu.Lock()
		if len(m.Data) < headerLen {
			bad++
			st.mu.Unlock()
			return
		}
		d, ok := seen.mark(binary.LittleEndian.Uint64(m.Data[0:8]))
		switch {
		case !ok:
			bad++
		case d:
			dup++
		default:
			st.delivered.Add(1)
			lastRecv.Store(time.Now().UnixNano())
		}
		st.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	defer sc.Close()
	pc, err := connectPub(o, "natsref-tput-pub")
	if err != nil {
		return nil, fmt.Errorf("natsref: publisher connect: %w", err)
	}
	defer pc.Close()

	buf := make([]byte, o.Size)
	var pubErrs int64
	start := time.Now()
	deadline := start.Add(o.MaxTime)
	var sent int64
	for i := 0; i < o.Count; i++ {
		if i&4095 == 0 && time.Now().After(deadline) {
			break
		}
		binary.LittleEndian.PutUint64(buf[0:8], uint64(i))
		if err := pc.Publish(o.Subject, buf); err != nil {
			pubErrs++
			if pubErrs > 1000 {
				break
			}
			continue
		}
		sent++
	}
	if err := pc.Flush(); err != nil {
		pubErrs++
	}
	pubEnd := time.Now()
	waitDelivered(&st, sent, o.Drain)
	clientDropped := dropped(sub)
	_ = sub.Unsubscribe()

	st.mu.Lock()
	defer st.mu.Unlock()
	res.Sent = sent
	res.Delivered = st.delivered.Load()
	res.Lost = sent - res.Delivered
	res.Dup = dup
	res.Errors = pubErrs + bad
	st.finish(res, clientDropped)
	res.PublishS = pubEnd.Sub(start).Seconds()
	res.SendRate = float64(sent) / res.PublishS
	if lr := lastRecv.Load(); lr > 0 {
		res.ElapsedS = float64(lr-start.UnixNano()) / 1e9
		res.DeliverRate = float64(res.Delivered) / res.ElapsedS
		res.DeliverMBps = res.DeliverRate * float64(o.Size) / 1e6
	}
	return res, nil
}

// -------------------------------------------------------------- reqrep mode

func runReqRep(o options) (*result, error) {
	res := newResult(o)
	res.Count = o.Count

	var st subStats
	rc, sub, err := openSub(o, res, &st, "natsref-responder", "responder", func(m *nats.Msg) {
		if err := m.Respond(m.Data); err != nil {
			st.setErr(err)
		}
	})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	qc, err := connectPub(o, "natsref-requester")
	if err != nil {
		return nil, fmt.Errorf("natsref: requester connect: %w", err)
	}
	defer qc.Close()

	buf := make([]byte, o.Size)
	samples := make([]int64, 0, o.Count)
	var errs int64
	var lastErr error
	start := time.Now()
	deadline := start.Add(o.MaxTime)
	for i := 0; i < o.Count && time.Now().Before(deadline); i++ {
		binary.LittleEndian.PutUint64(buf[0:8], uint64(i))
		t0 := time.Now()
		binary.LittleEndian.PutUint64(buf[8:16], uint64(t0.UnixNano()))
		msg, err := qc.Request(o.Subject, buf, o.ReqTimeout)
		if err != nil {
			errs++
			lastErr = err
			if errs > 100 {
				break
			}
			continue
		}
		d := time.Since(t0)
		if len(msg.Data) < 8 || binary.LittleEndian.Uint64(msg.Data[0:8]) != uint64(i) {
			errs++
			continue
		}
		samples = append(samples, int64(d))
	}
	elapsed := time.Since(start)
	_ = sub.Unsubscribe()

	res.Sent = int64(len(samples)) + errs
	res.Delivered = int64(len(samples))
	res.Lost = res.Sent - res.Delivered
	res.Errors = errs
	res.ElapsedS = elapsed.Seconds()
	res.RoundTripsPS = float64(len(samples)) / elapsed.Seconds()
	res.Latency = percentiles(samples)
	res.LatencySample = len(samples)
	st.mu.Lock()
	res.LastError = st.lastErr
	st.mu.Unlock()
	if lastErr != nil && res.LastError == "" {
		res.LastError = lastErr.Error()
	}
	if len(samples) == 0 {
		return res, errNoReply
	}
	return res, nil
}

// -------------------------------------------------------------------- table

func printTable(r *result) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(w, "%s\t%v\n", k, v) }
	f := func(v float64) string { return fmt.Sprintf("%.1f", v) }
	row("mode", r.Mode)
	row("server", fmt.Sprintf("nats-server %s at %s (nats.go %s, %s, GOMAXPROCS %d, %d CPU)",
		r.ServerVersion, r.URL, r.ClientVersion, r.GoVersion, r.GOMAXPROCS, r.NumCPU))
	switch r.Mode {
	case "rate":
		row("clients x rate", fmt.Sprintf("%d x %g msg/s for %gs, %d B payload", r.Clients, r.RatePerClient, r.DurationS, r.Size))
	case "throughput":
		row("count", fmt.Sprintf("%d x %d B payload", r.Count, r.Size))
	case "reqrep":
		row("count", fmt.Sprintf("%d sequential requests, %d B payload", r.Count, r.Size))
	}
	row("sent", r.Sent)
	row("delivered", r.Delivered)
	row("lost", r.Lost)
	if r.Mode != "reqrep" {
		row("dup", r.Dup)
		if r.Dropped != nil {
			row("client dropped", *r.Dropped)
		} else {
			row("client dropped", "unknown (the server closed the subscription)")
		}
		row("slow consumer events", r.SlowConsumer)
		row("subscriber disconnects", r.Disconnects)
	}
	row("errors", r.Errors)
	if r.LastError != "" {
		row("last error", r.LastError)
	}
	switch r.Mode {
	case "rate":
		row("publish time s", fmt.Sprintf("%.3f", r.PublishS))
		row("sent msg/s", f(r.SendRate))
		row("delivered msg/s", f(r.DeliverRate))
	case "throughput":
		row("publish time s", fmt.Sprintf("%.3f", r.PublishS))
		row("first send to last receive s", fmt.Sprintf("%.3f", r.ElapsedS))
		row("published msg/s", f(r.SendRate))
		row("delivered msg/s", f(r.DeliverRate))
		row("delivered MB/s", fmt.Sprintf("%.2f", r.DeliverMBps))
	case "reqrep":
		row("elapsed s", fmt.Sprintf("%.3f", r.ElapsedS))
		row("round trips/s", f(r.RoundTripsPS))
	}
	if l := r.Latency; l != nil {
		row("latency samples", r.LatencySample)
		row("latency µs min/mean", f(l.Min)+" / "+f(l.Mean))
		row("latency µs p50", f(l.P50))
		row("latency µs p90", f(l.P90))
		row("latency µs p99", f(l.P99))
		row("latency µs p99.9", f(l.P999))
		row("latency µs max", f(l.Max))
	}
	_ = w.Flush()
}
