package cli

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/trace"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/benchmarks"
	"github.com/aioconn/aioconn/connector"
)

// bench_node is the child process of `aioconn bench --path embedded`: one connector embedded in
// this process with its application (api.NewWithTransport over connector.Local), so the only
// socket on the message path is the TCP link between the two nodes. It is not listed in the help.
//
// Modes rate, pubsub and certstorm (the storm's first-time clients) are benchmarks.RunNode (its
// protocol is documented there). Protocol of
// throughput and reqrep with the parent (the bench), one line each on stdout:
//   - server: "READY <port>" once listening; "DONE" when --count messages arrived;
//   - both: a JSON line (benchmarks.NodeReport) when stdin reaches EOF, then exit.
//
// The receiving application returns credit to the sender through the connectors themselves
// (message type "credit" from the server application to client1, every window/8 messages), so
// the sender keeps at most --window messages in flight without any side channel.

const benchNodeCreditType = "credit"

func runBenchNode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench_node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "server", "server (receives) or client (sends); rate and pubsub: server or clients; certstorm: clients")
	mode := fs.String("mode", "throughput", "throughput, reqrep (sequential await_response round trips), rate, pubsub or certstorm")
	port := fs.Int("port", 0, "client: the server's TCP port")
	count := fs.Int64("count", 1000, "messages")
	size := fs.Int("size", 100, "data bytes per message (at least 16)")
	window := fs.Int64("window", 16000, "messages in flight at most")
	dir := fs.String("dir", "", "connector_files_dirpath")
	batch := fs.Int("batch", 1, "client: messages per SendMessages call (1: SendMessage per message)")
	// rate and pubsub (benchmarks.RunNode)
	var no benchmarks.NodeOptions
	fs.IntVar(&no.Streams, "streams", 0, "rate server: clients in the whole run")
	fs.IntVar(&no.First, "first", 0, "rate and certstorm clients: index of the first client hosted")
	fs.IntVar(&no.Clients, "clients", 1, "rate and certstorm clients: client connectors hosted")
	fs.IntVar(&no.Subscribers, "subscribers", 1, "pubsub clients: subscriber connectors hosted")
	fs.Float64Var(&no.Rate, "rate", 40, "rate: msg/s per client")
	fs.DurationVar(&no.Duration, "duration", 10*time.Second, "rate: sending time; pubsub: cap on sending time")
	fs.DurationVar(&no.Drain, "drain", 2*time.Second, "stop waiting for stragglers after this long without progress")
	fs.DurationVar(&no.StartupTime, "startup", 60*time.Second, "bound on connecting and each readiness step")
	fs.StringVar(&no.CertDir, "cert-dir", "", "certstorm clients: certificates_directory_path (strict TLS, default client certificate only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	storm := *mode == benchmarks.ModeCertStorm
	if *mode == benchmarks.ModeRate || *mode == benchmarks.ModePubsub || storm {
		if *dir == "" || *size < 20 || *window < 256 || no.Clients < 1 || no.Subscribers < 1 || no.Rate <= 0 ||
			no.Duration <= 0 || no.Drain <= 0 || no.StartupTime <= 0 {
			fmt.Fprintln(stderr, "bench_node: need --dir, --size >= 20, --window >= 256, --clients/--subscribers >= 1, positive --rate, --duration, --drain, --startup")
			return 2
		}
		if storm && (*role != "clients" || no.CertDir == "" || *port <= 0) {
			fmt.Fprintln(stderr, "bench_node: certstorm runs --role clients with --cert-dir and --port")
			return 2
		}
		no.Mode, no.Role, no.Port, no.Dir, no.Size, no.Count, no.Window = *mode, *role, *port, *dir, *size, *count, *window
		// The rate clients share one group of loops (benchmarks.HostLoops) on Go's default Ps.
		// Otherwise a node hosting several connectors gives each its own P (and one event loop
		// each): gnet waits in epoll_wait through a plain blocking syscall, so with fewer Ps than
		// loops a loop woken by the kernel waits for sysmon to take the P back from a loop that
		// is still blocked (measured: pub/sub 1→10 in one process, 30 000 msg/s per subscriber
		// on one P, 130 000 on 16; benchmarks/RESULTS.md "Embedded rate and pub/sub").
		hosted := 1
		if *role == "clients" {
			hosted = no.Clients
			if *mode == benchmarks.ModePubsub {
				hosted = no.Subscribers + 1
			}
		}
		// Certstorm clients are 200 TLS connectors in one process whose handshakes (crypto/tls, on
		// goroutines) come all at once; the node keeps every CPU so that they run side by side.
		if storm && os.Getenv("GOMAXPROCS") == "" {
			os.Setenv("GOMAXPROCS", strconv.Itoa(runtime.NumCPU()))
		} else if _, share := benchmarks.HostLoops(hosted); hosted > 1 && os.Getenv("GOMAXPROCS") == "" &&
			!(share && *mode == benchmarks.ModeRate) { // shared loops: nodeRateClients
			os.Setenv("GOMAXPROCS", strconv.Itoa(hosted+1))
			runtime.GOMAXPROCS(hosted + 1)
		}
		if hosted > 1 && os.Getenv("AIOCONN_LOOPS") == "" {
			os.Setenv("AIOCONN_LOOPS", "1") // not one loop per P in every hosted connector
		}
		stopProf := benchNodeSetup()
		rep := benchmarks.RunNode(ctx, no, os.Stdin, stdout)
		stopProf()
		b, _ := json.Marshal(rep)
		fmt.Fprintf(stdout, "%s\n", b)
		return 0
	}
	if *dir == "" || *count <= 0 || *size < 16 || *window < 8 || (*role != "server" && *role != "client") ||
		(*mode != "throughput" && *mode != "reqrep") {
		fmt.Fprintln(stderr, "bench_node: need --dir, --count > 0, --size >= 16, --window >= 8, --role server|client, --mode throughput|reqrep")
		return 2
	}
	types := []string{"any", benchNodeCreditType}
	js := benchmarks.EmbeddedConfig(*role == "server", "client1", *port, *dir, types, types, nil)
	defer benchNodeSetup()()
	cn, a, err := benchmarks.StartEmbedded(js)
	if err != nil {
		fmt.Fprintln(stderr, "bench_node:", err)
		return 1
	}
	defer cn.Close()
	defer a.Close()
	out := bufio.NewWriter(stdout)
	stdinEOF := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stdinEOF) }()
	rep := benchmarks.NodeReport{Role: *role}
	switch {
	case *mode == "reqrep" && *role == "server":
		benchNodeResponder(ctx, cn, a, out, stdinEOF, *count, &rep)
	case *mode == "reqrep":
		benchNodeRequester(ctx, cn, a, stdinEOF, *count, *size, &rep)
	case *role == "server":
		benchNodeServer(ctx, cn, a, out, stdinEOF, *count, *window, &rep)
	default:
		benchNodeClient(ctx, cn, a, stdinEOF, *count, *size, *window, max(1, *batch), &rep)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		rep.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		rep.MaxRSSMB = float64(ru.Maxrss) / 1024
	}
	b, _ := json.Marshal(&rep)
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
	return 0
}

func benchNodeServer(ctx context.Context, cn *connector.Connector, a *api.API, out *bufio.Writer, stop <-chan struct{},
	count, window int64, rep *benchmarks.NodeReport) {
	fmt.Fprintf(out, "READY %d\n", cn.TCPAddr().Port)
	out.Flush()
	step := window / 8
	sample := count / (1 << 16)
	if sample < 1 {
		sample = 1
	}
	done := make(chan struct{})
	var got, last int64 = 0, -1
	var credit [24]byte
	a.StartWaitingForMessages("any", func(m *api.Message) {
		if len(m.Data) < 16 {
			return
		}
		seq := int64(binary.LittleEndian.Uint64(m.Data))
		ts := int64(binary.LittleEndian.Uint64(m.Data[8:]))
		if seq != last+1 {
			rep.Reordered++
		}
		last = seq
		got++
		// The clock is read for the first message, the sampled ones, every 64th and the last
		// expected: rep.Last is then at most 63 deliveries early when the run is cut short.
		if got == 1 || got%sample == 0 || got%64 == 0 || got == count {
			now := time.Now().UnixNano()
			if got == 1 {
				rep.First = now
			}
			rep.Last = now
			if got%sample == 0 {
				rep.LatencyNs = append(rep.LatencyNs, now-ts)
			}
		}
		if got%step == 0 || got == count {
			c := strconv.AppendInt(credit[:0], got, 10)
			a.SendMessage(ctx, api.SendOptions{MessageType: benchNodeCreditType, DestinationID: "client1", Data: c})
		}
		if got == count {
			close(done)
		}
	}, false)
	benchNodeAwaitDone(ctx, a, out, stop, done)
	rep.Received = got
}

func benchNodeClient(ctx context.Context, cn *connector.Connector, a *api.API, stop <-chan struct{},
	count int64, size int, window int64, batch int, rep *benchmarks.NodeReport) {
	var credit atomic.Int64
	more := make(chan struct{}, 1)
	a.StartWaitingForMessages(benchNodeCreditType, func(m *api.Message) {
		if n, err := strconv.ParseInt(string(m.Data), 10, 64); err == nil && n > credit.Load() {
			credit.Store(n)
			select {
			case more <- struct{}{}:
			default:
			}
		}
	}, false)
	if rep.Err = benchNodeWaitConnected(cn, stop); rep.Err != "" {
		return
	}
	msgs := make([]api.SendOptions, batch)
	for i := range msgs {
		msgs[i] = api.SendOptions{MessageType: "any", Data: make([]byte, size)}
	}
	var n int64
	var now uint64
	rep.SendStart = time.Now().UnixNano()
loop:
	for n < count {
		k := int64(batch)
		if count-n < k {
			k = count - n
		}
		waited := false
		for n+k-credit.Load() > window {
			waited = true
			select {
			case <-more:
			case <-stop:
				break loop
			case <-time.After(50 * time.Millisecond):
			}
		}
		// One clock read per call, and per 16 calls of one message or after a wait for credit: a
		// stamp at most 15 sends early (microseconds, against a latency of queueing behind the
		// window) is worth not paying the clock on every message (the bench must cost well under
		// 0.1 µs per message).
		if k > 1 || n%16 == 0 || waited {
			now = uint64(time.Now().UnixNano())
		}
		for i := int64(0); i < k; i++ {
			binary.LittleEndian.PutUint64(msgs[i].Data, uint64(n+i))
			binary.LittleEndian.PutUint64(msgs[i].Data[8:], now)
		}
		var err error
		if k == 1 && batch == 1 {
			err = a.SendMessage(ctx, msgs[0])
		} else {
			var m int
			m, err = a.SendMessages(ctx, msgs[:k])
			k = int64(m)
		}
		n += k
		if err != nil {
			rep.Err = err.Error()
			break
		}
	}
	rep.SendEnd = time.Now().UnixNano()
	rep.Sent = n
	<-stop
	a.StopWaitingForMessages(benchNodeCreditType)
}

// benchNodeResponder answers every await_response request of type "any" with its data, to its
// source and request_id, and says DONE after count requests.
func benchNodeResponder(ctx context.Context, cn *connector.Connector, a *api.API, out *bufio.Writer, stop <-chan struct{},
	count int64, rep *benchmarks.NodeReport) {
	fmt.Fprintf(out, "READY %d\n", cn.TCPAddr().Port)
	out.Flush()
	done := make(chan struct{})
	var got int64
	a.StartWaitingForMessages("any", func(m *api.Message) {
		id, _ := m.Get("request_id")
		rid, _ := id.Int()
		src, _ := m.Get("source_id")
		dst, _ := src.Str()
		a.SendMessage(ctx, api.SendOptions{MessageType: "any", DestinationID: dst, ResponseID: rid, Data: m.Data})
		got++
		if got == count {
			close(done)
		}
	}, false)
	benchNodeAwaitDone(ctx, a, out, stop, done)
	rep.Received = got
}

// benchNodeRequester sends count await_response requests one after the other and records each
// round trip.
func benchNodeRequester(ctx context.Context, cn *connector.Connector, a *api.API, stop <-chan struct{},
	count int64, size int, rep *benchmarks.NodeReport) {
	if rep.Err = benchNodeWaitConnected(cn, stop); rep.Err != "" {
		return
	}
	data := make([]byte, size)
	rep.LatencyNs = make([]int64, 0, min(count, 1<<20))
	rep.SendStart = time.Now().UnixNano()
	for n := int64(0); n < count; n++ {
		select {
		case <-stop:
			n = count
			continue
		default:
		}
		binary.LittleEndian.PutUint64(data, uint64(n))
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := a.SendMessageAwaitResponse(rctx, api.SendOptions{MessageType: "any", RequestID: n, Data: data})
		cancel()
		if err != nil {
			rep.Err = fmt.Sprintf("request %d: %v", n, err)
			break
		}
		rtt := time.Since(t0).Nanoseconds()
		if len(m.Data) < 8 || int64(binary.LittleEndian.Uint64(m.Data)) != n {
			rep.Reordered++
		}
		rep.Sent++
		rep.Received++
		rep.Last = time.Now().UnixNano()
		if len(rep.LatencyNs) < cap(rep.LatencyNs) {
			rep.LatencyNs = append(rep.LatencyNs, rtt)
		}
	}
	rep.SendEnd = time.Now().UnixNano()
	<-stop
}

// benchNodeAwaitDone says DONE on out once done is closed (unless stop or ctx comes first), then
// waits for stop and removes the "any" handler, so that the caller may read what the handler
// counted.
func benchNodeAwaitDone(ctx context.Context, a *api.API, out *bufio.Writer, stop, done <-chan struct{}) {
	select {
	case <-done:
		fmt.Fprintln(out, "DONE")
		out.Flush()
	case <-stop:
	case <-ctx.Done():
	}
	<-stop
	a.StopWaitingForMessages("any")
}

// benchNodeWaitConnected waits until cn has a connected peer; it returns "" then, or why not.
func benchNodeWaitConnected(cn *connector.Connector, stop <-chan struct{}) string {
	if err := benchmarks.WaitConnected(cn, stop, 20*time.Second); err != nil {
		return err.Error()
	}
	return ""
}

// benchNodeSetup starts the CPU profile AIOCONN_CPUPROFILE names (as create_connector does), the
// execution trace AIOCONN_TRACE asks for, and
// runs the node on one P unless GOMAXPROCS is set, as create_connector runs a plaintext
// connector. Measured on 2 cores (benchmarks/RESULTS.md): the sending application and its
// loop on one P batch more per write (2.15-2.33 M msg/s at --window 64000) than on two
// (1.72-1.78 M), at 0.70 instead of 1.05 µs of CPU per message. It returns the profile's stop.
func benchNodeSetup() func() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	stops := []func(){startCPUProfile()}
	// AIOCONN_TRACE=<prefix>: a runtime execution trace to <prefix>.<pid>.trace (scheduling
	// latency: go tool trace -pprof=sched).
	if prefix := os.Getenv("AIOCONN_TRACE"); prefix != "" {
		if f, err := os.Create(prefix + "." + strconv.Itoa(os.Getpid()) + ".trace"); err == nil {
			trace.Start(f)
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
