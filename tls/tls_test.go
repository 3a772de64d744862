package tls

import (
	gotls "crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestClientStorage(t *testing.T) {
	base := newTree(t, fastTemplate)
	p := NewPaths(base)
	c, k, def := ClientCertPaths(base, "client1")
	if c != p.ClientDefaultPEM || k != p.ClientDefaultKey || !def {
		t.Errorf("before: %s %s %v", c, k, def)
	}
	s := openStore(t, base)
	iss, err := s.Issue("client1")
	if err != nil {
		t.Fatal(err)
	}
	if err := StoreClientCertificate(base, "client1", []byte("junk"), iss.KeyPEM); !errors.Is(err, ErrCert) {
		t.Errorf("junk cert: %v", err)
	}
	if err := StoreClientCertificate(base, "client1", iss.CertPEM, iss.KeyPEM); err != nil {
		t.Fatal(err)
	}
	c, k, def = ClientCertPaths(base, "client1")
	if want, wantK := p.ClientOwnCert("client1"); c != want || k != wantK || def {
		t.Errorf("after: %s %s %v", c, k, def)
	}
	if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v %v", fi.Mode(), err)
	}
	if _, _, def := ClientCertPaths(base, "../x"); !def {
		t.Error("bad name must use default")
	}
	if err := StoreClientCertificate(base, "a/b", iss.CertPEM, iss.KeyPEM); !errors.Is(err, ErrBadSourceID) {
		t.Errorf("bad name: %v", err)
	}
	// pinned file: server.crt, else server.pem (1.6 trees)
	if PinnedServerCertPath(base) != p.ClientServerCRT {
		t.Error("pinned crt")
	}
	os.Rename(p.ClientServerCRT, p.ClientServerPEM)
	if PinnedServerCertPath(base) != p.ClientServerPEM {
		t.Error("pinned pem fallback")
	}
	os.Rename(p.ClientServerPEM, p.ClientServerCRT)
	// deletion on the client: back to the default certificate
	if ok, msg := DeleteClientCertificateOnClient(base, "client1"); !ok || msg != "" {
		t.Errorf("delete: %v %q", ok, msg)
	}
	if _, _, def := ClientCertPaths(base, "client1"); !def || fileExists(k) {
		t.Error("not deleted")
	}
	if ok, msg := DeleteClientCertificateOnClient(base, "client1"); !ok || msg != "" {
		t.Errorf("delete absent: %v %q", ok, msg)
	}
}

// handshake runs one TLS connection over 127.0.0.1 and reports both sides' results. The
// client reads one byte the server writes after its handshake, so a server-side rejection of
// the client certificate (which TLS 1.3 reports to the client only afterwards) shows on the
// client too.
func handshake(t *testing.T, srvCfg, cliCfg *gotls.Config) (srvState gotls.ConnectionState, srvErr, cliErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		st  gotls.ConnectionState
		err error
	}
	done := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- res{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := gotls.Server(c, srvCfg)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{'x'})
		}
		done <- res{tc.ConnectionState(), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := gotls.Client(c, cliCfg)
	cliErr = tc.Handshake()
	if cliErr == nil {
		var b [1]byte
		_, cliErr = io.ReadFull(tc, b[:])
	}
	r := <-done
	return r.st, r.err, cliErr
}

func TestHandshakeStrict(t *testing.T) {
	base := newTree(t, fastTemplate)
	srvCfg, err := ServerConfig(base, false)
	if err != nil {
		t.Fatal(err)
	}
	if srvCfg.ClientAuth != gotls.RequireAnyClientCert {
		t.Errorf("ClientAuth %v", srvCfg.ClientAuth)
	}
	cliCfg, err := ClientConfig(base, "client1", false)
	if err != nil {
		t.Fatal(err)
	}
	if cliCfg.ServerName != "" || cliCfg.GetClientCertificate == nil {
		t.Error("client config: SNI set or no GetClientCertificate")
	}
	// default certificate: accepted, identified as default
	st, se, ce := handshake(t, srvCfg, cliCfg)
	if se != nil || ce != nil {
		t.Fatalf("default cert: server %v client %v", se, ce)
	}
	if st.ServerName != "" {
		t.Errorf("SNI %q sent", st.ServerName)
	}
	serial := PeerSerial(st)
	if !IsDefaultCert(base, serial) {
		t.Errorf("peer serial %s is not the default", serial)
	}

	// enrolment: the server issues, the client stores, the next handshake uses the new pair
	s := openStore(t, base)
	iss, err := s.Issue("client1")
	if err != nil {
		t.Fatal(err)
	}
	if err := StoreClientCertificate(base, "client1", iss.CertPEM, iss.KeyPEM); err != nil {
		t.Fatal(err)
	}
	st, se, ce = handshake(t, srvCfg, cliCfg)
	if se != nil || ce != nil {
		t.Fatalf("own cert: server %v client %v", se, ce)
	}
	if name, _ := s.NameOf(PeerSerial(st)); name != "client1" {
		t.Errorf("identified as %q", name)
	}

	// deleting the symlink refuses the next handshake at once
	if ok, msg := s.Delete("client1", true); !ok {
		t.Fatal(msg)
	}
	_, se, ce = handshake(t, srvCfg, cliCfg)
	if !errors.Is(se, ErrPeerRejected) || ce == nil {
		t.Errorf("deleted cert: server %v client %v", se, ce)
	}

	// a certificate of another tree (not reachable through symlinks/) is refused
	other := newTree(t, fastTemplate)
	otherCli, err := ClientConfig(other, "client1", false)
	if err != nil {
		t.Fatal(err)
	}
	otherCli.VerifyPeerCertificate = nil // only the server side is under test here
	_, se, ce = handshake(t, srvCfg, otherCli)
	if !errors.Is(se, ErrPeerRejected) || ce == nil {
		t.Errorf("foreign cert: server %v client %v", se, ce)
	}
	// and a client pinning another server refuses ours
	_, se, ce = handshake(t, srvCfg, mustClient(t, other, "x"))
	if !errors.Is(ce, ErrPeerRejected) || se == nil {
		t.Errorf("foreign server: server %v client %v", se, ce)
	}
	// an allow-all client (no certificate) cannot pass a strict server
	allowCli, _ := ClientConfig(base, "client1", true)
	_, se, ce = handshake(t, srvCfg, allowCli)
	if se == nil || ce == nil {
		t.Errorf("no cert: server %v client %v", se, ce)
	}
}

func mustClient(t *testing.T, base, name string) *gotls.Config {
	c, err := ClientConfig(base, name, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandshakeAllowAll(t *testing.T) {
	base := newTree(t, fastTemplate)
	srvCfg, err := ServerConfig(base, true)
	if err != nil {
		t.Fatal(err)
	}
	// an allow-all client needs no file at all
	cliCfg, err := ClientConfig(filepath.Join(t.TempDir(), "nothing"), "c", true)
	if err != nil {
		t.Fatal(err)
	}
	st, se, ce := handshake(t, srvCfg, cliCfg)
	if se != nil || ce != nil {
		t.Fatalf("allow-all: server %v client %v", se, ce)
	}
	if PeerSerial(st) != "" {
		t.Errorf("peer serial %q", PeerSerial(st))
	}
	// a strict client towards an allow-all server still verifies it and completes
	if _, se, ce := handshake(t, srvCfg, mustClient(t, base, "c")); se != nil || ce != nil {
		t.Errorf("strict client: %v %v", se, ce)
	}
}

func TestConfigErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := ServerConfig(empty, true); !errors.Is(err, ErrCert) {
		t.Errorf("ServerConfig: %v", err)
	}
	if _, err := ClientConfig(empty, "c", false); !errors.Is(err, ErrCert) {
		t.Errorf("ClientConfig: %v", err)
	}
	if err := VerifyClientCert(empty, nil, time.Now()); !errors.Is(err, ErrPeerRejected) {
		t.Error(err)
	}
	if err := VerifyClientCert(empty, [][]byte{{1, 2}}, time.Now()); !errors.Is(err, ErrPeerRejected) {
		t.Error(err)
	}
	if err := VerifyServerCert(filepath.Join(empty, "x"), [][]byte{{1}}, time.Now()); !errors.Is(err, ErrPeerRejected) {
		t.Error(err)
	}
	// expired: a certificate outside its validity is refused even when pinned
	base := newTree(t, fastTemplate)
	b, _ := os.ReadFile(NewPaths(base).ClientDefaultPEM)
	c, _ := ParseCertsPEM(b)
	if err := VerifyClientCert(NewPaths(base).SymlinksDir, [][]byte{c[0].Raw}, c[0].NotAfter.Add(time.Second)); !errors.Is(err, ErrPeerRejected) {
		t.Errorf("expired: %v", err)
	}
	if PeerSerial(gotls.ConnectionState{}) != "" {
		t.Error("PeerSerial of nothing")
	}
}
