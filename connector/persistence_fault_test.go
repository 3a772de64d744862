package connector

// Fault test of disk persistence (issue 7, Deliver 4): an in-process client connector with
// disk_persistence_send streams numbered messages to a server connector that runs as a separate
// aioconn process (the built binary) and is stopped and started with the commander, restarted
// (SIGTERM), and killed with SIGKILL and restarted. The server application counts what arrives.
// Bounded in time and count, loopback and temp dirs only; processes are stopped by their PID.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/persist"
	"github.com/aioconn/aioconn/uds"
)

const (
	faultMessages = 20000 // numbered messages 0..faultMessages-1, then one fence
	faultRate     = 50    // messages per 10 ms tick: 5000/s
	faultDown     = 1500  // messages sent while the server is down, per fault
)

// serverProc is one aioconn server process.
type serverProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedWriter
}

type lockedWriter struct {
	mu sync.Mutex
	b  []byte
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.b) < 1<<16 {
		w.b = append(w.b, p...)
	}
	return len(p), nil
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

func startServer(t *testing.T, bin, cfgPath string) *serverProc {
	t.Helper()
	p := &serverProc{cmd: exec.Command(bin, "create_connector", cfgPath), done: make(chan struct{}), out: &lockedWriter{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.signal(syscall.SIGKILL); <-p.done })
	return p
}

// signal sends sig to this process (by its PID) unless it has exited.
func (p *serverProc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

func (p *serverProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("server %d did not exit:\n%s", p.cmd.Process.Pid, p.out)
	}
}

// until polls cond every 5 ms for at most bound (the other side is a separate process: there is
// no signal to wait on).
func until(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		<-tk.C
	}
}

func commander(path, cmd string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(codec.AppendCommand(nil, []byte(`{"cmd": "`+cmd+`", "kwargs": {}}`))); err != nil {
		return err
	}
	io.Copy(io.Discard, c) // reply (or close)
	return nil
}

// sink is the server application: it counts deliveries per sequence number.
type sink struct {
	mu     sync.Mutex
	counts []uint16
	max    atomic.Int64 // highest sequence number delivered
	fence  chan struct{}
}

func (s *sink) serve(c net.Conn) {
	defer c.Close()
	var h [4]byte
	buf := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint32(h[:]))
		if n > 1<<20 {
			return
		}
		buf = append(buf[:0], make([]byte, n)...)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		f, err := codec.ParseBody(buf)
		if err != nil || len(f.Data) < 8 {
			continue
		}
		seq, err := strconv.Atoi(string(f.Data[:8]))
		if err != nil || seq < 0 || seq > faultMessages {
			continue
		}
		if seq == faultMessages {
			close(s.fence)
			continue
		}
		s.mu.Lock()
		s.counts[seq]++
		s.mu.Unlock()
		for m := s.max.Load(); int64(seq) > m && !s.max.CompareAndSwap(m, int64(seq)); m = s.max.Load() {
		}
	}
}

func (s *sink) delivered(from, to int) (missing int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < to; i++ {
		if s.counts[i] == 0 {
			missing++
		}
	}
	return missing
}

// TestPersistenceFaults streams numbered messages through a client with disk_persistence_send while
// the server connector is stopped/started by the commander (twice), restarted as a process
// (SIGTERM) and killed with SIGKILL and restarted. It prints sent / delivered / lost / duplicated
// and asserts what docs/persistence.md guarantees: every message sent while the client knew the
// server was down is delivered (disk persistence + replay before new traffic); a lost message
// was in flight at one of the faults (sent before the client noticed, not yet delivered when the
// fault began); and nothing is delivered twice.
func TestPersistenceFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds the binary and restarts processes (skipped in -short)")
	}
	root := repoRoot(t)
	dir := shortDir(t)
	bin := filepath.Join(dir, "aioconn")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/aioconn")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build the aioconn binary (work in progress elsewhere?): %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	srvDir := filepath.Join(dir, "s")
	os.Mkdir(srvDir, 0o755)
	scfg := map[string]any{"is_server": true, "server_sockaddr": []any{"127.0.0.1", port}, "use_ssl": false,
		"connector_files_dirpath": srvDir, "default_logger_dirpath": srvDir, "send_message_types": []string{"any"},
		"recv_message_types": []string{"any"}, "reuse_server_sockaddr": true, "reuse_uds_path_send_to_connector": true,
		"reuse_uds_path_commander_server": true, "silent": true}
	b, _ := json.Marshal(scfg)
	srvPath := filepath.Join(dir, "server.json")
	os.WriteFile(srvPath, b, 0o644)
	sc, err := config.Load(srvPath)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := uds.NewPaths(sc.ConnectorFilesDirpath, true, sc.SourceID(), sc.RecvMessageTypes)
	if err != nil {
		t.Fatal(err)
	}

	// the server application
	app, err := net.Listen("unix", sp.Receive["any"])
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	sk := &sink{counts: make([]uint16, faultMessages), fence: make(chan struct{})}
	sk.max.Store(-1)
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			go sk.serve(c)
		}
	}()

	srv := startServer(t, bin, srvPath)
	waitPort := func(p *serverProc) {
		until(t, 10*time.Second, "server listening", func() bool {
			select {
			case <-p.done:
				t.Fatalf("server exited:\n%s", p.out)
			default:
			}
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	waitPort(srv)

	cliDir := filepath.Join(dir, "c")
	os.Mkdir(cliDir, 0o755)
	cli := newConnector(t, cliDir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(port)+`], "use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "disk_persistence_send": true,
 "uds_path_send_preserve_socket": true, "debug_msg_counts": false}`, nil)
	connected := func() bool { return len(cli.ConnectedPeers()) == 1 }
	until(t, 10*time.Second, "client connected", connected)
	sendFile := persist.SendPath(cli.cfg.ConnectorFilesDirpath, cli.alnumID, cli.serverPeer)

	// the client application: paced sender
	api := dialUnix(t, cli.Paths().SendToConnector)
	var sent atomic.Int64
	head := []byte(`{"message_type": "any", "source_id": "client1", "destination_id": "x"}`)
	msg := func(seq int) []byte {
		d := fmt.Appendf(nil, "%08d", seq)
		for len(d) < 100 {
			d = append(d, '.')
		}
		return codec.AppendFrame(nil, head, d, nil, false)
	}
	sendErr := make(chan error, 1)
	go func() {
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		var out []byte
		for seq := 0; seq < faultMessages; {
			<-tk.C
			out = out[:0]
			for k := 0; k < faultRate && seq < faultMessages; k++ {
				out = append(out, msg(seq)...)
				seq++
			}
			if _, err := api.Write(out); err != nil {
				sendErr <- err
				return
			}
			sent.Store(int64(seq))
		}
		sendErr <- nil
	}()

	type fault struct {
		name             string
		at               int // start when this many messages are sent
		maxDelivered     int // highest sequence number delivered when the fault began
		downFrom, downTo int // sent while the client knew the server was down
		lostInWindow     int
	}
	faults := []*fault{{name: "commander stop/start", at: 2000}, {name: "commander stop/start", at: 5500},
		{name: "process restart (SIGTERM)", at: 9000}, {name: "SIGKILL and restart", at: 13000}}
	start := time.Now()
	for _, f := range faults {
		until(t, 20*time.Second, "messages sent", func() bool { return sent.Load() >= int64(f.at) })
		f.maxDelivered = int(sk.max.Load())
		switch f.name {
		case "commander stop/start":
			if err := commander(sp.Commander, "stop"); err != nil {
				t.Fatalf("commander stop: %v", err)
			}
		case "process restart (SIGTERM)":
			srv.signal(syscall.SIGTERM)
			srv.wait(t)
		default:
			srv.signal(syscall.SIGKILL)
			srv.wait(t)
		}
		until(t, 10*time.Second, "client noticed", func() bool { return !connected() })
		f.downFrom = int(sent.Load())
		until(t, 20*time.Second, "messages sent while down", func() bool { return sent.Load() >= int64(f.downFrom+faultDown) })
		f.downTo = int(sent.Load())
		if f.name == "commander stop/start" {
			if err := commander(sp.Commander, "start"); err != nil {
				t.Fatalf("commander start: %v", err)
			}
		} else {
			srv = startServer(t, bin, srvPath)
			waitPort(srv)
		}
		until(t, 10*time.Second, "client reconnected", connected)
		// everything sent while down arrives (replayed from disk before new traffic)
		until(t, 10*time.Second, f.name+": messages sent while down delivered", func() bool {
			return sk.delivered(f.downFrom, f.downTo) == 0
		})
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("sender: %v", err)
	}
	api.Write(msg(faultMessages)) // fence: everything before it is delivered or lost
	select {
	case <-sk.fence:
	case <-time.After(15 * time.Second):
		t.Fatalf("fence not delivered (sent %d, max delivered %d)", sent.Load(), sk.max.Load())
	}
	elapsed := time.Since(start)

	// count
	sk.mu.Lock()
	counts := append([]uint16(nil), sk.counts...)
	sk.mu.Unlock()
	delivered, lost, dup := 0, 0, 0
	var unexplained []int
	for seq, n := range counts {
		switch {
		case n == 0:
			lost++
			ok := false
			for _, f := range faults {
				if seq > f.maxDelivered && seq < f.downFrom {
					f.lostInWindow++
					ok = true
					break
				}
			}
			if !ok {
				unexplained = append(unexplained, seq)
			}
		default:
			delivered++
			dup += int(n) - 1
		}
	}
	t.Logf("persistence fault test: sent %d, delivered %d, lost %d, duplicated %d (%v)", faultMessages, delivered, lost, dup, elapsed.Round(time.Millisecond))
	for _, f := range faults {
		t.Logf("  %-26s in flight [%d, %d): lost %d; sent while down [%d, %d): %d, all delivered",
			f.name, f.maxDelivered+1, f.downFrom, f.lostInWindow, f.downFrom, f.downTo, f.downTo-f.downFrom)
	}
	if len(unexplained) > 0 {
		t.Errorf("%d messages lost outside the fault windows, first %v", len(unexplained), unexplained[:min(10, len(unexplained))])
	}
	if dup != 0 {
		t.Errorf("%d duplicates", dup)
	}
	if persist.Exists(sendFile) || persist.Exists(sendFile+replaySuffix) {
		t.Errorf("send persistence file left after the fence")
	}
	srv.signal(syscall.SIGTERM)
	srv.wait(t)
}
