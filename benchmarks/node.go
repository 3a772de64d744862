package benchmarks

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
	"github.com/aioconn/aioconn/loop"
)

// The rate and pubsub modes of `aioconn bench_node` (the child processes of `aioconn bench
// --path embedded`) live here, next to the counting and pacing code they share with the socket
// path; cli/benchnode.go parses the flags and calls RunNode.
//
// Protocol with the parent, one line each way:
//
//	child → parent (stdout)              parent → child (stdin)
//	server:  READY <port>                GO            (start of the measured phase: CPU mark)
//	rate server: PROBED (one warm-up     DRAIN <n>     (all senders done, n messages sent in all)
//	  probe from every client arrived)
//	rate server: DONE (drained)
//	clients: CONNECTED (every hosted     GO            (start sending)
//	  connector connected, probes sent)
//	rate clients: SENT <n>
//	pubsub clients: DONE (sent, drained)
//	certstorm clients: WAITING <n> (every  GO            (start every hosted connector at once)
//	  hosted connector built, none started)
//	certstorm clients: STARTED <µs> (every Start returned; µs from GO)
//	all: ERROR <why> when the node failed (it then waits for the stop signal);
//	  a JSON NodeReport line after stdin's EOF (the stop signal), then exit.

// NodeOptions are the settings of one rate or pubsub bench_node.
type NodeOptions struct {
	Mode        string // ModeRate, ModePubsub or ModeCertStorm (role "clients" only)
	Role        string // "server" or "clients"
	Port        int    // clients: the server's TCP port
	Dir         string // connector_files_dirpath of every connector of the node
	Streams     int    // rate server: clients of the whole run (one sequence stream each)
	First       int    // rate clients: index of the first client hosted here (its stream id)
	Clients     int    // rate clients: client connectors hosted here
	Subscribers int    // pubsub clients: subscriber connectors hosted here (plus one publisher)
	Rate        float64
	Size        int
	Duration    time.Duration
	Count       int64
	Window      int64
	Drain       time.Duration
	StartupTime time.Duration
	CertDir     string // certstorm clients: certificates_directory_path (strict TLS)
}

// Tally is what one receiving application counted, as a node reports it: the per-stream
// sequence bitmaps and counts of the same counter the socket path uses, so that the parent
// computes loss and duplicates with the same code.
type Tally struct {
	Seen      [][]uint64 `json:"seen"`
	Dup       int64      `json:"dup"`
	Reordered int64      `json:"reordered"`
	Malformed int64      `json:"malformed"`
	LatencyNs []int64    `json:"latency_ns,omitempty"`
	LastRecv  int64      `json:"last_ns"`
}

func (c *counter) tally() Tally {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Tally{Seen: c.seen, Dup: c.dup, Reordered: c.ooo, Malformed: c.bad, LatencyNs: c.lat, LastRecv: c.lastRecv}
}

// counter rebuilds the counter behind t (streams it lacks count as never received).
func (t *Tally) counter(streams int) *counter {
	c := newCounter(max(streams, len(t.Seen)), true)
	copy(c.seen, t.Seen)
	c.dup, c.ooo, c.bad, c.lat, c.lastRecv = t.Dup, t.Reordered, t.Malformed, t.LatencyNs, t.LastRecv
	return c
}

// wallClock is a clock shared by processes: nanoseconds of the wall clock (CLOCK_REALTIME),
// so that a timestamp written by one bench_node is comparable with another's receive time.
func wallClock() *clock { return &clock{base: time.Unix(0, 0)} }

// EmbeddedConfig is the JSON config of one bench_node connector: a plain TCP server on a free
// 127.0.0.1 port (port 0 with server) or a client of port named name, exchanging message types
// send and recv; extra keys are added as they are.
func EmbeddedConfig(server bool, name string, port int, dir string, send, recv []string, extra map[string]any) []byte {
	cfg := map[string]any{
		"is_server": server, "server_sockaddr": []any{"127.0.0.1", port}, "use_ssl": false,
		"connector_files_dirpath": dir, "default_logger_dirpath": dir, "debug_msg_counts": false,
		"send_message_types": send, "recv_message_types": recv,
	}
	if !server {
		cfg["client_name"] = name
	}
	for k, v := range extra {
		cfg[k] = v
	}
	js, _ := json.Marshal(cfg) // only strings, numbers, bools and slices of them
	return js
}

// StartEmbedded starts a connector from the config js and returns it with an API embedded in
// this process (api.NewWithTransport over its Local). The caller closes both (API first).
func StartEmbedded(js []byte) (*connector.Connector, *api.API, error) {
	return startEmbedded(js, nil)
}

// startEmbedded is StartEmbedded on grp's loops (nil: loops of its own).
func startEmbedded(js []byte, grp *loop.Group) (*connector.Connector, *api.API, error) {
	cfg, err := config.Parse(js, "bench_node")
	if err != nil {
		return nil, nil, err
	}
	cfg.ReconnectInterval = 50 * time.Millisecond
	cn, err := connector.New(cfg, io.Discard)
	if err != nil {
		return nil, nil, err
	}
	if grp != nil {
		cn.SetLoopGroup(grp)
	}
	if err := cn.Start(); err != nil {
		return nil, nil, err
	}
	acfg, err := config.ParseAPI(js, "bench_node")
	var a *api.API
	if err == nil {
		acfg.ReceiveFromAnyConnectorOwner = false
		a, err = api.NewWithTransport(acfg, cn.Local())
	}
	if err != nil {
		cn.Close()
		return nil, nil, err
	}
	return cn, a, nil
}

// WaitConnected waits until cn has a connected peer, stop is closed or timeout passes.
func WaitConnected(cn *connector.Connector, stop <-chan struct{}, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := cn.PeerChange() // before the check, so a change in between is not missed
		if len(cn.ConnectedPeers()) > 0 {
			return nil
		}
		select {
		case <-changed:
		case <-stop:
			return fmt.Errorf("%w: stopped before connecting", ErrStart)
		case <-deadline.C:
			return fmt.Errorf("%w: not connected within %v", ErrStart, timeout)
		}
	}
}

// nodeIO is a node's side of the protocol: lines to stdout, commands from stdin.
type nodeIO struct {
	mu   sync.Mutex
	out  *bufio.Writer
	cmds chan string   // stdin lines
	eof  chan struct{} // closed at stdin's EOF (the stop signal)
}

func newNodeIO(in io.Reader, out io.Writer) *nodeIO {
	n := &nodeIO{out: bufio.NewWriter(out), cmds: make(chan string, 4), eof: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case n.cmds <- sc.Text():
			case <-n.eof:
			}
		}
		close(n.eof)
	}()
	return n
}

func (n *nodeIO) say(line string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.out.WriteString(line)
	n.out.WriteByte('\n')
	n.out.Flush()
}

// await returns the rest of the next command line starting with word.
func (n *nodeIO) await(ctx context.Context, word string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-n.cmds:
			if rest, ok := strings.CutPrefix(l, word); ok {
				return strings.TrimSpace(rest), nil
			}
		case <-n.eof:
			return "", fmt.Errorf("benchmarks: bench_node stopped while waiting for %s", word)
		case <-ctx.Done():
			return "", ctx.Err()
		case <-t.C:
			return "", fmt.Errorf("benchmarks: bench_node: no %s within %v", word, timeout)
		}
	}
}

// stopped waits for the stop signal (stdin's EOF) or ctx.
func (n *nodeIO) stopped(ctx context.Context) {
	select {
	case <-n.eof:
	case <-ctx.Done():
	}
}

// RunNode runs one rate, pubsub or certstorm bench_node (see the protocol above) until stdin's EOF and
// returns its report; setup and protocol failures are in the report's Err.
func RunNode(ctx context.Context, o NodeOptions, stdin io.Reader, stdout io.Writer) *NodeReport {
	nio := newNodeIO(stdin, stdout)
	// The stop signal also ends sending and draining: a node whose parent died (its stdin
	// closed) stops at once instead of at the end of --duration.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-nio.eof:
			cancel()
		case <-ctx.Done():
		}
	}()
	rep := &NodeReport{Role: o.Mode + " " + o.Role}
	var err error
	switch {
	case o.Mode == ModeRate && o.Role == "server":
		err = nodeRateServer(ctx, &o, nio, rep)
	case o.Mode == ModeRate && o.Role == "clients":
		err = nodeRateClients(ctx, &o, nio, rep)
	case o.Mode == ModePubsub && o.Role == "server":
		err = nodePubsubBroker(ctx, &o, nio, rep)
	case o.Mode == ModePubsub && o.Role == "clients":
		err = nodePubsubClients(ctx, &o, nio, rep)
	case o.Mode == ModeCertStorm && o.Role == "clients":
		err = nodeStormClients(ctx, &o, nio, rep)
	default:
		err = fmt.Errorf("%w: bench_node mode %q role %q", ErrBadOptions, o.Mode, o.Role)
	}
	if err != nil {
		rep.Err = err.Error()
		nio.say("ERROR " + strings.ReplaceAll(rep.Err, "\n", " "))
		nio.stopped(ctx) // the report is read after the stop signal
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		rep.MaxRSSMB = float64(ru.Maxrss) / 1024
	}
	return rep
}

// embeddedSet is the connectors and APIs one node hosts; close stops them all.
type embeddedSet struct {
	cns  []*connector.Connector
	apis []*api.API
	grp  *loop.Group // set: the connectors added share its loops (HostLoops)
}

// HostLoops reads AIOCONN_HOST_LOOPS for a process that hosts hosted connectors: whether they
// share one group of event loops (loop.Group), and how many loops it has (0: one per P). They
// share by default when there are two or more; AIOCONN_HOST_LOOPS=0 gives each its own engine
// and loop (as before 27 Nov).
func HostLoops(hosted int) (loops int, share bool) {
	n, err := strconv.Atoi(os.Getenv("AIOCONN_HOST_LOOPS"))
	if err != nil || n < 0 {
		n = 0
	} else if n == 0 {
		return 0, false
	}
	return n, hosted > 1
}

func (s *embeddedSet) add(js []byte) (*connector.Connector, *api.API, error) {
	cn, a, err := startEmbedded(js, s.grp)
	if err == nil {
		s.cns, s.apis = append(s.cns, cn), append(s.apis, a)
	}
	return cn, a, err
}

func (s *embeddedSet) close() {
	for i := range s.cns {
		s.apis[i].Close()
		s.cns[i].Close()
	}
	if s.grp != nil {
		s.grp.Close(5 * time.Second)
	}
}

func (s *embeddedSet) waitConnected(stop <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, cn := range s.cns {
		if err := WaitConnected(cn, stop, max(time.Until(deadline), time.Millisecond)); err != nil {
			return err
		}
	}
	return nil
}

// nodeRateServer: the server connector; its embedded application counts every message by
// stream and sequence number (counter, as the socket path's sink).
func nodeRateServer(ctx context.Context, o *NodeOptions, nio *nodeIO, rep *NodeReport) error {
	var set embeddedSet
	defer set.close()
	cn, a, err := set.add(EmbeddedConfig(true, "", 0, o.Dir, []string{"any"}, []string{"any"}, nil))
	if err != nil {
		return err
	}
	clk := wallClock()
	cnt := newCounter(o.Streams, true)
	probed := make(chan struct{})
	probes := 0
	var one [1][]byte
	err = a.StartWaitingForMessages("any", func(m *api.Message) {
		now := clk.now()
		one[0] = m.Data
		cnt.addBatch(one[:], now)
		if probes < o.Streams && len(m.Data) >= 4 && binary.LittleEndian.Uint32(m.Data) == probeStream {
			if probes++; probes == o.Streams {
				close(probed)
			}
		}
	}, false)
	if err != nil {
		return err
	}
	nio.say("READY " + strconv.Itoa(cn.TCPAddr().Port))
	select {
	case <-probed:
	case <-nio.eof:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.StartupTime):
		return fmt.Errorf("%w: warm-up probes of %d clients not all delivered within %v", ErrStart, o.Streams, o.StartupTime)
	}
	nio.say("PROBED")
	if _, err := nio.await(ctx, "GO", o.StartupTime); err != nil {
		return err
	}
	mark := markSelf()
	arg, err := nio.await(ctx, "DRAIN", o.Duration+o.StartupTime)
	if err != nil {
		return err
	}
	total, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: DRAIN %q", ErrBadOptions, arg)
	}
	drain(ctx, &Options{Drain: o.Drain}, total, cnt.unique.Load)
	mark.end(rep)
	nio.say("DONE")
	nio.stopped(ctx)
	a.StopWaitingForMessages("any") // no handler runs while the counts are read
	rep.Tallies = []Tally{cnt.tally()}
	rep.Received = cnt.unique.Load()
	return nil
}

// nodeRateClients: o.Clients client connectors named b<First+1>…, each with its embedded
// application sending o.Rate msg/s (stream First+i) through pace, the socket path's pacer.
func nodeRateClients(ctx context.Context, o *NodeOptions, nio *nodeIO, rep *NodeReport) error {
	var set embeddedSet
	defer set.close()
	if loops, share := HostLoops(o.Clients); share {
		g, err := loop.NewGroup(loops)
		if err != nil {
			return err
		}
		set.grp = g
	}
	for i := range o.Clients {
		name := "b" + strconv.Itoa(o.First+i+1)
		if _, _, err := set.add(EmbeddedConfig(false, name, o.Port, o.Dir, []string{"any"}, []string{"any"}, nil)); err != nil {
			return fmt.Errorf("client %s: %w", name, err)
		}
	}
	if err := set.waitConnected(nio.eof, o.StartupTime); err != nil {
		return err
	}
	data := make([]byte, o.Size)
	putPayload(data, probeStream, 0, 0)
	for _, a := range set.apis {
		if err := a.SendMessage(ctx, api.SendOptions{MessageType: "any", Data: data}); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
	}
	nio.say("CONNECTED")
	if _, err := nio.await(ctx, "GO", o.StartupTime); err != nil {
		return err
	}
	mark := markSelf()
	clk := wallClock()
	perClient := max(int64(o.Rate*o.Duration.Seconds()), 1)
	sent := make([]atomic.Int64, o.Clients)
	var bufs [paceGoroutines][]byte
	for g := range bufs {
		bufs[g] = make([]byte, o.Size)
	}
	rep.SendStart = clk.now()
	err := pace(ctx, clk, rep.SendStart, o.Rate, perClient, 256, sent, func(g, i int, from, to, now int64) error {
		d := bufs[g]
		for k := from; k < to; k++ {
			putPayload(d, uint32(o.First+i), uint64(k), now)
			if err := set.apis[i].SendMessage(ctx, api.SendOptions{MessageType: "any", Data: d}); err != nil {
				return fmt.Errorf("client b%d send: %w", o.First+i+1, err)
			}
		}
		return nil
	})
	rep.SendEnd = clk.now()
	rep.Stream0 = o.First
	rep.SentPer = make([]int64, o.Clients)
	for i := range sent {
		rep.SentPer[i] = sent[i].Load()
		rep.Sent += rep.SentPer[i]
	}
	mark.end(rep)
	if err != nil {
		return err
	}
	nio.say("SENT " + strconv.FormatInt(rep.Sent, 10))
	nio.stopped(ctx)
	return nil
}

const benchTopic = "bench"

// nodePubsubBroker: the pubsub_central_broker server connector (no application).
func nodePubsubBroker(ctx context.Context, o *NodeOptions, nio *nodeIO, rep *NodeReport) error {
	var set embeddedSet
	defer set.close()
	cn, _, err := set.add(EmbeddedConfig(true, "", 0, o.Dir, []string{"any"}, []string{"any"},
		map[string]any{"pubsub_central_broker": true}))
	if err != nil {
		return err
	}
	nio.say("READY " + strconv.Itoa(cn.TCPAddr().Port))
	if _, err := nio.await(ctx, "GO", 2*o.StartupTime); err != nil {
		return err
	}
	mark := markSelf()
	nio.stopped(ctx)
	mark.end(rep)
	return nil
}

// nodePubsubClients: o.Subscribers subscriber connectors (s1…, each application counting with
// its own counter) and one publisher connector (p1) whose application publishes as fast as a
// window against the slowest subscriber allows (windowLoop, as the socket path); all in this
// process, so the window is read from the subscribers' counters directly.
func nodePubsubClients(ctx context.Context, o *NodeOptions, nio *nodeIO, rep *NodeReport) error {
	var set embeddedSet
	defer set.close()
	clk := wallClock()
	cnts := make([]*counter, o.Subscribers)
	notify := make(chan struct{}, 1)
	for i := range cnts {
		name := "s" + strconv.Itoa(i+1)
		_, a, err := set.add(EmbeddedConfig(false, name, o.Port, o.Dir, []string{"any"}, []string{benchTopic},
			map[string]any{"subscribe_message_types": []string{benchTopic}}))
		if err != nil {
			return fmt.Errorf("subscriber %s: %w", name, err)
		}
		c := newCounter(1, i == 0)
		c.notify = notify
		cnts[i] = c
		var one [1][]byte
		if err := a.StartWaitingForMessages(benchTopic, func(m *api.Message) {
			one[0] = m.Data
			c.addBatch(one[:], clk.now())
		}, false); err != nil {
			return err
		}
	}
	_, pub, err := set.add(EmbeddedConfig(false, "p1", o.Port, o.Dir, []string{benchTopic}, []string{"any"}, nil))
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	if err := set.waitConnected(nio.eof, o.StartupTime); err != nil {
		return err
	}
	data := make([]byte, o.Size)
	publish := func() error {
		return pub.PublishMessage(ctx, api.SendOptions{MessageType: benchTopic, Data: data})
	}
	// Warm-up: probes until every subscriber got one (the subscriptions are in place).
	putPayload(data, probeStream, 0, 0)
	probed := func() bool { return allProbed(cnts) }
	deadline := time.Now().Add(o.StartupTime)
	for !probed() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: warm-up messages not delivered within %v", ErrStart, o.StartupTime)
		}
		if err := publish(); err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		waitUntil(200*time.Millisecond, nio.eof, probed)
	}
	nio.say("CONNECTED")
	if _, err := nio.await(ctx, "GO", o.StartupTime); err != nil {
		return err
	}
	mark := markSelf()
	minDelivered := func() int64 {
		m := cnts[0].unique.Load()
		for _, c := range cnts[1:] {
			m = min(m, c.unique.Load())
		}
		return m
	}
	wo := &Options{Count: o.Count, Window: o.Window, Duration: o.Duration, Drain: o.Drain}
	var sent atomic.Int64
	rep.SendStart = clk.now()
	n, werr := windowLoop(ctx, wo, clk, rep.SendStart, minDelivered, notify, &sent, func(from, k, now int64) error {
		for seq := from; seq < from+k; seq++ {
			putPayload(data, 0, uint64(seq), now)
			if err := publish(); err != nil {
				return err
			}
		}
		return nil
	})
	rep.SendEnd = clk.now()
	rep.Sent, rep.SentPer = n, []int64{n}
	drain(ctx, wo, n, minDelivered)
	mark.end(rep)
	nio.say("DONE")
	nio.stopped(ctx)
	for _, a := range set.apis[:len(cnts)] { // no handler runs while the counts are read
		a.StopWaitingForMessages(benchTopic)
	}
	for _, c := range cnts {
		rep.Tallies = append(rep.Tallies, c.tally())
	}
	return werr
}
