package connector

import (
	"bufio"
	"encoding/base64"
	"io"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
)

// TestIgnorePeerTraffic drives manage_ignore_peer_traffic through the commander: while it is on,
// application traffic is dropped in both directions but _ping requests are still answered.
func TestIgnorePeerTraffic(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, nil, nil, nil, nil)
	sp, cp := srv.Paths(), cli.Paths()
	dst := pyStr(cli.serverPeer)
	srvID := pyStr(srv.SourceID())
	srvApp := listenApp(t, sp.ReceivePath("any"))
	cliApp := listenApp(t, cp.ReceivePath("any"))
	var sc, cc net.Conn
	up := func(data string) []byte {
		return fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`}`, data)
	}
	down := func(data string) []byte {
		return fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+srvID+`}`, data)
	}
	ping := func(id int) []byte {
		return fr(`{"message_type": "_ping", "source_id": "client1", "destination_id": `+dst+`, "await_response": true, "request_id": `+strconv.Itoa(id)+`}`, "p")
	}
	// dropBoth sends one message each way while traffic is ignored and returns once the server
	// has processed both (a ping answered after the upward message; a malformed frame after the
	// downward one).
	dropBoth := func(id int) {
		t.Helper()
		c := dialUnix(t, cp.SendToConnector)
		write(t, c, up("dropped up"))
		write(t, c, ping(id))
		expectFrame(t, "ping still answered", readRaw(t, c), fr(`{"message_type": "_ping", "response_id": `+strconv.Itoa(id)+`, "source_id": `+srvID+`}`, "p"))
		// frames of one connection are handled in order: the malformed frame that makes the
		// server close the connection comes after the ignored one
		s := dialUnix(t, sp.SendToConnector)
		write(t, s, down("dropped down"))
		write(t, s, fr("not json", ""))
		expectClosed(t, "server closes after the malformed frame", s)
	}
	cmd := func(kw map[string]any) string {
		return command(t, sp.Commander, "manage_ignore_peer_traffic__sync", kw)
	}

	if got := cmd(map[string]any{"show": true}); got != "False" {
		t.Fatalf("show: %q", got)
	}
	if got := cmd(map[string]any{"enable": true}); got != "True" {
		t.Fatalf("enable: %q", got)
	}
	dropBoth(1)
	if got := cmd(map[string]any{"unique_peer": "client1"}); got != "['client1']" {
		t.Fatalf("unique_peer: %q", got)
	}
	if got := cmd(map[string]any{"show": true}); got != "['client1']" {
		t.Fatalf("show: %q", got)
	}
	dropBoth(2)
	if got := cmd(map[string]any{}); got != "{}" {
		t.Fatalf("no flag: %q", got)
	}
	if got := cmd(map[string]any{"disable": true}); got != "False" {
		t.Fatalf("disable: %q", got)
	}
	write(t, dialUnix(t, cp.SendToConnector), up("flows up"))
	expectFrame(t, "server app, first frame after disable", srvApp.next(t, &sc), up("flows up"))
	write(t, dialUnix(t, sp.SendToConnector), down("flows down"))
	expectFrame(t, "client app, first frame after disable", cliApp.next(t, &cc), down("flows down"))
}

// TestDisconnectClient: disconnect_client closes the client's connection (it reconnects), names
// an unknown client, and is a no-op with reply {} on a client connector.
func TestDisconnectClient(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, nil, nil, nil, nil)
	old := srv.peerByName("client1")
	oldCli := cli.peerByName(cli.serverPeer)
	if got := command(t, srv.Paths().Commander, "disconnect_client", map[string]any{"client_id": "client1"}); got != "True" {
		t.Fatalf("disconnect_client: %q", got)
	}
	waitNewPeer(t, srv, "client1", old)
	waitNewPeer(t, cli, cli.serverPeer, oldCli)
	srvApp := listenApp(t, srv.Paths().ReceivePath("any"))
	var sc net.Conn
	m := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, "again")
	write(t, dialUnix(t, cli.Paths().SendToConnector), m)
	expectFrame(t, "traffic after reconnect", srvApp.next(t, &sc), m)

	if got := command(t, srv.Paths().Commander, "disconnect_client", map[string]any{"client_id": "x"}); got != "Non existing client x" {
		t.Fatalf("unknown client: %q", got)
	}
	if got := command(t, cli.Paths().Commander, "disconnect_client", map[string]any{"client_id": "client1"}); got != "{}" {
		t.Fatalf("on a client: %q", got)
	}
}

// TestClientReconnect: the server is closed and a new one is started on the same port; the client
// comes back and traffic flows. A client with enable_client_try_reconnect false stays away.
func TestClientReconnect(t *testing.T) {
	t.Parallel()
	t.Run("reconnects", func(t *testing.T) {
		dir := shortDir(t)
		port := freePort(t)
		reuse := opts{"reuse_server_sockaddr": true, "reuse_uds_path_send_to_connector": true, "reuse_uds_path_commander_server": true}
		srv1 := newConnector(t, dir, serverConf(dir, port, reuse), nil)
		cli := newConnector(t, dir, clientConf(dir, port, "client1", nil), nil)
		waitLinked(t, srv1, cli, "client1")
		srv1.Close()
		waitPeers(t, cli, "client sees the server gone", func(p []string) bool { return len(p) == 0 })
		srv2 := newConnector(t, dir, serverConf(dir, port, reuse), nil)
		waitLinked(t, srv2, cli, "client1")
		srvApp := listenApp(t, srv2.Paths().ReceivePath("any"))
		cliApp := listenApp(t, cli.Paths().ReceivePath("any"))
		var sc, cc net.Conn
		up := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, "up")
		write(t, dialUnix(t, cli.Paths().SendToConnector), up)
		expectFrame(t, "up after reconnect", srvApp.next(t, &sc), up)
		down := fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+pyStr(srv2.SourceID())+`}`, "down")
		write(t, dialUnix(t, srv2.Paths().SendToConnector), down)
		expectFrame(t, "down after reconnect", cliApp.next(t, &cc), down)
	})
	t.Run("no_reconnect", func(t *testing.T) {
		dir := shortDir(t)
		ln, port := fakeServer(t)
		cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"enable_client_try_reconnect": false}), nil)
		tcp := acceptPeer(t, ln, "client1")
		waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
		tcp.Close()
		waitPeers(t, cli, "disconnected", func(p []string) bool { return len(p) == 0 })
		// The absence of a reconnection can only be observed over time: 10 reconnect intervals.
		ln.SetDeadline(time.Now().Add(10 * cli.cfg.ReconnectInterval))
		if c, err := ln.Accept(); err == nil {
			c.Close()
			t.Fatal("client reconnected with enable_client_try_reconnect false")
		}
		if p := cli.ConnectedPeers(); len(p) != 0 {
			t.Fatalf("peers %v", p)
		}
	})
}

// TestQueueBound: with a small MaxQueueSize and the peer blocked in an ack wait, extra messages
// are dropped and counted, peek_queues shows the backlog, and the connector keeps working.
func TestQueueBound(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, clientConf(dir, port, "client1", nil), func(o *config.Options) { o.MaxQueueSize = 3 })
	tcp := acceptPeer(t, ln, "client1")
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	head := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer)
	send := dialUnix(t, cli.Paths().SendToConnector)
	write(t, send, fr(head+`, "wait_for_ack": true}`, "w"))
	expectFrame(t, "acked message", readRaw(t, tcp), fr(head+`, "wait_for_ack": true, "transport_id": 1}`, "w"))
	for i := 1; i <= 6; i++ {
		write(t, send, fr(head+`}`, strconv.Itoa(i)))
	}
	eventually(t, "3 messages dropped", func() bool { return cli.stats.dropQueueFull.Load() == 3 })
	want := "{\n    \"queue_recv\": 0,\n    \"queue_send\": {\n        \"" + cli.serverPeer + "\": 3\n    }\n}"
	if got := command(t, cli.Paths().Commander, "peek_queues__sync", map[string]any{"dump_result": true}); got != want {
		t.Fatalf("peek_queues: %q", got)
	}
	write(t, tcp, ackFrame(1, "srv"))
	for i := 1; i <= 3; i++ {
		expectFrame(t, "queued message", readRaw(t, tcp), fr(head+`}`, strconv.Itoa(i)))
	}
	write(t, send, fr(head+`}`, "7"))
	expectFrame(t, "next message after the drops", readRaw(t, tcp), fr(head+`}`, "7"))
	// still healthy: a ping through the connector is answered by the fake server
	p := dialUnix(t, cli.Paths().SendToConnector)
	write(t, p, fr(head+`, "message_type": "_ping", "await_response": true, "request_id": 1}`, ""))
	expectFrame(t, "ping on the wire", readRaw(t, tcp), fr(head+`, "message_type": "_ping", "await_response": true, "request_id": 1}`, ""))
	write(t, tcp, fr(`{"message_type": "_ping", "response_id": 1, "source_id": "srv"}`, ""))
	expectFrame(t, "ping reply", readRaw(t, p), fr(`{"message_type": "_ping", "response_id": 1, "source_id": "srv"}`, ""))
}

// TestListenerRule: a message for a type whose receive socket file does not exist is dropped;
// once the application listens messages flow; when its socket file is removed messages are
// dropped again. Without uds_path_receive_preserve_socket each message comes on its own connection.
func TestListenerRule(t *testing.T) {
	t.Parallel()
	t.Run("preserve", func(t *testing.T) {
		srv, cli := startPair(t, nil, nil, nil, nil)
		send := dialUnix(t, cli.Paths().SendToConnector)
		m := func(d string) []byte {
			return fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, d)
		}
		path := srv.Paths().ReceivePath("any")
		write(t, send, m("1"))
		eventually(t, "drop without listener", func() bool { return srv.stats.dropNoListener.Load() == 1 })
		app := listenApp(t, path)
		write(t, send, m("2"))
		c := app.accept(t)
		expectFrame(t, "first delivered", readRaw(t, c), m("2"))
		app.ln.Close() // unlinks the socket file; the accepted connection stays open
		if _, err := os.Lstat(path); err == nil {
			t.Fatal("listener close left the socket file")
		}
		write(t, send, m("3"))
		eventually(t, "drop after the listener left", func() bool { return srv.stats.dropNoListener.Load() == 2 })
		app2 := listenApp(t, path)
		_ = app2
		write(t, send, m("4"))
		// the connector's cached connection is still open: it carries the next message
		expectFrame(t, "delivered after the listener came back", readRaw(t, c), m("4"))
	})
	t.Run("no_preserve", func(t *testing.T) {
		srv, cli := startPair(t, opts{"uds_path_receive_preserve_socket": false}, nil, nil, nil)
		app := listenApp(t, srv.Paths().ReceivePath("any"))
		send := dialUnix(t, cli.Paths().SendToConnector)
		for i := 0; i < 3; i++ {
			write(t, send, fr(`{"message_type": "any"}`, strconv.Itoa(i)))
		}
		for i := 0; i < 3; i++ {
			c := app.accept(t)
			expectFrame(t, "one message per connection", readRaw(t, c),
				fr(`{"message_type": "any", "destination_id": `+pyStr(cli.serverPeer)+`, "source_id": "client1"}`, strconv.Itoa(i)))
			expectClosed(t, "connection after one message", c)
		}
	})
}

// TestProbesAndGarbage: bare TCP probes and garbage do not become peers and do not disturb the
// real client.
func TestProbesAndGarbage(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, nil, nil, func(o *config.Options) { o.MaxFrame = 1 << 20 }, nil)
	addr := srv.TCPAddr().String()
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	// malformed frame (dropped, connection kept) then an oversized declared length (closed)
	g, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	write(t, g, []byte("\x0a\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	write(t, g, []byte("\xf0\xff\xff\xff"))
	expectClosed(t, "oversized frame", g)
	// random bytes, then close
	r := rand.New(rand.NewSource(1))
	junk := make([]byte, 4096)
	r.Read(junk)
	g2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	write(t, g2, junk)
	g2.Close()
	// a handshake with bad data is refused
	g3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer g3.Close()
	write(t, g3, fr(`{"message_type": "_handshake_no_ssl", "source_id": "evil"}`, "hi"))
	expectClosed(t, "bad handshake", g3)

	waitPeers(t, srv, "only client1 left", func([]string) bool {
		n := srv.peerNames()
		return len(n) == 1 && n[0] == "client1"
	})
	if got := command(t, srv.Paths().Commander, "show_connected_peers__sync", nil); got != `["client1"]` {
		t.Fatalf("show_connected_peers: %q", got)
	}
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var sc net.Conn
	m := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, "ok")
	write(t, dialUnix(t, cli.Paths().SendToConnector), m)
	expectFrame(t, "real client still served", app.next(t, &sc), m)
}

// TestCommander: unknown commands and malformed requests close the connection without a reply;
// stop/start/restart keep working and the application connections are re-dialed; log level.
func TestCommander(t *testing.T) {
	t.Parallel()
	// a fixed port: a restarted server binds its configured port again
	srv, cli := startPairOn(t, freePort(t), opts{"reuse_server_sockaddr": true}, nil, nil, nil)
	sp, cp := srv.Paths(), cli.Paths()
	for _, bad := range []string{`{"cmd": "nope", "kwargs": {}}`, `{"cmd": `, `not json`, `{"kwargs": {}}`, `{"cmd": "set_log_level__sync", "kwargs": {"level": "LOUD"}}`, `{"cmd": "show_log_level"}`} {
		expectClosed(t, "commander "+bad, commandRaw(t, sp.Commander, []byte(bad)))
	}
	if got := command(t, sp.Commander, "set_log_level__sync", map[string]any{"level": "DEBUG"}); got != "DEBUG" {
		t.Fatalf("set_log_level: %q", got)
	}
	if got := command(t, sp.Commander, "show_log_level__sync", nil); got != "DEBUG" {
		t.Fatalf("show_log_level: %q", got)
	}
	if got := command(t, cp.Commander, "show_log_level__sync", nil); got != "INFO" {
		t.Fatalf("client show_log_level: %q", got)
	}

	app := listenApp(t, sp.ReceivePath("any"))
	csend := dialUnix(t, cp.SendToConnector)
	m := func(d string) []byte {
		return fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, d)
	}
	write(t, csend, m("before"))
	c1 := app.accept(t)
	expectFrame(t, "before stop", readRaw(t, c1), m("before"))
	before := srv.apiConns.Load()
	ssend := dialUnix(t, sp.SendToConnector)
	// the connection must be accepted by the loop before the stop (gnet drops connections it
	// has accepted but not yet registered when it shuts down)
	for deadline := time.Now().Add(5 * time.Second); srv.apiConns.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("send connection never accepted")
		}
		time.Sleep(time.Millisecond)
	}

	if got := command(t, sp.Commander, "stop", map[string]any{"hard": false, "shutdown": false, "enable_delete_files": true}); got != "{}" {
		t.Fatalf("stop: %q", got)
	}
	if p := srv.ConnectedPeers(); len(p) != 0 {
		t.Fatalf("peers after stop: %v", p)
	}
	if _, err := os.Lstat(sp.SendToConnector); err == nil {
		t.Fatal("send socket left after stop")
	}
	expectClosed(t, "cached receive connection after stop", c1)
	expectClosed(t, "accepted send connection after stop", ssend)
	waitPeers(t, cli, "client sees the stop", func(p []string) bool { return len(p) == 0 })
	if got := command(t, sp.Commander, "show_connected_peers__sync", nil); got != "[]" {
		t.Fatalf("show_connected_peers while stopped: %q", got)
	}
	if got := command(t, sp.Commander, "start", nil); got != "{}" {
		t.Fatalf("start: %q", got)
	}
	if got := command(t, sp.Commander, "start", nil); got != "{}" {
		t.Fatalf("second start: %q", got)
	}
	waitLinked(t, srv, cli, "client1")
	write(t, csend, m("after start"))
	c2 := app.accept(t)
	expectFrame(t, "after start, re-dialed", readRaw(t, c2), m("after start"))

	oldS, oldC := srv.peerByName("client1"), cli.peerByName(cli.serverPeer)
	if got := command(t, sp.Commander, "restart", map[string]any{"hard": false, "sleep_between": 0}); got != "{}" {
		t.Fatalf("restart: %q", got)
	}
	waitNewPeer(t, srv, "client1", oldS)
	waitNewPeer(t, cli, cli.serverPeer, oldC)
	write(t, csend, m("after restart"))
	c3 := app.accept(t)
	expectFrame(t, "after restart, re-dialed", readRaw(t, c3), m("after restart"))
	down := fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+pyStr(srv.SourceID())+`}`, "down")
	cliApp := listenApp(t, cp.ReceivePath("any"))
	var cc net.Conn
	write(t, dialUnix(t, sp.SendToConnector), down)
	expectFrame(t, "server send socket works after restart", cliApp.next(t, &cc), down)
}

// testProxy is a minimal HTTP CONNECT proxy: it refuses the first `refuse` requests with 403,
// then checks Proxy-Authorization, answers 200 and relays bytes.
type testProxy struct {
	ln       net.Listener
	refuse   int32
	attempts atomic.Int32
	mu       sync.Mutex
	requests []string
	conns    []net.Conn
}

func startProxy(t testing.TB, refuse int32, wantAuth string) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{ln: ln, refuse: refuse}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(c, wantAuth, &wg)
			}()
		}
	}()
	return p
}

func (p *testProxy) serve(c net.Conn, wantAuth string, wg *sync.WaitGroup) {
	br := bufio.NewReader(c)
	var head []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		head = append(head, line)
	}
	p.mu.Lock()
	p.requests = append(p.requests, strings.Join(head, "|"))
	p.mu.Unlock()
	if p.attempts.Add(1) <= p.refuse {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
		c.Close()
		return
	}
	f := strings.Fields(head[0])
	if len(f) != 3 || f[0] != "CONNECT" || !contains(head[1:], "Proxy-Authorization: "+wantAuth) {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
		c.Close()
		return
	}
	up, err := net.Dial("tcp", f[1])
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, up)
	p.mu.Unlock()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(up, br)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
}

// TestProxy: a client reaches its server through an HTTP CONNECT proxy with basic authorization;
// a refused CONNECT (403) makes it retry.
func TestProxy(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := newConnector(t, dir, serverConf(dir, 0, nil), nil)
	sport := srv.TCPAddr().Port
	px := startProxy(t, 1, "basic "+base64.StdEncoding.EncodeToString([]byte("u:p")))
	cli := newConnector(t, dir, clientConf(dir, sport, "client1", opts{"proxy": map[string]any{"enabled": true,
		"address": "127.0.0.1", "port": px.ln.Addr().(*net.TCPAddr).Port,
		"authorization": map[string]any{"username": "u", "password": "p"}, "ssl_server": false}}), nil)
	waitLinked(t, srv, cli, "client1")
	if n := px.attempts.Load(); n != 2 {
		t.Fatalf("proxy attempts %d, want 2 (one refused, one accepted)", n)
	}
	px.mu.Lock()
	want := "CONNECT 127.0.0.1:" + strconv.Itoa(sport) + " HTTP/1.1|Proxy-Authorization: basic dTpw"
	for _, r := range px.requests {
		if r != want {
			t.Errorf("proxy request %q, want %q", r, want)
		}
	}
	px.mu.Unlock()
	srvApp := listenApp(t, srv.Paths().ReceivePath("any"))
	cliApp := listenApp(t, cli.Paths().ReceivePath("any"))
	var sc, cc net.Conn
	up := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, "via proxy")
	write(t, dialUnix(t, cli.Paths().SendToConnector), up)
	expectFrame(t, "through the proxy", srvApp.next(t, &sc), up)
	down := fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+pyStr(srv.SourceID())+`}`, "back")
	write(t, dialUnix(t, srv.Paths().SendToConnector), down)
	expectFrame(t, "back through the proxy", cliApp.next(t, &cc), down)
}

// TestClientBindIP: client_bind_ip as an address or an interface name sets the source address.
func TestClientBindIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ bind, want string }{{"127.0.0.1", "127.0.0.1"}, {"lo", "127.0.0.1"}, {"127.0.0.2", "127.0.0.2"}} {
		t.Run(tc.bind, func(t *testing.T) {
			if tc.bind == "lo" && resolveInterface("lo") != "127.0.0.1" {
				t.Skip("no loopback interface named lo with 127.0.0.1")
			}
			if tc.bind == "127.0.0.2" {
				l, err := net.Listen("tcp4", "127.0.0.2:0")
				if err != nil {
					t.Skipf("127.0.0.2 not usable here: %v", err)
				}
				l.Close()
			}
			dir := shortDir(t)
			ln, port := fakeServer(t)
			newConnector(t, dir, clientConf(dir, port, "client1", opts{"client_bind_ip": tc.bind}), nil)
			c := acceptPeer(t, ln, "client1")
			if ip := c.RemoteAddr().(*net.TCPAddr).IP.String(); ip != tc.want {
				t.Fatalf("client source address %s, want %s", ip, tc.want)
			}
		})
	}
}

// TestSendNoPreserve: with uds_path_send_preserve_socket false the connector closes the
// application's connection after each frame (the rest of that connection is discarded), and after
// an await reply.
func TestSendNoPreserve(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, opts{"uds_path_send_preserve_socket": false}, opts{"uds_path_send_preserve_socket": false}, nil, nil)
	srvApp := listenApp(t, srv.Paths().ReceivePath("any"))
	var sc net.Conn
	m := func(d string, extra string) []byte {
		return fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+extra+`}`, d)
	}
	c := dialUnix(t, cli.Paths().SendToConnector)
	write(t, c, append(m("1", ""), m("2", "")...))
	expectClosed(t, "connection after one frame", c)
	expectFrame(t, "first frame delivered", srvApp.next(t, &sc), m("1", ""))
	write(t, dialUnix(t, cli.Paths().SendToConnector), m("3", ""))
	expectFrame(t, "second frame of the closed connection discarded", srvApp.next(t, &sc), m("3", ""))

	a := dialUnix(t, cli.Paths().SendToConnector)
	req := m("q", `, "await_response": true, "request_id": 1`)
	write(t, a, req)
	expectFrame(t, "request", srvApp.next(t, &sc), req)
	reply := fr(`{"message_type": "any", "destination_id": "client1", "response_id": 1, "source_id": `+pyStr(srv.SourceID())+`}`, "r")
	write(t, dialUnix(t, srv.Paths().SendToConnector), reply)
	expectFrame(t, "await reply", readRaw(t, a), reply)
	expectClosed(t, "connection after the await reply", a)
}

// TestShowPeersDuringHandshakes runs show_connected_peers while clients keep identifying
// themselves (a regression test for a data race on the peer's display name, run with -race).
func TestShowPeersDuringHandshakes(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv := newConnector(t, dir, serverConf(dir, 0, nil), nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			srv.Command("show_connected_peers__sync", nil)
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	for i := 0; i < 100; i++ {
		name := "c" + strconv.Itoa(i)
		c := fakeClient(t, srv, name)
		c.Close()
	}
}

// TestAwaitLimitNoPreserve: without uds_path_send_preserve_socket, an await request over the
// waiter limit is sent but not awaited, and its connection is closed like any other frame's
// (Python's handler ends after the frame; the reply then goes to the listener).
func TestAwaitLimitNoPreserve(t *testing.T) {
	t.Parallel()
	np := opts{"uds_path_send_preserve_socket": false}
	srv, cli := startPair(t, np, np, nil, func(o *config.Options) { o.MaxAwaitingRequests = 1 })
	srvApp := listenApp(t, srv.Paths().ReceivePath("any"))
	cliApp := listenApp(t, cli.Paths().ReceivePath("any"))
	var sc, cc net.Conn
	req := func(id string) []byte {
		return fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`, "await_response": true, "request_id": `+id+`}`, "")
	}
	reply := func(id string) []byte {
		return fr(`{"message_type": "any", "destination_id": "client1", "response_id": `+id+`, "source_id": `+pyStr(srv.SourceID())+`}`, "r"+id)
	}
	a1 := dialUnix(t, cli.Paths().SendToConnector)
	write(t, a1, req("1"))
	expectFrame(t, "request 1", srvApp.next(t, &sc), req("1"))
	a2 := dialUnix(t, cli.Paths().SendToConnector)
	write(t, a2, req("2"))
	expectFrame(t, "request 2 is sent", srvApp.next(t, &sc), req("2"))
	expectClosed(t, "unawaited request's connection", a2)
	write(t, dialUnix(t, srv.Paths().SendToConnector), reply("2"))
	expectFrame(t, "reply 2 goes to the listener", cliApp.next(t, &cc), reply("2"))
	write(t, dialUnix(t, srv.Paths().SendToConnector), reply("1"))
	expectFrame(t, "await reply 1", readRaw(t, a1), reply("1"))
	expectClosed(t, "await connection after its reply", a1)
}

// TestIgnorePeerTrafficConfig: the ignore_peer_traffic config key (1.6.3) sets the initial state.
func TestIgnorePeerTrafficConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		val  any
		show string
	}{{true, "True"}, {"client1", "['client1']"}, {[]string{"x", "client1"}, "['x', 'client1']"}} {
		srv, cli := startPair(t, opts{"ignore_peer_traffic": tc.val}, nil, nil, nil)
		sp := srv.Paths()
		if got := command(t, sp.Commander, "manage_ignore_peer_traffic__sync", map[string]any{"show": true}); got != tc.show {
			t.Fatalf("show with %v: %q, want %q", tc.val, got, tc.show)
		}
		srvApp := listenApp(t, sp.ReceivePath("any"))
		var sc net.Conn
		head := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer)
		c := dialUnix(t, cli.Paths().SendToConnector)
		write(t, c, fr(head+`}`, "ignored"))
		write(t, c, fr(head+`, "message_type": "_ping", "await_response": true, "request_id": 1}`, ""))
		readRaw(t, c) // the ping reply: the ignored message was handled before it
		command(t, sp.Commander, "manage_ignore_peer_traffic__sync", map[string]any{"disable": true})
		write(t, c, fr(head+`}`, "flows"))
		expectFrame(t, "first delivered", srvApp.next(t, &sc), fr(head+`}`, "flows"))
	}
}
