package connector

import (
	"bytes"
	gotls "crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	ctls "github.com/aioconn/aioconn/tls"
)

func tlsPair(t *testing.T, allowAll bool) (*Connector, *Connector, string) {
	t.Helper()
	dir := shortDir(t)
	certs := filepath.Join(dir, "c")
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	mode := `"use_ssl": true, "ssl_allow_all": ` + strconv.FormatBool(allowAll) + `, "certificates_directory_path": "` + certs + `"`
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], `+mode+`,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false}`, nil)
	port := srv.TCPAddr().Port
	cli := newConnector(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(port)+`], `+mode+`, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false}`, nil)
	return srv, cli, certs
}

// exchange checks one message each way through the pair (raw applications on the unix sockets).
func exchange(t *testing.T, srv, cli *Connector) {
	t.Helper()
	sApp := listenApp(t, srv.Paths().ReceivePath("any"))
	cApp := listenApp(t, cli.Paths().ReceivePath("any"))
	var sc, cc net.Conn
	dst := "\"" + cli.serverPeer + "\""
	up := frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`}`, "up")
	dialUnix(t, cli.Paths().SendToConnector).Write(up)
	expectBytes(t, "server app", sApp.next(t, &sc), up)
	down := frameOf(`{"message_type": "any", "source_id": "`+strings.ReplaceAll(srv.SourceID(), `'`, `'`)+`", "destination_id": "client1"}`, "down")
	dialUnix(t, srv.Paths().SendToConnector).Write(down)
	expectBytes(t, "client app", cApp.next(t, &cc), down)
}

// TestTLSStrictIssuance: a client holding only the default certificate asks for its own with
// `_ssl`, stores it (key 0600), reconnects with it and is identified by its serial.
func TestTLSStrictIssuance(t *testing.T) {
	srv, cli, certs := tlsPair(t, false)
	waitPeers(t, srv, "client1 identified by certificate", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	waitPeers(t, cli, "client connected", func(p []string) bool { return len(p) == 1 })
	p := ctls.NewPaths(certs)
	pem, key := p.ClientOwnCert("client1")
	if _, err := os.Stat(pem); err != nil {
		t.Fatalf("client certificate not stored: %v", err)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client key: %v %v", st, err)
	}
	m, err := ctls.ReadSourceIDMap(p.SourceIDMap)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Serial("client1"); !ok {
		t.Fatal("source_id_2_cert.json has no client1")
	}
	exchange(t, srv, cli)
	// deleting the certificate on the server disconnects the client; with its certificate gone
	// from symlinks/ it is refused
	if got := command(t, srv.Paths().Commander, "delete_client_certificate_on_server", map[string]any{"client_id": "client1", "remove_only_symlink": false}); got != `{"status": true, "msg": ""}` {
		t.Fatalf("delete reply %q", got)
	}
}

// TestTLSAllowAll: `_handshake_ssl` identifies the client; traffic flows both ways.
func TestTLSAllowAll(t *testing.T) {
	srv, cli, _ := tlsPair(t, true)
	waitPeers(t, srv, "client1 identified", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	waitPeers(t, cli, "client connected", func(p []string) bool { return len(p) == 1 })
	exchange(t, srv, cli)
}

type nopLoopHandler struct{}

func (nopLoopHandler) OnOpen(*loop.Conn)          {}
func (nopLoopHandler) OnTraffic(*loop.Conn) error { return nil }
func (nopLoopHandler) OnClose(*loop.Conn, error)  {}

// certStoreHold replaces the client's certificate store by one that waits for release; entered
// is closed when a store starts, finished set when one ended. Tests defer release: deferred calls
// run before the connectors' cleanup, whose Stop waits for the store.
type certStoreHold struct {
	entered  chan struct{}
	release  func()
	finished atomic.Bool
}

func holdCertificateStore(t *testing.T) *certStoreHold {
	h := &certStoreHold{entered: make(chan struct{})}
	gate := make(chan struct{})
	var once, releaseOnce sync.Once
	h.release = func() { releaseOnce.Do(func() { close(gate) }) }
	storeClientCertificate = func(dir, name string, crt, key []byte) error {
		once.Do(func() { close(h.entered) })
		<-gate
		err := ctls.StoreClientCertificate(dir, name, crt, key)
		h.finished.Store(true)
		return err
	}
	t.Cleanup(func() { storeClientCertificate = ctls.StoreClientCertificate }) // after the connectors close
	return h
}

// waitEntered waits until a certificate store has started.
func (h *certStoreHold) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the client never stored a certificate")
	}
}

// TestTLSCertificateStoredOffLoop: a first-time client stores the certificate the server issued
// off its event loop: while the store is held, the loop still enrolls a connection; once it is
// released the client reconnects with the certificate and is identified.
func TestTLSCertificateStoredOffLoop(t *testing.T) {
	t.Setenv("AIOCONN_LOOPS", "1") // one loop: the enrolled connection goes to the link's loop
	hold := holdCertificateStore(t)
	defer hold.release()
	srv, cli, _ := tlsPair(t, false)
	hold.waitEntered(t)
	cli.mu.Lock()
	eng := cli.eng
	cli.mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	other, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	done := make(chan error, 1)
	go func() {
		c, err := eng.Enroll(nc, nopLoopHandler{}, nil)
		if err == nil {
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		hold.release()
		t.Fatal("the client's event loop was blocked while the certificate was being stored")
	}
	hold.release()
	waitPeers(t, srv, "client1 identified by certificate", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
}

// TestTLSStopWaitsForCertificateStore: Stop returns only once a certificate being stored (on
// its goroutine) is on disk, so that no file of the run is written after Stop.
func TestTLSStopWaitsForCertificateStore(t *testing.T) {
	hold := holdCertificateStore(t)
	defer hold.release()
	_, cli, _ := tlsPair(t, false)
	hold.waitEntered(t)
	stopped := make(chan bool, 1)
	go func() {
		cli.Stop(false, false, false)
		stopped <- hold.finished.Load()
	}()
	hold.release()
	select {
	case fin := <-stopped:
		if !fin {
			t.Fatal("Stop returned while the certificate was still being stored")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not return")
	}
}

// TestTLSClientDropsAfterCertificate: a frame a server sends after its `_ssl` reply is dropped
// while the client stores the certificate, and the client then reconnects at once with it, even
// with enable_client_try_reconnect false (without the drop, the frame would close the link
// before the store ends and the client would never come back).
func TestTLSClientDropsAfterCertificate(t *testing.T) {
	dir := shortDir(t)
	certs := filepath.Join(dir, "c")
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	srv := fakeTLSServ(t, certs, gotls.RequireAnyClientCert)
	newConnector(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(srv.port())+`], "use_ssl": true, "ssl_allow_all": false, "enable_client_try_reconnect": false,
 "certificates_directory_path": "`+certs+`", "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false}`, nil)
	c := srv.accept(t)
	if fr, err := readFrameWithin(c, 10*time.Second); err != nil || !bytes.Contains(fr.f.JSON, []byte(`"_ssl"`)) {
		t.Fatalf("expected the client's _ssl request: %s %v", fr.f.JSON, err)
	}
	p := ctls.NewPaths(certs)
	crt, err1 := os.ReadFile(p.ClientDefaultPEM)
	key, err2 := os.ReadFile(p.ClientDefaultKey)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	reply, _ := json.Marshal(map[string]string{"cmd": "set_new_certificate", "crt": string(crt), "key": string(key)})
	out := codec.AppendFrame(nil, []byte(`{"message_type": "_ssl"}`), reply, nil, false)
	out = codec.AppendFrame(out, []byte(`{"message_type": "any", "source_id": "x"}`), []byte("late"), nil, false)
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	again := srv.accept(t)
	if err := again.Handshake(); err != nil {
		t.Fatalf("reconnection: %v", err)
	}
	if pem, _ := p.ClientOwnCert("client1"); len(again.ConnectionState().PeerCertificates) != 1 {
		t.Fatal("reconnection without a client certificate")
	} else if _, err := os.Stat(pem); err != nil {
		t.Fatalf("certificate not stored: %v", err)
	}
}
