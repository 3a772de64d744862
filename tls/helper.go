package tls

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The crypto helper process: key generation and the server's RSA signatures at nice 19.
//
// A storm of first-time clients costs a strict server two kinds of RSA work: a key per issued
// certificate (~50 ms of CPU for RSA-2048, see keygen.go) and private-key signatures (~1.5 ms
// each): one per handshake (TLS 1.3 CertificateVerify, RSA-PSS; TLS 1.2 ServerKeyExchange,
// PKCS#1 v1.5 or PSS) — a first-time client handshakes twice, with the default certificate and
// with its new one — and one per issued certificate (1.0.33's client certificates are
// self-signed, so that signature is made with the new key itself: there is no CA key). Both run
// in one helper process, this executable re-executed with keygenEnv set, every thread at nice
// 19 and SCHED_IDLE (lowerPriority), so that the kernel gives them only the CPU the server's
// links do not want; the server's
// Go runtime never waits for them (a nice-19 thread inside the server would hold one of its Ps,
// and every garbage collection would wait for it).
//
// Pipe protocol, version 3 (keygenEnv = "3:<bits>:<keep>"): the server writes requests to the
// helper's stdin and reads replies from its stdout; requests may be pipelined, replies come in
// any order and carry the request's id. Integers are big-endian.
//
//	frame:   id u32 | kind u8 | len u32 | body[len]   (len <= maxHelperFrame)
//	request: kind = type (below), body = payload
//	reply:   kind = status (0: ok, 1: error text), id = the request's
//
//	reqKey      (1) payload empty. Body: keyID u32 | PKCS#1 DER of a fresh RSA-<bits> key
//	                (e = 65537). The helper keeps the key under keyID (the <keep> newest keys)
//	                so that reqSignKey can sign with it.
//	reqSignFile (2) payload: sigHead | pathLen u16 | path | digest. Sign with the private key
//	                of the PEM file at path (an RSA key, PKCS#8 or PKCS#1, the same file the
//	                server loaded), read once and cached. Body: the signature.
//	reqSignKey  (3) payload: sigHead | keyID u32 | digest. Sign with a key this helper made and
//	                forget it (an issued certificate's self-signature). Body: the signature.
//	sigHead = hash u8 (crypto.Hash) | pss u8 (0: PKCS#1 v1.5, 1: PSS) | saltLen i32 (PSSOptions).
//
// Keys are named by path, not sent: the helper is started by the Issuer, which does not know
// which ServerConfig will sign through it, and so no server private key ever crosses the pipe
// (the helper reads the same 0600 file with the same rights). A generated key crosses it once,
// to the server that writes it beside its certificate (keygen.go). Key generation and signing
// run on two goroutines (GOMAXPROCS=2), so a signature never waits behind a key generation.
//
// The server side (helperProc) bounds the signatures in flight (maxHelperSigns); beyond it, when
// no helper runs, when it died, when it does not answer within signWait, or when its signature
// does not verify with the public key (every remote signature is verified before use, ~50 µs),
// the signature is made in the server with serialSigner (one at a time). The helper is killed
// by PID by Issuer.Close; it also ends at EOF on its stdin (the server closed it or died).

// helperProtocol is the pipe protocol's version, the first field of keygenEnv: a helper started
// from a binary replaced on disk meanwhile refuses a spec of another version.
const helperProtocol = "3"

const (
	reqKey      byte = 1
	reqSignFile byte = 2
	reqSignKey  byte = 3
)

// maxHelperFrame bounds a request or reply body (a path, a digest, a key of up to 16384 bits).
const maxHelperFrame = 64 << 10

// errHelperFrame: a frame announced a body longer than maxHelperFrame.
var errHelperFrame = errors.New("tls: crypto helper frame too long")

// appendHelperFrame appends one frame of the pipe protocol (both directions) to b.
func appendHelperFrame(b []byte, id uint32, kind byte, body []byte) []byte {
	b = append(binary.BigEndian.AppendUint32(b, id), kind)
	return append(binary.BigEndian.AppendUint32(b, uint32(len(body))), body...)
}

// readHelperFrame reads one frame of the pipe protocol (both directions) from r, hdr being the
// caller's scratch header. The body is new memory owned by the caller.
func readHelperFrame(r io.Reader, hdr *[9]byte) (id uint32, kind byte, body []byte, err error) {
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, nil, err
	}
	id, kind = binary.BigEndian.Uint32(hdr[:4]), hdr[4]
	n := binary.BigEndian.Uint32(hdr[5:])
	if n > maxHelperFrame {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes", errHelperFrame, n)
	}
	body = make([]byte, n)
	if _, err = io.ReadFull(r, body); err != nil {
		return 0, 0, nil, err
	}
	return id, kind, body, nil
}

// maxHelperSigns is the number of signature requests a server keeps in flight to its helper;
// more are signed in the server (serialSigner). A request is ~100 bytes: 256 fit in the pipe.
const maxHelperSigns = 256

// signWait bounds how long a signature waits for the helper before it is made in the server.
var signWait = 2 * time.Second

// helperBackoff: after a signature timed out (the SCHED_IDLE helper gets no CPU while normal
// threads keep every CPU busy), signatures are made in the server for this long instead of
// each handshake waiting signWait again.
var helperBackoff = 10 * time.Second

// logf reports the helper's failures (once each: see helperProc). Tests replace it.
var logf = log.Printf

// runHelper is the helper process's main (see the protocol above). It returns the exit status:
// 0 when in reaches EOF (the server closed the pipe or died) or out is closed, 2 for a bad
// spec. The caller has lowered the process's priority.
func runHelper(spec string, in io.Reader, out io.Writer) int {
	f := strings.Split(spec, ":")
	var bits, keep int
	var err1, err2 error
	if len(f) == 3 {
		bits, err1 = strconv.Atoi(f[1])
		keep, err2 = strconv.Atoi(f[2])
	}
	if len(f) != 3 || f[0] != helperProtocol || err1 != nil || err2 != nil || bits < 1024 || bits > 16384 || keep < 1 || keep > 1<<16 {
		fmt.Fprintf(os.Stderr, "tls: crypto helper: bad %s=%q\n", keygenEnv, spec)
		return 2
	}
	hs := &helperServer{bits: bits, keep: keep, out: out, keys: map[uint32]*rsa.PrivateKey{},
		files: map[string]*rsa.PrivateKey{}}
	keyReqs := make(chan uint32, 4)
	signReqs := make(chan helperReq, maxHelperSigns)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for id := range keyReqs {
			hs.genKey(id)
		}
	}()
	go func() {
		defer wg.Done()
		for r := range signReqs {
			hs.sign(r)
		}
	}()
	defer func() {
		close(keyReqs)
		close(signReqs)
		wg.Wait()
	}()
	var hdr [9]byte
	for !hs.broken.Load() {
		id, typ, payload, err := readHelperFrame(in, &hdr)
		if err != nil {
			return 0 // EOF, or a length the stream cannot be resynchronised after
		}
		switch typ {
		case reqKey:
			select {
			case keyReqs <- id:
			default:
				hs.reply(id, 1, []byte("busy"))
			}
		case reqSignFile, reqSignKey:
			select {
			case signReqs <- helperReq{typ, id, payload}:
			default:
				hs.reply(id, 1, []byte("busy"))
			}
		default:
			hs.reply(id, 1, []byte("unknown request type "+strconv.Itoa(int(typ))))
		}
	}
	return 0
}

type helperReq struct {
	typ     byte
	id      uint32
	payload []byte
}

// helperServer is the helper's state; its methods are safe for concurrent use.
type helperServer struct {
	bits, keep int
	wmu        sync.Mutex
	out        io.Writer
	broken     atomic.Bool // a write failed: the server is gone
	mu         sync.Mutex
	nextKey    uint32
	keys       map[uint32]*rsa.PrivateKey
	order      []uint32 // keys' ids, oldest first
	files      map[string]*rsa.PrivateKey
}

func (hs *helperServer) reply(id uint32, status byte, body []byte) {
	buf := appendHelperFrame(make([]byte, 0, 9+len(body)), id, status, body)
	hs.wmu.Lock()
	_, err := hs.out.Write(buf)
	hs.wmu.Unlock()
	clear(buf)
	if err != nil {
		hs.broken.Store(true)
	}
}

func (hs *helperServer) genKey(id uint32) {
	k, err := rsa.GenerateKey(rand.Reader, hs.bits)
	if err != nil {
		hs.reply(id, 1, []byte(err.Error()))
		return
	}
	hs.mu.Lock()
	hs.nextKey++
	kid := hs.nextKey
	hs.keys[kid] = k
	hs.order = append(hs.order, kid)
	for len(hs.order) > hs.keep {
		delete(hs.keys, hs.order[0])
		hs.order = hs.order[1:]
	}
	hs.mu.Unlock()
	der := x509.MarshalPKCS1PrivateKey(k)
	body := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(der)), kid)
	body = append(body, der...)
	clear(der)
	hs.reply(id, 0, body)
	clear(body)
}

func (hs *helperServer) sign(r helperReq) {
	sig, err := hs.signErr(r)
	if err != nil {
		hs.reply(r.id, 1, []byte(err.Error()))
		return
	}
	hs.reply(r.id, 0, sig)
}

func (hs *helperServer) signErr(r helperReq) ([]byte, error) {
	p := r.payload
	if len(p) < 6 {
		return nil, errors.New("short request")
	}
	opts, err := decodeSigHead(p[:6])
	if err != nil {
		return nil, err
	}
	p = p[6:]
	var k *rsa.PrivateKey
	switch r.typ {
	case reqSignFile:
		if len(p) < 2 || len(p) < 2+int(binary.BigEndian.Uint16(p)) {
			return nil, errors.New("short request")
		}
		n := int(binary.BigEndian.Uint16(p))
		path := string(p[2 : 2+n])
		p = p[2+n:]
		if k, err = hs.fileKey(path); err != nil {
			return nil, err
		}
	default: // reqSignKey
		if len(p) < 4 {
			return nil, errors.New("short request")
		}
		kid := binary.BigEndian.Uint32(p)
		p = p[4:]
		hs.mu.Lock()
		rk := hs.keys[kid]
		delete(hs.keys, kid) // one signature per generated key; order is trimmed lazily
		hs.mu.Unlock()
		if rk == nil {
			return nil, fmt.Errorf("no key %d", kid)
		}
		k = rk
	}
	if h := opts.HashFunc(); !h.Available() || len(p) != h.Size() {
		return nil, fmt.Errorf("digest of %d bytes for hash %d", len(p), h)
	}
	return k.Sign(rand.Reader, p, opts)
}

// fileKey returns the signer of the key file at path, read at its first use (at most 8 files
// are cached: the cache is reset beyond).
func (hs *helperServer) fileKey(path string) (*rsa.PrivateKey, error) {
	hs.mu.Lock()
	k := hs.files[path]
	hs.mu.Unlock()
	if k != nil {
		return k, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err = parsePrivateKeyPEM(data)
	clear(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	hs.mu.Lock()
	if len(hs.files) >= 8 {
		clear(hs.files)
	}
	hs.files[path] = k
	hs.mu.Unlock()
	return k, nil
}

// parsePrivateKeyPEM returns the first private key of a PEM text, which must be an RSA key
// (PKCS#1 or PKCS#8): only RSA keys sign through the helper (serverSigner keeps every other
// key type in the server).
func parsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no private key")
		}
		if b.Type != "PRIVATE KEY" && !strings.HasSuffix(b.Type, " PRIVATE KEY") {
			continue
		}
		if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
			return k, nil
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, errors.New("unparsable private key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("not an RSA private key")
		}
		return rk, nil
	}
}

// appendSigHead appends the sigHead of opts (see the protocol).
func appendSigHead(b []byte, opts crypto.SignerOpts) []byte {
	var pss byte
	var salt int32
	if p, ok := opts.(*rsa.PSSOptions); ok {
		pss, salt = 1, int32(p.SaltLength)
	}
	b = append(b, byte(opts.HashFunc()), pss)
	return binary.BigEndian.AppendUint32(b, uint32(salt))
}

func decodeSigHead(b []byte) (crypto.SignerOpts, error) {
	h := crypto.Hash(b[0])
	salt := int32(binary.BigEndian.Uint32(b[2:6]))
	switch b[1] {
	case 0:
		return h, nil
	case 1:
		return &rsa.PSSOptions{SaltLength: int(salt), Hash: h}, nil
	}
	return nil, fmt.Errorf("bad padding %d", b[1])
}

// helperProc is the server's end of a helper: it sends requests, matches the replies (one
// reader goroutine) and stops the process. Its methods are safe for concurrent use.
type helperProc struct {
	cmd     *exec.Cmd // nil in tests that fake the helper with pipes
	w       io.WriteCloser
	wmu     sync.Mutex
	mu      sync.Mutex
	nextID  uint32
	waiting map[uint32]chan helperReply
	signs   atomic.Int32  // signature requests in flight
	dead    chan struct{} // closed when the reader has seen the pipe end
	closing atomic.Bool
	stopped sync.Once
	// each fallback reason is logged once per helper
	badOnce, fullOnce, slowOnce sync.Once
	slowUntil                   atomic.Int64 // unix ns: after a timeout, sign in the server until then
	// counters (tests, reports)
	remote, fallbacks atomic.Uint64
}

type helperReply struct {
	status byte
	body   []byte
}

// startHelper runs this executable as the helper (see above) for keys of bits, keeping the
// keep newest generated keys for reqSignKey. It returns nil if the helper cannot be started
// (and logs it once per process).
func startHelper(bits, keep int) *helperProc {
	h, err := spawnHelper(bits, keep)
	if err != nil {
		startFailOnce.Do(func() {
			logf("tls: cannot start the crypto helper (keys and signatures are made in the server): %v", err)
		})
		return nil
	}
	return h
}

var startFailOnce sync.Once

func spawnHelper(bits, keep int) (*helperProc, error) {
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{"aioconn-keygen"}
	cmd.Env = []string{keygenEnv + "=" + helperProtocol + ":" + strconv.Itoa(bits) + ":" + strconv.Itoa(keep), "GOMAXPROCS=2"}
	cmd.Stderr = nil
	// Own process group: a terminal's ^C reaches the server, which then closes the pool. No
	// Pdeathsig: it fires when the forking thread exits, which Go may do to a locked thread;
	// the helper ends anyway when the server goes (EOF on its input, or EPIPE on its output).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	h := newHelperProc(cmd, in, out)
	registerHelper(h)
	return h, nil
}

// newHelperProc starts the reader of a helper's replies on r; requests go to w.
func newHelperProc(cmd *exec.Cmd, w io.WriteCloser, r io.Reader) *helperProc {
	h := &helperProc{cmd: cmd, w: w, waiting: map[uint32]chan helperReply{}, dead: make(chan struct{})}
	go h.read(r)
	return h
}

func (h *helperProc) read(r io.Reader) {
	defer func() {
		unregisterHelper(h)
		if !h.closing.Load() {
			pid := 0
			if h.cmd != nil && h.cmd.Process != nil {
				pid = h.cmd.Process.Pid
			}
			logf("tls: crypto helper (pid %d) is gone: keys and signatures are made in the server from now on", pid)
		}
		h.mu.Lock()
		close(h.dead) // after the log: a test that waits for dead may then replace logf
		h.mu.Unlock()
	}()
	var hdr [9]byte
	for {
		id, status, body, err := readHelperFrame(r, &hdr)
		if err != nil {
			return
		}
		h.mu.Lock()
		ch := h.waiting[id]
		delete(h.waiting, id)
		h.mu.Unlock()
		if ch != nil {
			ch <- helperReply{status, body} // buffered: never blocks
		}
	}
}

// call sends a request and waits for its reply, at most wait (0: no bound) or until the helper
// is gone or stop is closed.
func (h *helperProc) call(typ byte, payload []byte, wait time.Duration, stop <-chan struct{}) (helperReply, error) {
	ch := make(chan helperReply, 1)
	h.mu.Lock()
	select {
	case <-h.dead:
		h.mu.Unlock()
		return helperReply{}, errHelperGone
	default:
	}
	h.nextID++
	id := h.nextID
	h.waiting[id] = ch
	h.mu.Unlock()
	frame := appendHelperFrame(make([]byte, 0, 9+len(payload)), id, typ, payload)
	h.wmu.Lock()
	_, err := h.w.Write(frame)
	h.wmu.Unlock()
	forget := func() {
		h.mu.Lock()
		delete(h.waiting, id)
		h.mu.Unlock()
	}
	if err != nil {
		forget()
		return helperReply{}, errHelperGone
	}
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-ch:
		if r.status != 0 {
			return r, fmt.Errorf("%w: %s", errHelperRefused, r.body)
		}
		return r, nil
	case <-h.dead:
	case <-stop:
	case <-timeout:
		forget()
		return helperReply{}, errHelperTimeout
	}
	forget()
	return helperReply{}, errHelperGone
}

// sign asks the helper for a signature of digest (reqSignFile when path is set, else
// reqSignKey with kid) and verifies it with pub. ok is false when the server must sign itself.
func (h *helperProc) sign(path string, kid uint32, pub *rsa.PublicKey, digest []byte, opts crypto.SignerOpts) (sig []byte, ok bool) {
	if time.Now().UnixNano() < h.slowUntil.Load() { // it timed out lately: starved, do not wait again
		return nil, false
	}
	if h.signs.Add(1) > maxHelperSigns {
		h.signs.Add(-1)
		h.fullOnce.Do(func() {
			logf("tls: %d signatures waiting for the crypto helper: more are signed in the server", maxHelperSigns)
		})
		return nil, false
	}
	defer h.signs.Add(-1)
	p := appendSigHead(make([]byte, 0, 16+len(path)+len(digest)), opts)
	typ := reqSignKey
	if path != "" {
		typ = reqSignFile
		p = binary.BigEndian.AppendUint16(p, uint16(len(path)))
		p = append(p, path...)
	} else {
		p = binary.BigEndian.AppendUint32(p, kid)
	}
	p = append(p, digest...)
	r, err := h.call(typ, p, signWait, nil)
	if err != nil {
		if errors.Is(err, errHelperTimeout) {
			h.slowUntil.Store(time.Now().Add(helperBackoff).UnixNano())
			h.slowOnce.Do(func() {
				logf("tls: the crypto helper did not sign within %v (CPU starved?): signed in the server", signWait)
			})
		}
		return nil, false
	}
	if verifyRSA(pub, digest, r.body, opts) != nil {
		h.badOnce.Do(func() {
			logf("tls: crypto helper returned a signature that does not verify (key %q): signed in the server", path)
		})
		return nil, false
	}
	return r.body, true
}

func verifyRSA(pub *rsa.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	if p, ok := opts.(*rsa.PSSOptions); ok {
		return rsa.VerifyPSS(pub, opts.HashFunc(), digest, sig, &rsa.PSSOptions{SaltLength: p.SaltLength})
	}
	return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
}

// close stops the helper: its pipe is closed and the process killed by PID, then reaped.
// Safe to call more than once.
func (h *helperProc) close() {
	h.stopped.Do(func() {
		h.closing.Store(true)
		unregisterHelper(h)
		h.w.Close()
		if h.cmd != nil && h.cmd.Process != nil {
			h.cmd.Process.Kill()
		}
		<-h.dead
		if h.cmd != nil {
			h.cmd.Wait()
		}
	})
}

// The live helpers of this process, newest last: a server certificate's signer (ServerConfig)
// signs through the newest, whichever Issuer started it.
var helpers struct {
	mu   sync.Mutex
	list []*helperProc
}

func registerHelper(h *helperProc) {
	helpers.mu.Lock()
	helpers.list = append(helpers.list, h)
	helpers.mu.Unlock()
}

func unregisterHelper(h *helperProc) {
	helpers.mu.Lock()
	for i, x := range helpers.list {
		if x == h {
			helpers.list = append(helpers.list[:i], helpers.list[i+1:]...)
			break
		}
	}
	helpers.mu.Unlock()
}

func currentHelper() *helperProc {
	helpers.mu.Lock()
	defer helpers.mu.Unlock()
	if n := len(helpers.list); n > 0 {
		return helpers.list[n-1]
	}
	return nil
}

// remoteSigner signs through the crypto helper when one runs, else (and whenever the helper
// cannot: see the protocol) in the server with local. Concurrency-safe.
type remoteSigner struct {
	pub   *rsa.PublicKey
	path  string      // key file the helper signs with (reqSignFile); "" for a generated key
	h     *helperProc // the helper that made the generated key kid; nil: currentHelper()
	kid   uint32
	local *serialSigner
}

func (s *remoteSigner) Public() crypto.PublicKey { return s.local.Public() }

func (s *remoteSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := s.h
	if h == nil && s.path != "" {
		h = currentHelper()
	}
	if h != nil && opts != nil && opts.HashFunc() != 0 {
		if sig, ok := h.sign(s.path, s.kid, s.pub, digest, opts); ok {
			h.remote.Add(1)
			return sig, nil
		}
		h.fallbacks.Add(1)
	}
	return s.local.Sign(r, digest, opts)
}
