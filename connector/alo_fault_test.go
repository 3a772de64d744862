package connector

// Fault test of at_least_once (issue 10): numbered messages stream from a client connector to a
// server connector, both separate processes, while the server and then the client are each
// killed with SIGKILL and restarted at random moments, 10 times each.
//
// The sending application must be able to tell which messages were durably accepted, and it must
// die with its connector: it is the embedded API of the client connector (Local.SendDurable)
// inside a child process, the test binary itself re-run in child mode (TestALOFaultChild). The
// child reports each durably accepted number on its stdout as soon as SendDurable returns; a
// number it had not reported when it was killed counts as not accepted (it may still arrive).
// Each incarnation of the child numbers from its own range (incarnation × 1 000 000), so that a
// restarted child never reuses a number. The server is the aioconn binary; the receiving
// application is this test process, on the server's receive socket. Bounded in time and count,
// loopback and temp dirs only; processes are stopped by their PID.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/uds"
)

const (
	aloChildEnv   = "AIOCONN_ALO_CHILD"
	aloChildStart = "AIOCONN_ALO_START"
	aloFaultKills = 10 // SIGKILLs of each side
)

// aloSink is the server application: deliveries per number.
type aloSink struct {
	mu     sync.Mutex
	counts map[int]int
}

func (s *aloSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 1<<16)
	var h [4]byte
	buf := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint32(h[:]))
		if n > 1<<20 {
			return
		}
		buf = append(buf[:0], make([]byte, n)...)
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		f, err := codec.ParseBody(buf)
		if err != nil {
			continue
		}
		if num, err := strconv.Atoi(string(f.Data)); err == nil {
			s.mu.Lock()
			s.counts[num]++
			s.mu.Unlock()
		}
	}
}

// aloChild is one incarnation of the sending child process.
type aloChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	done chan struct{}
	fin  chan struct{} // closed when the child printed DONE (its log is acknowledged)
	errb *lockedWriter
}

func TestALOFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: builds the binary and kills processes (skipped in -short)")
	}
	root := repoRoot(t)
	dir := shortDir(t)
	bin := filepath.Join(dir, "aioconn")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/aioconn")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Skipf("cannot build the aioconn binary (work in progress elsewhere?): %v\n%s", err, out)
	}
	port := freePort(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	t.Logf("seed %d", seed)

	common := map[string]any{"server_sockaddr": []any{"127.0.0.1", port}, "use_ssl": false,
		"send_message_types": []string{"any"}, "recv_message_types": []string{"any"}, "at_least_once": true,
		"reuse_server_sockaddr": true, "reuse_uds_path_send_to_connector": true,
		"reuse_uds_path_commander_server": true, "silent": true}
	writeCfg := func(name string, extra map[string]any) string {
		m := map[string]any{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		d := filepath.Join(dir, name)
		os.Mkdir(d, 0o755)
		m["connector_files_dirpath"], m["default_logger_dirpath"] = d, d
		b, _ := json.Marshal(m)
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, b, 0o644)
		return p
	}
	srvPath := writeCfg("s", map[string]any{"is_server": true})
	cliPath := writeCfg("c", map[string]any{"is_server": false, "client_name": "client1"})
	sc, err := config.Load(srvPath)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := uds.NewPaths(sc.ConnectorFilesDirpath, true, sc.SourceID(), sc.RecvMessageTypes)
	if err != nil {
		t.Fatal(err)
	}
	app, err := net.Listen("unix", sp.Receive["any"])
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	sk := &aloSink{counts: map[int]int{}}
	go func() {
		for {
			c, err := app.Accept()
			if err != nil {
				return
			}
			go sk.serve(c)
		}
	}()

	var accMu sync.Mutex
	accepted := map[int]bool{}
	startChild := func(incarnation int) *aloChild {
		c := &aloChild{done: make(chan struct{}), fin: make(chan struct{}), errb: &lockedWriter{}}
		c.cmd = exec.Command(os.Args[0], "-test.run=^TestALOFaultChild$", "-test.count=1")
		c.cmd.Env = append(os.Environ(), aloChildEnv+"="+cliPath, aloChildStart+"="+strconv.Itoa(incarnation*1_000_000))
		c.cmd.Stderr = c.errb
		out, _ := c.cmd.StdoutPipe()
		c.in, _ = c.cmd.StdinPipe()
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				if line == "DONE" {
					close(c.fin)
					continue
				}
				if n, ok := strings.CutPrefix(line, "A "); ok {
					if v, err := strconv.Atoi(n); err == nil {
						accMu.Lock()
						accepted[v] = true
						accMu.Unlock()
					}
				}
			}
			c.cmd.Wait()
			close(c.done)
		}()
		t.Cleanup(func() { c.cmd.Process.Signal(syscall.SIGKILL); <-c.done })
		return c
	}
	kill := func(what string, pid int, done <-chan struct{}) {
		syscall.Kill(pid, syscall.SIGKILL)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %d did not die", what, pid)
		}
	}
	pause := func(lo, hi int) { time.Sleep(time.Duration(lo+rng.IntN(hi-lo)) * time.Millisecond) }

	start := time.Now()
	srv := startServer(t, bin, srvPath)
	incarnation := 1
	child := startChild(incarnation)
	for i := 0; i < aloFaultKills; i++ {
		pause(150, 600)
		kill("server", srv.cmd.Process.Pid, srv.done)
		pause(0, 200)
		srv = startServer(t, bin, srvPath)
	}
	for i := 0; i < aloFaultKills; i++ {
		pause(150, 600)
		kill("client", child.cmd.Process.Pid, child.done)
		pause(0, 200)
		incarnation++
		child = startChild(incarnation)
	}
	pause(200, 400)
	child.in.Close() // stop sending; the child exits once its log is acknowledged
	select {
	case <-child.fin:
	case <-time.After(30 * time.Second):
		t.Fatalf("the client's log was not acknowledged within 30 s:\n%s\nserver:\n%s", child.errb, srv.out)
	}
	accMu.Lock()
	acc := len(accepted)
	accMu.Unlock()
	var lost, dups, dupsSrv, extra, delivered int
	until(t, 20*time.Second, "every accepted message delivered", func() bool {
		sk.mu.Lock()
		defer sk.mu.Unlock()
		accMu.Lock()
		defer accMu.Unlock()
		lost = 0
		for n := range accepted {
			if sk.counts[n] == 0 {
				lost++
			}
		}
		return lost == 0
	})
	sk.mu.Lock()
	for n, k := range sk.counts {
		delivered++
		dups += k - 1
		if n < 2_000_000 { // the first child: it ran through the server kills
			dupsSrv += k - 1
		}
		if !accepted[n] {
			extra++
		}
	}
	sk.mu.Unlock()
	t.Logf("accepted %d, delivered %d (%d of them sent but not reported accepted before a kill), lost %d, duplicated %d (%d while the server was being killed); %d server and %d client SIGKILLs (%.1f s)",
		acc, delivered, extra, lost, dups, dupsSrv, aloFaultKills, aloFaultKills, time.Since(start).Seconds())
	fmt.Printf("at_least_once fault test: accepted %d, delivered %d, lost %d, duplicated %d\n", acc, delivered, lost, dups)
	if acc == 0 {
		t.Fatal("nothing was accepted")
	}
}

// TestALOFaultChild is the sending child of TestALOFaults (skipped unless run by it).
func TestALOFaultChild(t *testing.T) {
	path := os.Getenv(aloChildEnv)
	if path == "" {
		t.Skip("child process of TestALOFaults")
	}
	first, _ := strconv.Atoi(os.Getenv(aloChildStart))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ReconnectInterval = 50 * time.Millisecond
	cn, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); stop() }()
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	report := func(n int) {
		outMu.Lock()
		out.WriteString("A " + strconv.Itoa(n) + "\n")
		if out.Buffered() > 4096 {
			out.Flush()
		}
		outMu.Unlock()
	}
	go func() { // flush reports often: what is not flushed when killed counts as not accepted
		for ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
			outMu.Lock()
			out.Flush()
			outMu.Unlock()
		}
	}()
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := first
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				n := next
				next++
				mu.Unlock()
				if n-first >= 500_000 {
					return
				}
				fr := codec.AppendFrame(nil, []byte(`{"message_type": "any"}`), []byte(strconv.Itoa(n)), nil, false)
				if err := cn.Local().SendDurable(ctx, fr); err == nil {
					report(n)
				} else if ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "SendDurable:", err)
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	outMu.Lock()
	out.Flush()
	outMu.Unlock()
	s := cn.alo.sender(cn.serverPeer)
	for s.unacked() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Println("DONE")
	cn.Close()
}
