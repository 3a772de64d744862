package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"

	"github.com/aioconn/aioconn/benchmarks"
)

const benchUsage = `usage: aioconn bench [--mode rate|throughput|pubsub|reqrep|file|persist|certstorm] [options]

Starts its own connectors on 127.0.0.1 (free ports, a temp directory), drives them through their
unix sockets as applications do, counts every message by sequence number at the receiver, prints
a table (or --json) and stops exactly the processes it started.

modes:
  rate        (default) --clients N client connectors (all in one process unless --host-clients), each sending --rate msg/s
              of --size bytes for --duration to one server; loss, duplicates, latency percentiles
  throughput  one client → server as fast as an in-flight --window allows (--count, --duration cap)
  pubsub      one publisher → --subscribers N through a pubsub_central_broker server
  reqrep      await_response round trips: sequential, then --concurrency concurrent requesters
  file        one --file-size file (with_file) from a client app through both connectors to the
              server's disk; seconds, MB/s, SHA-256 verified, peak RSS of each connector
              (--file-chunk N: as the Python API splits big files, chunks reassembled by the server)
  persist     disk_persistence_send: the server app sends --count messages to an absent client
              (spill rate), then the client starts and gets them replayed (replay rate, loss)
  certstorm   strict TLS: --clients first-time clients start at once and get certificates through
              _ssl, while an established client streams --storm-rate msg/s (its latency is measured);
              the storm clients are hosted by aioconn bench_node processes (--node-clients each,
              default all in one), running and waiting before the measurement, released by one GO

--tls runs any mode in strict TLS with certificates made for the run (each client gets its own
certificate on its first connection); --tls-allow-all in allow-all TLS. --config FILE targets an
already running server connector (aioconn or Python) instead of starting one: its TLS mode,
certificates directory and sockets are used, and the bench starts only the clients.
--path embedded (throughput, reqrep, rate, pubsub): aioconn bench_node processes, each hosting
connectors with their applications embedded (in-process API, no unix socket), linked by TCP; in
throughput, credit flows back through the link; in rate, --node-clients client connectors share
a process (default 100); in pubsub, the publisher and the subscribers share one process, the broker
has its own.

options:
`

// runBench is `aioconn bench`: see benchUsage. Exit codes: 0 done, 1 the run failed (partial
// figures are still printed), 2 bad arguments, 3 mode not supported yet.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	d := benchmarks.DefaultOptions()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := d
	fs.StringVar(&o.Mode, "mode", d.Mode, "scenario: rate, throughput, pubsub, reqrep, file")
	fs.IntVar(&o.Clients, "clients", d.Clients, "rate: client connectors (see --host-clients)")
	fs.Float64Var(&o.Rate, "rate", d.Rate, "rate: messages per second per client")
	fs.IntVar(&o.Size, "size", d.Size, "data bytes per message (at least 20: sequence number and timestamp)")
	fs.DurationVar(&o.Duration, "duration", d.Duration, "rate: sending time; other modes: cap on sending time")
	warmup := fs.Duration("warmup", benchmarks.DefaultWarmup, "rate (socket path): sending time before --duration whose messages are counted but\n"+
		"left out of the latency figures (connectors and runtimes warm up; 0: none)")
	fs.Int64Var(&o.Count, "count", d.Count, "throughput, pubsub, reqrep: messages or requests (upper bound)")
	fs.Int64Var(&o.Window, "window", 0, "throughput, pubsub: messages in flight at most (default 16000; 64000 for throughput with --path embedded,\n"+
		"where the credit crosses both connectors back and a 16000 window leaves the pipeline, not the sender, as the limit)")
	fs.IntVar(&o.Subscribers, "subscribers", d.Subscribers, "pubsub: subscriber connectors")
	fs.IntVar(&o.Concurrency, "concurrency", d.Concurrency, "reqrep: concurrent requesters of the second phase")
	fs.Int64Var(&o.FileSize, "file-size", d.FileSize, "file: bytes")
	fs.DurationVar(&o.Drain, "drain", d.Drain, "after the last send, wait for stragglers until none arrives for this long")
	fs.StringVar(&o.Target, "target", d.Target, "connectors to start: go (aioconn) or python (aioconnectors 1.0.33 from $AIOCONNECTORS_PATH)")
	impl := fs.String("impl", "", "same as --target (go or py)")
	fs.StringVar(&o.Bin, "bin", "", "aioconn binary to start as connector (default: this program)")
	fs.StringVar(&o.PythonPath, "aioconnectors-path", os.Getenv("AIOCONNECTORS_PATH"), "directory holding the aioconnectors package")
	fs.Int64Var(&o.FileChunk, "file-chunk", 0, "file: send in chunks of this many bytes, as the API does (0: one with_file message)")
	fs.StringVar(&o.FileDir, "file-dir", "", "file: directory for the source and received files (default the run's temp dir)")
	fs.Float64Var(&o.StormRate, "storm-rate", d.StormRate, "certstorm: msg/s of the established client")
	fs.IntVar(&o.StormNice, "storm-nice", d.StormNice, "certstorm: nice value of the storm clients' processes, every thread (they stand for other machines;\n"+
		"19 also means the SCHED_IDLE policy; 0: unchanged)")
	fs.StringVar(&o.Path, "path", "", "throughput, reqrep, rate, pubsub: embedded = each application inside its connector's process (no unix socket)")
	fs.IntVar(&o.NodeClients, "node-clients", 0, "rate with --path embedded: client connectors per bench_node process (default 100);\n"+
		"certstorm: storm clients per bench_node process (default all in one)")
	fs.IntVar(&o.HostClients, "host-clients", 0, "rate and pubsub on the socket path: client connectors per process (aioconn bench_host;\n"+
		"each keeps its own sockets, TCP connection and identity); 1: one process per client;\n"+
		"default: all in one process in rate mode, one process each in pubsub mode")
	fs.IntVar(&o.Batch, "batch", 0, "with --path embedded: messages per SendMessages call (default one SendMessage per message)")
	tlsStrict := fs.Bool("tls", false, "strict TLS (use_ssl, certificates made for the run)")
	tlsAll := fs.Bool("tls-allow-all", false, "allow-all TLS (use_ssl, ssl_allow_all)")
	fs.StringVar(&o.Config, "config", "", "config file of an already running server connector to target")
	fs.StringVar(&o.ProfileDir, "profile-dir", "", "each aioconn connector started writes a CPU profile DIR/<name>.cpu.pprof")
	selfProf := fs.String("bench-cpuprofile", "", "write a CPU profile of the bench process itself (its senders and receivers) to this file")
	plot := fs.String("plot", "", "write the latency histogram and percentile curve to this SVG file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	fs.Usage = func() {
		io.WriteString(stderr, benchUsage)
		fs.PrintDefaults()
	}
	if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
		fs.SetOutput(stdout)
		io.WriteString(stdout, benchUsage)
		fs.PrintDefaults()
		return 0
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Warmup = *warmup
	if o.Warmup == 0 {
		o.Warmup = -1 // none (Options reads 0 as the default)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "aioconn bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *impl != "" {
		o.Target = *impl
	}
	if strings.EqualFold(o.Target, "py") {
		o.Target = benchmarks.TargetPython
	}
	if o.Bin == "" && o.Target == benchmarks.TargetGo {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "aioconn bench: %v (give --bin)\n", err)
			return 2
		}
		o.Bin = exe
	}
	if *tlsStrict && *tlsAll {
		fmt.Fprintln(stderr, "aioconn bench: --tls and --tls-allow-all exclude each other")
		return 2
	}
	if *tlsStrict {
		o.TLS = benchmarks.TLSStrict
	} else if *tlsAll {
		o.TLS = benchmarks.TLSAllowAll
	}
	if *selfProf != "" {
		f, err := os.Create(*selfProf)
		if err != nil {
			fmt.Fprintf(stderr, "aioconn bench: %v\n", err)
			return 2
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	pl := &progressLine{w: stderr, tty: isTerminal(stderr)}
	if !*quiet {
		o.Progress = pl.show
	}
	res, err := benchmarks.Run(ctx, o)
	pl.end()
	if errors.Is(err, benchmarks.ErrNotSupported) {
		fmt.Fprintf(stderr, "aioconn bench: %v\n", err)
		return 3
	}
	if errors.Is(err, benchmarks.ErrBadOptions) {
		fmt.Fprintf(stderr, "aioconn bench: %v\n", err)
		return 2
	}
	if res != nil && len(res.Phases) > 0 {
		if *asJSON {
			benchmarks.WriteJSON(stdout, res)
		} else {
			benchmarks.WriteTable(stdout, res)
		}
	}
	code := 0
	if *plot != "" && res != nil {
		if perr := writePlotFile(*plot, res); perr != nil {
			fmt.Fprintf(stderr, "aioconn bench: plot: %v\n", perr)
			code = 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "aioconn bench: %v\n", err)
		return 1
	}
	return code
}

func writePlotFile(path string, res *benchmarks.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := benchmarks.WritePlot(f, res); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// progressLine prints progress: on a terminal one line rewritten in place (\r, erase to the
// end of the line), otherwise one plain line per report. Safe for concurrent use; after end,
// late reports (a progress goroutine finishing its tick) are dropped.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	shown bool
	done  bool
}

func (p *progressLine) show(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return
	}
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	p.shown = true
}

// end erases a rewritten line so that what follows starts on a clean line, and stops reports.
func (p *progressLine) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}
