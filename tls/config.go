package tls

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	gotls "crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// ServerConfig returns the server's TLS configuration for the tree under baseDir
// (1.0.33 A/core.py:1574-1594): certificate server/server-cert/server.pem + .key (PKCS#8 or
// PKCS#1), Go's default versions and ciphers. allowAll: no client certificate is requested.
// Strict: a client certificate is required (RequireAnyClientCert, so the CertificateRequest
// names no CAs, like Python's capath) and VerifyPeerCertificate accepts it only if it is
// byte-equal to a certificate reachable through server/client-certs/symlinks/ the way OpenSSL's
// capath finds it (<subject hash>.0, .1, ... up to the first missing index) and is within its
// validity period; the directory is read at every handshake, so issued and deleted client
// certificates take effect at once (like 1.6, unlike a running 1.0.33 server which caches
// what it once looked up). Identify the client afterwards with PeerSerial and the ServerStore.
// The server's RSA handshake signatures are made by the crypto helper process at nice 19 when
// an Issuer of this process runs one (helper.go), else in this process one at a time.
// The returned Config is the caller's; its callbacks are safe for concurrent handshakes.
func ServerConfig(baseDir string, allowAll bool) (*gotls.Config, error) {
	p := NewPaths(baseDir)
	cert, err := gotls.LoadX509KeyPair(p.ServerPEM, p.ServerKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCert, p.ServerPEM, err)
	}
	cert.PrivateKey = serverSigner(cert.PrivateKey, p.ServerKey)
	cfg := &gotls.Config{Certificates: []gotls.Certificate{cert}}
	if allowAll {
		// Request (never verify) a certificate, as OpenSSL servers are not asked to: the point is
		// the timing. With NoClientCert, TLS 1.3 session tickets leave in the server's first
		// flight; with a CertificateRequest, Go sends them after reading the client's Finished,
		// as OpenSSL does. A Python 1.6.3 client (asyncio SSL with write buffer limits 0, 0)
		// waits for a record from the server before its first write completes, and the tickets
		// are that record: without them its messages stalled until the server sent something.
		cfg.ClientAuth = gotls.RequestClientCert
		return cfg, nil
	}
	dir := p.SymlinksDir
	cfg.ClientAuth = gotls.RequireAnyClientCert
	cfg.VerifyPeerCertificate = func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		return VerifyClientCert(dir, rawCerts, time.Now())
	}
	return cfg, nil
}

// VerifyClientCert is the strict server's check (see ServerConfig): rawCerts[0] must be
// byte-equal to a CERTIFICATE block of a file symlinksDir/<hash>.<n> (n = 0, 1, ... while the
// files exist), hash being the leaf's OpenSSL subject hash, and now within its validity.
// Errors wrap ErrPeerRejected.
func VerifyClientCert(symlinksDir string, rawCerts [][]byte, now time.Time) error {
	if len(rawCerts) == 0 {
		return fmt.Errorf("%w: no client certificate", ErrPeerRejected)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeerRejected, err)
	}
	if err := checkValidity(leaf, now); err != nil {
		return err
	}
	h, err := NameHash(leaf.RawSubject)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeerRejected, err)
	}
	for i := 0; i < MaxLinkIndex; i++ {
		data, err := os.ReadFile(filepath.Join(symlinksDir, fmt.Sprintf("%08x.%d", h, i)))
		if err != nil {
			break // OpenSSL's by_dir lookup stops at the first missing index too
		}
		if pemContains(data, rawCerts[0]) {
			return nil
		}
	}
	return fmt.Errorf("%w: client certificate %s (subject hash %08x) is not in %s", ErrPeerRejected,
		SerialString(leaf.SerialNumber), h, symlinksDir)
}

func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return fmt.Errorf("%w: certificate %s is not valid at %s (valid %s to %s)", ErrPeerRejected,
			SerialString(c.SerialNumber), now.UTC().Format(time.RFC3339),
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// pemContains reports whether a CERTIFICATE block of data has exactly the DER der.
func pemContains(data, der []byte) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == "CERTIFICATE" && bytes.Equal(b.Bytes, der) {
			return true
		}
	}
}

// ClientConfig returns a client's TLS configuration for the tree under baseDir
// (1.0.33 A/core.py:1600-1611). No SNI is sent (ServerName empty) and no host name is checked.
// allowAll: no client certificate, the server is not verified. Strict: the server's leaf must
// be byte-equal to a certificate of the pinned file (PinnedServerCertPath: server.crt, else
// server.pem; it may hold several) or chain to one of them (crypto/x509 with the pinned
// certificates as roots, any key usage, no name), within its validity period; the client
// always presents a certificate through GetClientCertificate, chosen at each handshake by
// ClientCertPaths (its own <clientName>.pem if present, else default.pem). Both files are
// re-read per handshake; they must exist when ClientConfig is called. The Config is the
// caller's; its callbacks are safe for concurrent handshakes.
func ClientConfig(baseDir, clientName string, allowAll bool) (*gotls.Config, error) {
	if allowAll {
		return &gotls.Config{InsecureSkipVerify: true}, nil
	}
	pinned := PinnedServerCertPath(baseDir)
	data, err := os.ReadFile(pinned)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCert, err)
	}
	if _, err := ParseCertsPEM(data); err != nil {
		return nil, fmt.Errorf("%s: %w", pinned, err)
	}
	certPath, keyPath, _ := ClientCertPaths(baseDir, clientName)
	if _, err := gotls.LoadX509KeyPair(certPath, keyPath); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCert, certPath, err)
	}
	return &gotls.Config{
		InsecureSkipVerify: true, // replaced by the pinning below
		GetClientCertificate: func(*gotls.CertificateRequestInfo) (*gotls.Certificate, error) {
			c, k, _ := ClientCertPaths(baseDir, clientName)
			cert, err := gotls.LoadX509KeyPair(c, k)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrCert, c, err)
			}
			return &cert, nil
		},
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			return VerifyServerCert(PinnedServerCertPath(baseDir), rawCerts, time.Now())
		},
	}, nil
}

// VerifyServerCert is the strict client's check (see ClientConfig) against the pinned file.
// Errors wrap ErrPeerRejected.
func VerifyServerCert(pinnedPath string, rawCerts [][]byte, now time.Time) error {
	if len(rawCerts) == 0 {
		return fmt.Errorf("%w: no server certificate", ErrPeerRejected)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeerRejected, err)
	}
	if err := checkValidity(leaf, now); err != nil {
		return err
	}
	data, err := os.ReadFile(pinnedPath)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeerRejected, err)
	}
	if pemContains(data, rawCerts[0]) {
		return nil
	}
	roots, err := ParseCertsPEM(data)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrPeerRejected, pinnedPath, err)
	}
	opts := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(),
		CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	for _, r := range roots {
		opts.Roots.AddCert(r)
	}
	for _, raw := range rawCerts[1:] {
		if c, err := x509.ParseCertificate(raw); err == nil {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("%w: server certificate %s does not match %s: %v", ErrPeerRejected,
			SerialString(leaf.SerialNumber), pinnedPath, err)
	}
	return nil
}

// PeerSerial returns the serial (SerialString) of the peer's leaf certificate, "" if none.
func PeerSerial(cs gotls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return SerialString(cs.PeerCertificates[0].SerialNumber)
}

// DefaultSerial reads the serial of server/client-certs/default.pem (what a 1.0.33 server
// loads at start to recognise default-certificate connections).
func DefaultSerial(baseDir string) (string, error) {
	p := NewPaths(baseDir).ServerDefaultPEM
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("tls: %w", err)
	}
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return SerialString(certs[0].SerialNumber), nil
}

// IsDefaultCert reports whether serial is the serial of server/client-certs/default.pem under
// baseDir (read at each call; a server should cache DefaultSerial or use ServerStore.IsDefault).
func IsDefaultCert(baseDir, serial string) bool {
	d, err := DefaultSerial(baseDir)
	return err == nil && d == serial
}

// serverSigner wraps the server certificate's private key (loaded from keyPath) for the
// handshakes: an RSA key signs through the crypto helper when an Issuer runs one (helper.go),
// else, like any other key, in this process under signSem.
func serverSigner(priv crypto.PrivateKey, keyPath string) crypto.PrivateKey {
	k, ok := priv.(crypto.Signer)
	if !ok {
		return priv
	}
	local := &serialSigner{k: k}
	pub, isRSA := k.Public().(*rsa.PublicKey)
	if !isRSA {
		return local
	}
	if abs, err := filepath.Abs(keyPath); err == nil {
		keyPath = abs
	}
	return &remoteSigner{pub: pub, path: keyPath, local: local}
}

// signSem lets one server handshake or issuance signature (RSA-2048: ~1.5 ms of CPU) run at a
// time in the process: a storm of first-time clients then takes at most one CPU for its
// signatures, and the established links' goroutines never queue behind a crowd of them.
var signSem = make(chan struct{}, 1)

// serialSigner signs with k under signSem. Concurrency-safe.
type serialSigner struct{ k crypto.Signer }

func (s *serialSigner) Public() crypto.PublicKey { return s.k.Public() }

func (s *serialSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	signSem <- struct{}{}
	sig, err := s.k.Sign(r, digest, opts)
	<-signSem
	runtime.Gosched() // let a waiting link run before this handshake goes on
	return sig, err
}
