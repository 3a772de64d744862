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
	prof := func(name string) string {
		if e.profDir == "" {
			return ""
		}
		return filepath.Join(e.profDir, name+".cpu.pprof")
	}
	srv, err := startNode(e.bin, prof("server"), append([]string{"--role", "server", "--dir", sdir}, common...)...)
	if err != nil {
		return err
	}
	nodes := []*node{srv}
	defer func() {
		for _, n := range nodes {
			if n.cmd.ProcessState == nil {
				n.stdin.Close()
				n.cmd.Process.Kill()
				n.cmd.Wait()
			}
		}
	}()
	l, err := srv.next(ctx, o.StartupTime)
	if err != nil {
		return err
	}
	port, ok := strings.CutPrefix(l, "READY ")
	if !ok {
		return fmt.Errorf("benchmarks: bench_node server said %q", l)
	}
	cli, err := startNode(e.bin, prof("client1"), append([]string{"--role", "client", "--port", port, "--dir", cdir}, common...)...)
	if err != nil {
		return err
	}
	nodes = append(nodes, cli)
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
