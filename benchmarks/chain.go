// Package benchmarks is the end-to-end harness behind `aioconn bench` and the Go benchmarks of
// whole paths. It runs real connector processes (or in-process connectors) and drives them through
// their unix sockets exactly as applications do; results carry the machine and Go version.
package benchmarks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// Chain is a running pair of connectors: client "bench1" → server, plain TCP on 127.0.0.1.
type Chain struct {
	Dir        string
	Port       int
	ServerCfg  string
	ClientCfg  string
	procs      []*exec.Cmd
	serverID   string
	SendPath   string // client's send_to_connector socket
	RecvPath   string // server's receive socket for type "any"
	ServerSend string // server's send_to_connector socket
	ClientRecv string // client's receive socket for type "any"
}

// StartChain writes configs into a fresh directory and starts two `bin create_connector`
// processes; it returns once the client is connected (polled through the socket files and a
// probe message, bounded by timeout).
func StartChain(bin string, timeout time.Duration) (*Chain, error) {
	dir, err := os.MkdirTemp("", "acb")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ch := &Chain{Dir: dir, Port: port, serverID: fmt.Sprintf("('127.0.0.1', %d)", port)}
	common := fmt.Sprintf(`"server_sockaddr": ["127.0.0.1", %d], "use_ssl": false, "connector_files_dirpath": %q, "default_logger_dirpath": %q, "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false, "default_logger_log_level": "WARNING"`, port, dir, dir)
	ch.ServerCfg = filepath.Join(dir, "server.json")
	ch.ClientCfg = filepath.Join(dir, "client.json")
	os.WriteFile(ch.ServerCfg, []byte(`{"is_server": true, `+common+`}`), 0o644)
	os.WriteFile(ch.ClientCfg, []byte(`{"is_server": false, "client_name": "bench1", `+common+`}`), 0o644)
	ch.SendPath = filepath.Join(dir, "uds_path_send_to_connector_client_bench1")
	ch.ClientRecv = filepath.Join(dir, "uds_path_receive_from_connector_client_any_bench1")
	ch.ServerSend = filepath.Join(dir, fmt.Sprintf("uds_path_send_to_connector_server_127001_%d", port))
	ch.RecvPath = filepath.Join(dir, fmt.Sprintf("uds_path_receive_from_connector_server_any_127001_%d", port))
	for _, cfg := range []string{ch.ServerCfg, ch.ClientCfg} {
		cmd := exec.Command(bin, "create_connector", cfg)
		cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
		if err := cmd.Start(); err != nil {
			ch.Stop()
			return nil, err
		}
		ch.procs = append(ch.procs, cmd)
		sock := ch.ServerSend
		if cfg == ch.ClientCfg {
			sock = ch.SendPath
		}
		if err := waitFile(sock, timeout); err != nil {
			ch.Stop()
			return nil, err
		}
	}
	if err := ch.waitConnected(timeout); err != nil {
		ch.Stop()
		return nil, err
	}
	return ch, nil
}

func waitFile(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("benchmarks: %s did not appear within %v", path, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConnected asks the client's commander for its peers until the server is listed.
func (ch *Chain) waitConnected(timeout time.Duration) error {
	cmdPath := filepath.Join(ch.Dir, "uds_path_commander_bench1")
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r, err := Command(cmdPath, `{"cmd": "show_connected_peers__sync", "kwargs": {}}`); err == nil && r != "[]" {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.New("benchmarks: client did not connect")
}

// Command sends one commander request and returns the reply.
func Command(path, req string) (string, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(codec.AppendCommand(nil, []byte(req))); err != nil {
		return "", err
	}
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return "", err
	}
	b := make([]byte, binary.LittleEndian.Uint32(h[:]))
	_, err = io.ReadFull(c, b)
	return string(b), err
}

// Stop kills the connector processes (only those this Chain started) and removes the directory.
func (ch *Chain) Stop() {
	for _, p := range ch.procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range ch.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	os.RemoveAll(ch.Dir)
}

// PIDs returns the connector process ids (server first).
func (ch *Chain) PIDs() []int {
	var out []int
	for _, p := range ch.procs {
		out = append(out, p.Process.Pid)
	}
	return out
}

// ThroughputResult is one lossless-throughput measurement.
type ThroughputResult struct {
	Sent, Received, Lost, Duplicated, OutOfOrder int64
	Elapsed                                      time.Duration
	Rate                                         float64 // received messages per second
	CPUPerMsg                                    time.Duration
	Machine                                      string
}

func (r ThroughputResult) String() string {
	return fmt.Sprintf("sent %d received %d lost %d dup %d reordered %d in %v: %.0f msg/s, connector CPU %.2f µs/msg (%s)",
		r.Sent, r.Received, r.Lost, r.Duplicated, r.OutOfOrder, r.Elapsed.Round(time.Millisecond), r.Rate,
		float64(r.CPUPerMsg.Nanoseconds())/1000, r.Machine)
}

// Machine describes where a measurement ran.
func Machine() string {
	return fmt.Sprintf("%s/%s, %d CPU, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// Throughput sends n messages of size data bytes (client app → client connector → TCP → server
// connector → server app) as fast as a credit window allows and counts what arrives by sequence
// number. Each message carries an 8-byte sequence number and an 8-byte send time in its data.
func (ch *Chain) Throughput(n int64, size int, window int64, timeout time.Duration) (ThroughputResult, error) {
	if size < 16 {
		size = 16
	}
	ln, err := net.Listen("unix", ch.RecvPath)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer ln.Close()
	send, err := net.Dial("unix", ch.SendPath)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer send.Close()
	hdr := []byte(fmt.Sprintf(`{"message_type": "any", "source_id": "bench1", "destination_id": %s}`, strconv.Quote(ch.serverID)))
	var received, dup, ooo, maxSeq atomic.Int64
	seen := make([]uint64, (n+63)/64)
	done := make(chan error, 1)
	cpu0 := ch.cpuTime()
	start := time.Now()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		buf := make([]byte, 1<<20)
		have := 0
		last := int64(-1)
		for received.Load()+dup.Load() < n {
			conn.SetReadDeadline(time.Now().Add(timeout))
			m, err := conn.Read(buf[have:])
			if err != nil {
				done <- err
				return
			}
			have += m
			off := 0
			for {
				sz, err := codec.FrameSize(buf[off:have], 1<<24)
				if err != nil {
					done <- err
					return
				}
				if sz == 0 || off+sz > have {
					break
				}
				f, err := codec.ParseBody(buf[off+4 : off+sz])
				if err != nil || len(f.Data) < 16 {
					done <- fmt.Errorf("benchmarks: bad frame: %v", err)
					return
				}
				seq := int64(binary.LittleEndian.Uint64(f.Data))
				if seq < 0 || seq >= n {
					done <- fmt.Errorf("benchmarks: sequence %d out of range", seq)
					return
				}
				if seen[seq/64]&(1<<(seq%64)) != 0 {
					dup.Add(1)
				} else {
					seen[seq/64] |= 1 << (seq % 64)
					received.Add(1)
				}
				if seq < last {
					ooo.Add(1)
				}
				last = seq
				if seq > maxSeq.Load() {
					maxSeq.Store(seq)
				}
				off += sz
			}
			have = copy(buf, buf[off:have])
			if have == len(buf) {
				buf = append(buf, make([]byte, len(buf))...)
			}
		}
		done <- nil
	}()
	// sender: batches of 256 frames per write, within the credit window
	data := make([]byte, size)
	frame := codec.AppendFrame(nil, hdr, data, nil, false)
	flen := len(frame)
	dataOff := flen - size
	const batch = 256
	out := make([]byte, 0, batch*flen)
	var sent int64
	deadline := time.Now().Add(timeout)
	for sent < n {
		for sent-received.Load() >= window {
			if time.Now().After(deadline) {
				return ThroughputResult{}, errors.New("benchmarks: window stalled (messages lost?)")
			}
			runtime.Gosched()
		}
		out = out[:0]
		for i := 0; i < batch && sent < n; i++ {
			out = append(out, frame...)
			d := out[len(out)-flen+dataOff:]
			binary.LittleEndian.PutUint64(d, uint64(sent))
			binary.LittleEndian.PutUint64(d[8:], uint64(time.Now().UnixNano()))
			sent++
		}
		if _, err := send.Write(out); err != nil {
			return ThroughputResult{}, err
		}
	}
	var rerr error
	select {
	case rerr = <-done:
	case <-time.After(timeout):
		rerr = errors.New("benchmarks: timeout waiting for the last messages")
	}
	el := time.Since(start)
	res := ThroughputResult{Sent: sent, Received: received.Load(), Duplicated: dup.Load(), OutOfOrder: ooo.Load(), Elapsed: el, Machine: Machine()}
	res.Lost = res.Sent - res.Received
	res.Rate = float64(res.Received) / el.Seconds()
	if cpu := ch.cpuTime() - cpu0; res.Received > 0 {
		res.CPUPerMsg = cpu / time.Duration(res.Received)
	}
	return res, rerr
}

// cpuTime sums user+system CPU of the connector processes (from /proc).
func (ch *Chain) cpuTime() time.Duration {
	var total time.Duration
	for _, pid := range ch.PIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			f := strings.Fields(s[i+2:])
			if len(f) > 13 {
				u, _ := strconv.ParseInt(f[11], 10, 64)
				k, _ := strconv.ParseInt(f[12], 10, 64)
				total += time.Duration(u+k) * (time.Second / 100)
			}
		}
	}
	return total
}

var _ = sync.Mutex{}
