package connector

import (
	"context"
	gotls "crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	ctls "github.com/aioconn/aioconn/tls"
	"golang.org/x/sys/unix"
)

// TLS on the peer link (PEER-PROTOCOL §10). The handshake runs on a goroutine with crypto/tls
// over a loop.HandshakeConn, then loop.EnrollTLS hands the socket to gnet, whose loop encrypts
// and decrypts the records with the same *tls.Conn, behind the same Handler as plaintext peers. Modes: plain (use_ssl false), allow-all (ssl_allow_all:
// `_handshake_ssl`, no certificates checked) and strict (client certificates pinned through the
// server's symlinks/, identification by certificate serial, `_ssl` issuance for clients that hold
// only the default certificate).

// tlsRun is the TLS state of one connector run (nil when use_ssl is false).
type tlsRun struct {
	base      string // certificates_directory_path (holds certificates/)
	allowAll  bool
	serverCfg *gotls.Config
	store     *ctls.ServerStore // strict server
	issuer    *ctls.Issuer      // strict server
	ln        net.Listener      // server
}

// startTLS prepares the TLS state and, on a server, the TLS listener. Called with c.mu held.
func (c *Connector) startTLS(eng *loop.Engine) (*tlsRun, error) {
	t := &tlsRun{base: c.cfg.CertificatesDirectoryPath, allowAll: c.cfg.SSLAllowAll}
	if !c.cfg.IsServer {
		return t, nil
	}
	cfg, err := ctls.ServerConfig(t.base, t.allowAll)
	if err != nil {
		return nil, fmt.Errorf("connector: TLS server certificate (run `aioconn create_certificates %s` first?): %w", t.base, err)
	}
	t.serverCfg = cfg
	if c.linkExt() {
		cfg.NextProtos = []string{aloALPN} // link-extension negotiation (Python clients never ask)
	}
	if !t.allowAll {
		if t.store, err = ctls.OpenServerStore(t.base); err != nil {
			return nil, fmt.Errorf("connector: %w", err)
		}
		// Key generation is CPU-bound (~50 ms per RSA-2048 key): leave one CPU to established
		// links during a storm of first-time clients.
		t.issuer = ctls.NewIssuer(t.store, max(1, runtime.NumCPU()-1), 256)
	}
	host := c.cfg.ServerHost
	if ip := resolveInterface(host); ip != "" {
		host = ip
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if c.cfg.ReuseServerSockaddr {
			rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", net.JoinHostPort(host, strconv.Itoa(c.cfg.ServerPort)))
	if err != nil {
		if t.issuer != nil {
			t.issuer.Close()
		}
		return nil, fmt.Errorf("connector: listen: %w", err)
	}
	t.ln = ln
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		c.tcpAddr.Store(a)
	}
	go c.acceptTLS(eng, t)
	return t, nil
}

func (t *tlsRun) stop() {
	if t == nil {
		return
	}
	if t.ln != nil {
		t.ln.Close()
	}
	if t.issuer != nil {
		t.issuer.Close()
	}
}

func (c *Connector) acceptTLS(eng *loop.Engine, t *tlsRun) {
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			return
		}
		go c.handshakeServer(eng, t, conn)
	}
}

// handshakeServer runs the TLS handshake of an accepted connection and identifies the client
// (strict mode) before handing it to the peer handler. Probe connections that close without a
// handshake are dropped quietly.
func (c *Connector) handshakeServer(eng *loop.Engine, t *tlsRun, conn net.Conn) {
	hc := loop.NewHandshakeConn(conn)
	tc := gotls.Server(hc, t.serverCfg)
	tc.SetDeadline(time.Now().Add(c.cfg.IOTimeout))
	if err := tc.Handshake(); err != nil {
		c.log.Debugf("%s TLS handshake with %s failed: %v", c.sourceID, conn.RemoteAddr(), err)
		c.stats.tlsHandshakeErrors.Add(1)
		conn.Close()
		return
	}
	c.stats.tlsHandshakes.Add(1)
	tc.SetDeadline(time.Time{})
	p := newPeer(c, false)
	p.name = pyAddr(conn.RemoteAddr())
	if !t.allowAll {
		serial := ctls.PeerSerial(tc.ConnectionState())
		switch name, ok := t.store.NameOf(serial); {
		case t.store.IsDefault(serial):
			p.defaultCert = true
		case ok:
			p.name, p.certName = name, name
			p.ident.Store(true)
		default:
			c.log.Warnf("%s Unknown client with certificate serial %s from %s", c.sourceID, serial, conn.RemoteAddr())
			tc.Close()
			return
		}
	}
	if c.AuthClient != nil {
		if !c.AuthClient(p.name) {
			c.log.Infof("%s blocking client %s", c.sourceID, p.name)
			tc.Close()
			return
		}
		c.log.Infof("%s accepting client %s", c.sourceID, p.name)
	}
	if _, err := eng.EnrollTLS(tc, hc, &peerHandler{cn: c}, p); err != nil {
		conn.Close()
	}
}

// handshakeClient wraps a dialed connection in TLS (client side), for loop.EnrollTLS, and reports
// whether the client presents the default certificate (then it must ask for its own).
func (c *Connector) handshakeClient(nc net.Conn) (*gotls.Conn, *loop.HandshakeConn, bool, error) {
	t := &tlsRun{base: c.cfg.CertificatesDirectoryPath, allowAll: c.cfg.SSLAllowAll}
	cfg, err := ctls.ClientConfig(t.base, c.cfg.ClientName, t.allowAll)
	if err != nil {
		nc.Close()
		return nil, nil, false, fmt.Errorf("connector: TLS client certificates: %w", err)
	}
	isDefault := false
	if !t.allowAll {
		_, _, isDefault = ctls.ClientCertPaths(t.base, c.cfg.ClientName)
	}
	if c.linkExt() {
		cfg.NextProtos = []string{aloALPN}
	}
	hc := loop.NewHandshakeConn(nc)
	tc := gotls.Client(hc, cfg)
	tc.SetDeadline(time.Now().Add(c.cfg.IOTimeout))
	if err := tc.Handshake(); err != nil {
		c.stats.tlsHandshakeErrors.Add(1)
		nc.Close()
		return nil, nil, false, fmt.Errorf("connector: TLS handshake: %w", err)
	}
	c.stats.tlsHandshakes.Add(1)
	tc.SetDeadline(time.Time{})
	return tc, hc, isDefault, nil
}

// firstFrames appends what a client writes first on a new connection, by security mode
// (PEER-PROTOCOL §6.1 step 4), and reports whether the client is identified (may send traffic).
func (p *peer) firstFrames() bool {
	cn := p.cn
	var o codec.Obj
	o.Begin(p.jsonBuf[:0])
	switch {
	case !cn.cfg.UseSSL:
		o.Str("message_type", "_handshake_no_ssl")
	case cn.cfg.SSLAllowAll:
		o.Str("message_type", "_handshake_ssl")
	case p.defaultCert:
		o.Str("message_type", "_ssl")
	default:
		// strict with its own certificate: identified by it, nothing to send, except the
		// at_least_once advertisement when the server chose it by ALPN
		p.aloClientStrict()
		return true
	}
	o.Str("source_id", cn.sourceID)
	if cn.linkExt() && !p.defaultCert {
		o.Raw(aloHelloKey, cn.helloJSON(p.name))
		p.aloStartWait()
	}
	p.jsonBuf = o.End()
	data := []byte("hello")
	if p.defaultCert {
		data = []byte(`{"cmd": "get_new_certificate"}`)
	}
	p.out = codec.AppendFrame(p.out, p.jsonBuf, data, nil, false)
	return !p.defaultCert
}

// tlsControl handles the control frames of TLS modes and the strict server's impersonation
// check. It reports whether the frame was consumed (err closes the connection).
func (p *peer) tlsControl(mt []byte, f codec.Frame, h *codec.Header) (bool, error) {
	cn := p.cn
	// after `_ssl` nothing more is read on that connection: 1.0.33's server does so, and our
	// client while it stores the certificate before it reconnects
	if p.sslDone {
		return true, nil
	}
	if p.client {
		if p.defaultCert {
			return true, p.receiveCertificate(mt, f)
		}
		return false, nil
	}
	switch string(mt) {
	case "_ssl":
		if cn.cfg.SSLAllowAll || !p.defaultCert {
			cn.log.Warnf("%s unexpected _ssl frame from %s dropped", cn.sourceID, p.name)
			return true, nil
		}
		p.sslDone = true
		return true, p.issueCertificate(f, h)
	case "_handshake_ssl":
		if !cn.cfg.SSLAllowAll {
			return true, fmt.Errorf("connector: _handshake_ssl from %s on a strict TLS server", p.name)
		}
		return true, p.handshake(f, *h)
	}
	if p.defaultCert {
		cn.log.Warnf("%s frame of type %s on a default-certificate connection from %s dropped", cn.sourceID, mt, p.name)
		return true, nil
	}
	if p.certName != "" && !strEq(h.SourceID, p.certName) {
		cn.log.Warnf("%s frame from %s claims source_id %s: dropped (impersonation)", cn.sourceID, p.certName, h.SourceID.Raw)
		return true, nil
	}
	return false, nil
}

// issueCertificate answers `_ssl` get_new_certificate: the certificate is made by the issuer's
// worker pool (off the connection's goroutine), then set_new_certificate is written and the
// connection closed. A refusal (existing name, bad request) closes without a reply, as Python.
func (p *peer) issueCertificate(f codec.Frame, h *codec.Header) error {
	cn := p.cn
	var req struct {
		Cmd string `json:"cmd"`
	}
	name, ok := h.SourceID.Str()
	if json.Unmarshal(f.Data, &req) != nil || req.Cmd != "get_new_certificate" || !ok || name == "" {
		return fmt.Errorf("connector: invalid _ssl request from %s", p.name)
	}
	conn := cn.tlsState().issuer
	if conn == nil {
		return fmt.Errorf("connector: no certificate issuer")
	}
	pc := p.conn
	err := conn.Submit(name, func(iss *ctls.Issued, err error) {
		if err != nil {
			cn.log.Warnf("%s cannot create a certificate for %s : %v", cn.sourceID, name, err)
			pc.Close()
			return
		}
		var o codec.Obj
		o.Begin(nil)
		o.Str("message_type", "_ssl")
		o.Str("source_id", cn.sourceID)
		js := o.End()
		var d codec.Obj
		d.Begin(nil)
		d.Str("cmd", "set_new_certificate")
		d.Str("crt", string(iss.CertPEM))
		d.Str("key", string(iss.KeyPEM))
		frame := codec.AppendFrame(nil, js, d.End(), nil, false)
		cn.log.Infof("%s created certificate %s for client %s", cn.sourceID, iss.Serial, name)
		cn.stats.certsIssued.Add(1)
		if pc.AsyncWrite(frame, func(error) { pc.Close() }) != nil {
			pc.Close()
		}
	})
	if err != nil {
		return fmt.Errorf("connector: certificate issuance for %s: %w", name, err)
	}
	return nil
}

// storeClientCertificate is ctls.StoreClientCertificate; tests hold it to check that the loop
// goes on meanwhile.
var storeClientCertificate = ctls.StoreClientCertificate

// receiveCertificate is the client's side of the `_ssl` exchange: store the certificate and key,
// then close so that the client reconnects at once with them. It runs on the event loop, so the
// files are written on a goroutine (two atomic writes with fsyncs), which then closes the link; the
// link reads nothing more meanwhile (a 1.0.33 server sends nothing after `_ssl`).
func (p *peer) receiveCertificate(mt []byte, f codec.Frame) error {
	cn := p.cn
	var rep struct {
		Cmd string `json:"cmd"`
		Crt string `json:"crt"`
		Key string `json:"key"`
	}
	if string(mt) != "_ssl" || json.Unmarshal(f.Data, &rep) != nil || rep.Cmd != "set_new_certificate" {
		return fmt.Errorf("connector: expected _ssl set_new_certificate from the server, got type %s", mt)
	}
	p.sslDone = true // anything after the reply is dropped: the link closes once it is stored
	conn := p.conn
	cn.certWG.Add(1)
	go func() {
		defer cn.certWG.Done()
		if err := storeClientCertificate(cn.cfg.CertificatesDirectoryPath, cn.cfg.ClientName, []byte(rep.Crt), []byte(rep.Key)); err != nil {
			cn.log.Errorf("%s storing the new client certificate: %v", cn.sourceID, err)
		} else {
			cn.log.Infof("%s received its certificate; reconnecting with it", cn.sourceID)
			p.certStored.Store(true)
		}
		conn.Close()
	}()
	return nil
}

// tlsState returns the current run's TLS state (nil when use_ssl is false or not running).
func (c *Connector) tlsState() *tlsRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tls
}

// deleteClientCertificate implements delete_client_certificate_on_server / _on_client and
// returns the JSON status reply.
func (c *Connector) deleteClientCertificate(onServer bool, clientID string, removeOnlySymlink, restart bool) string {
	var ok bool
	var msg string
	switch {
	case !c.cfg.UseSSL:
		ok, msg = false, "'Connector' object has no attribute 'ssl_helper'"
	case onServer && c.cfg.IsServer:
		if t := c.tlsState(); t != nil && t.store != nil {
			ok, msg = t.store.Delete(clientID, removeOnlySymlink)
		} else {
			ok, msg = ctls.DeleteClientCertificateOnServer(c.cfg.CertificatesDirectoryPath, clientID, removeOnlySymlink)
		}
		if p := c.peerByName(clientID); p != nil {
			c.removePeer(clientID, p)
			p.conn.Close()
		}
	case !onServer && !c.cfg.IsServer:
		ok, msg = ctls.DeleteClientCertificateOnClient(c.cfg.CertificatesDirectoryPath, c.cfg.ClientName)
		if ok && restart {
			c.Restart(false, 0)
		}
	default:
		ok, msg = false, "not available for this connector role"
	}
	var o codec.Obj
	o.Begin(nil)
	o.Bool("status", ok)
	o.Str("msg", msg)
	return string(o.End())
}
