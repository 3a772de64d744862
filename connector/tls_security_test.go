package connector

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	gotls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	ctls "github.com/aioconn/aioconn/tls"
)

// Security tests of the TLS peer link (issue 5 "Acceptance", PEER-PROTOCOL §10): each test
// fails if the check it names is removed. Raw crypto/tls peers stand in for misbehaving
// clients and servers; every wait is bounded and waits on a signal (a read, a peer change).

// tlsServerConn starts a TLS server connector (strict unless allowAll) on a fresh certificates
// tree and returns it with the tree's base directory.
func tlsServerConn(t *testing.T, allowAll bool) (*Connector, string) {
	t.Helper()
	dir := shortDir(t)
	certs := filepath.Join(dir, "c")
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": true,
 "ssl_allow_all": `+strconv.FormatBool(allowAll)+`, "certificates_directory_path": "`+certs+`",
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false}`, nil)
	return srv, certs
}

// tlsClientConn starts a TLS client connector named name for the server at port, using the
// certificates tree under certs.
func tlsClientConn(t *testing.T, certs, name string, port int, allowAll bool) *Connector {
	t.Helper()
	dir := shortDir(t)
	return newConnector(t, dir, `{"is_server": false, "client_name": "`+name+`", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(port)+`], "use_ssl": true, "ssl_allow_all": `+strconv.FormatBool(allowAll)+`,
 "certificates_directory_path": "`+certs+`", "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false}`, nil)
}

// defaultCert loads the client default certificate of the tree under certs.
func defaultCert(t *testing.T, certs string) *gotls.Certificate {
	t.Helper()
	p := ctls.NewPaths(certs)
	c, err := gotls.LoadX509KeyPair(p.ClientDefaultPEM, p.ClientDefaultKey)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// dialTLS opens a raw TLS connection to addr presenting cert (none if nil), verifying nothing.
// It returns the handshake error: with TLS 1.3 a server's refusal of the client certificate
// only shows at the client's first read.
func dialTLS(t *testing.T, addr string, cert *gotls.Certificate) (*gotls.Conn, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	tc := gotls.Client(nc, &gotls.Config{
		InsecureSkipVerify: true,
		GetClientCertificate: func(*gotls.CertificateRequestInfo) (*gotls.Certificate, error) {
			if cert == nil {
				return &gotls.Certificate{}, nil
			}
			return cert, nil
		},
	})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	err = tc.Handshake()
	tc.SetDeadline(time.Time{})
	return tc, err
}

// mustDialTLS is dialTLS failing the test on a handshake error.
func mustDialTLS(t *testing.T, addr string, cert *gotls.Certificate) *gotls.Conn {
	t.Helper()
	tc, err := dialTLS(t, addr, cert)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return tc
}

// rawFrame is a frame read from a raw peer, with its whole bytes.
type rawFrame struct {
	raw []byte
	f   codec.Frame
}

// readFrameWithin reads one frame, waiting at most d.
func readFrameWithin(c net.Conn, d time.Duration) (rawFrame, error) {
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var pre [codec.LenPrefix]byte
	if _, err := io.ReadFull(c, pre[:]); err != nil {
		return rawFrame{}, err
	}
	size, err := codec.FrameSize(pre[:], 1<<22)
	if err != nil {
		return rawFrame{}, err
	}
	raw := make([]byte, size)
	copy(raw, pre[:])
	if _, err := io.ReadFull(c, raw[codec.LenPrefix:]); err != nil {
		return rawFrame{}, err
	}
	f, err := codec.ParseBody(raw[codec.LenPrefix:])
	if err != nil {
		return rawFrame{}, err
	}
	return rawFrame{raw: raw, f: f}, nil
}

// expectClosed asserts that the peer closes c without writing a frame, within 10 s, and
// returns the read error (io.EOF for an application-level close, a "remote error" *net.OpError
// for a TLS-level refusal).
func expectTLSClosed(t *testing.T, what string, c net.Conn) error {
	t.Helper()
	fr, err := readFrameWithin(c, 10*time.Second)
	if err == nil {
		t.Fatalf("%s: expected the connection to be closed, got frame %s %q", what, fr.f.JSON, trunc(fr.f.Data))
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: expected the connection to be closed, it stayed open", what)
	}
	return err
}

// expectRefused asserts that the server refused the client's certificate during the TLS
// handshake (a TLS alert, not a plain close after it).
func expectRefused(t *testing.T, what string, c *gotls.Conn, hsErr error) {
	t.Helper()
	err := hsErr
	if err == nil {
		c.Write(sslRequest("probe", `{"cmd": "get_new_certificate"}`))
		err = expectTLSClosed(t, what, c)
	}
	if !isTLSAlert(err) {
		t.Fatalf("%s: expected a TLS-level refusal (alert), got %v", what, err)
	}
}

func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

func trunc(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// sslRequest is a `_ssl` frame from a client named name (a JSON string) with data.
func sslRequest(name, data string) []byte {
	return sslRequestRaw(strconv.Quote(name), data)
}

// sslRequestRaw is sslRequest with the source_id as raw JSON (empty: no source_id).
func sslRequestRaw(sourceID, data string) []byte {
	js := `{"message_type": "_ssl"`
	if sourceID != "" {
		js += `, "source_id": ` + sourceID
	}
	return codec.AppendFrame(nil, []byte(js+"}"), []byte(data), nil, false)
}

// anyFrame is a message of type any from source to the server.
func anyFrame(srv *Connector, source, data string) []byte {
	return codec.AppendFrame(nil, []byte(`{"message_type": "any", "source_id": `+strconv.Quote(source)+
		`, "destination_id": `+strconv.Quote(srv.SourceID())+`}`), []byte(data), nil, false)
}

// certReply is the data of a set_new_certificate reply.
type certReply struct {
	Cmd string `json:"cmd"`
	Crt string `json:"crt"`
	Key string `json:"key"`
}

// requestCert runs the `_ssl` exchange on an established default-certificate connection and
// returns the reply; the server must close the connection afterwards.
func requestCert(c net.Conn, name string, wait time.Duration) (*certReply, rawFrame, error) {
	if _, err := c.Write(sslRequest(name, `{"cmd": "get_new_certificate"}`)); err != nil {
		return nil, rawFrame{}, err
	}
	return readCertReply(c, name, wait)
}

// readCertReply reads the set_new_certificate reply and checks that the server then closes.
func readCertReply(c net.Conn, name string, wait time.Duration) (*certReply, rawFrame, error) {
	fr, err := readFrameWithin(c, wait)
	if err != nil {
		return nil, fr, fmt.Errorf("no set_new_certificate for %s: %w", name, err)
	}
	var h codec.Header
	if err := codec.ScanHeader(fr.f.JSON, &h); err != nil {
		return nil, fr, err
	}
	var rep certReply
	if mt, _ := h.MessageType.Str(); mt != "_ssl" || json.Unmarshal(fr.f.Data, &rep) != nil || rep.Cmd != "set_new_certificate" {
		return nil, fr, fmt.Errorf("unexpected reply %s %q", fr.f.JSON, trunc(fr.f.Data))
	}
	if _, err := readFrameWithin(c, wait); err == nil {
		return nil, fr, fmt.Errorf("server wrote after set_new_certificate")
	} else if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return nil, fr, fmt.Errorf("server did not close after set_new_certificate")
	}
	return &rep, fr, nil
}

// enroll obtains a certificate for name from the strict server at addr with the default
// certificate of certs, as a first-time client does.
func enroll(t *testing.T, addr, certs, name string) *gotls.Certificate {
	t.Helper()
	c := mustDialTLS(t, addr, defaultCert(t, certs))
	rep, _, err := requestCert(c, name, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := gotls.X509KeyPair([]byte(rep.Crt), []byte(rep.Key))
	if err != nil {
		t.Fatalf("certificate of %s: %v", name, err)
	}
	return &pair
}

// connectAs opens a connection with cert and waits until the server identifies it as name.
func connectAs(t *testing.T, srv *Connector, cert *gotls.Certificate, name string) *gotls.Conn {
	t.Helper()
	c := mustDialTLS(t, srv.TCPAddr().String(), cert)
	waitPeers(t, srv, name+" identified by certificate", func(p []string) bool { return hasName(p, name) })
	return c
}

func hasName(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// forgeCert makes a self-signed certificate (own ECDSA key) with the given subject and serial.
func forgeCert(t *testing.T, rawSubject []byte, serial *big.Int) (*gotls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, RawSubject: rawSubject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	if rawSubject == nil {
		tmpl.Subject = pkix.Name{Country: []string{"US"}, Organization: []string{"forged"}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &gotls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der
}

func leafOf(t *testing.T, c *gotls.Certificate) *x509.Certificate {
	t.Helper()
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ---------------------------------------------------------------------------------------------

// TestTLSSecurityNoDefaultCert: a client without the pre-shared default certificate (a default
// certificate of another create_certificates run, Go- or Python-made, or no certificate at
// all) is refused by a strict server at the TLS layer and gets no certificate.
// Check: tls.ServerConfig's VerifyPeerCertificate (VerifyClientCert) and RequireAnyClientCert.
func TestTLSSecurityNoDefaultCert(t *testing.T) {
	srv, certs := tlsServerConn(t, false)
	addr := srv.TCPAddr().String()
	other := filepath.Join(shortDir(t), "o")
	if err := ctls.CreateCertificates(other, nil); err != nil {
		t.Fatal(err)
	}
	foreign := map[string]*gotls.Certificate{"go tree": defaultCert(t, other), "no certificate": nil}
	py := filepath.Join(repoRoot(t), "..", "shared", "testdata", "wire", "ssl")
	if c, err := gotls.LoadX509KeyPair(filepath.Join(py, "certificates/client/client-certs/default.pem"),
		filepath.Join(py, "certificates/client/client-certs/default.key")); err == nil {
		foreign["python tree"] = &c
	} else {
		t.Logf("python-made tree not available: %v", err)
	}
	for what, cert := range foreign {
		c, err := dialTLS(t, addr, cert)
		expectRefused(t, what, c, err)
	}
	// control: the tree's own default certificate passes the handshake
	c := mustDialTLS(t, addr, defaultCert(t, certs))
	if _, _, err := requestCert(c, "good", 30*time.Second); err != nil {
		t.Fatalf("control with the pre-shared default certificate: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ctls.NewPaths(certs).ServerClientDir, "probe.pem")); err == nil {
		t.Fatal("a refused client got a certificate")
	}
}

// TestTLSSecurityServerPinning: our client refuses a server whose certificate is not the pinned
// one (here the server certificate of another tree); the rogue server never sees a frame.
// Control: the same fake server with the right certificate receives the `_ssl` request.
// Check: tls.ClientConfig's VerifyPeerCertificate (VerifyServerCert).
func TestTLSSecurityServerPinning(t *testing.T) {
	dir := shortDir(t)
	certs, other := filepath.Join(dir, "c"), filepath.Join(dir, "o")
	for _, d := range []string{certs, other} {
		if err := ctls.CreateCertificates(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	rogue := fakeTLSServ(t, other, gotls.RequireAnyClientCert)
	tlsClientConn(t, certs, "client1", rogue.port(), false)
	nc := rogue.accept(t)
	if err := nc.Handshake(); err == nil {
		fr, rerr := readFrameWithin(nc, 5*time.Second)
		t.Fatalf("client accepted a server certificate that is not pinned (then sent %s, %v)", fr.f.JSON, rerr)
	} else if !isTLSAlert(err) {
		t.Fatalf("expected the client to abort the handshake with an alert, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(ctls.NewPaths(certs).ClientCertsDir, "client1.pem")); err == nil {
		t.Fatal("client stored a certificate from a rogue server")
	}
	// control: the pinned certificate is accepted
	good := fakeTLSServ(t, certs, gotls.RequireAnyClientCert)
	tlsClientConn(t, certs, "client2", good.port(), false)
	gc := good.accept(t)
	if err := gc.Handshake(); err != nil {
		t.Fatalf("control handshake: %v", err)
	}
	if fr, err := readFrameWithin(gc, 5*time.Second); err != nil || !bytes.Contains(fr.f.JSON, []byte(`"_ssl"`)) {
		t.Fatalf("control: %s %v", fr.f.JSON, err)
	}
}

// fakeTLSServer is a raw crypto/tls server presenting the server certificate of a tree.
type fakeTLSServer struct {
	ln    net.Listener
	conns chan net.Conn
}

func fakeTLSServ(t *testing.T, certs string, auth gotls.ClientAuthType) *fakeTLSServer {
	t.Helper()
	p := ctls.NewPaths(certs)
	cert, err := gotls.LoadX509KeyPair(p.ServerPEM, p.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeTLSServer{ln: gotls.NewListener(ln, &gotls.Config{Certificates: []gotls.Certificate{cert}, ClientAuth: auth}),
		conns: make(chan net.Conn, 16)}
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				close(s.conns)
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *fakeTLSServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// accept returns the next connection (at most 10 s) with a handshake deadline set.
func (s *fakeTLSServer) accept(t *testing.T) *gotls.Conn {
	t.Helper()
	select {
	case c, ok := <-s.conns:
		if !ok {
			t.Fatal("fake server closed")
		}
		tc := c.(*gotls.Conn)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { tc.Close() })
		return tc
	case <-time.After(10 * time.Second):
		t.Fatal("client never connected to the fake server")
	}
	return nil
}

// TestTLSSecurityCertNotInTree: our server refuses a client certificate that is not reachable
// through its symlinks/: a forged certificate carrying an enrolled client's subject and serial
// (own key) is refused at the TLS layer (it would otherwise be identified as that client), and
// a certificate the operator put in symlinks/ without a name in source_id_2_cert.json is
// closed at accept ("Unknown client").
// Checks: VerifyClientCert (byte pinning) and handshakeServer's unknown-serial close.
func TestTLSSecurityCertNotInTree(t *testing.T) {
	srv, certs := tlsServerConn(t, false)
	addr := srv.TCPAddr().String()
	a := enroll(t, addr, certs, "alice")
	al := leafOf(t, a)
	forged, _ := forgeCert(t, al.RawSubject, al.SerialNumber)
	c, err := dialTLS(t, addr, forged)
	expectRefused(t, "forged certificate with alice's subject and serial", c, err)
	if hasName(srv.ConnectedPeers(), "alice") {
		t.Fatal("forged certificate identified as alice")
	}
	// a forged copy of the default certificate's subject and serial cannot ask for certificates
	dl := leafOf(t, defaultCert(t, certs))
	forgedDefault, _ := forgeCert(t, dl.RawSubject, dl.SerialNumber)
	c, err = dialTLS(t, addr, forgedDefault)
	expectRefused(t, "forged default certificate", c, err)

	// in symlinks/ but not in the name map: TLS passes, the application closes at accept
	extra, der := forgeCert(t, nil, big.NewInt(0x5eed))
	p := ctls.NewPaths(certs)
	xl := leafOf(t, extra)
	hash, err := ctls.SubjectHash(xl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.ServerClientDir, "extra.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../extra.pem", filepath.Join(p.SymlinksDir, hash+".0")); err != nil {
		t.Fatal(err)
	}
	c = mustDialTLS(t, addr, extra)
	c.Write(anyFrame(srv, "extra", "x"))
	if err := expectTLSClosed(t, "certificate without a name", c); isTLSAlert(err) {
		t.Fatalf("certificate in symlinks/ refused at the TLS layer (%v): the tree lookup is wrong", err)
	}
	if peers := srv.ConnectedPeers(); len(peers) != 0 {
		t.Fatalf("peers %v", peers)
	}
}

// TestTLSSecurityImpersonation: a client presenting alice's certificate whose frames claim
// source_id bob has them dropped; frames of a default-certificate connection other than `_ssl`
// are dropped too. A following valid frame from alice is the barrier: it must be the first
// (and only) frame the server application gets.
// Check: tlsControl's source_id == certificate name comparison (and its default-cert drop).
func TestTLSSecurityImpersonation(t *testing.T) {
	srv, certs := tlsServerConn(t, false)
	addr := srv.TCPAddr().String()
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	a := enroll(t, addr, certs, "alice")
	enroll(t, addr, certs, "bob")
	// a default-certificate connection sends traffic, then asks for a certificate: when the
	// reply arrives the traffic frame has been processed (same stream, in order)
	d := mustDialTLS(t, addr, defaultCert(t, certs))
	d.Write(anyFrame(srv, "carol", "from default cert"))
	if _, _, err := requestCert(d, "carol", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	c := connectAs(t, srv, a, "alice")
	c.Write(anyFrame(srv, "bob", "forged by alice"))
	c.Write(anyFrame(srv, srv.SourceID(), "forged by alice as the server"))
	genuine := anyFrame(srv, "alice", "genuine")
	c.Write(genuine)
	var ac net.Conn
	expectBytes(t, "server application's first frame", app.next(t, &ac), genuine)
	// alice's connection stays open and usable
	again := anyFrame(srv, "alice", "again")
	c.Write(again)
	expectBytes(t, "server application's second frame", app.next(t, &ac), again)
}

// TestTLSSecurityDeletedCert: after delete_client_certificate_on_server (commander) the
// client is disconnected, and at its next connection its certificate is refused at the TLS
// layer (symlinks/ is re-read per handshake); with remove_only_symlink the same holds.
// Checks: ServerStore.Delete + VerifyClientCert's per-handshake read of symlinks/.
func TestTLSSecurityDeletedCert(t *testing.T) {
	srv, certs := tlsServerConn(t, false)
	addr := srv.TCPAddr().String()
	for _, onlySymlink := range []bool{false, true} {
		name := "alice" + strconv.FormatBool(onlySymlink)
		a := enroll(t, addr, certs, name)
		c := connectAs(t, srv, a, name)
		if got := command(t, srv.Paths().Commander, "delete_client_certificate_on_server",
			map[string]any{"client_id": name, "remove_only_symlink": onlySymlink}); got != `{"status": true, "msg": ""}` {
			t.Fatalf("delete reply %q", got)
		}
		expectTLSClosed(t, "connection of the deleted client", c)
		waitPeers(t, srv, name+" disconnected", func(p []string) bool { return !hasName(p, name) })
		c, err := dialTLS(t, addr, a)
		expectRefused(t, "deleted certificate ("+name+")", c, err)
		if hasName(srv.ConnectedPeers(), name) {
			t.Fatalf("deleted %s identified again", name)
		}
	}
	m, err := ctls.ReadSourceIDMap(ctls.NewPaths(certs).SourceIDMap)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 0 {
		t.Fatalf("map after deletions: %s", m.AppendJSON(nil))
	}
}

// TestTLSSecurityDuplicateName: a second client asking for an already-issued name is closed
// without a `_ssl` reply while the first (an in-process connector) keeps working on the same
// connection with the same certificate.
// Check: ServerStore.Issue's refusal of an existing <name>.pem (and its O_EXCL create).
func TestTLSSecurityDuplicateName(t *testing.T) {
	srv, cli, certs := tlsPair(t, false)
	waitPeers(t, srv, "client1 identified", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	waitPeers(t, cli, "client connected", func(p []string) bool { return len(p) == 1 })
	p := ctls.NewPaths(certs)
	pemPath, _ := p.ServerClientCert("client1")
	before, err := os.ReadFile(pemPath)
	if err != nil {
		t.Fatal(err)
	}
	srvSide, cliSide := srv.peerByName("client1"), cli.peerByName(cli.serverPeer)
	c := mustDialTLS(t, srv.TCPAddr().String(), defaultCert(t, certs))
	c.Write(sslRequest("client1", `{"cmd": "get_new_certificate"}`))
	expectTLSClosed(t, "second request for client1", c)
	after, _ := os.ReadFile(pemPath)
	if !bytes.Equal(before, after) {
		t.Fatal("client1's certificate was replaced")
	}
	exchange(t, srv, cli)
	if srv.peerByName("client1") != srvSide || cli.peerByName(cli.serverPeer) != cliSide {
		t.Fatal("client1 was disconnected")
	}
}

// TestTLSSecurityMalformedSSL: malformed `_ssl` requests close only their own connection: an
// identified client and a waiting default-certificate connection keep working, and no file is
// created for a bad name.
// Check: issueCertificate's request validation (and ServerStore.Issue's name check).
func TestTLSSecurityMalformedSSL(t *testing.T) {
	srv, cli, certs := tlsPair(t, false)
	waitPeers(t, srv, "client1 identified", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	waitPeers(t, cli, "client connected", func(p []string) bool { return len(p) == 1 })
	addr := srv.TCPAddr().String()
	waiting := mustDialTLS(t, addr, defaultCert(t, certs))
	cases := []struct{ name, frame string }{
		{"data not JSON", string(sslRequest("m1", `get_new_certificate`))},
		{"data empty", string(sslRequest("m2", ``))},
		{"data a JSON list", string(sslRequest("m3", `["get_new_certificate"]`))},
		{"unknown cmd", string(sslRequest("m4", `{"cmd": "set_new_certificate"}`))},
		{"cmd not a string", string(sslRequest("m5", `{"cmd": 1}`))},
		{"no cmd", string(sslRequest("m6", `{}`))},
		{"empty source_id", string(sslRequest("", `{"cmd": "get_new_certificate"}`))},
		{"no source_id", string(sslRequestRaw("", `{"cmd": "get_new_certificate"}`))},
		{"numeric source_id", string(sslRequestRaw("7", `{"cmd": "get_new_certificate"}`))},
		{"source_id a path", string(sslRequest("../../evil", `{"cmd": "get_new_certificate"}`))},
		{"source_id with NUL", string(sslRequestRaw(`"a\u0000b"`, `{"cmd": "get_new_certificate"}`))},
		{"source_id empty after a NUL", string(sslRequestRaw(`"\u0000"`, `{"cmd": "get_new_certificate"}`))},
		{"frame truncated", string(sslRequest("m7", `{"cmd": "get_new_certificate"}`)[:20])},
	}
	for _, tc := range cases {
		c := mustDialTLS(t, addr, defaultCert(t, certs))
		c.Write([]byte(tc.frame))
		if strings.HasPrefix(tc.name, "frame truncated") {
			c.CloseWrite()
		}
		expectTLSClosed(t, tc.name, c)
	}
	p := ctls.NewPaths(certs)
	ents, _ := os.ReadDir(p.ServerClientDir)
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".pem") && n != "default.pem" && n != "client1.pem" {
			t.Fatalf("a malformed request created %s", n)
		}
	}
	if _, err := os.Stat(filepath.Join(p.Base, "evil.pem")); err == nil {
		t.Fatal("a path source_id created a file outside client-certs/")
	}
	if _, _, err := requestCert(waiting, "late", 30*time.Second); err != nil {
		t.Fatalf("waiting default-certificate connection: %v", err)
	}
	exchange(t, srv, cli)
	// A frame whose transport JSON does not parse is not known to be `_ssl`: like every malformed
	// frame it is dropped and the connection kept (PEER-PROTOCOL §2.8, a Go receiver is more
	// robust than Python, which closes); nothing is issued for it and the connection can still
	// ask properly.
	c := mustDialTLS(t, addr, defaultCert(t, certs))
	c.Write(codec.AppendFrame(nil, []byte(`{"message_type": "_ssl", "source_id": "bad\x"}`), []byte(`{"cmd": "get_new_certificate"}`), nil, false))
	if _, _, err := requestCert(c, "after-bad-json", 30*time.Second); err != nil {
		t.Fatalf("after a malformed frame: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.ServerClientDir, "bad.pem")); err == nil {
		t.Fatal("a certificate was issued for a malformed frame")
	}
}

// TestTLSSecurityHandshakeSSLStrict: a strict server closes a connection sending
// `_handshake_ssl` (it would otherwise name a default-certificate connection, or rename an
// identified one, without a certificate for that name).
// Check: tlsControl's `_handshake_ssl` refusal when ssl_allow_all is false.
func TestTLSSecurityHandshakeSSLStrict(t *testing.T) {
	v := goldenSession(t, "ssl_allow_all")
	srv, certs := tlsServerConn(t, false)
	addr := srv.TCPAddr().String()
	hs := v["001"].bytesFor(t, 0)
	c := mustDialTLS(t, addr, defaultCert(t, certs))
	c.Write(hs)
	expectTLSClosed(t, "_handshake_ssl on a default-certificate connection", c)
	a := enroll(t, addr, certs, "alice")
	c = connectAs(t, srv, a, "alice")
	c.Write(hs)
	expectTLSClosed(t, "_handshake_ssl on an identified connection", c)
	waitPeers(t, srv, "alice disconnected", func(p []string) bool { return len(p) == 0 })
}

// TestTLSAllowAllGolden: in allow-all mode our client writes exactly the captured
// `_handshake_ssl` frame, and our server identifies a raw TLS client (no certificate) sending
// it, then relays the captured traffic byte for byte.
func TestTLSAllowAllGolden(t *testing.T) {
	v := goldenSession(t, "ssl_allow_all")
	if len(v) == 0 {
		t.Skip("no ssl_allow_all session in the manifest")
	}
	// client side: a fake server that asks for no certificate
	dir := shortDir(t)
	certs := filepath.Join(dir, "c")
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	fs := fakeTLSServ(t, certs, gotls.NoClientCert)
	tlsClientConn(t, certs, "client1", fs.port(), true)
	fc := fs.accept(t)
	if err := fc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if len(fc.ConnectionState().PeerCertificates) != 0 {
		t.Fatal("allow-all client presented a certificate")
	}
	fr, err := readFrameWithin(fc, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectBytes(t, "client's first frame", fr.raw, v["001"].rawPayload)

	// server side
	srv, _ := tlsServerConn(t, true)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	c := mustDialTLS(t, srv.TCPAddr().String(), nil)
	c.Write(v["001"].bytesFor(t, 0))
	waitPeers(t, srv, "client1 identified by _handshake_ssl", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	c.Write(v["003"].bytesFor(t, 0))
	var ac net.Conn
	expectBytes(t, "server app 004", app.next(t, &ac), v["004"].bytesFor(t, 0))
	dialUnix(t, srv.Paths().SendToConnector).Write(v["005"].bytesFor(t, 0))
	got, err := readFrameWithin(c, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectBytes(t, "tcp 006", got.raw, v["006"].bytesFor(t, 0))
	c.Write(v["009"].bytesFor(t, 0))
	got, err = readFrameWithin(c, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectBytes(t, "ping reply 010", got.raw, v["010"].bytesFor(t, 0))
}

var pemValue = regexp.MustCompile(`"(crt|key)": "(?:[^"\\]|\\.)*"`)

// sslShape reduces set_new_certificate data to its shape: the PEM values replaced by their
// key name (key order, separators and cmd value kept).
func sslShape(data []byte) string {
	return pemValue.ReplaceAllString(string(data), `"$1": "<$1>"`)
}

// pemBlocks returns the block types of a PEM text and fails on trailing garbage.
func pemBlocks(t *testing.T, what, text string) []string {
	t.Helper()
	var types []string
	rest := []byte(text)
	for {
		b, r := pem.Decode(rest)
		if b == nil {
			break
		}
		types = append(types, b.Type)
		rest = r
	}
	if len(bytes.TrimSpace(rest)) != 0 || !strings.HasSuffix(text, "-----\n") {
		t.Fatalf("%s: not clean PEM text (rest %q)", what, trunc(rest))
	}
	return types
}

// TestTLSSSLGolden: the `ssl/` vectors decode; our client's `_ssl` request is byte-identical
// to the capture and it stores and presents the certificate a Python server sent (vector 002);
// our server's set_new_certificate has the capture's shape (transport JSON, data key order and
// cmd, one CERTIFICATE and one PRIVATE KEY block, same certificate version and key type), and
// the reconnected client's traffic matches the capture byte for byte.
func TestTLSSSLGolden(t *testing.T) {
	v := goldenSession(t, "ssl")
	if len(v) == 0 {
		t.Skip("no ssl session in the manifest")
	}
	// every vector decodes
	for k, vec := range v {
		if vec.SockKind == "uds_cmd" {
			continue
		}
		var h codec.Header
		if _, err := codec.ParseBodyHeader(vec.rawPayload[codec.LenPrefix:], &h); err != nil {
			t.Fatalf("vector %s: %v", k, err)
		}
	}
	req, rep := v["001"], v["002"]
	var golden certReply
	if err := json.Unmarshal([]byte(mustHex(t, rep.DataHex)), &golden); err != nil || golden.Cmd != "set_new_certificate" {
		t.Fatalf("vector 002 data: %v", err)
	}
	goldenCert := pemBlocks(t, "golden crt", golden.Crt)
	goldenKey := pemBlocks(t, "golden key", golden.Key)

	// --- our client against a fake strict server speaking the captured bytes
	dir := shortDir(t)
	certs := filepath.Join(dir, "c")
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	fs := fakeTLSServ(t, certs, gotls.RequireAnyClientCert)
	tlsClientConn(t, certs, "client1", fs.port(), false)
	c1 := fs.accept(t)
	if err := c1.Handshake(); err != nil {
		t.Fatal(err)
	}
	if got, want := ctls.PeerSerial(c1.ConnectionState()), ctls.SerialString(leafOf(t, defaultCert(t, certs)).SerialNumber); got != want {
		t.Fatalf("first connection presents %s, want the default certificate %s", got, want)
	}
	fr, err := readFrameWithin(c1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectBytes(t, "client's _ssl request", fr.raw, req.rawPayload)
	c1.Write(rep.rawPayload)
	c2 := fs.accept(t)
	if err := c2.Handshake(); err != nil {
		t.Fatal(err)
	}
	gblock, _ := pem.Decode([]byte(golden.Crt))
	if pc := c2.ConnectionState().PeerCertificates; len(pc) == 0 || !bytes.Equal(pc[0].Raw, gblock.Bytes) {
		t.Fatal("reconnection does not present the certificate of set_new_certificate")
	}
	p := ctls.NewPaths(certs)
	pemPath, keyPath := p.ClientOwnCert("client1")
	if b, _ := os.ReadFile(pemPath); string(b) != golden.Crt {
		t.Fatal("stored certificate differs from the one received")
	}
	if st, err := os.Stat(keyPath); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stored key: %v %v", st, err)
	}

	// --- our server answering the captured request
	srv, scerts := tlsServerConn(t, false)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	addr := srv.TCPAddr().String()
	d := mustDialTLS(t, addr, defaultCert(t, scerts))
	d.Write(req.rawPayload)
	_, sfr, err := readCertReply(d, "client1", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := strings.ReplaceAll(rep.JSONRaw, "('127.0.0.1', 10673)", srv.SourceID())
	expectBytes(t, "set_new_certificate transport JSON", sfr.f.JSON, []byte(wantJSON))
	if got, want := sslShape(sfr.f.Data), sslShape([]byte(mustHex(t, rep.DataHex))); got != want {
		t.Fatalf("set_new_certificate shape:\n got %s\nwant %s", got, want)
	}
	var mine certReply
	json.Unmarshal(sfr.f.Data, &mine)
	if got := pemBlocks(t, "our crt", mine.Crt); fmt.Sprint(got) != fmt.Sprint(goldenCert) {
		t.Fatalf("crt blocks %v, golden %v", got, goldenCert)
	}
	if got := pemBlocks(t, "our key", mine.Key); fmt.Sprint(got) != fmt.Sprint(goldenKey) {
		t.Fatalf("key blocks %v, golden %v", got, goldenKey)
	}
	if mine.Crt == golden.Crt {
		t.Fatal("our server sent the captured certificate")
	}
	ourPair, err := gotls.X509KeyPair([]byte(mine.Crt), []byte(mine.Key))
	if err != nil {
		t.Fatal(err)
	}
	ol, gl := leafOf(t, &ourPair), mustLeaf(t, gblock.Bytes)
	if ol.Version != gl.Version || ol.PublicKeyAlgorithm != gl.PublicKeyAlgorithm || ol.SignatureAlgorithm != gl.SignatureAlgorithm ||
		len(ol.Extensions) != len(gl.Extensions) {
		t.Fatalf("certificate v%d %v %v ext %d, golden v%d %v %v ext %d", ol.Version, ol.PublicKeyAlgorithm, ol.SignatureAlgorithm,
			len(ol.Extensions), gl.Version, gl.PublicKeyAlgorithm, gl.SignatureAlgorithm, len(gl.Extensions))
	}
	// reconnected with it: no handshake frame, traffic as captured
	c := connectAs(t, srv, &ourPair, "client1")
	c.Write(v["004"].bytesFor(t, 0))
	var ac net.Conn
	expectBytes(t, "server app 005", app.next(t, &ac), v["005"].bytesFor(t, 0))
	c.Write(v["010"].bytesFor(t, 0))
	got, err := readFrameWithin(c, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	expectBytes(t, "ping reply 011", got.raw, v["011"].bytesFor(t, 0))
}

func mustHex(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustLeaf(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSSecurityConcurrentIssuance: 50 first-time clients (raw TLS with the default
// certificate) ask for certificates at once; all get distinct certificates, each equal to the
// server's <name>.pem, reachable through its own symlink, recorded consistently in
// source_id_2_cert.json, and each then identifies with it.
// Check: ServerStore.Issue's serialized commit (mutex around symlink choice, map update and
// JSON rewrite).
func TestTLSSecurityConcurrentIssuance(t *testing.T) {
	const n = 50
	srv, certs := tlsServerConn(t, false)
	addr := srv.TCPAddr().String()
	def := defaultCert(t, certs)
	conns := make([]*gotls.Conn, n)
	for i := range conns { // all connected first, then all requests at once
		conns[i] = mustDialTLS(t, addr, def)
	}
	replies := make([]*certReply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			replies[i], _, errs[i] = requestCert(conns[i], fmt.Sprintf("cli%02d", i), 120*time.Second)
		}(i)
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("cli%02d: %v", i, err)
		}
	}
	p := ctls.NewPaths(certs)
	m, err := ctls.ReadSourceIDMap(p.SourceIDMap)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != n {
		t.Fatalf("source_id_2_cert.json holds %d names, want %d: %s", m.Len(), n, m.AppendJSON(nil))
	}
	if raw, _ := os.ReadFile(p.SourceIDMap); !bytes.Equal(raw, m.AppendJSON(nil)) {
		t.Fatalf("source_id_2_cert.json is not in json.dump form: %q", trunc(raw))
	}
	serials := map[string]bool{}
	pairs := make([]*gotls.Certificate, n)
	for i, r := range replies {
		name := fmt.Sprintf("cli%02d", i)
		pair, err := gotls.X509KeyPair([]byte(r.Crt), []byte(r.Key))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pairs[i] = &pair
		serial := ctls.SerialString(leafOf(t, &pair).SerialNumber)
		if serials[serial] {
			t.Fatalf("serial %s issued twice", serial)
		}
		serials[serial] = true
		if s, ok := m.Serial(name); !ok || s != serial {
			t.Fatalf("map: %s -> %q, certificate %s", name, s, serial)
		}
		if back, ok := m.Name(serial); !ok || back != name {
			t.Fatalf("map: %s -> %q, want %s", serial, back, name)
		}
		pemPath, _ := p.ServerClientCert(name)
		if b, _ := os.ReadFile(pemPath); string(b) != r.Crt {
			t.Fatalf("%s: server's %s differs from the certificate sent", name, pemPath)
		}
	}
	// symlinks: default + one per client, each target distinct, each found by the capath walk
	ents, err := os.ReadDir(p.SymlinksDir)
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	var names []string
	for _, e := range ents {
		dst, err := os.Readlink(filepath.Join(p.SymlinksDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if targets[dst] {
			t.Fatalf("two symlinks to %s", dst)
		}
		targets[dst] = true
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(ents) != n+1 {
		t.Fatalf("%d symlinks, want %d: %v", len(ents), n+1, names)
	}
	for i, pair := range pairs {
		if err := ctls.VerifyClientCert(p.SymlinksDir, pair.Certificate, time.Now()); err != nil {
			t.Fatalf("cli%02d: %v", i, err)
		}
	}
	// every client identifies with its certificate
	for i, pair := range pairs {
		mustDialTLS(t, addr, pair)
		_ = i
	}
	waitPeers(t, srv, "all clients identified", func(p []string) bool { return len(p) == n })
}
