package connector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// Helpers of the integration tests (real TCP and unix sockets between connectors, fake peers and
// test applications). Every wait is bounded and driven by a signal or a socket read deadline.

// opts is a config fragment merged over the defaults of serverConf/clientConf.
type opts map[string]any

// mergeOpts returns a copy of base with extra's keys set.
func mergeOpts(base, extra opts) opts {
	m := opts{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func confJSON(base, extra opts) string {
	b, err := json.Marshal(mergeOpts(base, extra))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func serverConf(dir string, port int, extra opts) string {
	return confJSON(opts{"is_server": true, "server_sockaddr": []any{"127.0.0.1", port}, "use_ssl": false,
		"connector_files_dirpath": dir, "default_logger_dirpath": dir, "send_message_types": []string{"any"},
		"recv_message_types": []string{"any"}, "debug_msg_counts": false}, extra)
}

func clientConf(dir string, port int, name string, extra opts) string {
	return confJSON(opts{"is_server": false, "client_name": name, "server_sockaddr": []any{"127.0.0.1", port},
		"use_ssl": false, "connector_files_dirpath": dir, "default_logger_dirpath": dir,
		"send_message_types": []string{"any"}, "recv_message_types": []string{"any"}, "debug_msg_counts": false}, extra)
}

// startPair starts a server on a free port and a client "client1" connected to it, and waits until
// both see each other.
func startPair(t *testing.T, srvExtra, cliExtra opts, srvTweak, cliTweak func(*config.Options)) (srv, cli *Connector) {
	t.Helper()
	return startPairOn(t, 0, srvExtra, cliExtra, srvTweak, cliTweak)
}

// startPairOn is startPair with the server on a given port (0: any free port).
func startPairOn(t *testing.T, port int, srvExtra, cliExtra opts, srvTweak, cliTweak func(*config.Options)) (srv, cli *Connector) {
	t.Helper()
	dir := shortDir(t)
	srv = newConnector(t, dir, serverConf(dir, port, srvExtra), srvTweak)
	cli = newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, "client1", cliExtra), cliTweak)
	waitLinked(t, srv, cli, "client1")
	return srv, cli
}

// waitLinked waits until srv lists name and cli lists its server.
func waitLinked(t testing.TB, srv, cli *Connector, name string) {
	t.Helper()
	waitPeers(t, srv, name+" identified on the server", func(p []string) bool { return contains(p, name) })
	waitPeers(t, cli, "client connected", func(p []string) bool { return len(p) == 1 && p[0] == cli.serverPeer })
}

// pyStr is the JSON (Python json.dumps) form of s.
func pyStr(s string) string { return string(codec.AppendPyString(nil, s)) }

// fr builds a frame without binary section.
func fr(js, data string) []byte { return codec.AppendFrame(nil, []byte(js), []byte(data), nil, false) }

// frBin builds a frame with a binary section.
func frBin(js, data, bin string) []byte {
	return codec.AppendFrame(nil, []byte(js), []byte(data), []byte(bin), true)
}

func write(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func expectFrame(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if string(got) != string(want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// expectClosed reads c until the peer closes it, failing if any byte arrives first.
func expectClosed(t testing.TB, what string, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 {
		t.Fatalf("%s: expected the connection to be closed without a reply, got a byte %q", what, b[:n])
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: connection still open after 5 s", what)
	}
	if err == nil {
		t.Fatalf("%s: expected EOF", what)
	}
}

// eventually polls cond (every millisecond, at most 5 s) for states that have no signal of their
// own (queue lengths, counters).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeServer is a raw TCP listener playing the server side of the peer protocol.
func fakeServer(t testing.TB) (*net.TCPListener, int) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// acceptPeer accepts one connection (at most 5 s) and checks the client's handshake frame.
func acceptPeer(t testing.TB, ln *net.TCPListener, name string) net.Conn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	expectFrame(t, "handshake", readRaw(t, c), fr(`{"message_type": "_handshake_no_ssl", "source_id": `+pyStr(name)+`}`, "hello"))
	return c
}

// fakeClient dials srv as a raw client named name and waits until srv identified it.
func fakeClient(t testing.TB, srv *Connector, name string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	write(t, c, fr(`{"message_type": "_handshake_no_ssl", "source_id": `+pyStr(name)+`}`, "hello"))
	waitPeers(t, srv, name+" identified", func(p []string) bool { return contains(p, name) })
	return c
}

// ackFrame is the _ack a Python peer sends for transport_id id.
func ackFrame(id int, src string) []byte {
	return fr(`{"transport_id": `+strconv.Itoa(id)+`, "message_type": "_ack", "source_id": `+pyStr(src)+`}`, "")
}

// commandRaw sends a raw commander payload and returns the connection (for error cases).
func commandRaw(t testing.TB, path string, payload []byte) net.Conn {
	t.Helper()
	c := dialUnix(t, path)
	var h [4]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(payload)))
	write(t, c, append(h[:], payload...))
	return c
}

// acceptApp returns the next connection the connector opened to a test application.
func (a *appListener) accept(t testing.TB) net.Conn {
	t.Helper()
	select {
	case c := <-a.conns:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("connector never connected to the application listener")
	}
	return nil
}

// waiterCount is the number of registered await_response waiters.
func (c *Connector) waiterCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// sendBacklog is the peek_queues send size of peer name.
func (c *Connector) sendBacklog(name string) int {
	_, send := c.queueSizes()
	return send[name]
}

// waitNewPeer waits until c has an identified peer name that is not the connection old (a
// reconnection, not the stale connection still being torn down).
func waitNewPeer(t testing.TB, c *Connector, name string, old *peer) *peer {
	t.Helper()
	var got *peer
	waitPeers(t, c, "new connection of "+name, func([]string) bool {
		got = c.peerByName(name)
		return got != nil && got != old && got.ident.Load()
	})
	return got
}

// freePort returns a TCP port that was free a moment ago (for tests that must restart a server on
// the same port).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listenChan delivers the frames of type mt received by c to the returned channel (copies; when
// the channel is full, frames are dropped rather than blocking the connector).
func listenChan(tb testing.TB, c *Connector, mt string) <-chan []byte {
	tb.Helper()
	ch := make(chan []byte, 256)
	if err := c.Local().Listen(mt, func(frame []byte) {
		select {
		case ch <- append([]byte(nil), frame...):
		default:
		}
	}); err != nil {
		tb.Fatal(err)
	}
	return ch
}
