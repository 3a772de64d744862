package tls

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	gotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// inProcHelper runs runHelper on pipes in this process and returns the server's end.
func inProcHelper(t *testing.T, spec string) (*helperProc, <-chan int) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	st := make(chan int, 1)
	go func() {
		s := runHelper(spec, inR, outW)
		inR.Close()
		outW.Close()
		st <- s
	}()
	h := newHelperProc(nil, inW, outR)
	t.Cleanup(h.close)
	return h, st
}

// captureLog replaces logf for the test and returns the messages logged.
func captureLog(t *testing.T) func() []string {
	var mu sync.Mutex
	var msgs []string
	old := logf
	logf = func(f string, a ...any) {
		mu.Lock()
		msgs = append(msgs, fmt.Sprintf(f, a...))
		mu.Unlock()
	}
	t.Cleanup(func() { logf = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), msgs...)
	}
}

func writeKeyPEM(t testing.TB, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "k.key")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var pssHash = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}

// The helper's protocol, both ends in-process: keys with ids, signatures with a generated key
// (once) and with a key file (PKCS#1 v1.5 and PSS), refusals, exit status 0 at EOF.
func TestHelperProtocol(t *testing.T) {
	for _, bad := range []string{"", "1:1024", "3:1024", "2:1024:4", "3:512:4", "3:x:4", "3:99999:4", "3:1024:0", "3:1024:x"} {
		if got := runHelper(bad, strings.NewReader(""), io.Discard); got != 2 {
			t.Errorf("spec %q: status %d, want 2", bad, got)
		}
	}
	h, st := inProcHelper(t, "3:1024:2")
	keys := map[uint32]*rsa.PrivateKey{}
	var ids []uint32
	for i := 0; i < 3; i++ {
		r, err := h.call(reqKey, nil, 0, nil)
		if err != nil || len(r.body) < 4 {
			t.Fatalf("key %d: %v", i, err)
		}
		k, err := x509.ParsePKCS1PrivateKey(r.body[4:])
		if err != nil || k.N.BitLen() != 1024 || k.E != 65537 {
			t.Fatalf("key %d: %v", i, err)
		}
		id := binary.BigEndian.Uint32(r.body)
		if keys[id] != nil {
			t.Fatal("same id twice")
		}
		keys[id] = k
		ids = append(ids, id)
	}
	d := sha256.Sum256([]byte("x"))
	// keep 2: the first key is forgotten
	if _, ok := h.sign("", ids[0], &keys[ids[0]].PublicKey, d[:], crypto.SHA256); ok {
		t.Error("signed with an evicted key")
	}
	if _, ok := h.sign("", ids[1], &keys[ids[1]].PublicKey, d[:], crypto.SHA256); !ok {
		t.Error("no signature with a generated key")
	}
	if _, ok := h.sign("", ids[1], &keys[ids[1]].PublicKey, d[:], crypto.SHA256); ok {
		t.Error("a generated key signed twice")
	}
	if _, ok := h.sign("", ids[2], &keys[ids[2]].PublicKey, d[:], pssHash); !ok {
		t.Error("no PSS signature with a generated key")
	}
	// key file, both paddings; a wrong public key is refused by the verification
	fk := keys[ids[0]]
	path := writeKeyPEM(t, fk)
	for _, o := range []crypto.SignerOpts{crypto.SHA256, pssHash, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}} {
		if _, ok := h.sign(path, 0, &fk.PublicKey, d[:], o); !ok {
			t.Errorf("%T: no signature with the key file", o)
		}
	}
	logged := captureLog(t)
	if _, ok := h.sign(path, 0, &keys[ids[1]].PublicKey, d[:], crypto.SHA256); ok {
		t.Error("a signature that does not verify was accepted")
	}
	if _, ok := h.sign(path, 0, &keys[ids[1]].PublicKey, d[:], crypto.SHA256); ok {
		t.Error("a signature that does not verify was accepted")
	}
	if n := len(logged()); n != 1 {
		t.Errorf("bad signature logged %d times, want once", n)
	}
	// refusals: missing file, short digest, unknown type
	if _, ok := h.sign(path+".none", 0, &fk.PublicKey, d[:], crypto.SHA256); ok {
		t.Error("signed with a missing file")
	}
	if _, ok := h.sign(path, 0, &fk.PublicKey, d[:31], crypto.SHA256); ok {
		t.Error("signed a short digest")
	}
	if _, err := h.call(9, nil, time.Second, nil); err == nil {
		t.Error("unknown request type accepted")
	}
	h.close()
	if s := <-st; s != 0 {
		t.Errorf("status %d at EOF", s)
	}
	if _, err := h.call(reqKey, nil, 0, nil); err == nil {
		t.Error("call after close")
	}
	// a closed output ends the helper quietly
	req := appendHelperFrame(appendHelperFrame(nil, 1, reqKey, nil), 2, reqKey, nil)
	if got := runHelper("3:1024:1", strings.NewReader(string(req)), errWriter{}); got != 0 {
		t.Errorf("status %d on a write error", got)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("closed") }

// The helper process (this test binary re-executed) signs the server's handshakes: TLS 1.3
// with RSA-PSS, TLS 1.2 with PKCS#1 v1.5; both handshakes complete against a tls.Client.
func TestRemoteSignerTLS(t *testing.T) {
	base := newTree(t, fastTemplate)
	p := startTestKeyPool(t)
	for _, tc := range []struct {
		name string
		ver  uint16
		alg  gotls.SignatureScheme // 0: Go's choice
		pss  bool
	}{
		{"TLS1.3-PSS", gotls.VersionTLS13, 0, true},
		{"TLS1.2-PKCS1v15", gotls.VersionTLS12, gotls.PKCS1WithSHA256, false},
		{"TLS1.2-PSS", gotls.VersionTLS12, gotls.PSSWithSHA256, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ServerConfig(base, true)
			if err != nil {
				t.Fatal(err)
			}
			rs, ok := cfg.Certificates[0].PrivateKey.(*remoteSigner)
			if !ok {
				t.Fatalf("server key is a %T", cfg.Certificates[0].PrivateKey)
			}
			rec := &recordingSigner{Signer: rs}
			cfg.Certificates[0].PrivateKey = rec
			if tc.alg != 0 {
				cfg.Certificates[0].SupportedSignatureAlgorithms = []gotls.SignatureScheme{tc.alg}
			}
			cfg.MinVersion, cfg.MaxVersion = tc.ver, tc.ver
			before := p.h.remote.Load()
			cs := handshakePair(t, cfg, &gotls.Config{InsecureSkipVerify: true})
			if cs.Version != tc.ver {
				t.Fatalf("version %x", cs.Version)
			}
			if got := p.h.remote.Load() - before; got != 1 {
				t.Fatalf("%d signatures made by the helper, want 1", got)
			}
			if rec.pss.Load() != tc.pss || rec.n.Load() != 1 {
				t.Fatalf("signatures %d, PSS %v; want 1, %v", rec.n.Load(), rec.pss.Load(), tc.pss)
			}
		})
	}
}

type recordingSigner struct {
	crypto.Signer
	n   atomic.Int32
	pss atomic.Bool
}

func (r *recordingSigner) Sign(rnd io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	r.n.Add(1)
	_, pss := o.(*rsa.PSSOptions)
	r.pss.Store(pss)
	return r.Signer.Sign(rnd, d, o)
}

// handshakePair runs a TLS handshake between a server and a client over loopback TCP.
func handshakePair(t *testing.T, scfg, ccfg *gotls.Config) gotls.ConnectionState {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		sc := gotls.Server(c, scfg)
		sc.SetDeadline(time.Now().Add(10 * time.Second))
		err = sc.Handshake()
		if err == nil {
			_, err = sc.Write([]byte("ok"))
		}
		errc <- err
	}()
	c, err := gotls.Dial("tcp", ln.Addr().String(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return c.ConnectionState()
}

// x509.CreateCertificate with the helper's signature (PKCS#1 v1.5 and PSS) makes certificates
// that verify.
func TestRemoteSignerX509(t *testing.T) {
	base := newTree(t, fastTemplate)
	p := startTestKeyPool(t)
	cfg, err := ServerConfig(base, false)
	if err != nil {
		t.Fatal(err)
	}
	signer := cfg.Certificates[0].PrivateKey.(crypto.Signer)
	for _, alg := range []x509.SignatureAlgorithm{x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.SHA384WithRSA} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ca"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, SignatureAlgorithm: alg}
		before := p.h.remote.Load()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
		if err != nil {
			t.Fatalf("%v: %v", alg, err)
		}
		if p.h.remote.Load() != before+1 {
			t.Fatalf("%v: not signed by the helper", alg)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Fatalf("%v: %v", alg, err)
		}
	}
}

// Issued certificates are self-signed by the helper with the key it made; they verify.
func TestIssuerSignsInHelper(t *testing.T) {
	base := newTree(t, fastTemplate)
	s := openStore(t, base)
	is := NewIssuerWith(s, IssuerOptions{Workers: 2, Queue: 8, KeyPool: 2})
	defer is.Close()
	if is.keys == nil {
		t.Fatal("no key pool")
	}
	for i := 0; i < 4; i++ {
		certPEM, _, err := is.Issue(fmt.Sprintf("h%d", i))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := ParseCertsPEM(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		if err := certs[0].CheckSignatureFrom(certs[0]); err != nil {
			t.Fatal(err)
		}
	}
	if n := is.keys.h.remote.Load(); n != 4 {
		t.Fatalf("%d of 4 certificates signed by the helper", n)
	}
	checkTree(t, s)
}

// Fallbacks: no helper, a helper that died (logged once), a helper whose signatures do not
// verify, a full queue and a helper that does not answer: every signature is still made (in
// the server) and valid.
func TestRemoteSignerFallback(t *testing.T) {
	logged := captureLog(t)
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	path := writeKeyPEM(t, k)
	d := sha256.Sum256([]byte("fallback"))
	check := func(what string, s crypto.Signer) {
		t.Helper()
		for _, o := range []crypto.SignerOpts{crypto.SHA256, pssHash} {
			sig, err := s.Sign(rand.Reader, d[:], o)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if err := verifyRSA(&k.PublicKey, d[:], sig, o); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	fileSigner := serverSigner(k, path).(*remoteSigner)

	// no helper at all
	if currentHelper() != nil {
		t.Fatal("a helper is left from another test")
	}
	check("no helper", fileSigner)

	// a real helper that dies
	h := startHelper(1024, 4)
	if h == nil {
		t.Fatal("helper did not start")
	}
	defer h.close()
	check("live helper", fileSigner)
	if h.remote.Load() != 2 {
		t.Fatalf("live helper made %d signatures, want 2", h.remote.Load())
	}
	h.cmd.Process.Kill()
	<-h.dead
	check("dead helper (file key)", fileSigner)
	gen := &remoteSigner{pub: &k.PublicKey, h: h, kid: 1, local: &serialSigner{k: k}}
	check("dead helper (generated key)", gen)
	check("dead helper (generated key)", gen)
	if h.fallbacks.Load() != 4 {
		t.Errorf("fallbacks %d, want 4", h.fallbacks.Load())
	}
	if msgs := logged(); len(msgs) != 1 || !strings.Contains(msgs[0], "is gone") {
		t.Errorf("logged %q, want one 'is gone'", msgs)
	}

	// a broken helper: every signature is garbage
	bad := fakeHelper(t, func(id uint32) []byte { return make([]byte, 128) }, nil)
	registerHelper(bad)
	defer unregisterHelper(bad)
	check("bad helper", fileSigner)
	if bad.remote.Load() != 0 || bad.fallbacks.Load() != 2 {
		t.Errorf("bad helper: remote %d fallbacks %d", bad.remote.Load(), bad.fallbacks.Load())
	}
	// a full queue: not even asked
	bad.signs.Store(maxHelperSigns)
	check("full queue", fileSigner)
	bad.signs.Store(0)
	unregisterHelper(bad)
	if msgs := logged(); len(msgs) != 3 || !strings.Contains(msgs[1], "does not verify") || !strings.Contains(msgs[2], "waiting") {
		t.Errorf("logged %q, want 'is gone', 'does not verify', 'waiting' once each", msgs)
	}

	// a helper that never answers
	old := signWait
	signWait = 200 * time.Millisecond
	defer func() { signWait = old }()
	var asked atomic.Int32
	mute := fakeHelper(t, nil, &asked)
	registerHelper(mute)
	defer unregisterHelper(mute)
	check("mute helper", fileSigner)
	if mute.fallbacks.Load() != 2 {
		t.Errorf("mute helper: fallbacks %d", mute.fallbacks.Load())
	}
	// after one timeout the next signatures do not ask the helper (helperBackoff)
	if n := asked.Load(); n != 1 {
		t.Errorf("mute helper asked %d times for two signatures: the second waited for it too", n)
	}
	if msgs := logged(); len(msgs) != 4 || !strings.Contains(msgs[3], "did not sign within") {
		t.Errorf("logged %q, want a last 'did not sign within' once", msgs)
	}
}

// startTestKeyPool starts a one-key pool, whose helper the server configurations then sign
// through, for the test's duration.
func startTestKeyPool(t *testing.T) *keyPool {
	t.Helper()
	p := startKeyPool(1024, 1, 1)
	if p == nil {
		t.Fatal("helper did not start")
	}
	t.Cleanup(p.close)
	return p
}

// openStore opens the server store of base, failing the test on error.
func openStore(t testing.TB, base string) *ServerStore {
	t.Helper()
	s, err := OpenServerStore(base)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeHelper answers each request with body(id) (nil body func: never answers); asked, when not
// nil, counts the requests it read.
func fakeHelper(t *testing.T, body func(uint32) []byte, asked *atomic.Int32) *helperProc {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	go func() {
		defer outW.Close()
		var hdr [9]byte
		for {
			id, _, _, err := readHelperFrame(inR, &hdr)
			if err != nil {
				return
			}
			if asked != nil {
				asked.Add(1)
			}
			if body == nil {
				continue
			}
			if _, err := outW.Write(appendHelperFrame(nil, id, 0, body(id))); err != nil {
				return
			}
		}
	}()
	h := newHelperProc(nil, inW, outR)
	t.Cleanup(h.close)
	return h
}
