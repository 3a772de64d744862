package tls

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// RSA key generation (~50 ms of CPU per 2048-bit key, uninterruptible but for the Go
// scheduler's 10 ms preemption) is what a storm of first-time clients costs a server. Two
// measures keep it away from established links:
//
//   - Keys are made by a helper process (this same executable, re-executed with
//     keygenEnv set: see init below and helper.go, which also makes the server's RSA
//     signatures) running at the lowest CPU priority (nice 19). The kernel then gives key generation only the CPU that nothing else
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

// keygenEnv, when set in the environment as "2:<bits>:<keep>", makes this process the crypto
// helper (see runHelper in helper.go). The value is versioned so that another build of the
// executable that does not know it cannot be confused with a helper.
const keygenEnv = "AIOCONN_TLS_KEYGEN_HELPER"

// DefaultKeyPool is the number of ready keys an Issuer keeps (KeyPool option 0).
const DefaultKeyPool = 16

// keyWait bounds how long an issuance waits for the helper before generating its key itself.
const keyWait = 20 * time.Second

func init() {
	if v, ok := os.LookupEnv(keygenEnv); ok {
		lowerPriority()
		os.Exit(runHelper(v, os.Stdin, os.Stdout))
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

// lowerPriority puts every thread of this process at nice 19 and under the SCHED_IDLE policy
// (Linux nice values and policies are per thread; threads cloned later inherit both) and keeps
// the calling goroutine on its thread. SCHED_IDLE matters as much as the nice value: a waking
// normal thread preempts a SCHED_IDLE one at once, whereas a nice-19 thread may first finish
// its slice, a few ms on every hop of an established link's message (see RESULTS.md, issue 5).
// Both are allowed to an unprivileged process (they only lower its priority).
func lowerPriority() {
	runtime.LockOSThread()
	setIdle(syscall.Gettid(), 19)
	if ents, err := os.ReadDir("/proc/self/task"); err == nil {
		for _, e := range ents {
			if tid, err := strconv.Atoi(e.Name()); err == nil {
				setIdle(tid, 19)
			}
		}
	}
}

// setIdle sets thread tid's nice value and the SCHED_IDLE policy (best effort: where
// SCHED_IDLE is refused, the nice value alone; sched_setattr keeps the nice value of an idle
// thread, so both calls are needed).
func setIdle(tid, nice int) {
	syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE, Nice: int32(nice)}
	unix.SchedSetAttr(tid, &attr, 0)
}

// keyPool holds up to size ready keys of one size, made by the crypto helper process (see
// above and helper.go). take is safe for concurrent use; close stops the helper.
type keyPool struct {
	bits  int
	h     *helperProc
	ready chan pooledKey // closed by feed when the helper is gone
	stop  chan struct{}
	once  sync.Once
	fed   chan struct{} // closed when feed has returned
}

// pooledKey is a key and its id in the helper (for reqSignKey).
type pooledKey struct {
	k  *rsa.PrivateKey
	id uint32
}

// startKeyPool starts the helper and the goroutine that keeps the pool full, for an Issuer with
// workers issuance goroutines. It returns nil (callers then generate keys and sign in-process) if
// the helper cannot be started.
func startKeyPool(bits, size, workers int) *keyPool {
	// the helper keeps the keys not yet signed with: the pool's, the one feed holds, and those
	// the workers are signing with
	h := startHelper(bits, size+1+workers)
	if h == nil {
		return nil
	}
	p := &keyPool{bits: bits, h: h, ready: make(chan pooledKey, size), stop: make(chan struct{}), fed: make(chan struct{})}
	go p.feed()
	return p
}

// feed asks the helper for one key at a time and puts it in the pool; it blocks while the
// pool is full, so at most size+1 keys exist unused (the pool and the one feed holds).
func (p *keyPool) feed() {
	defer close(p.fed)
	defer close(p.ready)
	for {
		r, err := p.h.call(reqKey, nil, 0, p.stop)
		if err != nil || len(r.body) < 4 {
			return
		}
		id := binary.BigEndian.Uint32(r.body)
		k, err := x509.ParsePKCS1PrivateKey(r.body[4:])
		clear(r.body)
		if err != nil || k.N.BitLen() != p.bits {
			return
		}
		select {
		case p.ready <- pooledKey{k, id}:
		case <-p.stop:
			return
		}
	}
}

// take returns a key of p.bits that nobody else gets, and its id in the helper: a ready one,
// else the next one the helper makes. It returns nil when the pool is closed or the helper is
// gone (with no key left) or after keyWait; the caller then generates the key itself.
func (p *keyPool) take() (*rsa.PrivateKey, uint32) {
	select {
	case k := <-p.ready:
		return k.k, k.id
	default:
	}
	t := time.NewTimer(keyWait)
	defer t.Stop()
	select {
	case k := <-p.ready:
		return k.k, k.id
	case <-p.stop:
		return nil, 0
	case <-t.C:
		return nil, 0
	}
}

// signer returns the signer for an issued certificate's self-signature with key k (id in the
// helper; k nil is not allowed): through the helper, else in the server.
func (p *keyPool) signer(k *rsa.PrivateKey, id uint32) crypto.Signer {
	return &remoteSigner{pub: &k.PublicKey, h: p.h, kid: id, local: &serialSigner{k: k}}
}

// close stops the helper (killed by PID) and drops the ready keys. Safe to call more than once.
func (p *keyPool) close() {
	p.once.Do(func() {
		close(p.stop)
		p.h.close()
		<-p.fed
		for range p.ready { // drop the unused keys
		}
	})
}
