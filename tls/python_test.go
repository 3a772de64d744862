package tls

import (
	"bufio"
	"context"
	gotls "crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// refPath returns the directory holding the 1.0.33 aioconnectors package, or skips.
func refPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no Python interop")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	ref := os.Getenv("AIOCONNECTORS_PATH")
	if ref == "" {
		ref = filepath.Join(repoRoot(t), "..", "ref-1.0.33")
	}
	if _, err := os.Stat(filepath.Join(ref, "aioconnectors", "ssl_helper.py")); err != nil {
		t.Skipf("aioconnectors 1.0.33 not found at %s (set AIOCONNECTORS_PATH)", ref)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (the Python reference shells out to it)")
	}
	return ref
}

// runPyPeers runs testdata/py_peers.py on the tree and returns its output.
func runPyPeers(t *testing.T, ref, base string, wait float64, wantConnected bool) string {
	t.Helper()
	work, err := os.MkdirTemp("", "ac") // short: unix socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(work)
	script, _ := filepath.Abs(filepath.Join("testdata", "py_peers.py"))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out []byte
	// The port is free when chosen but another test process may take it before Python binds:
	// try again with a new one (bounded).
	for attempt := 0; ; attempt++ {
		ln, lerr := net.Listen("tcp", "127.0.0.1:0")
		if lerr != nil {
			t.Fatal(lerr)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cmd := exec.CommandContext(ctx, "python3", script, base, work, strconv.Itoa(port), strconv.FormatFloat(wait, 'f', -1, 64))
		cmd.Env = append(os.Environ(), "PYTHONPATH="+ref)
		cmd.Dir = work
		out, err = cmd.CombinedOutput()
		if err == nil || attempt == 2 || !strings.Contains(string(out), "Address already in use") {
			break
		}
	}
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(work, "c", "aioconnectors.log"))
		t.Fatalf("python: %v\n%s\nlog:\n%s", err, out, logs)
	}
	connected := strings.Contains(string(out), "CONNECTED ['client1']") && !strings.Contains(string(out), "NOT CONNECTED")
	if connected != wantConnected {
		logs, _ := os.ReadFile(filepath.Join(work, "c", "aioconnectors.log"))
		t.Fatalf("python peers:\n%s\nlog:\n%s", out, logs)
	}
	return string(out)
}

// A tree made by CreateCertificates serves a real 1.0.33 server and client in strict mode: the
// Python server trusts our default certificate through our <hash>.0 symlink (OpenSSL capath),
// the client pins our server certificate, the server issues client1's certificate with openssl
// into our tree, and the client reconnects with it and is identified as client1. Our reader then
// accepts what Python wrote.
func TestPythonServerOnOurTree(t *testing.T) {
	ref := refPath(t)
	base := newTree(t, "")
	runPyPeers(t, ref, base, 30, true)
	p := NewPaths(base)
	s, err := OpenServerStore(base)
	if err != nil {
		t.Fatalf("reading the map Python wrote: %v", err)
	}
	serial, ok := s.SerialOf("client1")
	if !ok {
		t.Fatalf("client1 not in the map: %s", s.Map().AppendJSON(nil))
	}
	b, err := os.ReadFile(filepath.Join(p.ClientCertsDir, "client1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertsPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	if SerialString(c[0].SerialNumber) != serial {
		t.Errorf("client1 serial %s, map %s", SerialString(c[0].SerialNumber), serial)
	}
	checkTree(t, s)
}

// Certificates issued by our ServerStore and stored by StoreClientCertificate are used by the
// 1.0.33 client and accepted by the 1.0.33 server, which finds the certificate through our
// symlink and the name through our source_id_2_cert.json (no enrolment happens).
func TestPythonUsesOurIssuedCert(t *testing.T) {
	ref := refPath(t)
	base := newTree(t, "")
	s, err := OpenServerStore(base)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := s.Issue("client1")
	if err != nil {
		t.Fatal(err)
	}
	if err := StoreClientCertificate(base, "client1", iss.CertPEM, iss.KeyPEM); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(NewPaths(base).SourceIDMap)
	runPyPeers(t, ref, base, 30, true)
	after, _ := os.ReadFile(NewPaths(base).SourceIDMap)
	if string(before) != string(after) {
		t.Errorf("the Python server re-issued:\n%s\n%s", before, after)
	}
}

// Control for the test above: with client1's symlink under a wrong hash name, OpenSSL's capath
// cannot find the certificate and the 1.0.33 server never identifies client1 (so the positive
// test really depends on our subject hash).
func TestPythonControlWrongHash(t *testing.T) {
	ref := refPath(t)
	base := newTree(t, "")
	s, err := OpenServerStore(base)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := s.Issue("client1")
	if err != nil {
		t.Fatal(err)
	}
	if err := StoreClientCertificate(base, "client1", iss.CertPEM, iss.KeyPEM); err != nil {
		t.Fatal(err)
	}
	wrong := "00000000.0"
	if iss.Hash == "00000000" {
		wrong = "11111111.0"
	}
	if err := os.Rename(iss.Link, filepath.Join(filepath.Dir(iss.Link), wrong)); err != nil {
		t.Fatal(err)
	}
	runPyPeers(t, ref, base, 7, false)
}

// Our ClientConfig against a Python ssl server set up like 1.0.33's (capath = our symlinks):
// the Go client presents the default certificate (the CertificateRequest names no CA), the
// Python server verifies it through our hash link and sees the serial we print.
func TestGoClientPythonSSLServer(t *testing.T) {
	refPath(t)
	base := newTree(t, "")
	script, _ := filepath.Abs(filepath.Join("testdata", "py_tls.py"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", script, "server", base)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	rd := bufio.NewReader(stdout)
	portLine, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ClientConfig(base, "client1", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gotls.Dial("tcp", "127.0.0.1:"+strings.TrimSpace(portLine), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		rest, _ := io.ReadAll(rd)
		t.Fatalf("read: %v; python: %s", err, rest)
	}
	if want, _ := DefaultSerial(base); strings.TrimSpace(line) != want {
		t.Errorf("python saw serial %q, default is %s", line, want)
	}
	if got := PeerSerial(c.ConnectionState()); got != SerialString(mustCert(t, NewPaths(base).ServerPEM).SerialNumber) {
		t.Errorf("server serial %s", got)
	}
}

// A Python ssl client set up like 1.0.33's against our ServerConfig (strict): it pins our
// server certificate (cafile = server.crt), sends no SNI, presents the default certificate,
// which our server accepts by its symlink; after enrolment (our issuance) it presents its own.
func TestPythonSSLClientGoServer(t *testing.T) {
	refPath(t)
	base := newTree(t, "")
	cfg, err := ServerConfig(base, false)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, base)
	run := func(wantName string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		type res struct {
			serial, sni string
			err         error
		}
		done := make(chan res, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- res{err: err}
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			tc := gotls.Server(c, cfg)
			if err := tc.Handshake(); err != nil {
				done <- res{err: err}
				return
			}
			st := tc.ConnectionState()
			serial := PeerSerial(st)
			tc.Write([]byte(serial + "\n"))
			done <- res{serial, st.ServerName, nil}
		}()
		script, _ := filepath.Abs(filepath.Join("testdata", "py_tls.py"))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		pc := exec.CommandContext(ctx, "python3", script, "client", base,
			strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "client1")
		var stderr strings.Builder
		pc.Stderr = &stderr
		out, err := pc.Output()
		r := <-done
		if err != nil || r.err != nil {
			t.Fatalf("python: %v %s %s; go: %v", err, out, stderr.String(), r.err)
		}
		lines := strings.Fields(string(out))
		srvSerial := SerialString(mustCert(t, NewPaths(base).ServerPEM).SerialNumber)
		if len(lines) != 2 || lines[0] != srvSerial || lines[1] != r.serial || r.sni != "" {
			t.Fatalf("python printed %q; server serial %s, peer serial %s, SNI %q", out, srvSerial, r.serial, r.sni)
		}
		if wantName == "" {
			if !s.IsDefault(r.serial) {
				t.Errorf("expected the default certificate, got %s", r.serial)
			}
		} else if n, _ := s.NameOf(r.serial); n != wantName {
			t.Errorf("identified as %q", n)
		}
	}
	run("")
	iss, err := s.Issue("client1")
	if err != nil {
		t.Fatal(err)
	}
	if err := StoreClientCertificate(base, "client1", iss.CertPEM, iss.KeyPEM); err != nil {
		t.Fatal(err)
	}
	run("client1")
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertsPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c[0]
}
