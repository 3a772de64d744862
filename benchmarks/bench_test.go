package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"

	"golang.org/x/sys/unix"
)

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	t.Skip("go.mod not found above the test directory")
	return ""
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// aioconnBin builds ./cmd/aioconn once per test binary; the test is skipped when it does not
// build (another package of the repo may be mid-edit).
func aioconnBin(t testing.TB) string {
	root := repoRoot(t)
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "acbin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "aioconn")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/aioconn")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New(strings.TrimSpace(string(out)))
		}
	})
	if binErr != nil {
		t.Skipf("cannot build the aioconn binary: %v", binErr)
	}
	return binPath
}

// TestMain removes the binary aioconnBin built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func smokeOptions(bin string) Options {
	o := DefaultOptions()
	o.Bin = bin
	o.Drain = 500 * time.Millisecond
	o.StartupTime = 10 * time.Second
	o.Warmup = -1 // none: the smoke tests count small numbers
	return o
}

func checkLossless(t *testing.T, ph Phase) {
	t.Helper()
	if ph.Sent == 0 || ph.Delivered != ph.Sent || ph.Lost != 0 || ph.Duplicated != 0 || ph.Malformed != 0 {
		t.Errorf("%s: sent %d delivered %d lost %d dup %d malformed %d", ph.Name, ph.Sent, ph.Delivered, ph.Lost, ph.Duplicated, ph.Malformed)
	}
	if ph.Latency == nil || ph.Latency.Count != int(ph.Delivered) || ph.Latency.Max < ph.Latency.P50 {
		t.Errorf("%s: latency %+v", ph.Name, ph.Latency)
	}
}

// TestTallyRoundTrip: a counter reported by a bench_node (Tally, through JSON) and rebuilt by the
// parent gives the same loss, duplicates and latency as the original.
func TestTallyRoundTrip(t *testing.T) {
	c := newCounter(2, true)
	d := func(st uint32, seq uint64, ts int64) []byte {
		b := make([]byte, payloadMin)
		putPayload(b, st, seq, ts)
		return b
	}
	c.addBatch([][]byte{d(0, 0, 10), d(0, 2, 20), d(0, 2, 20), d(1, 70, 30), d(1, 1, 40), d(probeStream, 0, 0), {1}}, 100)
	b, err := json.Marshal(c.tally())
	if err != nil {
		t.Fatal(err)
	}
	var tl Tally
	if err := json.Unmarshal(b, &tl); err != nil {
		t.Fatal(err)
	}
	r := tl.counter(3) // a stream the receiver never saw counts as lost
	sent := []int64{3, 71, 2}
	lost, delivered := r.missing(sent)
	wl, wd := c.missing(sent[:2])
	if lost != wl+2 || delivered != wd || delivered != 4 || r.dup != 1 || r.ooo != 1 || r.bad != 1 || r.lastRecv != 100 {
		t.Errorf("lost %d delivered %d dup %d ooo %d bad %d last %d", lost, delivered, r.dup, r.ooo, r.bad, r.lastRecv)
	}
	if l := latencyOf(r.lat); l == nil || l.Count != 4 || l.Max != 0.09 || l.Min != 0.06 {
		t.Errorf("latency %+v", l)
	}
}

// TestSmoke runs every mode for a tiny count against aioconn connectors (about 2 s in all).
func TestSmoke(t *testing.T) {
	bin := aioconnBin(t)
	ctx := context.Background()
	t.Run("rate", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Clients, o.HostClients, o.Rate, o.Duration = 3, 1, 50, 300*time.Millisecond // one process each
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Phases) != 1 || res.Phases[0].Sent != 3*15 {
			t.Fatalf("phases %+v", res.Phases)
		}
		checkLossless(t, res.Phases[0])
		if len(res.Procs) != 2 || res.Procs[1].Count != 3 || res.Procs[0].PeakRSSMBMax <= 0 {
			t.Errorf("procs %+v", res.Procs)
		}
	})
	t.Run("rate-hosted", func(t *testing.T) {
		o := smokeOptions(bin)
		// 3 client connectors in two bench_host processes (2 + 1), driven over their sockets
		// and a warm-up of 200 ms: 10 messages per client counted, not timed
		o.Clients, o.HostClients, o.Rate, o.Duration, o.Warmup = 3, 2, 50, 300*time.Millisecond, 200*time.Millisecond
		o.ProfileDir = t.TempDir()
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if ph := res.Phases[0]; len(res.Phases) != 1 || ph.Sent != 3*25 || ph.Delivered != ph.Sent || ph.Lost != 0 || ph.Duplicated != 0 {
			t.Fatalf("phases %+v", res.Phases)
		}
		// a message due just before the warm-up's end may be written just after it
		if l := res.Phases[0].Latency; l == nil || l.Count < 3*15 || l.Count > 3*17 || len(res.Phases[0].P99BySecondMs) != 1 {
			t.Errorf("latency %+v, p99 by second %v: want the 45 messages sent after the warm-up", l, res.Phases[0].P99BySecondMs)
		}
		if len(res.Procs) != 2 || res.Procs[1].Role != "client" || res.Procs[1].Count != 2 || res.Procs[1].PeakRSSMBMax <= 0 {
			t.Errorf("procs %+v", res.Procs)
		}
		if !strings.Contains(strings.Join(res.Notes, "\n"), "3 client connectors, 2 per process (aioconn bench_host") {
			t.Errorf("notes %q", res.Notes)
		}
		for _, n := range []string{"host1", "host2"} {
			if st, err := os.Stat(filepath.Join(o.ProfileDir, n+".cpu.pprof")); err != nil || st.Size() == 0 {
				t.Errorf("profile of %s: %v", n, err)
			}
		}
	})
	t.Run("throughput-embedded", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Path, o.Count, o.Window, o.Size = ModeThroughput, PathEmbedded, 5000, 400, 64
		o.ProfileDir = t.TempDir()
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		ph := res.Phases[0]
		if ph.Sent != 5000 || ph.Delivered != 5000 || ph.Lost != 0 || ph.Reordered != 0 || ph.Rate <= 0 ||
			ph.Latency == nil || ph.Latency.Count != 5000 {
			t.Errorf("phase %+v", ph)
		}
		profDir := o.ProfileDir
		o.Batch, o.ProfileDir = 64, "" // SendMessages batches; 5000 is not a multiple of 64
		if res, err := Run(ctx, o); err != nil {
			t.Fatal(err)
		} else if ph := res.Phases[0]; ph.Sent != 5000 || ph.Delivered != 5000 || ph.Reordered != 0 {
			t.Errorf("batch phase %+v", ph)
		}
		if len(res.Procs) != 2 || res.Procs[0].CPUSeconds <= 0 || res.Procs[1].PeakRSSMBMax <= 0 {
			t.Errorf("procs %+v", res.Procs)
		}
		for _, n := range []string{"server", "client1"} {
			if st, err := os.Stat(filepath.Join(profDir, n+".cpu.pprof")); err != nil || st.Size() == 0 {
				t.Errorf("profile of %s: %v", n, err)
			}
		}
	})
	t.Run("rate-embedded", func(t *testing.T) {
		o := smokeOptions(bin)
		// 3 clients in two bench_node processes (2 + 1): several connectors share a process
		o.Mode, o.Path, o.Clients, o.NodeClients, o.Rate, o.Duration = ModeRate, PathEmbedded, 3, 2, 50, 300*time.Millisecond
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Phases) != 1 || res.Phases[0].Sent != 3*15 {
			t.Fatalf("phases %+v", res.Phases)
		}
		checkLossless(t, res.Phases[0])
		if ph := res.Phases[0]; ph.Reordered != 0 || ph.CPUPerMsgUs <= 0 || ph.Latency.P50 <= 0 {
			t.Errorf("phase %+v", ph)
		}
		if len(res.Procs) != 2 || res.Procs[0].Count != 1 || res.Procs[1].Count != 2 || res.Procs[1].PeakRSSMBMax <= 0 {
			t.Errorf("procs %+v", res.Procs)
		}
	})
	t.Run("pubsub-embedded", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Path, o.Count, o.Window, o.Subscribers = ModePubsub, PathEmbedded, 1000, 500, 2
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		ph := res.Phases[0]
		if ph.Sent != 1000 || ph.Delivered != 2000 || ph.Lost != 0 || ph.Duplicated != 0 || ph.Reordered != 0 ||
			len(ph.Subscribers) != 2 || ph.Latency == nil || ph.Latency.Count != 1000 {
			t.Fatalf("%+v", ph)
		}
		for _, s := range ph.Subscribers {
			if s.Delivered != 1000 || s.Lost != 0 || s.Duplicated != 0 || s.Rate <= 0 {
				t.Errorf("subscriber %+v", s)
			}
		}
	})
	t.Run("reqrep-embedded", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Path, o.Count, o.Size = ModeReqrep, PathEmbedded, 200, 32
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		ph := res.Phases[0]
		if ph.Sent != 200 || ph.Delivered != 200 || ph.Reordered != 0 || ph.Elapsed <= 0 ||
			ph.Latency == nil || ph.Latency.Count != 200 || ph.Latency.P50 <= 0 {
			t.Errorf("phase %+v", ph)
		}
	})
	t.Run("throughput", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Count, o.Window, o.Size = ModeThroughput, 5000, 1000, 64
		o.ProfileDir = t.TempDir()
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		checkLossless(t, res.Phases[0])
		for _, n := range []string{"server", "t1"} {
			if st, err := os.Stat(filepath.Join(o.ProfileDir, n+".cpu.pprof")); err != nil || st.Size() == 0 {
				t.Errorf("profile of %s: %v", n, err)
			}
		}
		if res.Phases[0].Reordered != 0 {
			t.Errorf("reordered %d on one connection", res.Phases[0].Reordered)
		}
		for _, nt := range res.Notes {
			if strings.HasPrefix(nt, ALONote) {
				t.Errorf("note %q without AIOCONN_AT_LEAST_ONCE set", nt)
			}
		}
	})
	// the run says when its connectors had at_least_once from the environment (summarize.py
	// refuses issue 10's figures without it)
	t.Run("throughput-at-least-once", func(t *testing.T) {
		t.Setenv("AIOCONN_AT_LEAST_ONCE", "true")
		o := smokeOptions(bin)
		o.Mode, o.Count, o.Window, o.Size = ModeThroughput, 2000, 500, 64
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		checkLossless(t, res.Phases[0])
		if !slices.Contains(res.Notes, ALONote+"true") {
			t.Errorf("notes %q, want %q", res.Notes, ALONote+"true")
		}
	})
	t.Run("pubsub", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Count, o.Window, o.Subscribers = ModePubsub, 1000, 500, 2
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		ph := res.Phases[0]
		if ph.Sent != 1000 || ph.Delivered != 2000 || ph.Lost != 0 || len(ph.Subscribers) != 2 {
			t.Fatalf("%+v", ph)
		}
		for _, s := range ph.Subscribers {
			if s.Delivered != 1000 || s.Lost != 0 || s.Duplicated != 0 {
				t.Errorf("subscriber %+v", s)
			}
		}
	})
	t.Run("reqrep", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Count, o.Concurrency, o.Duration = ModeReqrep, 40, 4, 2*time.Second
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Phases) != 2 {
			t.Fatalf("phases %+v", res.Phases)
		}
		for _, ph := range res.Phases {
			if ph.Sent != 40 {
				t.Errorf("%s sent %d", ph.Name, ph.Sent)
			}
			checkLossless(t, ph)
			// a round trip carries the size both ways
			if ph.Rate <= 0 || ph.SendRate != ph.Rate || ph.MBps != ph.Rate*float64(2*o.Size)/1e6 {
				t.Errorf("%s rate %v send rate %v MB/s %v", ph.Name, ph.Rate, ph.SendRate, ph.MBps)
			}
		}
	})
	t.Run("file", func(t *testing.T) {
		for _, chunk := range []int64{0, 400_000} {
			o := smokeOptions(bin)
			o.Mode, o.FileSize, o.FileChunk = ModeFile, 1_000_003, chunk
			res, err := Run(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			f := res.Phases[0].File
			want := 1
			if chunk > 0 {
				want = 3
			}
			if f == nil || !f.Verified || f.Chunks != want || f.Seconds <= 0 || f.MBps <= 0 {
				t.Fatalf("chunk %d: %+v", chunk, f)
			}
			if len(res.Procs) != 2 || res.Procs[0].PeakRSSMBMax <= 0 || res.Procs[1].PeakRSSMBMax <= 0 {
				t.Errorf("procs %+v", res.Procs)
			}
		}
	})
	t.Run("persist", func(t *testing.T) {
		o := smokeOptions(bin)
		o.Mode, o.Count = ModePersist, 3000
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Phases) != 2 {
			t.Fatalf("phases %+v", res.Phases)
		}
		for _, ph := range res.Phases {
			if ph.Sent != 3000 || ph.Delivered != 3000 || ph.Lost != 0 || ph.Duplicated != 0 || ph.Rate <= 0 {
				t.Errorf("%+v", ph)
			}
		}
	})
	t.Run("tls", func(t *testing.T) {
		for _, mode := range []string{TLSStrict, TLSAllowAll} {
			o := smokeOptions(bin)
			o.Mode, o.Count, o.Window, o.TLS = ModeThroughput, 3000, 1000, mode
			res, err := Run(ctx, o)
			if err != nil {
				t.Fatalf("%s: %v", mode, err)
			}
			checkLossless(t, res.Phases[0])
		}
	})
	t.Run("certstorm", func(t *testing.T) {
		o := smokeOptions(bin)
		// 3 storm clients in 2 bench_nodes (2 + 1): the several-node path too.
		o.Mode, o.Clients, o.StormRate, o.Duration, o.NodeClients = ModeCertStorm, 3, 500, 300*time.Millisecond, 2
		res, err := Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Phases) != 2 {
			t.Fatalf("phases %+v", res.Phases)
		}
		for _, ph := range res.Phases {
			checkLossless(t, ph)
		}
		st := res.Phases[1].Storm
		if st == nil || st.Issued != 3 || st.Connected != 3 || st.AllServedS <= 0 || st.Processes != 2 || st.ReleaseS <= 0 ||
			st.StartFailed != 0 || res.Options.StormNice != 19 || st.NicedThreads < 2 {
			t.Fatalf("storm %+v", st)
		}
		roles := map[string]ProcStats{}
		for _, p := range res.Procs {
			roles[p.Role] = p
		}
		if p := roles["storm clients (bench_node)"]; p.Count != 2 || p.CPUSeconds <= 0 {
			t.Errorf("storm nodes %+v in %+v", p, res.Procs)
		}
		if p := roles[keyHelperRole]; p.Count != 1 {
			t.Errorf("key helper %+v in %+v", p, res.Procs)
		}
	})
}

// TestConfigExternal targets a server connector the test started itself (--config).
func TestConfigExternal(t *testing.T) {
	bin := aioconnBin(t)
	dir, err := os.MkdirTemp("", "acx")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"is_server": true, "server_sockaddr": ["127.0.0.1", %d], "use_ssl": false, "connector_files_dirpath": %q,
		"default_logger_dirpath": %q, "default_logger_log_level": "WARNING", "file_recv_config": {"f": {"target_directory": %q}}}`,
		port, dir, dir, filepath.Join(dir, "recv"))
	path := filepath.Join(dir, "srv.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "create_connector", path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for _, mode := range []string{ModeThroughput, ModeFile} {
		o := smokeOptions(bin)
		o.Mode, o.Count, o.Window, o.FileSize, o.Config = mode, 2000, 500, 100_000, path
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if mode == ModeThroughput {
			checkLossless(t, res.Phases[0])
		} else if f := res.Phases[0].File; f == nil || !f.Verified {
			t.Errorf("file %+v", f)
		}
		if res.Procs[0].Role != "server (external)" || res.Procs[0].PeakRSSMBMax <= 0 {
			t.Errorf("procs %+v (the server's PID should be found)", res.Procs)
		}
	}
	if cmd.ProcessState != nil {
		t.Fatal("the external connector was stopped by the bench")
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the external connector is gone: %v", err)
	}
	if _, err := Run(context.Background(), Options{Mode: ModePersist, Bin: bin, Config: path}); !errors.Is(err, ErrBadOptions) {
		t.Errorf("persist with --config: %v", err)
	}
}

// TestPlot draws a result with two phases and checks the SVG is well-formed XML with the
// run's parameters in its title.
func TestPlot(t *testing.T) {
	res := &Result{Options: DefaultOptions(), Machine: machineInfo(), Start: time.Now()}
	for k, name := range []string{"a", "b"} {
		ns := make([]int64, 5000)
		for i := range ns {
			ns[i] = int64(3000 + i*i*(k+1)) // the smallest is not on a decade
		}
		res.Phases = append(res.Phases, Phase{Name: name, lat: ns})
	}
	var b bytes.Buffer
	if err := WritePlot(&b, res); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&b)
	n := 0
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v", err)
		}
		n++
	}
	if n < 50 || !strings.Contains(b.String(), "") {
		t.Errorf("%d tokens", n)
	}
	var b2 bytes.Buffer
	WritePlot(&b2, res)
	if !strings.Contains(b2.String(), "100 clients × 40 msg/s") || strings.Count(b2.String(), "<polyline") != 2 {
		t.Errorf("title or curves missing")
	}
	// the histogram's decade lines are evenly spaced (log axis)
	re := regexp.MustCompile(`<text x="([0-9.]+)" y="[0-9.]+" text-anchor="middle">[0-9.]+ (µs|ms|s)</text>`)
	var xs []float64
	for _, m := range re.FindAllStringSubmatch(b2.String(), -1) {
		x, _ := strconv.ParseFloat(m[1], 64)
		xs = append(xs, x)
	}
	if len(xs) < 3 {
		t.Fatalf("decade labels %v", xs)
	}
	for i := 2; i < len(xs); i++ {
		if d0, d := xs[1]-xs[0], xs[i]-xs[i-1]; d0 <= 0 || d < d0-0.2 || d > d0+0.2 {
			t.Errorf("decade lines not evenly spaced: %v", xs)
			break
		}
	}
	if err := WritePlot(&b, &Result{}); !errors.Is(err, ErrNoLatency) {
		t.Errorf("empty: %v", err)
	}
}

// TestCLIJSON runs the binary's `bench --json` (the cli wiring) for a tiny throughput run.
func TestCLIJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := aioconnBin(t)
	cmd := exec.Command(bin, "bench", "--mode", "throughput", "--count", "2000", "--json", "--quiet", "--drain", "500ms")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(res.Phases) != 1 || res.Phases[0].Delivered != 2000 || res.Machine.NumCPU == 0 {
		t.Fatalf("%+v", res)
	}
	svg := filepath.Join(t.TempDir(), "p.svg")
	cmd = exec.Command(bin, "bench", "--mode", "throughput", "--count", "2000", "--quiet", "--drain", "500ms", "--plot", svg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.HasPrefix(b, []byte("<svg")) {
		t.Errorf("plot: %v %.40q", err, b)
	}
	if code := exitCode(exec.Command(bin, "bench", "--tls", "--tls-allow-all").Run()); code != 2 {
		t.Errorf("--tls --tls-allow-all exit %d, want 2", code)
	}
	if code := exitCode(exec.Command(bin, "bench", "--mode", "nope").Run()); code != 2 {
		t.Errorf("bad mode exit %d, want 2", code)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestOptionsErrors(t *testing.T) {
	for _, o := range []Options{
		{Mode: "nope", Bin: "x"},
		{Target: "java", Bin: "x"},
		{Clients: 5000, Bin: "x"},
		{Mode: ModeFile, Path: PathEmbedded, Bin: "x"},
		{Mode: ModePersist, Path: PathEmbedded, Bin: "x"},
		{Mode: ModeThroughput, Path: PathEmbedded, TLS: TLSStrict, Bin: "x"},
		{Mode: ModeThroughput, Path: "shm", Bin: "x"},
		{HostClients: -1, Bin: "x"},
	} {
		if _, err := Run(context.Background(), o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: err %v", o, err)
		}
	}
	if _, err := Run(context.Background(), Options{Mode: ModeRate}); !errors.Is(err, ErrNoBinary) {
		t.Errorf("no binary: %v", err)
	}
	if _, err := Run(context.Background(), Options{Target: TargetPython, PythonPath: t.TempDir()}); !errors.Is(err, ErrNoPython) {
		t.Errorf("no python: %v", err)
	}
}

// TestHostingAndWarmupDefaults: rate mode on the socket path hosts every client in one process
// and warms up 2 s; the embedded path and the other modes neither host nor warm up.
func TestHostingAndWarmupDefaults(t *testing.T) {
	for _, c := range []struct {
		mode, path   string
		warmup       time.Duration
		wantWarmup   time.Duration
		hosted, want int
	}{
		{ModeRate, PathSocket, 0, DefaultWarmup, 0, 100},
		{ModeRate, PathSocket, -1, 0, 1, 1},
		{ModeRate, PathSocket, time.Second, time.Second, 10, 10},
		{ModeRate, PathEmbedded, 0, 0, 0, 0},
		{ModeRate, PathEmbedded, time.Second, 0, 0, 0},
		{ModeThroughput, PathSocket, 2 * time.Second, 0, 0, 0},
		{ModePubsub, PathSocket, 0, 0, 0, 0},
	} {
		o := DefaultOptions()
		o.Mode, o.Path, o.Warmup, o.HostClients = c.mode, c.path, c.warmup, c.hosted
		if err := o.fill(); err != nil || o.Warmup != c.wantWarmup || o.HostClients != c.want {
			t.Errorf("%s %q warmup %v hosted %d: got warmup %v hosted %d (%v), want %v %d", c.mode, c.path, c.warmup,
				c.hosted, o.Warmup, o.HostClients, err, c.wantWarmup, c.want)
		}
	}
	o := DefaultOptions()
	o.Target = TargetPython // Python connectors are one process each
	if err := o.fill(); err != nil || o.HostClients != 0 || o.Warmup != DefaultWarmup {
		t.Errorf("python rate: hosted %d, warmup %v (%v), want 0 and %v", o.HostClients, o.Warmup, err, DefaultWarmup)
	}
}

// TestWindowDefault: Window 0 is 64 000 for throughput on the embedded path, 16 000 elsewhere;
// a given window is kept.
func TestWindowDefault(t *testing.T) {
	for _, c := range []struct {
		mode, path   string
		window, want int64
	}{
		{ModeThroughput, PathEmbedded, 0, EmbeddedThroughputWindow},
		{ModeThroughput, PathSocket, 0, DefaultWindow},
		{ModePubsub, PathEmbedded, 0, DefaultWindow},
		{ModeThroughput, PathEmbedded, 1000, 1000},
	} {
		o := DefaultOptions()
		o.Mode, o.Path, o.Window = c.mode, c.path, c.window
		if err := o.fill(); err != nil || o.Window != c.want {
			t.Errorf("%s %q window %d: got %d (%v), want %d", c.mode, c.path, c.window, o.Window, err, c.want)
		}
	}
}

// TestRateP99BySecond: rate mode leaves out a last run of stragglers shorter than half a
// second's worth, keeps a longer one, and always keeps the first.
func TestRateP99BySecond(t *testing.T) {
	lat := make([]int64, 260)
	for i := range lat {
		lat[i] = int64(i+1) * 1e6
	}
	for _, c := range []struct{ n, want int }{{260, 3}, {249, 2}, {200, 2}, {30, 1}} {
		if got := rateP99BySecond(lat[:c.n], 100); len(got) != c.want {
			t.Errorf("%d arrivals at 100 per second: %d seconds %v, want %d", c.n, len(got), got, c.want)
		}
	}
}

func TestP99BySecond(t *testing.T) {
	lat := make([]int64, 250)
	for i := range lat {
		lat[i] = int64(i%100+1) * 1e6 // 1..100 ms in every 100
	}
	lat[120] = 5000e6
	got := p99BySecond(lat, 100)
	if want := []float64{99, 100, 50}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if lat[120] != 5000e6 || p99BySecond(nil, 100) != nil || p99BySecond(lat, 0) != nil {
		t.Error("input changed or empty cases")
	}
}

func payload(stream uint32, seq uint64, ts int64) []byte {
	d := make([]byte, 32)
	putPayload(d, stream, seq, ts)
	return d
}

// TestCounterExpect: expect reserves room for a phase's latency samples (bounded by expectMax),
// so that appending them does not move the slice; a counter that keeps no latency reserves none.
func TestCounterExpect(t *testing.T) {
	c := newCounter(1, true)
	c.expect(1000)
	if cap(c.lat) < 1000 {
		t.Fatalf("cap %d after expect(1000)", cap(c.lat))
	}
	first := &c.lat[:1][0]
	for i := range 1000 {
		c.addBatch([][]byte{payload(0, uint64(i), 0)}, 5)
	}
	if len(c.lat) != 1000 || &c.lat[0] != first {
		t.Fatalf("%d samples; moved %v", len(c.lat), &c.lat[0] != first)
	}
	defer func(old int64) { expectMax = old }(expectMax)
	expectMax = 5000
	c.expect(expectMax * 4)
	if room := int64(cap(c.lat) - len(c.lat)); room < expectMax || room >= 2*expectMax {
		t.Fatalf("room %d after expect(4 × expectMax), want expectMax (rounded up to a size class)", room)
	}
	n := newCounter(1, false)
	n.expect(1000)
	if cap(n.lat) != 0 {
		t.Fatalf("a counter without latency reserved %d", cap(n.lat))
	}
}

// TestHostLoops: AIOCONN_HOST_LOOPS decides whether hosted connectors share a group and of how
// many loops; one hosted connector never shares.
func TestHostLoops(t *testing.T) {
	for _, c := range []struct {
		env    string
		hosted int
		loops  int
		share  bool
	}{
		{"", 100, 0, true}, {"", 1, 0, false}, {"3", 100, 3, true}, {"0", 100, 0, false},
		{"-2", 100, 0, true}, {"x", 2, 0, true}, {"3", 1, 3, false},
	} {
		t.Setenv("AIOCONN_HOST_LOOPS", c.env)
		if loops, share := HostLoops(c.hosted); loops != c.loops || share != c.share {
			t.Errorf("AIOCONN_HOST_LOOPS=%q hosted %d: %d, %v; want %d, %v", c.env, c.hosted, loops, share, c.loops, c.share)
		}
	}
}

func TestCounter(t *testing.T) {
	c := newCounter(2, true)
	c.addBatch([][]byte{payload(0, 0, 10), payload(0, 2, 10), payload(0, 1, 10), payload(0, 2, 10),
		payload(1, 200, 50), payload(probeStream, 0, 0), payload(7, 0, 0), []byte("short")}, 110)
	if c.dup != 1 || c.ooo != 1 || c.probes != 1 || c.bad != 2 || c.unique.Load() != 4 {
		t.Fatalf("dup %d ooo %d probes %d bad %d unique %d", c.dup, c.ooo, c.probes, c.bad, c.unique.Load())
	}
	lost, delivered := c.missing([]int64{4, 201})
	// stream 0: 0,1,2 of 0..3 → 1 lost; stream 1: only 200 of 0..200 → 200 lost
	if lost != 201 || delivered != 4 {
		t.Fatalf("lost %d delivered %d", lost, delivered)
	}
	l := latencyOf(c.lat)
	if l.Count != 4 || l.Min != 0.06 || l.Max != 0.1 {
		t.Fatalf("%+v", l)
	}
}

func TestLatencyPercentiles(t *testing.T) {
	ns := make([]int64, 1000)
	for i := range ns {
		ns[len(ns)-1-i] = int64(i+1) * 1000
	}
	l := latencyOf(ns)
	if l.P50 != 500 || l.P90 != 900 || l.P99 != 990 || l.P999 != 999 || l.Max != 1000 || l.Min != 1 {
		t.Fatalf("%+v", l)
	}
	if latencyOf(nil) != nil {
		t.Fatal("empty")
	}
}

// TestSinkSplitFrames feeds a sink frames split at every byte boundary over a unix socket.
func TestSinkSplitFrames(t *testing.T) {
	dir, err := os.MkdirTemp("", "acs")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	clk := &clock{base: time.Now()}
	cnt := newCounter(1, false)
	cnt.notify = make(chan struct{}, 1)
	s, err := newSink(filepath.Join(dir, "s"), clk, cnt)
	if err != nil {
		t.Fatal(err)
	}
	s.start()
	c, err := net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	tp := newTmpl(clientHeader("any", "a", "b", ""), 40)
	var all []byte
	for i := range 50 {
		all = tp.add(all, 0, uint64(i), 0)
	}
	big := newTmpl(clientHeader("any", "a", "b", ""), 600<<10) // larger than the sink's buffer
	all = big.add(all, 0, 50, 0)
	for i := 0; i < len(all); i += 97 {
		if _, err := c.Write(all[i:min(i+97, len(all))]); err != nil {
			t.Fatal(err)
		}
	}
	if !waitUntil(5*time.Second, nil, func() bool { return cnt.unique.Load() == 51 }) {
		t.Fatalf("unique %d", cnt.unique.Load())
	}
	c.Write([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0}) // frame too large: the sink records the error
	c.Close()
	waitUntil(time.Second, nil, func() bool { return s.err.Load() != nil })
	if err := s.close(); !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Errorf("close: %v, want ErrFrameTooLarge", err)
	}
}

// BenchmarkChainThroughput measures lossless throughput app → client connector → TCP → server
// connector → app through two aioconn processes, b.N messages of 100 bytes (window 16000).
func BenchmarkChainThroughput(b *testing.B) {
	if testing.Short() {
		b.Skip("-short: starts two connector processes")
	}
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			bin := aioconnBin(b)
			o := DefaultOptions()
			o.Mode, o.Bin, o.Size, o.Count, o.Duration = ModeThroughput, bin, size, int64(max(b.N, 1000)), time.Minute
			b.ReportAllocs()
			b.SetBytes(int64(size))
			b.ResetTimer()
			res, err := Run(context.Background(), o)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			ph := res.Phases[0]
			if ph.Lost != 0 {
				b.Fatalf("lost %d", ph.Lost)
			}
			b.ReportMetric(ph.Rate, "msg/s")
			b.ReportMetric(ph.CPUPerMsgUs*1000, "conn-cpu-ns/msg")
			b.ReportMetric(ph.BenchCPUUs*1000, "bench-cpu-ns/msg")
		})
	}
}

// BenchmarkSenderFrame is the bench's sender cost per message (frame copy + payload fields).
func BenchmarkSenderFrame(b *testing.B) {
	tp := newTmpl(clientHeader("any", "bench1", "('127.0.0.1', 10673)", ""), 100)
	out := make([]byte, 0, 128*len(tp.frame))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%128 == 0 {
			out = out[:0]
		}
		out = tp.add(out, 0, uint64(i), int64(i))
	}
}

// BenchmarkReceiverCount is the bench's receiver cost per message once a chunk is read: frame
// parsing and counting (sequence bitmap, latency sample).
func BenchmarkReceiverCount(b *testing.B) {
	tp := newTmpl(clientHeader("any", "bench1", "('127.0.0.1', 10673)", ""), 100)
	var chunk []byte
	const per = 256
	cnt := newCounter(1, true)
	datas := make([][]byte, 0, per)
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		if len(datas) == 0 {
			chunk = chunk[:0]
			for range per {
				chunk = tp.add(chunk, 0, seq, 0)
				seq++
			}
			off := 0
			for off < len(chunk) {
				sz, _ := codec.FrameSize(chunk[off:], 1<<24)
				f, _ := codec.ParseBody(chunk[off+4 : off+sz])
				datas = append(datas, f.Data)
				off += sz
			}
			cnt.addBatch(datas, 1)
			if len(cnt.lat) > 1<<20 {
				cnt.lat = cnt.lat[:0]
			}
		}
		datas = datas[:len(datas)-1]
	}
}

// TestTableWarnsMalformed: a phase with arrivals that were not the bench's payload is flagged in
// the table (the JSON carries "malformed").
func TestTableWarnsMalformed(t *testing.T) {
	res := &Result{Options: DefaultOptions(), Phases: []Phase{{Name: "throughput", Sent: 3, Delivered: 3, Malformed: 2}}}
	var b strings.Builder
	WriteTable(&b, res)
	if !strings.Contains(b.String(), "warning: throughput: 2 arrivals were not the bench's payload") {
		t.Fatalf("table:\n%s", b.String())
	}
	var j strings.Builder
	if err := WriteJSON(&j, res); err != nil || !strings.Contains(j.String(), `"malformed": 2`) {
		t.Fatalf("json %v:\n%s", err, j.String())
	}
}

// BenchmarkRateFloor is the bench's own share of rate-mode latency: runRate's pacer (pace),
// frame templates, sink and counter, with no connector in between: 100 clients each write their
// 40 msg/s into a unix connection that the sink reads directly. b.N messages in all (b.N/4000
// seconds); -benchtime 40000x is 10 s. The latency reported is the floor any connector adds to.
// stamp=send is how the bench stamps messages (just before each client's write), stamp=round
// how it did before (the pacer round's start time for every client of the round).
func BenchmarkRateFloor(b *testing.B) {
	for _, round := range []bool{false, true} {
		b.Run(map[bool]string{false: "stamp=send", true: "stamp=round"}[round], func(b *testing.B) {
			paceStampRound = round
			defer func() { paceStampRound = false }()
			benchRateFloor(b)
		})
	}
}

func benchRateFloor(b *testing.B) {
	const clients, rate = 100, 40.0
	dir, err := os.MkdirTemp("", "acf")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	clk := &clock{base: time.Now()}
	cnt := newCounter(clients, true)
	sk, err := newSink(filepath.Join(dir, "s"), clk, cnt)
	if err != nil {
		b.Fatal(err)
	}
	sk.start()
	defer sk.close()
	conns := make([]net.Conn, clients)
	for i := range conns {
		if conns[i], err = net.Dial("unix", filepath.Join(dir, "s")); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	t := newTmpl(clientHeader("any", "b", "s", ""), 100)
	perClient := max(int64(b.N)/clients, 1)
	sent := make([]atomic.Int64, clients)
	bufs := make([][]byte, paceGoroutines)
	b.ResetTimer()
	err = pace(context.Background(), clk, clk.now(), rate, perClient, 64, sent, func(g, i int, from, to, now int64) error {
		buf := bufs[g][:0]
		for k := from; k < to; k++ {
			buf = t.add(buf, uint32(i), uint64(k), now)
		}
		bufs[g] = buf
		_, err := conns[i].Write(buf)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if !waitUntil(5*time.Second, nil, func() bool { return cnt.unique.Load() >= perClient*clients }) {
		b.Fatalf("%d of %d arrived", cnt.unique.Load(), perClient*clients)
	}
	b.StopTimer()
	cnt.mu.Lock()
	l := latencyOf(cnt.lat)
	cnt.mu.Unlock()
	b.ReportMetric(l.P50, "p50-µs")
	b.ReportMetric(l.P99, "p99-µs")
	b.ReportMetric(l.P999, "p99.9-µs")
	b.ReportMetric(l.Max, "max-µs")
}

// TestRenice: renice puts every thread of a process at the storm's nice value, and at 19 under
// SCHED_IDLE too; at 0 it changes nothing.
func TestRenice(t *testing.T) {
	for _, n := range []int{19, 7, 0} {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Skip("no sleep command:", err)
		}
		sc := &stormClients{o: &Options{StormNice: n}}
		err := sc.renice(cmd.Process.Pid)
		attr, aerr := unix.SchedGetAttr(cmd.Process.Pid, 0)
		nice, perr := syscall.Getpriority(syscall.PRIO_PROCESS, cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil || aerr != nil || perr != nil {
			t.Fatalf("nice %d: %v %v %v", n, err, aerr, perr)
		}
		// the raw getpriority system call returns 20 - nice
		wantPolicy := uint32(0) // SCHED_OTHER
		if n == 19 {
			wantPolicy = unix.SCHED_IDLE
		}
		if 20-nice != n || attr.Policy != wantPolicy {
			t.Errorf("nice %d: the process runs at nice %d, policy %d (want %d)", n, 20-nice, attr.Policy, wantPolicy)
		}
		if want := map[bool]int{true: 1, false: 0}[n != 0]; sc.nicedThreads != want {
			t.Errorf("nice %d: %d threads changed, want %d", n, sc.nicedThreads, want)
		}
	}
}

// TestSchedStatNoPID: a process the bench could not find (pid 0) reports no scheduler figures,
// not the bench's own.
func TestSchedStatNoPID(t *testing.T) {
	if w, n := schedStat(0); w != 0 || n != 0 {
		t.Fatalf("schedStat(0) = %v, %d; want nothing", w, n)
	}
	if _, n := schedStat(os.Getpid()); n <= 0 {
		t.Skip("no /proc schedstat on this kernel")
	}
}
