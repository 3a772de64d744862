package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Sentinel errors of the bench.
var (
	ErrNoBinary     = errors.New("benchmarks: no aioconn binary given")
	ErrNoPython     = errors.New("benchmarks: aioconnectors not found (set AIOCONNECTORS_PATH or --aioconnectors-path)")
	ErrStart        = errors.New("benchmarks: connector did not start")
	ErrBadOptions   = errors.New("benchmarks: bad options")
	ErrNotSupported = errors.New("benchmarks: mode not supported yet")
)

// Modes.
const (
	ModeRate       = "rate"
	ModeThroughput = "throughput"
	ModePubsub     = "pubsub"
	ModeReqrep     = "reqrep"
	ModeFile       = "file"
	ModePersist    = "persist"   // disk_persistence_send: spill to an absent client, then replay
	ModeCertStorm  = "certstorm" // strict TLS: many first-time clients get certificates at once
)

// TLS modes of Options.TLS.
const (
	TLSOff      = ""          // plain TCP (use_ssl false)
	TLSStrict   = "strict"    // use_ssl true, ssl_allow_all false: certificates made for the run
	TLSAllowAll = "allow-all" // use_ssl true, ssl_allow_all true: server certificate only
)

// Options of one bench run. Zero values take the defaults of DefaultOptions.
type Options struct {
	Mode       string        `json:"mode"`
	Target     string        `json:"target"`      // TargetGo or TargetPython
	Bin        string        `json:"-"`           // aioconn binary started for TargetGo
	PythonPath string        `json:"-"`           // directory holding the aioconnectors package
	Clients    int           `json:"clients"`     // rate: client connectors (one process each on the socket path)
	Rate       float64       `json:"rate"`        // rate: messages/s per client
	Size       int           `json:"size"`        // data bytes per message (at least 20)
	Duration   time.Duration `json:"duration_ns"` // rate: sending time; other modes: cap on sending time
	Count      int64         `json:"count"`       // throughput, pubsub, reqrep: messages (upper bound)
	// Window is the most messages in flight (throughput, pubsub); 0 takes the mode's default:
	// DefaultWindow, or EmbeddedThroughputWindow for throughput on PathEmbedded.
	Window      int64  `json:"window"`
	Subscribers int    `json:"subscribers"` // pubsub
	Concurrency int    `json:"concurrency"` // reqrep concurrent phase
	FileSize    int64  `json:"file_size"`   // file
	FileChunk   int64  `json:"file_chunk"`  // file: 0 one with_file message; else chunks of this size (as the API splits)
	FileDir     string `json:"-"`           // file: where the source and received files go (default the run's temp dir)
	TLS         string `json:"tls"`         // TLSOff, TLSStrict or TLSAllowAll
	// Path is PathSocket (applications on unix sockets) or PathEmbedded (throughput, reqrep,
	// rate, pubsub: each application embedded in its connector's process, `aioconn bench_node`).
	Path string `json:"path,omitempty"`
	// NodeClients, with PathEmbedded and ModeRate, is the client connectors one bench_node
	// process hosts (0: defaultNodeClients).
	NodeClients int `json:"node_clients,omitempty"`
	// HostClients, on the socket path with the aioconn target (rate, pubsub), runs the client
	// connectors that many per process (`aioconn bench_host`: each its own sockets, TCP connection
	// and identity); 1 runs one process per client. 0 means all in one process in rate mode (as
	// `nats bench` hosts its clients: 100 Go runtimes on a small machine measure their own
	// contention more than the path, benchmarks/RESULTS.md) and one process each in pubsub mode.
	HostClients int `json:"host_clients,omitempty"`
	// Batch, with PathEmbedded, is the messages per api.SendMessages call (0 or 1: SendMessage
	// per message).
	Batch int `json:"batch,omitempty"`
	// Config, when set, is the config file of an already running server connector (ours or a
	// Python one): the bench starts only the clients it needs and drives that server's sockets.
	Config    string  `json:"config,omitempty"`
	StormRate float64 `json:"storm_rate"` // certstorm: msg/s of the established client during the storm
	// StormNice (certstorm) is the nice value (0-19) the storm clients' processes run at, every
	// thread: they stand for other machines, so they should not take the server's CPU. 19 also
	// puts them under the SCHED_IDLE policy (below any nice value). 0 (the zero value): not
	// changed. DefaultOptions: 19.
	StormNice int `json:"storm_nice"`
	// ProfileDir, when set, makes every aioconn connector the bench starts write a CPU profile
	// to ProfileDir/<name>.cpu.pprof (AIOCONN_CPUPROFILE), complete once the process stopped.
	ProfileDir string        `json:"-"`
	Drain      time.Duration `json:"drain_ns"` // wait for stragglers after the last send (no progress for this long)
	// Warmup (rate mode, socket path; ignored elsewhere) is sending time before Duration whose
	// messages are counted (loss, duplicates) but left out of the latency figures: connectors,
	// runtimes and the disk warm up in the first seconds (p99 per second of a run: 1.1 - 1.5 ms
	// in the first, 0.3 - 0.5 ms after; with at_least_once up to 30 ms in the first three).
	// Negative: none; 0: DefaultWarmup.
	Warmup      time.Duration `json:"warmup_ns,omitempty"`
	StartupTime time.Duration `json:"-"` // bound on starting and connecting all connectors
	// Progress, when set, receives a one-line status about once a second.
	Progress func(line string) `json:"-"`
}

// Default windows (Options.Window 0). On the embedded path the credit that opens the window
// crosses both connectors back to the sender, so at 16 000 the pipeline, not the sender, is
// the limit (benchmarks/RESULTS.md, "Embedded path"): throughput there defaults to 64 000.
const (
	DefaultWindow            = 16000
	EmbeddedThroughputWindow = 64000
)

// DefaultWarmup is Options.Warmup in rate mode on the socket path when unset.
const DefaultWarmup = 2 * time.Second

// DefaultOptions are the defaults of `aioconn bench` (Window 0: the mode's default, see
// Options.Window).
func DefaultOptions() Options {
	return Options{Mode: ModeRate, Target: TargetGo, Clients: 100, Rate: 40, Size: 100, Duration: 10 * time.Second,
		Count: 1_000_000, Subscribers: 10, Concurrency: 16, FileSize: 100 << 20,
		Drain: 2 * time.Second, StartupTime: 60 * time.Second, StormRate: 1000, StormNice: 19}
}

func (o *Options) fill() error {
	d := DefaultOptions()
	if o.Mode == "" {
		o.Mode = d.Mode
	}
	if o.Target == "" {
		o.Target = d.Target
	}
	if o.Target == "py" {
		o.Target = TargetPython
	}
	if o.Clients <= 0 {
		o.Clients = d.Clients
	}
	if o.Rate <= 0 {
		o.Rate = d.Rate
	}
	if o.Size <= 0 {
		o.Size = d.Size
	}
	o.Size = max(o.Size, payloadMin)
	if o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Count <= 0 {
		o.Count = d.Count
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
		if o.Mode == ModeThroughput && o.Path == PathEmbedded {
			o.Window = EmbeddedThroughputWindow
		}
	}
	if o.Subscribers <= 0 {
		o.Subscribers = d.Subscribers
	}
	if o.HostClients < 0 {
		return fmt.Errorf("%w: host clients %d", ErrBadOptions, o.HostClients)
	}
	if o.Mode == ModeRate && o.Path != PathEmbedded { // the socket path's rate mode
		if o.Warmup == 0 {
			o.Warmup = DefaultWarmup
		}
		o.Warmup = max(o.Warmup, 0)
		if o.HostClients == 0 && o.Target == TargetGo { // Python connectors are one process each
			o.HostClients = o.Clients
		}
	} else {
		o.Warmup = 0 // only the socket path's rate mode warms up
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.FileSize <= 0 {
		o.FileSize = d.FileSize
	}
	if o.Drain <= 0 {
		o.Drain = d.Drain
	}
	if o.StartupTime <= 0 {
		o.StartupTime = d.StartupTime
	}
	if o.StormRate <= 0 {
		o.StormRate = d.StormRate
	}
	if o.StormNice < 0 || o.StormNice > 19 {
		return fmt.Errorf("%w: storm nice %d (0 to 19)", ErrBadOptions, o.StormNice)
	}
	switch o.TLS {
	case TLSOff, TLSStrict, TLSAllowAll:
	case "allow_all", "allowall":
		o.TLS = TLSAllowAll
	default:
		return fmt.Errorf("%w: tls %q (strict or allow-all)", ErrBadOptions, o.TLS)
	}
	if o.Mode == ModeCertStorm && o.TLS == TLSOff {
		o.TLS = TLSStrict
	}
	if o.Mode == ModeCertStorm && o.TLS != TLSStrict {
		return fmt.Errorf("%w: certstorm needs strict TLS", ErrBadOptions)
	}
	if o.FileChunk < 0 || o.FileSize > 1<<40 {
		return fmt.Errorf("%w: file size %d, chunk %d", ErrBadOptions, o.FileSize, o.FileChunk)
	}
	switch o.Target {
	case TargetGo, TargetPython:
	default:
		return fmt.Errorf("%w: target %q (go or python)", ErrBadOptions, o.Target)
	}
	if o.Size > 64<<20 {
		return fmt.Errorf("%w: size %d", ErrBadOptions, o.Size)
	}
	if o.Clients > 2000 || o.Subscribers > 2000 || o.Concurrency > 10000 {
		return fmt.Errorf("%w: too many clients/subscribers/concurrency", ErrBadOptions)
	}
	return nil
}

// Phase is the measurement of one scenario (a run has one, reqrep two).
type Phase struct {
	Name       string `json:"name"`
	Sent       int64  `json:"sent"`
	Delivered  int64  `json:"delivered"`  // distinct sequence numbers received
	Lost       int64  `json:"lost"`       // sequence numbers sent and never received
	Duplicated int64  `json:"duplicated"` // sequence numbers received more than once
	Reordered  int64  `json:"reordered"`  // arrivals below the stream's previous sequence number
	// Malformed counts arrivals the bench could not read as its own payload (too short, unknown
	// stream, absurd sequence number): a corrupting connector shows here.
	Malformed int64   `json:"malformed,omitempty"`
	Elapsed   float64 `json:"elapsed_s"` // first send to last counted arrival
	SendRate  float64 `json:"send_rate"` // msg/s achieved by the senders
	Rate      float64 `json:"rate"`      // msg/s delivered
	MBps      float64 `json:"mb_per_s"`  // delivered data MB/s (1e6 bytes)
	// Latency is end-to-end (send timestamp in the message to arrival at the receiving
	// application) or, in reqrep, the round trip.
	Latency     *Latency        `json:"latency,omitempty"`
	Subscribers []SubscriberRes `json:"subscribers,omitempty"`
	File        *FileRes        `json:"file,omitempty"`
	Storm       *StormRes       `json:"storm,omitempty"`
	// P99BySecondMs (rate mode) is the p99 of each second's worth of arrivals (clients × rate
	// messages, in arrival order), ms: it tells one stall from a shifted distribution.
	P99BySecondMs []float64 `json:"p99_by_second_ms,omitempty"`
	// lat is the sorted latency sample (ns) behind Latency, kept for --plot.
	lat         []int64
	CPUPerMsgUs float64 `json:"connector_cpu_per_msg_us"` // all connector processes, per delivered message
	BenchCPUUs  float64 `json:"bench_cpu_per_msg_us"`     // the bench process itself
}

// SubscriberRes is one pubsub subscriber's figures.
type SubscriberRes struct {
	Name       string  `json:"name"`
	Delivered  int64   `json:"delivered"`
	Lost       int64   `json:"lost"`
	Duplicated int64   `json:"duplicated"`
	Rate       float64 `json:"rate"`
}

// ProcStats aggregates the connector processes of one role.
type ProcStats struct {
	Role           string  `json:"role"`
	Count          int     `json:"processes"`
	CPUSeconds     float64 `json:"cpu_s"`           // during the measured phases
	PeakRSSMBMax   float64 `json:"peak_rss_mb_max"` // largest VmHWM of one process
	PeakRSSMBTotal float64 `json:"peak_rss_mb_sum"`
	// RunqWaitMs is the time the processes' threads were runnable but waiting for a CPU during
	// the measured phases, over Slices time slices run (Linux schedstat; 0 when unavailable):
	// RunqWaitMs/Slices is the mean delay between a wake-up and running.
	RunqWaitMs float64 `json:"runq_wait_ms"`
	Slices     int64   `json:"slices"`
}

// MachineInfo says where a run happened.
type MachineInfo struct {
	NumCPU    int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// Result is the outcome of Run.
type Result struct {
	Options Options     `json:"options"`
	Machine MachineInfo `json:"machine"`
	Start   time.Time   `json:"start"`
	Phases  []Phase     `json:"phases"`
	Procs   []ProcStats `json:"connectors"`
	Notes   []string    `json:"notes,omitempty"`
}

func machineInfo() MachineInfo {
	m := MachineInfo{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// ALONote starts the note of a run whose connectors had AIOCONN_AT_LEAST_ONCE in their
// environment (the rest is its value).
const ALONote = "connectors' environment: AIOCONN_AT_LEAST_ONCE="

// Run executes one scenario: it starts the connectors it needs (and only those), drives them
// through their unix sockets, stops them by PID and returns the figures. Every wait is bounded;
// cancelling ctx stops the run early (the partial figures are returned with ctx's error).
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	res := &Result{Options: o, Machine: machineInfo(), Start: time.Now()}
	switch o.Mode {
	case ModeRate, ModeThroughput, ModePubsub, ModeReqrep, ModeFile, ModePersist, ModeCertStorm:
	default:
		return nil, fmt.Errorf("%w: mode %q (rate, throughput, pubsub, reqrep, file, persist, certstorm)", ErrBadOptions, o.Mode)
	}
	if o.Path == PathEmbedded {
		switch o.Mode {
		case ModeThroughput, ModeReqrep, ModeRate, ModePubsub:
		default:
			return nil, fmt.Errorf("%w: --path embedded runs mode throughput, reqrep, rate or pubsub", ErrBadOptions)
		}
		if o.Target != TargetGo || o.Config != "" || o.TLS != TLSOff {
			return nil, fmt.Errorf("%w: --path embedded runs aioconn bench_node processes, plain TCP, without --config", ErrBadOptions)
		}
	} else if o.Path != PathSocket {
		return nil, fmt.Errorf("%w: path %q (embedded, or none for unix sockets)", ErrBadOptions, o.Path)
	}
	if o.Config != "" && (o.Mode == ModePersist || o.Mode == ModeCertStorm) {
		return nil, fmt.Errorf("%w: --config with mode %s (the bench must start that server itself)", ErrBadOptions, o.Mode)
	}
	e, err := newEnv(&o)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	switch o.Mode {
	case ModeRate:
		if o.Path == PathEmbedded {
			err = runEmbeddedRate(ctx, e, &o, res)
		} else {
			err = runRate(ctx, e, &o, res)
		}
	case ModeThroughput:
		if o.Path == PathEmbedded {
			err = runEmbedded(ctx, e, &o, res)
		} else {
			err = runThroughput(ctx, e, &o, res)
		}
	case ModePubsub:
		if o.Path == PathEmbedded {
			err = runEmbeddedPubsub(ctx, e, &o, res)
		} else {
			err = runPubsub(ctx, e, &o, res)
		}
	case ModeReqrep:
		if o.Path == PathEmbedded {
			err = runEmbedded(ctx, e, &o, res)
		} else {
			err = runReqrep(ctx, e, &o, res)
		}
	case ModeFile:
		err = runFile(ctx, e, &o, res)
	case ModePersist:
		err = runPersist(ctx, e, &o, res)
	case ModeCertStorm:
		err = runCertStorm(ctx, e, &o, res)
	}
	res.Procs = e.stats()
	if o.Target == TargetPython {
		res.Notes = append(res.Notes, "target: Python aioconnectors 1.0.33 connectors from "+e.pyPath)
	}
	if e.ext != nil {
		res.Notes = append(res.Notes, e.ext.note())
	}
	// the connectors inherit the bench's environment; create_connector (cli.AtLeastOnceEnv)
	// applies at_least_once from this variable: say so, the figures depend on it
	if v := os.Getenv("AIOCONN_AT_LEAST_ONCE"); v != "" {
		res.Notes = append(res.Notes, ALONote+v)
	}
	if o.TLS != TLSOff {
		res.Notes = append(res.Notes, "tls: "+o.TLS+" (certificates made for the run by create_certificates"+
			map[bool]string{true: "; each client got its certificate through _ssl on its first connection)", false: ")"}[o.TLS == TLSStrict])
	}
	return res, err
}

// progress reports about once a second until stop is closed.
func progress(o *Options, stop <-chan struct{}, line func() string) {
	if o.Progress == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			o.Progress(line())
		}
	}
}
