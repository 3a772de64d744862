package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Paths of Options.Path.
const (
	PathSocket   = ""         // default: applications talk to their connectors over unix sockets
	PathEmbedded = "embedded" // each application embeds its connector (in-process API); TCP between them
)

// NodeReport is the JSON line an `aioconn bench_node` child prints when it stops.
type NodeReport struct {
	Role      string  `json:"role"`
	Sent      int64   `json:"sent"`
	SendStart int64   `json:"send_start_ns"`
	SendEnd   int64   `json:"send_end_ns"`
	Received  int64   `json:"received"`
	Reordered int64   `json:"reordered"`
	First     int64   `json:"first_ns"`
	Last      int64   `json:"last_ns"`
	LatencyNs []int64 `json:"latency_ns"`
	CPU       float64 `json:"cpu_s"`
	MaxRSSMB  float64 `json:"max_rss_mb"`
	Err       string  `json:"error"`
	// Rate and pubsub nodes: what the receiving applications counted (one Tally per receiver),
	// the messages each hosted sender sent (SentPer[i] for stream Stream0+i), and CPU is the
	// measured phase's (from GO to the end of the drain), not the process lifetime.
	Tallies []Tally `json:"tallies,omitempty"`
	SentPer []int64 `json:"sent_per,omitempty"`
	Stream0 int     `json:"stream0,omitempty"`
	// Rate and pubsub nodes, over the measured phase: time this process's threads spent
	// runnable but waiting for a CPU, and the time slices they ran (schedStat).
	RunqWaitNs int64 `json:"runq_wait_ns,omitempty"`
	Slices     int64 `json:"slices,omitempty"`
}

// node is one running bench_node child.
type node struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout lines; closed at EOF
}

func startNode(bin, prof string, args ...string) (*node, error) {
	cmd := exec.Command(bin, append([]string{"bench_node"}, args...)...)
	if prof != "" {
		cmd.Env = append(os.Environ(), "AIOCONN_CPUPROFILE="+prof)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchmarks: start bench_node: %w", err)
	}
	n := &node{cmd: cmd, stdin: in, lines: make(chan string, 4)}
	go func() {
		sc := bufio.NewScanner(outp)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			n.lines <- sc.Text()
		}
		close(n.lines)
	}()
	return n, nil
}

// next returns the next stdout line, or an error at EOF or timeout.
func (n *node) next(ctx context.Context, timeout time.Duration) (string, error) {
	select {
	case l, ok := <-n.lines:
		if !ok {
			return "", fmt.Errorf("benchmarks: bench_node (pid %d) exited early", n.cmd.Process.Pid)
		}
		return l, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("benchmarks: bench_node (pid %d): no output within %v", n.cmd.Process.Pid, timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// finish closes the node's stdin (its stop signal) and returns its report; a node that does not
// stop within 10 s is killed (by its PID).
func (n *node) finish() (*NodeReport, error) {
	n.stdin.Close()
	var rep *NodeReport
	timeout := time.After(10 * time.Second)
	for rep == nil {
		select {
		case l, ok := <-n.lines:
			if !ok {
				n.cmd.Wait()
				return nil, fmt.Errorf("benchmarks: bench_node (pid %d) stopped without a report", n.cmd.Process.Pid)
			}
			if strings.HasPrefix(l, "{") {
				rep = new(NodeReport)
				if err := json.Unmarshal([]byte(l), rep); err != nil {
					return nil, fmt.Errorf("benchmarks: bench_node report: %w", err)
				}
			}
		case <-timeout:
			n.cmd.Process.Kill()
			n.cmd.Wait()
			return nil, fmt.Errorf("benchmarks: bench_node (pid %d) did not stop", n.cmd.Process.Pid)
		}
	}
	n.cmd.Wait()
	return rep, nil
}

// expect returns the rest of the node's next stdout line, which must start with word; a line
// "ERROR ..." (the node failed), EOF or the timeout is an error.
func (n *node) expect(ctx context.Context, word string, timeout time.Duration) (string, error) {
	l, err := n.next(ctx, timeout)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(l, word)
	if !ok {
		return "", fmt.Errorf("benchmarks: bench_node (pid %d) said %q, expected %s", n.cmd.Process.Pid, l, word)
	}
	return strings.TrimSpace(rest), nil
}

// tell writes one command line to the node's stdin.
func (n *node) tell(line string) error {
	_, err := io.WriteString(n.stdin, line+"\n")
	return err
}

// nodeSet is the bench_node children of one run.
type nodeSet struct {
	e     *env
	nodes []*node
}

// start starts one bench_node (CPU profile <name>.cpu.pprof with --profile-dir).
func (s *nodeSet) start(name string, args ...string) (*node, error) {
	prof := ""
	if s.e.profDir != "" {
		prof = filepath.Join(s.e.profDir, name+".cpu.pprof")
	}
	n, err := startNode(s.e.bin, prof, args...)
	if err == nil {
		s.nodes = append(s.nodes, n)
	}
	return n, err
}

// kill stops, by PID, every node that has not been waited for (the deferred cleanup, also on
// Ctrl-C: the nodes run in their own process group).
func (s *nodeSet) kill() {
	for _, n := range s.nodes {
		if n.cmd.ProcessState == nil {
			n.stdin.Close()
			n.cmd.Process.Kill()
			n.cmd.Wait()
		}
	}
}

// runEmbedded is throughput (or, with ModeReqrep, sequential await_response round trips) over
// --path embedded: two aioconn processes, each a connector with
// its application embedded (no unix socket), linked by TCP; the sending application keeps at most
// o.Window messages in flight using credit the receiving application returns through the link.
func runEmbedded(ctx context.Context, e *env, o *Options, res *Result) error {
	common := []string{"--mode", o.Mode, "--count", strconv.FormatInt(o.Count, 10), "--size", strconv.Itoa(o.Size),
		"--window", strconv.FormatInt(o.Window, 10)}
	if o.Batch > 1 {
		common = append(common, "--batch", strconv.Itoa(o.Batch))
		res.Notes = append(res.Notes, fmt.Sprintf("batch: the sending application calls SendMessages with %d messages", o.Batch))
	}
	sdir, cdir := filepath.Join(e.dir, "s"), filepath.Join(e.dir, "c")
	ns := &nodeSet{e: e}
	defer ns.kill()
	srv, err := ns.start("server", append([]string{"--role", "server", "--dir", sdir}, common...)...)
	if err != nil {
		return err
	}
	port, err := srv.expect(ctx, "READY", o.StartupTime)
	if err != nil {
		return err
	}
	cli, err := ns.start("client1", append([]string{"--role", "client", "--port", port, "--dir", cdir}, common...)...)
	if err != nil {
		return err
	}
	var waitErr error
	if l, err := srv.next(ctx, o.Duration+o.StartupTime+o.Drain); err != nil {
		waitErr = err
	} else if l != "DONE" {
		waitErr = fmt.Errorf("benchmarks: bench_node server said %q", l)
	}
	crep, cerr := cli.finish()
	srep, serr := srv.finish()
	if cerr != nil {
		return cerr
	}
	if serr != nil {
		return serr
	}
	if crep.Err != "" {
		return fmt.Errorf("benchmarks: bench_node client: %s", crep.Err)
	}
	ph := Phase{Name: "throughput-embedded", Sent: crep.Sent, Delivered: srep.Received, Reordered: srep.Reordered}
	lat, last := srep.LatencyNs, srep.Last
	note := "credit window through the link; latency sampled"
	if o.Mode == ModeReqrep { // round trips, measured by the requester
		ph = Phase{Name: "reqrep-embedded sequential", Sent: crep.Sent, Delivered: crep.Received, Reordered: crep.Reordered}
		lat, last = crep.LatencyNs, crep.Last
		note = "SendMessageAwaitResponse one after the other; Reordered counts replies with the wrong data"
	}
	ph.Lost = ph.Sent - ph.Delivered
	if last > crep.SendStart {
		ph.Elapsed = time.Duration(last - crep.SendStart).Seconds()
	}
	if d := time.Duration(crep.SendEnd - crep.SendStart).Seconds(); d > 0 {
		ph.SendRate = float64(ph.Sent) / d
	}
	if ph.Elapsed > 0 {
		ph.Rate = float64(ph.Delivered) / ph.Elapsed
		ph.MBps = ph.Rate * float64(o.Size) / 1e6
	}
	if len(lat) > 0 {
		ph.lat = lat
		ph.Latency = latencyOf(ph.lat)
	}
	if ph.Delivered > 0 {
		ph.CPUPerMsgUs = (srep.CPU + crep.CPU) * 1e6 / float64(ph.Delivered)
	}
	res.Phases = append(res.Phases, ph)
	e.embedded = []ProcStats{
		{Role: "server (embedded app)", Count: 1, CPUSeconds: srep.CPU, PeakRSSMBMax: srep.MaxRSSMB, PeakRSSMBTotal: srep.MaxRSSMB},
		{Role: "client (embedded app)", Count: 1, CPUSeconds: crep.CPU, PeakRSSMBMax: crep.MaxRSSMB, PeakRSSMBTotal: crep.MaxRSSMB},
	}
	res.Notes = append(res.Notes, "path: embedded (each application in its connector's process; "+note+
		"; CPU is the whole process lifetime including start-up)")
	return waitErr
}

// nodeArgs are the bench_node flags of a rate or pubsub node.
func nodeArgs(o *Options, role, dir string, more ...string) []string {
	return append([]string{"--mode", o.Mode, "--role", role, "--dir", dir, "--size", strconv.Itoa(o.Size),
		"--rate", strconv.FormatFloat(o.Rate, 'g', -1, 64), "--duration", o.Duration.String(),
		"--count", strconv.FormatInt(o.Count, 10), "--window", strconv.FormatInt(o.Window, 10),
		"--drain", o.Drain.String(), "--startup", o.StartupTime.String()}, more...)
}

// finishNodes sends the stop signal to every node and collects the reports (a node's Err is an
// error).
func finishNodes(ns *nodeSet) ([]*NodeReport, error) {
	for _, n := range ns.nodes {
		n.stdin.Close()
	}
	reps := make([]*NodeReport, len(ns.nodes))
	var first error
	for i, n := range ns.nodes {
		rep, err := n.finish()
		if err == nil && rep.Err != "" {
			err = fmt.Errorf("benchmarks: bench_node %s (pid %d): %s", rep.Role, n.cmd.Process.Pid, rep.Err)
		}
		if err != nil && first == nil {
			first = err
		}
		reps[i] = rep
	}
	return reps, first
}

// embeddedStats sums the nodes' reports by role into e.embedded and returns their CPU.
func embeddedStats(e *env, roles []string, reps []*NodeReport) float64 {
	var cpu float64
	idx := map[string]int{}
	for i, r := range reps {
		if r == nil {
			continue
		}
		cpu += r.CPU
		j, ok := idx[roles[i]]
		if !ok {
			j = len(e.embedded)
			idx[roles[i]] = j
			e.embedded = append(e.embedded, ProcStats{Role: roles[i]})
		}
		s := &e.embedded[j]
		s.Count++
		s.CPUSeconds += r.CPU
		s.RunqWaitMs += float64(r.RunqWaitNs) / 1e6
		s.Slices += r.Slices
		s.PeakRSSMBTotal += r.MaxRSSMB
		s.PeakRSSMBMax = max(s.PeakRSSMBMax, r.MaxRSSMB)
	}
	return cpu
}

// runEmbeddedRate is mode rate over --path embedded: a server bench_node whose embedded
// application counts, and client bench_nodes each hosting o.NodeClients client connectors (each
// its own TCP connection and client name, b1…bN as the socket path) whose embedded applications
// send o.Rate msg/s each, paced by the socket path's pacer; loss, duplicates and latency come
// from the server application's counter, as on the socket path.
func runEmbeddedRate(ctx context.Context, e *env, o *Options, res *Result) error {
	per := o.NodeClients
	if per <= 0 {
		per = defaultNodeClients
	}
	ns := &nodeSet{e: e}
	defer ns.kill()
	srv, err := ns.start("server", nodeArgs(o, "server", filepath.Join(e.dir, "s"), "--streams", strconv.Itoa(o.Clients))...)
	if err != nil {
		return err
	}
	roles := []string{"server (embedded app)"}
	port, err := srv.expect(ctx, "READY", o.StartupTime)
	if err != nil {
		return err
	}
	var clients []*node
	for first := 0; first < o.Clients; first += per {
		k := min(per, o.Clients-first)
		j := strconv.Itoa(len(clients) + 1)
		c, err := ns.start("clients"+j, nodeArgs(o, "clients", filepath.Join(e.dir, "c"+j), "--port", port,
			"--first", strconv.Itoa(first), "--clients", strconv.Itoa(k))...)
		if err != nil {
			return err
		}
		clients = append(clients, c)
		roles = append(roles, "clients (embedded apps)")
	}
	for _, c := range clients {
		if _, err := c.expect(ctx, "CONNECTED", o.StartupTime); err != nil {
			return err
		}
	}
	if _, err := srv.expect(ctx, "PROBED", o.StartupTime); err != nil {
		return err
	}
	cpuSelf0 := selfCPU()
	for _, n := range ns.nodes {
		if err := n.tell("GO"); err != nil {
			return err
		}
	}
	var total int64
	for _, c := range clients {
		s, err := c.expect(ctx, "SENT", o.Duration+o.StartupTime)
		if err != nil {
			return err
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		total += n
	}
	if err := srv.tell("DRAIN " + strconv.FormatInt(total, 10)); err != nil {
		return err
	}
	if _, err := srv.expect(ctx, "DONE", 2*time.Minute+o.Drain+10*time.Second); err != nil {
		return err
	}
	reps, err := finishNodes(ns)
	if err != nil {
		return err
	}
	srep := reps[0]
	if len(srep.Tallies) != 1 {
		return fmt.Errorf("benchmarks: bench_node server reported %d tallies", len(srep.Tallies))
	}
	sent := make([]int64, o.Clients)
	sendStart, sendEnd := int64(1<<62), int64(0)
	for _, r := range reps[1:] {
		copy(sent[min(r.Stream0, len(sent)):], r.SentPer)
		sendStart, sendEnd = min(sendStart, r.SendStart), max(sendEnd, r.SendEnd)
	}
	ph := Phase{Name: "rate-embedded"}
	finish(&ph, nil, sendStart, sendEnd, srep.Tallies[0].counter(o.Clients), sent, o.Size, e, cpuSelf0)
	ph.BenchCPUUs = 0 // the applications are in the nodes: their CPU is in CPUPerMsgUs
	if cpu := embeddedStats(e, roles, reps); ph.Delivered > 0 {
		ph.CPUPerMsgUs = cpu * 1e6 / float64(ph.Delivered)
	}
	res.Phases = append(res.Phases, ph)
	res.Notes = append(res.Notes, fmt.Sprintf("path: embedded: 1 server process, %d client process(es) hosting up to %d client connectors each "+
		"(own TCP connection and name), every application in its connector's process; latency from the send timestamp "+
		"written just before SendMessage to the server application's handler (wall clock, same machine); "+
		"CPU from the start of sending to the end of the drain, applications included", len(clients), min(per, o.Clients)))
	return ctx.Err()
}

// runEmbeddedPubsub is mode pubsub over --path embedded: a broker bench_node, and one bench_node
// hosting the publisher and o.Subscribers subscriber connectors (each its own TCP connection),
// their applications embedded; the publisher keeps at most o.Window messages in flight against
// the slowest subscriber (read in-process), as the socket path's bench does.
func runEmbeddedPubsub(ctx context.Context, e *env, o *Options, res *Result) error {
	ns := &nodeSet{e: e}
	defer ns.kill()
	srv, err := ns.start("server", nodeArgs(o, "server", filepath.Join(e.dir, "s"))...)
	if err != nil {
		return err
	}
	port, err := srv.expect(ctx, "READY", o.StartupTime)
	if err != nil {
		return err
	}
	cli, err := ns.start("clients1", nodeArgs(o, "clients", filepath.Join(e.dir, "c"), "--port", port,
		"--subscribers", strconv.Itoa(o.Subscribers))...)
	if err != nil {
		return err
	}
	if _, err := cli.expect(ctx, "CONNECTED", o.StartupTime); err != nil {
		return err
	}
	cpuSelf0 := selfCPU()
	for _, n := range ns.nodes {
		if err := n.tell("GO"); err != nil {
			return err
		}
	}
	if _, err := cli.expect(ctx, "DONE", o.Duration+2*time.Minute+o.Drain+10*time.Second); err != nil {
		return err
	}
	reps, err := finishNodes(ns)
	if err != nil {
		return err
	}
	crep := reps[1]
	names := make([]string, len(crep.Tallies))
	cnts := make([]*counter, len(crep.Tallies))
	for i := range crep.Tallies {
		names[i], cnts[i] = "s"+strconv.Itoa(i+1), crep.Tallies[i].counter(1)
	}
	ph := Phase{Name: fmt.Sprintf("pubsub-embedded 1→%d", len(cnts))}
	pubsubPhase(&ph, names, cnts, crep.Sent, crep.SendStart, crep.SendEnd, o.Size, e, cpuSelf0)
	ph.BenchCPUUs = 0 // the applications are in the nodes: their CPU is in CPUPerMsgUs
	if cpu := embeddedStats(e, []string{"broker (embedded)", "publisher+subscribers (embedded apps)"}, reps); ph.Delivered > 0 {
		ph.CPUPerMsgUs = cpu * 1e6 / float64(ph.Delivered)
	}
	res.Phases = append(res.Phases, ph)
	res.Notes = append(res.Notes, "path: embedded: 1 broker process; 1 process hosting the publisher and every subscriber connector "+
		"(own TCP connection and name each), applications embedded; rate = deliveries to all subscribers per second; "+
		"latency of subscriber s1; CPU per delivered copy, from the start of sending to the end of the drain")
	return ctx.Err()
}

// defaultNodeClients is Options.NodeClients when unset.
const defaultNodeClients = 100
