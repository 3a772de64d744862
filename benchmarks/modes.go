package benchmarks

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/uds"
)

// tmpl is a raw frame with a fixed transport JSON and size data bytes; messages are made by
// appending it and writing the payload fields in place.
type tmpl struct {
	frame   []byte
	dataOff int
}

func newTmpl(json string, size int) tmpl {
	f := codec.AppendFrame(nil, []byte(json), make([]byte, size), nil, false)
	return tmpl{frame: f, dataOff: len(f) - size}
}

func (t *tmpl) add(out []byte, stream uint32, seq uint64, ts int64) []byte {
	out = append(out, t.frame...)
	putPayload(out[len(out)-len(t.frame)+t.dataOff:], stream, seq, ts)
	return out
}

func clientHeader(msgType, source, dest, publish string) string {
	o := codec.NewObj(nil)
	o.Str("message_type", msgType)
	o.Str("source_id", source)
	o.Str("destination_id", dest)
	if publish != "" {
		o.Str("message_type_publish", publish)
	}
	return string(o.End())
}

func dialAll(ps []*proc) ([]net.Conn, error) {
	cs := make([]net.Conn, 0, len(ps))
	for _, p := range ps {
		c, err := net.DialTimeout("unix", p.opts.SendToConnectorPath(), 5*time.Second)
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, err
		}
		cs = append(cs, uds.Wrap(c))
	}
	return cs, nil
}

// probe sends one probe message (not counted) per round on every conn until ok holds; it proves
// the whole path (including subscriptions) is up before the measurement starts.
func probe(ctx context.Context, conns []net.Conn, ts []tmpl, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: warm-up messages not delivered within %v", ErrStart, timeout)
		}
		for i, c := range conns {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(ts[i].add(nil, probeStream, 0, 0)); err != nil {
				return err
			}
			c.SetWriteDeadline(time.Time{})
		}
		if waitUntil(200*time.Millisecond, ctx.Done(), ok) {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// drain waits until delivered() reaches want, or delivered() made no progress for o.Drain, or 2
// minutes passed, or ctx ends.
func drain(ctx context.Context, o *Options, want int64, delivered func() int64) {
	last, lastChange := delivered(), time.Now()
	hard := time.Now().Add(2 * time.Minute)
	for {
		d := delivered()
		if d >= want || ctx.Err() != nil || time.Now().After(hard) {
			return
		}
		if d != last {
			last, lastChange = d, time.Now()
		} else if time.Since(lastChange) > o.Drain {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func finish(ph *Phase, clk *clock, sendStart, sendEnd int64, cnt *counter, sent []int64, size int, e *env, cpuSelf0 time.Duration) {
	var total int64
	for _, s := range sent {
		total += s
	}
	conn, self := e.cpuSince(cpuSelf0) // before the counting and sorting below, which are not the phase's
	ph.Sent = total
	ph.Lost, ph.Delivered = cnt.missing(sent)
	cnt.mu.Lock()
	ph.Duplicated, ph.Reordered, ph.Malformed = cnt.dup, cnt.ooo, cnt.bad
	end := max(cnt.lastRecv, sendEnd)
	ph.Latency = latencyOf(cnt.lat)
	ph.lat = cnt.lat
	cnt.mu.Unlock()
	ph.rates(sendStart, sendEnd, end, total, size, conn, self)
}

// rates fills the phase's rates and CPU per message from its counts: elapsed from sendStart to
// end (the last delivery or the end of sending), the send rate over sendStart..sendEnd; conn and
// self are the connectors' and the bench's CPU over the phase (env.cpuSince).
func (ph *Phase) rates(sendStart, sendEnd, end, sent int64, size int, conn, self time.Duration) {
	ph.Elapsed = time.Duration(end - sendStart).Seconds()
	if ph.Elapsed > 0 {
		ph.Rate = float64(ph.Delivered) / ph.Elapsed
		ph.MBps = ph.Rate * float64(size) / 1e6
	}
	if d := time.Duration(sendEnd - sendStart).Seconds(); d > 0 {
		ph.SendRate = float64(sent) / d
	}
	if ph.Delivered > 0 {
		ph.CPUPerMsgUs = float64(conn.Microseconds()) / float64(ph.Delivered)
		ph.BenchCPUUs = float64(self.Microseconds()) / float64(ph.Delivered)
	}
}

// cpuSince reads the connectors' CPU since markCPU and this process's since cpuSelf0 (selfCPU):
// read them when the measured phase ends, before its results are counted and sorted.
func (e *env) cpuSince(cpuSelf0 time.Duration) (conn, self time.Duration) {
	return e.cpuTotal(), selfCPU() - cpuSelf0
}

// runRate: o.Clients client connectors (one process each), each sending o.Rate msg/s for
// o.Duration to one server; the bench is every client application and the server application.
func runRate(ctx context.Context, e *env, o *Options, res *Result) error {
	srv, err := e.startServer(ctx, nil, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	cnt := newCounter(o.Clients, true)
	sk, err := newSink(srv.opts.ReceiveFromConnectorPath("any"), clk, cnt)
	if err != nil {
		return err
	}
	sk.start()
	defer sk.close()
	clients, err := e.startClients(ctx, "b", "client", o.Clients, nil, o.StartupTime)
	if err != nil {
		return err
	}
	conns, err := dialAll(clients)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ts := make([]tmpl, len(clients))
	for i, p := range clients {
		ts[i] = newTmpl(clientHeader("any", p.name, e.server, ""), o.Size)
	}
	if err := probe(ctx, conns, ts, 20*time.Second, func() bool {
		cnt.mu.Lock()
		defer cnt.mu.Unlock()
		return cnt.probes >= int64(len(conns))
	}); err != nil {
		return err
	}
	perClient := max(int64(o.Rate*(o.Warmup+o.Duration).Seconds()), 1)
	sent := make([]atomic.Int64, len(conns))
	cnt.expect(int64(o.Rate*o.Duration.Seconds()) * int64(len(conns)))
	e.markCPU()
	cpuSelf0 := selfCPU()
	wait0, slices0 := schedStat(os.Getpid())
	sendStart := clk.now()
	cnt.mu.Lock()
	cnt.latFrom = sendStart + int64(o.Warmup)
	cnt.mu.Unlock()
	stop := make(chan struct{})
	go progress(o, stop, func() string {
		var s int64
		for i := range sent {
			s += sent[i].Load()
		}
		return fmt.Sprintf("rate: %.1fs sent %d delivered %d", time.Duration(clk.now()-sendStart).Seconds(), s, cnt.unique.Load())
	})
	bufs := make([][]byte, paceGoroutines)
	for g := range bufs {
		bufs[g] = make([]byte, 0, 64*len(ts[0].frame))
	}
	perSend := max(1, (1<<20)/int64(len(ts[0].frame)))
	perr := pace(ctx, clk, sendStart, o.Rate, perClient, perSend, sent, func(g, i int, from, to int64, now int64) error {
		buf := bufs[g][:0]
		for k := from; k < to; k++ {
			buf = ts[i].add(buf, uint32(i), uint64(k), now)
		}
		bufs[g] = buf
		if _, err := conns[i].Write(buf); err != nil {
			return fmt.Errorf("benchmarks: client %d send: %w", i+1, err)
		}
		return nil
	})
	sendEnd := clk.now()
	counts := make([]int64, len(sent))
	var total int64
	for i := range sent {
		counts[i] = sent[i].Load()
		total += counts[i]
	}
	drain(ctx, o, total, cnt.unique.Load)
	close(stop)
	ph := Phase{Name: "rate"}
	cnt.mu.Lock() // in arrival order until finish sorts it
	ph.P99BySecondMs = rateP99BySecond(cnt.lat, int(float64(len(clients))*o.Rate))
	cnt.mu.Unlock()
	finish(&ph, clk, sendStart, sendEnd, cnt, counts, o.Size, e, cpuSelf0)
	res.Phases = append(res.Phases, ph)
	wait, slices := schedStat(os.Getpid())
	if o.Warmup > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("rate: the first %v of sending (--warmup) are counted (loss, duplicates, rates, CPU) "+
			"but left out of the latency figures and the p99 per second", o.Warmup))
	}
	hosting := fmt.Sprintf("%d client connector processes (one per client)", len(clients))
	if e.hosted(len(clients)) {
		hosting = fmt.Sprintf("%d client connectors, %d per process (aioconn bench_host; --host-clients 1: one process each)",
			len(clients), min(e.hostClients, len(clients)))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%s, 1 server process; "+
		"latency from the send timestamp written just before the write to the client's unix socket; "+
		"the bench process (all applications) waited %.1f ms for a CPU over %d time slices",
		hosting, float64(wait-wait0)/1e6, slices-slices0))
	if perr != nil {
		return perr
	}
	return ctx.Err()
}

// paceGoroutines is the number of pacer goroutines of pace.
const paceGoroutines = 2

// paceStampRound, set by BenchmarkRateFloor only, makes pace stamp every message of a round
// with the round's start time, as the bench did before 26 Nov (the time spent writing other
// clients' messages of the round, and any preemption meanwhile, was counted as latency).
var paceStampRound = false

// rateP99BySecond is p99BySecond for rate mode, where the arrivals after the last whole second
// are a few stragglers: a last run shorter than half a second's worth is left out (the first is
// always kept).
func rateP99BySecond(lat []int64, perSec int) []float64 {
	out := p99BySecond(lat, perSec)
	if n := len(out); n > 1 && len(lat)%perSec > 0 && len(lat)%perSec < perSec/2 {
		out = out[:n-1]
	}
	return out
}

// pace sends perClient messages on each of len(sent) clients at rate msg/s each from sendStart
// (clock time), the clients' schedules spread evenly over one interval. A few pacer goroutines
// (not one per client, so that the sender's own wake-ups stay few) each own a slice of the
// clients; a pacer sends every message that is due, then sleeps until the next one is due, but
// at least paceMin: messages due meanwhile go out on the next round. send(g, i, from, to, now)
// sends client i's messages [from, to) from pacer g with send timestamp now, read from clk just
// before that call (so the time spent sending other clients' messages of the same round is not
// counted as latency). sent[i] is updated after each send. pace returns when every message was
// sent, at the first error, or when ctx ends (bounded: perClient/rate plus the last sleep).
func pace(ctx context.Context, clk *clock, sendStart int64, rate float64, perClient, perSend int64, sent []atomic.Int64,
	send func(g, i int, from, to int64, now int64) error) error {
	const paceMin = time.Millisecond
	interval := float64(time.Second) / rate
	nc := len(sent)
	pacers := min(nc, paceGoroutines)
	var wg sync.WaitGroup
	errc := make(chan error, pacers)
	for g := range pacers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []int
			for i := g; i < nc; i += pacers {
				mine = append(mine, i)
			}
			n := make([]int64, nc)
			offs := make([]int64, nc)
			for _, i := range mine {
				offs[i] = int64(float64(i) * interval / float64(nc))
			}
			left := len(mine)
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for left > 0 {
				now := clk.now()
				next := int64(1 << 62)
				for _, i := range mine {
					if n[i] >= perClient {
						continue
					}
					due := min(perClient, int64(float64(now-sendStart-offs[i])/interval)+1)
					if due > n[i] {
						to := min(due, n[i]+perSend)
						ts := clk.now()
						if paceStampRound {
							ts = now
						}
						if err := send(g, i, n[i], to, ts); err != nil {
							errc <- err
							return
						}
						n[i] = to
						sent[i].Store(n[i])
						if n[i] >= perClient {
							left--
							continue
						}
					}
					next = min(next, sendStart+offs[i]+int64(float64(n[i])*interval))
				}
				if left == 0 {
					break
				}
				timer.Reset(max(time.Duration(next-clk.now()), paceMin))
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return nil
}

// oneClient is the setup of the modes where one client connector sends to the server's
// sink: the started sink, the client, its dialed send socket and the template of its "any"
// messages to the server. Used by one goroutine (the mode's).
type oneClient struct {
	sk   *sink
	p    *proc
	conn net.Conn
	t    tmpl
}

// startOneClient starts a sink on srv's "any" receive path counting into cnt, one client
// connector (name prefix, role and extra configuration as startClients takes them), dials its
// send socket and sends probes until cnt counted one. On error what it started is closed;
// otherwise the caller calls close once.
func (e *env) startOneClient(ctx context.Context, srv *proc, clk *clock, cnt *counter, prefix, role string,
	extra map[string]any, o *Options) (*oneClient, error) {
	sk, err := newSink(srv.opts.ReceiveFromConnectorPath("any"), clk, cnt)
	if err != nil {
		return nil, err
	}
	sk.start()
	oc := &oneClient{sk: sk}
	clients, err := e.startClients(ctx, prefix, role, 1, extra, o.StartupTime)
	if err != nil {
		sk.close()
		return nil, err
	}
	conns, err := dialAll(clients)
	if err != nil {
		sk.close()
		return nil, err
	}
	oc.p, oc.conn = clients[0], conns[0]
	oc.t = newTmpl(clientHeader("any", oc.p.name, e.server, ""), o.Size)
	if err := probe(ctx, conns, []tmpl{oc.t}, 20*time.Second, func() bool {
		cnt.mu.Lock()
		defer cnt.mu.Unlock()
		return cnt.probes > 0
	}); err != nil {
		oc.close()
		return nil, err
	}
	return oc, nil
}

// close closes the send socket, then the sink (the order the modes deferred them in).
func (oc *oneClient) close() {
	oc.conn.Close()
	oc.sk.close()
}

// runThroughput: one client connector sends to the server as fast as an in-flight window of
// o.Window messages allows (no loss by construction of the window, loss still counted), up to
// o.Count messages or o.Duration of sending.
func runThroughput(ctx context.Context, e *env, o *Options, res *Result) error {
	srv, err := e.startServer(ctx, nil, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	cnt := newCounter(1, true)
	cnt.notify = make(chan struct{}, 1)
	oc, err := e.startOneClient(ctx, srv, clk, cnt, "t", "client", nil, o)
	if err != nil {
		return err
	}
	defer oc.close()
	if _, err := windowSend(ctx, o, clk, e, oc.conn, &oc.t, func() int64 { return cnt.unique.Load() }, cnt.notify, cnt, res, "throughput"); err != nil {
		return err
	}
	return ctx.Err()
}

// windowSend sends batches of frames on c while sent-delivered() < o.Window, up to o.Count
// messages or o.Duration, drains, and appends the phase.
func windowSend(ctx context.Context, o *Options, clk *clock, e *env, c net.Conn, t *tmpl, delivered func() int64,
	notify chan struct{}, cnt *counter, res *Result, name string) (int64, error) {
	out := make([]byte, 0, windowBatch*len(t.frame))
	var sent atomic.Int64
	if cnt != nil {
		cnt.expect(o.Count)
	}
	e.markCPU()
	cpuSelf0 := selfCPU()
	sendStart := clk.now()
	stop := make(chan struct{})
	go progress(o, stop, func() string {
		return fmt.Sprintf("%s: %.1fs sent %d delivered %d", name, time.Duration(clk.now()-sendStart).Seconds(), sent.Load(), delivered())
	})
	defer close(stop)
	n, werr := windowLoop(ctx, o, clk, sendStart, delivered, notify, &sent, func(from, k, now int64) error {
		out = out[:0]
		for i := from; i < from+k; i++ {
			out = t.add(out, 0, uint64(i), now)
		}
		_, err := c.Write(out)
		return err
	})
	sendEnd := clk.now()
	drain(ctx, o, n, delivered)
	ph := Phase{Name: name}
	if cnt != nil {
		finish(&ph, clk, sendStart, sendEnd, cnt, []int64{n}, o.Size, e, cpuSelf0)
		res.Phases = append(res.Phases, ph)
	}
	return n, werr
}

// windowBatch is the messages windowLoop hands to one write call.
const windowBatch = 128

// windowLoop calls write(from, k, now) with batches of up to windowBatch messages (sequence
// numbers from..from+k-1, timestamp now) while fewer than o.Window-windowBatch are in flight
// (sent - delivered()), up to o.Count messages or o.Duration from sendStart. While the window
// is full it waits on notify (or 10 ms); a window that makes no progress for o.Drain+5 s ends
// the loop with errWindow. It returns the messages written; sent follows it for progress lines.
func windowLoop(ctx context.Context, o *Options, clk *clock, sendStart int64, delivered func() int64, notify <-chan struct{},
	sent *atomic.Int64, write func(from, k, now int64) error) (int64, error) {
	stopAt := sendStart + int64(o.Duration)
	var n int64
	var stalled time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for n < o.Count && ctx.Err() == nil {
		now := clk.now()
		if now > stopAt {
			break
		}
		if n-delivered() >= o.Window-windowBatch {
			timer.Reset(10 * time.Millisecond)
			select {
			case <-notify:
				stalled = time.Time{}
			case <-ctx.Done():
			case <-timer.C:
				if stalled.IsZero() {
					stalled = time.Now()
				} else if time.Since(stalled) > o.Drain+5*time.Second {
					return n, fmt.Errorf("%w: %d sent, %d delivered", errWindow, n, delivered())
				}
			}
			timer.Stop()
			continue
		}
		k := min(windowBatch, o.Count-n)
		if err := write(n, k, now); err != nil {
			return n, err
		}
		n += k
		sent.Store(n)
	}
	return n, nil
}

// runPubsub: a broker server, o.Subscribers subscriber clients and one publisher client; the
// publisher publishes as fast as a window (against the slowest subscriber) allows.
func runPubsub(ctx context.Context, e *env, o *Options, res *Result) error {
	const topic = "bench"
	if _, err := e.startServer(ctx, map[string]any{"pubsub_central_broker": true}, o.StartupTime); err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	subs, err := e.startClients(ctx, "s", "subscriber", o.Subscribers, map[string]any{
		"recv_message_types": []string{topic}, "subscribe_message_types": []string{topic}}, o.StartupTime)
	if err != nil {
		return err
	}
	cnts := make([]*counter, len(subs))
	notify := make(chan struct{}, 1)
	for i, p := range subs {
		cnts[i] = newCounter(1, i == 0)
		cnts[i].notify = notify
		sk, err := newSink(p.opts.ReceiveFromConnectorPath(topic), clk, cnts[i])
		if err != nil {
			return err
		}
		sk.start()
		defer sk.close()
	}
	pubs, err := e.startClients(ctx, "p", "publisher", 1, map[string]any{"send_message_types": []string{topic}}, o.StartupTime)
	if err != nil {
		return err
	}
	conns, err := dialAll(pubs)
	if err != nil {
		return err
	}
	defer conns[0].Close()
	t := newTmpl(clientHeader("_pubsub", pubs[0].name, e.server, topic), o.Size)
	if err := probe(ctx, conns, []tmpl{t}, 20*time.Second, func() bool { return allProbed(cnts) }); err != nil {
		return err
	}
	minDelivered := func() int64 {
		m := cnts[0].unique.Load()
		for _, c := range cnts[1:] {
			m = min(m, c.unique.Load())
		}
		return m
	}
	cpuSelf0 := selfCPU()
	sendStart := clk.now()
	n, werr := windowSend(ctx, o, clk, e, conns[0], &t, minDelivered, notify, nil, res, "pubsub")
	sendEnd := clk.now()
	names := make([]string, len(subs))
	for i, p := range subs {
		names[i] = p.name
	}
	ph := Phase{Name: fmt.Sprintf("pubsub 1→%d", len(subs))}
	pubsubPhase(&ph, names, cnts, n, sendStart, sendEnd, o.Size, e, cpuSelf0)
	res.Phases = append(res.Phases, ph)
	res.Notes = append(res.Notes, "pubsub: rate = messages delivered to all subscribers per second; latency of subscriber 1; per message CPU per delivered copy")
	if werr != nil {
		return werr
	}
	return ctx.Err()
}

// pubsubPhase fills ph from the counters of the subscribers names (n messages published from
// sendStart to sendEnd): per subscriber and total deliveries, loss and duplicates, subscriber 1's
// latency; rate is deliveries to all subscribers per second, CPU per delivered copy.
func pubsubPhase(ph *Phase, names []string, cnts []*counter, n, sendStart, sendEnd int64, size int, e *env, cpuSelf0 time.Duration) {
	conn, self := e.cpuSince(cpuSelf0)
	ph.Sent = n
	var lastRecv int64
	for i, c := range cnts {
		var one Phase
		finish(&one, nil, sendStart, sendEnd, c, []int64{n}, size, e, cpuSelf0)
		ph.Subscribers = append(ph.Subscribers, SubscriberRes{Name: names[i], Delivered: one.Delivered,
			Lost: one.Lost, Duplicated: one.Duplicated, Rate: one.Rate})
		ph.Delivered += one.Delivered
		ph.Lost += one.Lost
		ph.Duplicated += one.Duplicated
		ph.Reordered += one.Reordered
		ph.Malformed += one.Malformed
		if i == 0 {
			ph.Latency, ph.lat = one.Latency, one.lat
		}
		c.mu.Lock()
		lastRecv = max(lastRecv, c.lastRecv)
		c.mu.Unlock()
	}
	ph.rates(sendStart, sendEnd, max(lastRecv, sendEnd), n, size, conn, self)
}

// runReqrep: a client application (package api, SendMessageAwaitResponse with request_id) and
// a server application answering each request with response_id (raw frames); first
// sequential round trips, then o.Concurrency concurrent requesters.
func runReqrep(ctx context.Context, e *env, o *Options, res *Result) error {
	srv, err := e.startServer(ctx, nil, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	reply, err := net.Dial("unix", srv.opts.SendToConnectorPath())
	if err != nil {
		return err
	}
	reply = uds.Wrap(reply)
	defer reply.Close()
	srcID := srv.opts.SourceID()
	var replyMu sync.Mutex
	var replyErr atomic.Pointer[error]
	out := make([]byte, 0, 1<<16)
	sk, err := newSink(srv.opts.ReceiveFromConnectorPath("any"), clk, nil)
	if err != nil {
		return err
	}
	sk.onBatch = func(frames []codec.Frame) {
		replyMu.Lock()
		defer replyMu.Unlock()
		out = out[:0]
		for _, f := range frames {
			src, err1 := codec.Lookup(f.JSON, "source_id")
			rid, err2 := codec.Lookup(f.JSON, "request_id")
			if err1 != nil || err2 != nil || !src.Present() || !rid.Present() {
				continue
			}
			js := codec.NewObj(nil)
			js.Str("message_type", "any")
			js.Str("source_id", srcID)
			js.Raw("destination_id", src.Raw)
			js.Raw("response_id", rid.Raw)
			out = codec.AppendFrame(out, js.End(), f.Data, nil, false)
		}
		if len(out) > 0 {
			if _, err := reply.Write(out); err != nil {
				replyErr.CompareAndSwap(nil, &err)
			}
		}
	}
	sk.start()
	defer sk.close()
	clients, err := e.startClients(ctx, "r", "client", 1, nil, o.StartupTime)
	if err != nil {
		return err
	}
	a, err := api.New(clients[0].opts)
	if err != nil {
		return err
	}
	defer a.Close()
	var nextID atomic.Int64
	// one request; returns the round trip in ns
	call := func(cnt *counter) (int64, error) {
		id := nextID.Add(1) - 1
		data := make([]byte, o.Size)
		t0 := clk.now()
		putPayload(data, 0, uint64(id), t0)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := a.SendMessageAwaitResponse(cctx, api.SendOptions{MessageType: "any", RequestID: id, Data: data})
		if err != nil {
			return 0, err
		}
		now := clk.now()
		if cnt != nil {
			cnt.addBatch([][]byte{m.Data}, now)
		}
		return now - t0, nil
	}
	// warm-up: a few round trips
	for i := 0; i < 3; i++ {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := a.SendMessageAwaitResponse(wctx, api.SendOptions{MessageType: "any", RequestID: "warm" + strconv.Itoa(i),
			Data: make([]byte, o.Size)})
		cancel()
		if err != nil {
			return fmt.Errorf("%w: warm-up request: %v", ErrStart, err)
		}
	}
	e.markCPU()
	for _, conc := range []int{1, o.Concurrency} {
		name := "reqrep sequential"
		if conc > 1 {
			name = fmt.Sprintf("reqrep concurrent ×%d", conc)
		}
		// ids are global; a fresh counter per phase sees ids from base on
		base := nextID.Load()
		cnt := newCounter(1, true)
		cnt.expect(o.Count)
		var sent atomic.Int64
		cpu0 := e.cpuTotal()
		cpuSelf0 := selfCPU()
		start := clk.now()
		stopAt := start + int64(o.Duration)
		stop := make(chan struct{})
		go progress(o, stop, func() string {
			return fmt.Sprintf("%s: sent %d answered %d", name, sent.Load(), cnt.unique.Load())
		})
		var wg sync.WaitGroup
		var firstErr atomic.Pointer[error]
		for range conc {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && clk.now() < stopAt && firstErr.Load() == nil {
					if sent.Add(1) > o.Count {
						sent.Add(-1)
						return
					}
					if _, err := call(cnt); err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		end := clk.now()
		n := nextID.Load() - base
		// shift: the counter's stream 0 holds ids base..base+n-1
		ph := Phase{Name: name}
		connCPU, selfCPUUsed := e.cpuTotal()-cpu0, selfCPU()-cpuSelf0 // before counting and sorting
		lost, delivered := cnt.missingRange(base, n)
		cnt.mu.Lock()
		ph.Duplicated, ph.Reordered = cnt.dup, cnt.ooo
		ph.Latency = latencyOf(cnt.lat)
		ph.lat = cnt.lat
		cnt.mu.Unlock()
		ph.Sent, ph.Lost, ph.Delivered = n, lost, delivered
		ph.rates(start, end, end, n, 2*o.Size, connCPU, selfCPUUsed) // a round trip carries the size twice
		res.Phases = append(res.Phases, ph)
		if p := firstErr.Load(); p != nil {
			return *p
		}
		if p := replyErr.Load(); p != nil {
			return *p
		}
	}
	res.Notes = append(res.Notes, "reqrep: client application = package api SendMessageAwaitResponse (preserve mode: a connection is reused once its request got its reply; Python's API opens one per request); "+
		"server application answers with raw frames; latency = round trip; rate = round trips/s; CPU per round trip")
	return ctx.Err()
}

// missingRange is missing for one stream whose sequence numbers are [base, base+n).
func (c *counter) missingRange(base, n int64) (lost, delivered int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bm := c.seen[0]
	for seq := base; seq < base+n; seq++ {
		w := int(seq / 64)
		if w < len(bm) && bm[w]&(1<<(seq%64)) != 0 {
			delivered++
		} else {
			lost++
		}
	}
	return lost, delivered
}
