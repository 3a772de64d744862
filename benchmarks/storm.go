package benchmarks

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
	"golang.org/x/sys/unix"
)

// StormRes is the outcome of a certificate storm: o.Clients first-time clients released at once
// against a strict TLS server, each getting its certificate through _ssl and reconnecting.
type StormRes struct {
	Clients     int     `json:"clients"`
	Issued      int     `json:"issued"`       // clients whose certificate file arrived
	Connected   int     `json:"connected"`    // clients the server lists as connected at the end
	AllServedS  float64 `json:"all_served_s"` // storm start to the last client connected with its certificate (0 = not all)
	IssuedP50S  float64 `json:"issued_p50_s"` // storm start to the certificate file, median client
	IssuedMaxS  float64 `json:"issued_max_s"` // ... last client
	StreamRate  float64 `json:"stream_rate"`  // msg/s offered by the established client
	LaunchS     float64 `json:"launch_s"`     // time the bench took to start the storm's processes (before the storm with bench_nodes)
	BoundS      float64 `json:"bound_s"`      // how long the bench waited at most
	StartFailed int     `json:"start_failed"` // processes that exited or failed
	// Processes is the number of processes hosting the storm clients: bench_nodes (aioconn,
	// o.NodeClients clients each, default all in one), or one connector process per client
	// (Python target).
	Processes int `json:"processes"`
	// ReleaseS is the storm start (GO) to the last hosted connector's Start returning, as the
	// slowest bench_node measured it (0 with one process per client).
	ReleaseS float64 `json:"release_s,omitempty"`
	// P99BySecondMs is the established client's p99 latency of the messages sent in each second
	// of the storm (its arrivals in order, StreamRate per second; the last second may be partial).
	P99BySecondMs []float64 `json:"p99_by_second_ms,omitempty"`
	// NicedThreads is the number of the storm clients' threads put at Options.StormNice (0: none
	// changed).
	NicedThreads int `json:"niced_threads,omitempty"`
}

const stormBound = 90 * time.Second

// stormName is the client name of storm client i (0-based).
func stormName(i int) string { return "n" + strconv.Itoa(i+1) }

// runCertStorm: a strict TLS server, one established client streaming o.StormRate msg/s to it
// (phase "baseline" for 2 s or o.Duration if shorter, then phase "during storm"), and o.Clients
// first-time clients released at once. With aioconn the storm clients are hosted by bench_node
// processes (stormNodes) that are running, their connectors built and waiting, before the
// baseline starts, so that launching processes on this machine is not measured as the server's
// latency (in a deployment the storm clients run elsewhere). The storm phase lasts until every
// storm client is connected with its own certificate (or stormBound); its latency is the
// established client's during the storm.
func runCertStorm(ctx context.Context, e *env, o *Options, res *Result) error {
	srv, err := e.startServer(ctx, nil, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	cnt := newCounter(2, true) // stream 0 baseline, stream 1 during the storm
	oc, err := e.startOneClient(ctx, srv, clk, cnt, "e", "established client", nil, o)
	if err != nil {
		return err
	}
	defer oc.close()
	// The established client is connected, so the TLS server and its issuer are up: the key
	// helper (if any) is a child of the server by now.
	helpers := e.adoptKeyHelpers(srv)
	sc := &stormClients{e: e, o: o, names: make([]string, o.Clients)}
	for i := range sc.names {
		sc.names[i] = stormName(i)
	}
	defer sc.kill()
	if e.target == TargetGo {
		if err := sc.startNodes(ctx); err != nil {
			return err
		}
	}

	// baseline
	var seq uint64
	e.markCPU()
	cpuSelf0 := selfCPU()
	start := clk.now()
	stopB := make(chan struct{})
	time.AfterFunc(min(2*time.Second, o.Duration), func() { close(stopB) })
	if err := paceOne(ctx, oc.conn, &oc.t, 0, o.StormRate, clk, &seq, stopB); err != nil {
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
		if err := paceOne(ctx, oc.conn, &oc.t, 1, o.StormRate, clk, &seq, stopS); err != nil {
			streamErr.Store(&err)
		}
	}()
	streamStopped := false
	stopStream := func() {
		if !streamStopped {
			streamStopped = true
			close(stopS)
			<-streamDone
		}
	}
	defer stopStream()
	var issued atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go progress(o, stop, func() string {
		return fmt.Sprintf("certstorm: %.1fs, %d of %d certificates issued, stream delivered %d", time.Duration(clk.now()-start).Seconds(),
			issued.Load(), o.Clients, cnt.unique.Load())
	})
	stormStart := clk.now()
	if err := sc.release(); err != nil {
		return err
	}
	certDir := filepath.Join(e.certDir, "certificates", "client", "client-certs")
	issuedAt := make([]int64, len(sc.names))
	deadline := time.Now().Add(stormBound)
	var lastConn time.Time
	var stormErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if stormErr = sc.poll(); stormErr != nil {
			break
		}
		for i, name := range sc.names {
			if issuedAt[i] == 0 {
				if _, err := os.Stat(filepath.Join(certDir, name+".pem")); err == nil {
					issuedAt[i] = clk.now()
					issued.Add(1)
				}
			}
		}
		if int(issued.Load()) == len(sc.names) && time.Since(lastConn) > 250*time.Millisecond {
			lastConn = time.Now()
			if r, err := Command(srv.opts.CommanderPath(), `{"cmd": "show_connected_peers__sync", "kwargs": {}}`); err == nil {
				st.Connected = countNames(r, sc.names)
				if st.Connected == len(sc.names) {
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
	stopStream()
	end = clk.now()
	drain(ctx, o, int64(seq), cnt.unique.Load)
	if st.AllServedS == 0 {
		if r, err := Command(srv.opts.CommanderPath(), `{"cmd": "show_connected_peers__sync", "kwargs": {}}`); err == nil {
			st.Connected = countNames(r, sc.names)
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
	cnt.mu.Lock()
	st.P99BySecondMs = p99BySecond(cnt.lat, int(o.StormRate))
	cnt.mu.Unlock()
	ph = Phase{Name: "during storm", Storm: st}
	finish(&ph, clk, start, end, cnt, []int64{0, int64(seq)}, o.Size, e, cpuSelf0)
	nodeErr := sc.finish(st) // the storm clients' CPU, after the phase's connector CPU was read
	res.Phases = append(res.Phases, ph)
	if sc.ns != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("certstorm: %d first-time clients hosted by %d bench_node process(es) (connectors built "+
			"and waiting before the baseline, %.2fs to launch; at the storm start every one is started at once, all started after %.3fs; "+
			"their CPU is the nodes' from that start to the end of the storm)", o.Clients, st.Processes, st.LaunchS, st.ReleaseS))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("certstorm: %d first-time clients started at once (one process each, %.2fs to launch them)",
			o.Clients, st.LaunchS))
	}
	if o.StormNice != 0 {
		policy := ""
		if o.StormNice == 19 {
			policy = " and SCHED_IDLE"
		}
		res.Notes = append(res.Notes, fmt.Sprintf("certstorm: the storm clients' processes run at nice %d%s (%d threads set; they stand for other machines)",
			o.StormNice, policy, st.NicedThreads))
	}
	res.Notes = append(res.Notes, fmt.Sprintf("certstorm: issued = the client's certificate file appeared (polled every 50 ms); "+
		"served = the server lists the client as connected (with its new certificate); latency = the established client's "+
		"messages at %g msg/s during the storm", o.StormRate))
	if len(helpers) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("certstorm: the server's key and signature helper process (pid %v, nice 19) is counted as role %q", helpers, keyHelperRole))
	} else if e.target == TargetGo {
		res.Notes = append(res.Notes, "certstorm: no key helper process found among the server's children")
	}
	if p := streamErr.Load(); p != nil {
		return *p
	}
	if stormErr != nil {
		return stormErr
	}
	if nodeErr != nil {
		return nodeErr
	}
	if st.AllServedS == 0 {
		return fmt.Errorf("benchmarks: certstorm: %d of %d clients served within %v", st.Connected, len(sc.names), stormBound)
	}
	return ctx.Err()
}

// stormClients are the first-time clients of one storm. With aioconn they are hosted by
// bench_node processes (o.NodeClients each, default all in one) whose connectors are built
// before the measurement and started together at GO; with the Python target each is a connector
// process of its own, started at the release (a Python connector cannot be made to wait).
// Not safe for concurrent use.
type stormClients struct {
	e     *env
	o     *Options
	names []string
	ns    *nodeSet // bench_nodes; nil: one connector process per client
	procs []*proc  // one process per client
	// started counts the nodes that said STARTED; launchS, releaseS as in StormRes.
	started      int
	nicedThreads int // StormRes.NicedThreads
	launchS      float64
	releaseS     float64
}

// startNodes starts the bench_nodes hosting the storm clients and waits until every one has
// built its connectors (WAITING); nothing has connected to the server yet.
func (sc *stormClients) startNodes(ctx context.Context) error {
	o := sc.o
	per := o.NodeClients
	if per <= 0 {
		per = o.Clients
	}
	sc.ns = &nodeSet{e: sc.e}
	t0 := time.Now()
	for first := 0; first < o.Clients; first += per {
		k := min(per, o.Clients-first)
		j := strconv.Itoa(len(sc.ns.nodes) + 1)
		if _, err := sc.ns.start("storm"+j, nodeArgs(o, "clients", filepath.Join(sc.e.dir, "st"+j), "--port", strconv.Itoa(sc.e.port),
			"--first", strconv.Itoa(first), "--clients", strconv.Itoa(k), "--cert-dir", sc.e.certDir)...); err != nil {
			return err
		}
	}
	for _, n := range sc.ns.nodes {
		if _, err := n.expect(ctx, "WAITING", o.StartupTime); err != nil {
			return err
		}
		if err := sc.renice(n.cmd.Process.Pid); err != nil {
			return err
		}
	}
	sc.launchS = time.Since(t0).Seconds()
	return nil
}

// renice puts every thread of process pid at nice o.StormNice, and at 19 also under the
// SCHED_IDLE policy (Linux nice values and policies are per thread; threads created later are
// cloned from these and inherit them). SCHED_IDLE because nice 19 alone is not enough for
// clients that stand for other machines: a nice-19 thread that is running keeps its CPU for
// the rest of its slice (~1 ms) when a thread of the established link wakes up, and on 2 CPUs
// that was a third of the delays those threads saw (perf sched, RESULTS.md issue 5); a
// SCHED_IDLE thread is preempted at once. A node is reniced once
// it said WAITING, so its runtime's threads exist; passes repeat until one finds no new thread.
func (sc *stormClients) renice(pid int) error {
	n := sc.o.StormNice
	if n == 0 {
		return nil
	}
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			if pass == 0 { // no /proc: the whole process, as setpriority sees it
				return syscall.Setpriority(syscall.PRIO_PROCESS, pid, n)
			}
			return nil // the process is gone: poll reports it
		}
		added := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err == nil {
				done[tid], added = true, true
			}
			if n == 19 { // the lowest nice value: the lowest policy too (best effort)
				attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE, Nice: 19}
				unix.SchedSetAttr(tid, &attr, 0)
			}
		}
		if !added {
			break
		}
	}
	sc.nicedThreads += len(done)
	return nil
}

// release starts the storm: GO to every node, or (one process per client) starts them.
func (sc *stormClients) release() error {
	if sc.ns != nil {
		for _, n := range sc.ns.nodes {
			if err := n.tell("GO"); err != nil {
				return fmt.Errorf("benchmarks: certstorm: GO to bench_node (pid %d): %w", n.cmd.Process.Pid, err)
			}
		}
		return nil
	}
	t0 := time.Now()
	for _, name := range sc.names {
		p, err := sc.e.start(name, "storm client", nil)
		if err != nil {
			return err
		}
		sc.procs = append(sc.procs, p)
		if p.cmd != nil && p.cmd.Process != nil {
			if err := sc.renice(p.cmd.Process.Pid); err != nil {
				return err
			}
		}
	}
	sc.launchS = time.Since(t0).Seconds()
	return nil
}

// poll reads what the nodes said since the last call without waiting: STARTED sets releaseS;
// ERROR or an early exit is an error.
func (sc *stormClients) poll() error {
	if sc.ns == nil {
		return nil
	}
	for _, n := range sc.ns.nodes {
		for more := true; more; {
			select {
			case l, ok := <-n.lines:
				if !ok {
					return fmt.Errorf("benchmarks: certstorm: bench_node (pid %d) exited during the storm", n.cmd.Process.Pid)
				}
				if us, found := strings.CutPrefix(l, "STARTED "); found {
					v, _ := strconv.ParseInt(us, 10, 64)
					sc.releaseS = max(sc.releaseS, float64(v)/1e6)
					sc.started++
				} else if strings.HasPrefix(l, "ERROR") {
					return fmt.Errorf("benchmarks: certstorm: bench_node (pid %d): %s", n.cmd.Process.Pid, l)
				}
			default:
				more = false
			}
		}
	}
	return nil
}

// finish fills st's process figures; with nodes, it stops them (stop signal, reports) and adds
// their CPU to the run's process table.
func (sc *stormClients) finish(st *StormRes) error {
	st.LaunchS, st.ReleaseS = sc.launchS, sc.releaseS
	st.NicedThreads = sc.nicedThreads
	if sc.ns == nil {
		st.Processes = len(sc.procs)
		for _, p := range sc.procs {
			select {
			case <-p.done:
				st.StartFailed++
			default:
			}
		}
		return nil
	}
	st.Processes = len(sc.ns.nodes)
	reps, err := finishNodes(sc.ns)
	roles := make([]string, len(reps))
	for i, r := range reps {
		roles[i] = "storm clients (bench_node)"
		if r == nil || r.Err != "" {
			st.StartFailed++
		}
	}
	embeddedStats(sc.e, roles, reps)
	return err
}

// kill stops, by PID, the nodes still running (deferred; also on Ctrl-C). Connector processes
// are the env's (stopped by env.stop).
func (sc *stormClients) kill() {
	if sc.ns != nil {
		sc.ns.kill()
	}
}

// nodeStormClients: o.Clients first-time client connectors n<First+1>… in strict TLS
// (certificates_directory_path o.CertDir, holding only the default client certificate), built
// (connector.New: config, logs, commander socket) but not started; WAITING says so. At GO every
// one is started at the same moment (one goroutine each, waiting on one channel), and each then
// connects, asks for its certificate (_ssl get_new_certificate) and reconnects with it, as a
// create_connector client does (same reconnect interval). CPU is counted from GO to the stop
// signal.
func nodeStormClients(ctx context.Context, o *NodeOptions, nio *nodeIO, rep *NodeReport) error {
	if o.CertDir == "" || o.Port <= 0 {
		return fmt.Errorf("%w: certstorm clients need --cert-dir and --port", ErrBadOptions)
	}
	cns := make([]*connector.Connector, 0, o.Clients)
	defer func() { closeConnectors(cns) }()
	tlsKeys := map[string]any{"use_ssl": true, "ssl_allow_all": false, "certificates_directory_path": o.CertDir,
		"default_logger_log_level": "WARNING"}
	for i := range o.Clients {
		name := stormName(o.First + i)
		cfg, err := config.Parse(EmbeddedConfig(false, name, o.Port, o.Dir, []string{"any"}, []string{"any"}, tlsKeys), name)
		if err != nil {
			return fmt.Errorf("client %s: %w", name, err)
		}
		cn, err := connector.New(cfg, io.Discard)
		if err != nil {
			return fmt.Errorf("client %s: %w", name, err)
		}
		cns = append(cns, cn)
	}
	goCh := make(chan struct{})
	errs := make(chan error, len(cns))
	for _, cn := range cns {
		go func() {
			select {
			case <-goCh:
				errs <- cn.Start()
			case <-ctx.Done():
				errs <- ctx.Err()
			}
		}()
	}
	nio.say("WAITING " + strconv.Itoa(len(cns)))
	if _, err := nio.await(ctx, "GO", o.StartupTime+o.Duration+2*time.Minute+o.Drain); err != nil {
		return err
	}
	mark := markSelf()
	t0 := time.Now()
	close(goCh)
	var first error
	for range cns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return fmt.Errorf("start: %w", first)
	}
	nio.say("STARTED " + strconv.FormatInt(time.Since(t0).Microseconds(), 10))
	nio.stopped(ctx)
	mark.end(rep)
	return nil
}

// closeConnectors closes cns in parallel and waits for all.
func closeConnectors(cns []*connector.Connector) {
	var wg sync.WaitGroup
	for _, cn := range cns {
		wg.Add(1)
		go func() { defer wg.Done(); cn.Close() }()
	}
	wg.Wait()
}

// keyHelperRole is the process-table role of the server's key generation helper.
const keyHelperRole = "server key helper"

// adoptKeyHelpers finds the server's key generation helpers (children of its process whose
// command line starts with "aioconn-keygen", tls/keygen.go) and adds them to the env's
// processes, so that their CPU is measured like the server's; they are the server's children,
// never stopped by the bench. It returns their PIDs.
func (e *env) adoptKeyHelpers(srv *proc) []int {
	var pids []int
	for _, c := range childPIDs(srv.pid) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(c) + "/cmdline")
		if err != nil || !strings.HasPrefix(string(b), "aioconn-keygen") {
			continue
		}
		pids = append(pids, c)
		e.mu.Lock()
		e.procs = append(e.procs, &proc{name: "keygen", role: keyHelperRole, pid: c, done: make(chan struct{})})
		e.mu.Unlock()
	}
	return pids
}

// childPIDs lists the children of pid (/proc/<pid>/task/*/children; none when unknown).
func childPIDs(pid int) []int {
	if pid <= 0 {
		return nil
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range ents {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	return out
}

// p99BySecond splits lat (ns, in arrival order) into runs of perSec samples and returns each
// run's p99 in ms; lat is not modified.
func p99BySecond(lat []int64, perSec int) []float64 {
	if perSec <= 0 {
		return nil
	}
	var out []float64
	buf := make([]int64, 0, min(perSec, len(lat)))
	for i := 0; i < len(lat); i += perSec {
		buf = append(buf[:0], lat[i:min(i+perSec, len(lat))]...)
		slices.Sort(buf)
		k := max(0, min(int(0.99*float64(len(buf))+0.5)-1, len(buf)-1))
		out = append(out, float64(buf[k])/1e6)
	}
	return out
}

// countNames counts the storm clients listed in a show_connected_peers reply.
func countNames(reply string, names []string) int {
	n := 0
	for _, name := range names {
		if strings.Contains(reply, "'"+name+"'") || strings.Contains(reply, `"`+name+`"`) {
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
