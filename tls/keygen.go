package tls

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RSA key generation (~50 ms of CPU per 2048-bit key, uninterruptible but for the Go
// scheduler's 10 ms preemption) is what a storm of first-time clients costs a server. Two
// measures keep it away from established links:
//
//   - Keys are made by a helper process (this same executable, re-executed with
//     keygenEnv set: see init below) running at the lowest CPU priority (nice 19) with
//     GOMAXPROCS=1. The kernel then gives key generation only the CPU that nothing else
//     wants, and the server's own Go runtime never waits for it. (Running the generation on a
//     nice-19 thread of the server itself does not work: that thread holds one of the server's
//     Ps, and every garbage collection stops the world and waits for it to be scheduled,
//     which on a busy machine takes up to seconds — a priority inversion that stalls all links.)
//   - A small bounded pool of ready keys is kept filled while there is no demand, so that
//     most issuances cost only signing.
//
// Key hygiene: a key goes from the helper to the server through a pipe (never a file), is
// handed out by the pool exactly once (a channel receive) and is written to disk only by the
// issuance that used it (client-certs/<name>.key, mode 0600). If the helper cannot run, keys
// are generated in the server itself, one at a time (keygenSem) so that issuance never takes
// more than one CPU.

// keygenEnv, when set in the environment as "1:<bits>", makes this process a key generation
// helper (see runKeygenHelper). The value is versioned so that another build of the
// executable that does not know it cannot be confused with a helper.
const keygenEnv = "AIOCONN_TLS_KEYGEN_HELPER"

// DefaultKeyPool is the number of ready keys an Issuer keeps (KeyPool option 0).
const DefaultKeyPool = 16

// keyWait bounds how long an issuance waits for the helper before generating its key itself.
const keyWait = 20 * time.Second

// maxKeyDER bounds the size of one key read from the helper (a 16384-bit PKCS#1 key is ~9 KiB).
const maxKeyDER = 64 << 10

func init() {
	if v, ok := os.LookupEnv(keygenEnv); ok {
		lowerPriority()
		os.Exit(runKeygenHelper(v, os.Stdin, os.Stdout))
	}
}

// keygenSem makes in-process key generation one key at a time in the whole process.
var keygenSem = make(chan struct{}, 1)

// generateKeyInProcess makes an RSA key in this process, one at a time, yielding before and
// after so that goroutines waiting for a P get it first.
func generateKeyInProcess(bits int) (*rsa.PrivateKey, error) {
	keygenSem <- struct{}{}
	defer func() { <-keygenSem }()
	runtime.Gosched()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	runtime.Gosched()
	if err != nil {
		return nil, fmt.Errorf("tls: generating RSA-%d key: %w", bits, err)
	}
	return k, nil
}

// runKeygenHelper is the helper process's main: for each byte read from in it writes one
// fresh RSA key of the requested size to out (4-byte big-endian length, PKCS#1 DER). It
// returns the exit status: 0 when in reaches EOF (the server closed the pipe or died) or out
// is closed. The caller has lowered the process's priority.
func runKeygenHelper(spec string, in io.Reader, out io.Writer) int {
	ver, bitsText, _ := strings.Cut(spec, ":")
	bits, err := strconv.Atoi(bitsText)
	if ver != "1" || err != nil || bits < 1024 || bits > 16384 {
		fmt.Fprintf(os.Stderr, "tls: key helper: bad %s=%q\n", keygenEnv, spec)
		return 2
	}
	var req [1]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := io.ReadFull(in, req[:]); err != nil {
			return 0
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tls: key helper: %v\n", err)
			return 1
		}
		der := x509.MarshalPKCS1PrivateKey(k)
		buf = binary.BigEndian.AppendUint32(buf[:0], uint32(len(der)))
		buf = append(buf, der...)
		clear(der)
		_, err = out.Write(buf)
		clear(buf)
		if err != nil {
			return 0
		}
	}
}

// lowerPriority puts every thread of this process at nice 19 (Linux nice values are per
// thread) and keeps the calling goroutine on its thread, so the generation runs niced whatever
// threads the runtime creates later.
func lowerPriority() {
	runtime.LockOSThread()
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
	if ents, err := os.ReadDir("/proc/self/task"); err == nil {
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19)
			}
		}
	}
}

// keyPool holds up to size ready keys of one size, made by a helper process (see above).
// take is safe for concurrent use; close stops the helper.
type keyPool struct {
	bits  int
	ready chan *rsa.PrivateKey // closed by feed when the helper is gone
	stop  chan struct{}
	once  sync.Once
	cmd   *exec.Cmd
	fed   chan struct{} // closed when feed has returned
}

// startKeyPool starts the helper and the goroutine that keeps the pool full. It returns nil
// (callers then generate in-process) if the helper cannot be started.
func startKeyPool(bits, size int) *keyPool {
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return nil
		}
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{"aioconn-keygen"}
	cmd.Env = []string{keygenEnv + "=1:" + strconv.Itoa(bits), "GOMAXPROCS=1"}
	cmd.Stderr = nil
	// Own process group: a terminal's ^C reaches the server, which then closes the pool. No
	// Pdeathsig: it fires when the forking thread exits, which Go may do to a locked thread;
	// the helper ends anyway when the server goes (EOF on its input, or EPIPE on its output).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil
	}
	if err := cmd.Start(); err != nil {
		return nil
	}
	p := &keyPool{bits: bits, ready: make(chan *rsa.PrivateKey, size), stop: make(chan struct{}), cmd: cmd, fed: make(chan struct{})}
	go p.feed(in, out)
	return p
}

// feed asks the helper for one key at a time and puts it in the pool; it blocks while the
// pool is full, so at most size+1 keys exist unused (the pool and the one feed holds).
func (p *keyPool) feed(in io.WriteCloser, out io.Reader) {
	defer close(p.fed)
	defer close(p.ready)
	defer in.Close()
	var hdr [4]byte
	der := make([]byte, 0, 4096)
	for {
		if _, err := in.Write([]byte{1}); err != nil {
			return
		}
		if _, err := io.ReadFull(out, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxKeyDER {
			return
		}
		if cap(der) < int(n) {
			der = make([]byte, n)
		}
		der = der[:n]
		if _, err := io.ReadFull(out, der); err != nil {
			return
		}
		k, err := x509.ParsePKCS1PrivateKey(der)
		clear(der)
		if err != nil || k.N.BitLen() != p.bits {
			return
		}
		select {
		case p.ready <- k:
		case <-p.stop:
			return
		}
	}
}

// take returns a key of p.bits that nobody else gets: a ready one, else the next one the
// helper makes. It returns nil when the pool is closed or the helper is gone (with no key
// left) or after keyWait; the caller then generates the key itself.
func (p *keyPool) take() *rsa.PrivateKey {
	select {
	case k := <-p.ready:
		return k
	default:
	}
	t := time.NewTimer(keyWait)
	defer t.Stop()
	select {
	case k := <-p.ready:
		return k
	case <-p.stop:
		return nil
	case <-t.C:
		return nil
	}
}

// close stops the helper (it sees EOF on its input, or is killed) and drops the ready keys.
// Safe to call more than once.
func (p *keyPool) close() {
	p.once.Do(func() {
		close(p.stop)
		if p.cmd.Process != nil {
			p.cmd.Process.Kill()
		}
		<-p.fed
		for range p.ready { // drop the unused keys
		}
		p.cmd.Wait()
	})
}
