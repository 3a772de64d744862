package benchmarks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/config"
)

// Targets: which connector implementation a run starts.
const (
	TargetGo     = "go"     // aioconn: `<bin> create_connector <config>`
	TargetPython = "python" // aioconnectors 1.0.33: `python3 -m aioconnectors create_connector <config>`
)

// env is the set of connector processes of one run, their configs and their temp directory. It
// starts processes and stops exactly those (by PID). Not safe for concurrent use, except stats.
type env struct {
	target  string
	bin     string // aioconn binary (TargetGo)
	pyPath  string // directory holding the aioconnectors package (TargetPython)
	python  string
	dir     string
	port    int
	server  string // server's peer name as clients write it: "('127.0.0.1', port)"
	profDir string // Options.ProfileDir
	host    string // server host
	// TLS: mode (TLSOff, TLSStrict, TLSAllowAll) and the certificates_directory_path of every
	// connector of the run.
	tls     string
	certDir string
	ext     *external // --config: the running server connector, nil when the bench starts it
	// fileType is the dst_type file mode uses with an external server ("" = fileDstType).
	fileType string

	// hostClients > 1: client connectors are started that many per `aioconn bench_host` process
	// (Options.HostClients); hosts counts those processes.
	hostClients int
	hosts       int

	mu    sync.Mutex
	procs []*proc
	// embedded: the bench_node processes of --path embedded (they report their own figures).
	embedded []ProcStats
}

// proc is one connector process with the paths its application sockets use.
type proc struct {
	name string    // client name, or "server"
	role string    // "server", "client", "publisher", "subscriber"
	cmd  *exec.Cmd // nil for an external connector
	pid  int       // 0 when unknown (external connector not found in /proc)
	done chan struct{}
	opts *config.APIOptions
	cpu0 time.Duration
	// run-queue wait and time slices at markCPU (schedStat)
	wait0   time.Duration
	slices0 int64
	// cfgPath is the config file the bench wrote for it
	cfgPath string
}

// newEnv creates a short temp directory (unix socket paths are limited to 108 bytes) and picks a
// free 127.0.0.1 port for the server.
func newEnv(o *Options) (*env, error) {
	e := &env{target: o.Target, bin: o.Bin, pyPath: o.PythonPath, python: "python3", host: "127.0.0.1", tls: o.TLS, profDir: o.ProfileDir,
		hostClients: o.HostClients}
	if e.target == TargetGo && e.bin == "" {
		return nil, ErrNoBinary
	}
	if e.target == TargetPython {
		if e.pyPath == "" {
			e.pyPath = os.Getenv("AIOCONNECTORS_PATH")
		}
		if e.pyPath == "" {
			return nil, ErrNoPython
		}
		if _, err := os.Stat(filepath.Join(e.pyPath, "aioconnectors", "__main__.py")); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNoPython, e.pyPath)
		}
	}
	dir, err := os.MkdirTemp("", "acb")
	if err != nil {
		return nil, err
	}
	e.dir = dir
	if o.Config != "" {
		if err := e.loadExternal(o.Config); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		o.TLS = e.tls
		return e, nil
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.port = port
	e.server = fmt.Sprintf("('127.0.0.1', %d)", port)
	if e.tls != TLSOff {
		if err := e.createCertificates(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return e, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start writes the config of one connector (common keys plus extra) and starts its process.
// name is the client name; "" starts the server.
func (e *env) start(name, role string, extra map[string]any) (*proc, error) {
	p, err := e.prepare(name, role, extra)
	if err != nil {
		return nil, err
	}
	return p, e.launch(p)
}

// prepare writes the config of one connector and returns its (not started) proc, so that an
// application socket can be opened before the connector starts.
func (e *env) prepare(name, role string, extra map[string]any) (*proc, error) {
	cfg := map[string]any{
		"server_sockaddr":          []any{e.host, e.port},
		"use_ssl":                  e.tls != TLSOff,
		"connector_files_dirpath":  e.dir,
		"default_logger_dirpath":   e.dir,
		"default_logger_log_level": "WARNING",
		"debug_msg_counts":         false,
		"send_message_types":       []string{"any"},
		"recv_message_types":       []string{"any"},
		"is_server":                name == "",
	}
	if name != "" {
		cfg["client_name"] = name
	}
	if e.tls != TLSOff {
		cfg["ssl_allow_all"] = e.tls == TLSAllowAll
		cfg["certificates_directory_path"] = e.certDir
	}
	for k, v := range extra {
		cfg[k] = v
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	file := "server.json"
	if name != "" {
		file = name + ".json"
	}
	path := filepath.Join(e.dir, file)
	if err := os.WriteFile(path, js, 0o644); err != nil {
		return nil, err
	}
	opts, err := config.ParseAPI(js, path)
	if err != nil {
		return nil, err
	}
	return &proc{name: name, role: role, done: make(chan struct{}), opts: opts, cfgPath: path}, nil
}

// launch starts a prepared connector.
func (e *env) launch(p *proc) error {
	path, role := p.cfgPath, p.role
	var cmd *exec.Cmd
	if e.target == TargetPython {
		cmd = exec.Command(e.python, "-m", "aioconnectors", "create_connector", path)
		cmd.Dir = e.dir
		cmd.Env = append(os.Environ(), "PYTHONPATH="+e.pyPath)
	} else {
		cmd = exec.Command(e.bin, "create_connector", path)
		name := p.name
		if name == "" {
			name = "server"
		}
		e.profile(cmd, name)
	}
	if err := e.startProc(p, cmd); err != nil {
		return fmt.Errorf("benchmarks: start %s connector: %w", role, err)
	}
	return nil
}

// startProc starts cmd as p's process and lists p in e.procs (stopped by PID in stop).
func (e *env) startProc(p *proc, cmd *exec.Cmd) error {
	cmd.Stdout = io.Discard
	cmd.Stderr = io.Discard
	cmd.Stdin = nil
	// Own process group, so a Ctrl-C on the terminal reaches the bench only; the bench stops
	// its children itself (by PID).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.pid = cmd, cmd.Process.Pid
	go func() { cmd.Wait(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return nil
}

// launchHost starts one `aioconn bench_host` process running the prepared connectors ps side by
// side (Options.HostClients). The process is listed once in e.procs (its CPU and RSS count once,
// under ps[0]'s role); every member shares its PID and exit.
func (e *env) launchHost(ps []*proc) error {
	args := []string{"bench_host"}
	for _, p := range ps {
		args = append(args, p.cfgPath)
	}
	cmd := exec.Command(e.bin, args...)
	e.mu.Lock()
	e.hosts++
	name := fmt.Sprintf("host%d", e.hosts)
	e.mu.Unlock()
	e.profile(cmd, name)
	hp := &proc{name: name, role: ps[0].role, done: make(chan struct{})}
	if err := e.startProc(hp, cmd); err != nil {
		return fmt.Errorf("benchmarks: start %s host of %d connectors: %w", ps[0].role, len(ps), err)
	}
	for _, p := range ps {
		p.pid, p.done = hp.pid, hp.done
	}
	return nil
}

// hosted reports whether n client connectors are started in bench_host processes
// (Options.HostClients) rather than one process each: a single client keeps its own.
func (e *env) hosted(n int) bool { return e.hostClients > 1 && e.target == TargetGo && n > 1 }

// waitSocket waits until the connector listens on its send-to-connector socket.
func (e *env) waitSocket(ctx context.Context, p *proc, timeout time.Duration) error {
	path := p.opts.SendToConnectorPath()
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: %s connector %q exited", ErrStart, p.role, p.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not appear within %v", ErrStart, path, timeout)
		}
	}
}

// waitConnected asks a client's commander for its peers until the server is listed.
func (e *env) waitConnected(ctx context.Context, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r, err := Command(p.opts.CommanderPath(), `{"cmd": "show_connected_peers__sync", "kwargs": {}}`); err == nil && strings.Contains(r, "127.0.0.1") {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: client connector %q exited", ErrStart, p.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: client %q did not connect within %v", ErrStart, p.name, timeout)
}

// startServer starts the server and waits for its socket.
func (e *env) startServer(ctx context.Context, extra map[string]any, timeout time.Duration) (*proc, error) {
	if e.ext != nil {
		return e.ext.p, e.waitSocket(ctx, e.ext.p, timeout)
	}
	p, err := e.start("", "server", extra)
	if err != nil {
		return nil, err
	}
	return p, e.waitSocket(ctx, p, timeout)
}

// startClients starts n clients named prefix1..prefixN in parallel batches and waits until
// every one is connected to the server.
func (e *env) startClients(ctx context.Context, prefix, role string, n int, extra map[string]any, timeout time.Duration) ([]*proc, error) {
	ps := make([]*proc, n)
	for i := range n {
		var err error
		if e.hosted(n) {
			ps[i], err = e.prepare(fmt.Sprintf("%s%d", prefix, i+1), role, extra)
		} else {
			ps[i], err = e.start(fmt.Sprintf("%s%d", prefix, i+1), role, extra)
		}
		if err != nil {
			return nil, err
		}
	}
	if e.hosted(n) {
		for first := 0; first < n; first += e.hostClients {
			if err := e.launchHost(ps[first:min(n, first+e.hostClients)]); err != nil {
				return nil, err
			}
		}
	}
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for _, p := range ps {
		go func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := e.waitSocket(ctx, p, timeout)
			if err == nil {
				err = e.waitConnected(ctx, p, timeout)
			}
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return ps, first
}

// stop terminates every process this env started (SIGTERM, then SIGKILL after 3 s), by PID
// only, and removes the temp directory.
func (e *env) stop() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for _, p := range procs {
		if p.cmd != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	timeout := time.After(3 * time.Second)
	for _, p := range procs {
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.done:
		case <-timeout:
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	os.RemoveAll(e.dir)
}

// markCPU records the current CPU time of every process (the start of a measured phase).
func (e *env) markCPU() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.ext; x != nil && x.p.pid == 0 {
		// looked for again now that the server answered: a process caught right after its
		// exec may show no command line yet (the kernel sets it after releasing the parent)
		x.p.pid = findConnectorPID(x.path)
	}
	for _, p := range e.procs {
		p.cpu0, _ = procCPU(p.pid)
		p.wait0, p.slices0 = schedStat(p.pid)
	}
}

// stats aggregates CPU since markCPU and peak RSS per role.
func (e *env) stats() []ProcStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ProcStats
	idx := map[string]int{}
	for _, p := range e.procs {
		i, ok := idx[p.role]
		if !ok {
			i = len(out)
			idx[p.role] = i
			out = append(out, ProcStats{Role: p.role})
		}
		s := &out[i]
		s.Count++
		cpu, _ := procCPU(p.pid)
		s.CPUSeconds += (cpu - p.cpu0).Seconds()
		w, n := schedStat(p.pid)
		s.RunqWaitMs += float64(w-p.wait0) / 1e6
		s.Slices += n - p.slices0
		rss := procPeakRSS(p.pid)
		s.PeakRSSMBTotal += rss
		if rss > s.PeakRSSMBMax {
			s.PeakRSSMBMax = rss
		}
	}
	return append(out, e.embedded...)
}

func (e *env) cpuTotal() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var t time.Duration
	for _, p := range e.procs {
		c, _ := procCPU(p.pid)
		t += c - p.cpu0
	}
	return t
}

// procCPU returns user+system CPU time of pid from /proc/<pid>/stat (clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, errors.New("benchmarks: no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, errors.New("benchmarks: bad /proc stat")
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, errors.New("benchmarks: bad /proc stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * (time.Second / 100), nil
}

// procPeakRSS returns VmHWM of pid in MiB (0 if unknown).
func procPeakRSS(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// selfCPU is the bench process's own CPU time (getrusage).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// schedStat sums, over the threads of pid (0 or less: none, as procCPU), the time spent
// runnable but waiting for a CPU and the number of time slices run
// (/proc/<pid>/task/*/schedstat, fields 2 and 3); zero when the kernel does not provide them. A
// thread that exited takes its share with it.
func schedStat(pid int) (wait time.Duration, slices int64) {
	if pid <= 0 {
		return 0, 0
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, t := range ents {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		w, _ := strconv.ParseInt(f[1], 10, 64)
		n, _ := strconv.ParseInt(f[2], 10, 64)
		wait += time.Duration(w)
		slices += n
	}
	return wait, slices
}

// selfMark is this process's CPU time and scheduling counts at the start of a measured phase.
type selfMark struct {
	cpu, wait time.Duration
	slices    int64
}

func markSelf() selfMark {
	m := selfMark{cpu: selfCPU()}
	m.wait, m.slices = schedStat(os.Getpid())
	return m
}

// end writes the CPU time, run-queue wait and time slices since m into rep.
func (m selfMark) end(rep *NodeReport) {
	rep.CPU = (selfCPU() - m.cpu).Seconds()
	w, n := schedStat(os.Getpid())
	rep.RunqWaitNs, rep.Slices = int64(w-m.wait), n-m.slices
}

// profile makes the aioconn process cmd write its CPU profile to profDir/<name>.cpu.pprof when
// profiles are asked for (--profile-dir).
func (e *env) profile(cmd *exec.Cmd, name string) {
	if e.profDir != "" {
		cmd.Env = append(os.Environ(), "AIOCONN_CPUPROFILE="+filepath.Join(e.profDir, name+".cpu.pprof"))
	}
}
