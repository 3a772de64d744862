package benchmarks

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// StormRes is the outcome of a certificate storm: o.Clients first-time clients started at once
// against a strict TLS server, each getting its certificate through _ssl and reconnecting.
type StormRes struct {
	Clients     int     `json:"clients"`
	Issued      int     `json:"issued"`       // clients whose certificate file arrived
	Connected   int     `json:"connected"`    // clients the server lists as connected at the end
	AllServedS  float64 `json:"all_served_s"` // storm start to the last client connected with its certificate (0 = not all)
	IssuedP50S  float64 `json:"issued_p50_s"` // storm start to the certificate file, median client
	IssuedMaxS  float64 `json:"issued_max_s"` // ... last client
	StreamRate  float64 `json:"stream_rate"`  // msg/s offered by the established client
	LaunchS     float64 `json:"launch_s"`     // time the bench took to start the storm's processes
	BoundS      float64 `json:"bound_s"`      // how long the bench waited at most
	StartFailed int     `json:"start_failed"` // processes that exited
}

const stormBound = 90 * time.Second

// runCertStorm: a strict TLS server, one established client streaming o.StormRate msg/s to it
// (phase "baseline" for 2 s or o.Duration if shorter, then phase "during storm"), and o.Clients first-time clients
// started at once. The storm phase lasts until every storm client is connected with its own
// certificate (or stormBound); its latency is the established client's during the storm.
func runCertStorm(ctx context.Context, e *env, o *Options, res *Result) error {
	srv, err := e.startServer(ctx, nil, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	cnt := newCounter(2, true) // stream 0 baseline, stream 1 during the storm
	sk, err := newSink(srv.opts.ReceiveFromConnectorPath("any"), clk, cnt)
	if err != nil {
		return err
	}
	sk.start()
	defer sk.close()
	est, err := e.startClients(ctx, "e", "established client", 1, nil, o.StartupTime)
	if err != nil {
		return err
	}
	conns, err := dialAll(est)
	if err != nil {
		return err
	}
	defer conns[0].Close()
	t := newTmpl(clientHeader("any", est[0].name, e.server, ""), o.Size)
	if err := probe(ctx, conns, []tmpl{t}, 20*time.Second, func() bool {
		cnt.mu.Lock()
		defer cnt.mu.Unlock()
		return cnt.probes > 0
	}); err != nil {
		return err
	}
	// baseline
	var seq uint64
	e.markCPU()
	cpuSelf0 := selfCPU()
	start := clk.now()
	stopB := make(chan struct{})
	time.AfterFunc(min(2*time.Second, o.Duration), func() { close(stopB) })
	if err := paceOne(ctx, conns[0], &t, 0, o.StormRate, clk, &seq, stopB); err != nil {
		return err
	}
	end := clk.now()
	drain(ctx, o, int64(seq), cnt.unique.Load)
	ph := Phase{Name: "baseline (no storm)"}
	finish(&ph, clk, start, end, cnt, []int64{int64(seq)}, o.Size, e, cpuSelf0)
	ph.lat = slices.Clone(ph.lat)
	res.Phases = append(res.Phases, ph)

	// storm
	cnt.resetPhase()
	seq = 0
	st := &StormRes{Clients: o.Clients, StreamRate: o.StormRate, BoundS: stormBound.Seconds()}
	e.markCPU()
	cpuSelf0 = selfCPU()
	stopS := make(chan struct{})
	var streamErr atomic.Pointer[error]
	streamDone := make(chan struct{})
	start = clk.now()
	go func() {
		defer close(streamDone)
		if err := paceOne(ctx, conns[0], &t, 1, o.StormRate, clk, &seq, stopS); err != nil {
			streamErr.Store(&err)
		}
	}()
	var issued atomic.Int64
	stop := make(chan struct{})
	go progress(o, stop, func() string {
		return fmt.Sprintf("certstorm: %.1fs, %d of %d certificates issued, stream delivered %d", time.Duration(clk.now()-start).Seconds(),
			issued.Load(), o.Clients, cnt.unique.Load())
	})
	stormStart := clk.now()
	storm := make([]*proc, 0, o.Clients)
	for i := range o.Clients {
		p, err := e.start(fmt.Sprintf("n%d", i+1), "storm client", nil)
		if err != nil {
			close(stopS)
			close(stop)
			return err
		}
		storm = append(storm, p)
	}
	st.LaunchS = time.Duration(clk.now() - stormStart).Seconds()
	certDir := filepath.Join(e.certDir, "certificates", "client", "client-certs")
	issuedAt := make([]int64, len(storm))
	deadline := time.Now().Add(stormBound)
	var lastConn time.Time
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for i, p := range storm {
			if issuedAt[i] == 0 {
				if _, err := os.Stat(filepath.Join(certDir, p.name+".pem")); err == nil {
					issuedAt[i] = clk.now()
					issued.Add(1)
				}
			}
		}
		if int(issued.Load()) == len(storm) && time.Since(lastConn) > 250*time.Millisecond {
			lastConn = time.Now()
			if r, err := Command(srv.opts.CommanderPath(), `{"cmd": "show_connected_peers__sync", "kwargs": {}}`); err == nil {
				st.Connected = countNames(r, storm)
				if st.Connected == len(storm) {
					st.AllServedS = time.Duration(clk.now() - stormStart).Seconds()
					break
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	close(stopS)
	<-streamDone
	end = clk.now()
	close(stop)
	drain(ctx, o, int64(seq), cnt.unique.Load)
	for _, p := range storm {
		select {
		case <-p.done:
			st.StartFailed++
		default:
		}
	}
	if st.AllServedS == 0 {
		if r, err := Command(srv.opts.CommanderPath(), `{"cmd": "show_connected_peers__sync", "kwargs": {}}`); err == nil {
			st.Connected = countNames(r, storm)
		}
	}
	var at []float64
	for _, v := range issuedAt {
		if v > 0 {
			at = append(at, time.Duration(v-stormStart).Seconds())
		}
	}
	st.Issued = len(at)
	if len(at) > 0 {
		slices.Sort(at)
		st.IssuedP50S, st.IssuedMaxS = at[(len(at)-1)/2], at[len(at)-1]
	}
	ph = Phase{Name: "during storm", Storm: st}
	finish(&ph, clk, start, end, cnt, []int64{0, int64(seq)}, o.Size, e, cpuSelf0)
	res.Phases = append(res.Phases, ph)
	res.Notes = append(res.Notes, fmt.Sprintf("certstorm: %d first-time clients started at once (one process each, %.2fs to launch them); "+
		"issued = the client's certificate file appeared (polled every 50 ms); served = the server lists the client as connected "+
		"(with its new certificate); latency = the established client's messages at %g msg/s during the storm", o.Clients, st.LaunchS, o.StormRate))
	if p := streamErr.Load(); p != nil {
		return *p
	}
	if st.AllServedS == 0 {
		return fmt.Errorf("benchmarks: certstorm: %d of %d clients served within %v", st.Connected, len(storm), stormBound)
	}
	return ctx.Err()
}

// countNames counts the storm clients listed in a show_connected_peers reply.
func countNames(reply string, ps []*proc) int {
	n := 0
	for _, p := range ps {
		if strings.Contains(reply, "'"+p.name+"'") || strings.Contains(reply, `"`+p.name+`"`) {
			n++
		}
	}
	return n
}

// paceOne sends messages of stream 0 on c at rate msg/s (batches every millisecond at most)
// until stop is closed; *seq is the next sequence number (so it also counts what was sent). Not
// safe to share *seq meanwhile.
func paceOne(ctx context.Context, c net.Conn, t *tmpl, stream uint32, rate float64, clk *clock, seq *uint64, stop <-chan struct{}) error {
	start := clk.now()
	first := *seq
	interval := float64(time.Second) / rate
	var buf []byte
	for {
		now := clk.now()
		due := first + uint64(float64(now-start)/interval) + 1
		if due > *seq {
			buf = buf[:0]
			for *seq < due && len(buf) < 1<<20 {
				buf = t.add(buf, stream, *seq, now)
				*seq++
			}
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
		next := start + int64(float64(*seq-first)*interval)
		wait := max(time.Duration(next-clk.now()), 200*time.Microsecond)
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
