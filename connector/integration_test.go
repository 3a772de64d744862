package connector

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
)

// TestEndToEnd runs a Go server and a Go client connector over TCP with raw test applications:
// messages of several types arrive byte for byte in both directions; the sending connector stamps
// its own source_id and a client forces destination_id to str(server_sockaddr).
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	types := opts{"send_message_types": []string{"any", "type2", "type3"}, "recv_message_types": []string{"any", "type2", "type3"}}
	srv, cli := startPair(t, types, types, nil, nil)
	sp, cp := srv.Paths(), cli.Paths()
	dst := pyStr(cli.serverPeer)
	srvID := pyStr(srv.SourceID())

	srvApps := map[string]*appListener{}
	cliApps := map[string]*appListener{}
	srvConns := map[string]*net.Conn{}
	cliConns := map[string]*net.Conn{}
	for _, ty := range []string{"any", "type2", "type3"} {
		srvApps[ty] = listenApp(t, sp.ReceivePath(ty))
		cliApps[ty] = listenApp(t, cp.ReceivePath(ty))
		srvConns[ty], cliConns[ty] = new(net.Conn), new(net.Conn)
	}

	send := dialUnix(t, cp.SendToConnector)
	cases := []struct {
		ty       string
		in, want []byte
	}{
		// wrong source_id and destination_id are replaced in place
		{"any", fr(`{"message_type": "any", "source_id": "intruder", "destination_id": "elsewhere", "request_id": 7}`, "d1"),
			fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`, "request_id": 7}`, "d1")},
		// missing destination_id then missing source_id are appended in that order
		{"type2", frBin(`{"message_type": "type2", "with_binary": true}`, `{"k": [1, 2]}`, "BIN\x00\xff"),
			frBin(`{"message_type": "type2", "with_binary": true, "destination_id": `+dst+`, "source_id": "client1"}`, `{"k": [1, 2]}`, "BIN\x00\xff")},
		// a correct frame is forwarded untouched (unknown keys and unicode kept)
		{"type3", fr(`{"message_type": "type3", "source_id": "client1", "destination_id": `+dst+`, "tag": "\u00e9t\u00e9", "x": null}`, ""),
			fr(`{"message_type": "type3", "source_id": "client1", "destination_id": `+dst+`, "tag": "\u00e9t\u00e9", "x": null}`, "")},
	}
	for i, c := range cases {
		write(t, send, c.in)
		expectFrame(t, "server app "+strconv.Itoa(i), srvApps[c.ty].next(t, srvConns[c.ty]), c.want)
	}

	// server -> client: destination_id names the client, source_id is stamped by the server
	ssend := dialUnix(t, sp.SendToConnector)
	back := []struct {
		ty       string
		in, want []byte
	}{
		{"any", fr(`{"message_type": "any", "destination_id": "client1", "source_id": "someone"}`, ""),
			fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+srvID+`}`, "")},
		{"type3", frBin(`{"message_type": "type3", "destination_id": "client1", "with_binary": 1, "response_id": "r"}`, "data", ""),
			frBin(`{"message_type": "type3", "destination_id": "client1", "with_binary": 1, "response_id": "r", "source_id": `+srvID+`}`, "data", "")},
		{"type2", fr(`{"message_type": "type2", "destination_id": "client1", "source_id": `+srvID+`}`, "\x00\x01\x02"),
			fr(`{"message_type": "type2", "destination_id": "client1", "source_id": `+srvID+`}`, "\x00\x01\x02")},
	}
	for i, c := range back {
		write(t, ssend, c.in)
		expectFrame(t, "client app "+strconv.Itoa(i), cliApps[c.ty].next(t, cliConns[c.ty]), c.want)
	}
	// many messages on one preserved connection keep their order
	for i := 0; i < 200; i++ {
		write(t, send, fr(`{"message_type": "any", "n": `+strconv.Itoa(i)+`}`, "x"))
	}
	for i := 0; i < 200; i++ {
		want := fr(`{"message_type": "any", "n": `+strconv.Itoa(i)+`, "destination_id": `+dst+`, "source_id": "client1"}`, "x")
		expectFrame(t, "ordered "+strconv.Itoa(i), srvApps["any"].next(t, srvConns["any"]), want)
	}
}

// TestTypeFilters checks send_message_types and recv_message_types on both sides against raw
// fake peers: a type not in send types never reaches the wire; a type not in recv types is dropped
// by the receiver but still acked when it carries a truthy transport_id.
func TestTypeFilters(t *testing.T) {
	t.Parallel()
	t.Run("client", func(t *testing.T) {
		dir := shortDir(t)
		ln, port := fakeServer(t)
		cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"send_message_types": []string{"any"},
			"recv_message_types": []string{"any"}}), nil)
		tcp := acceptPeer(t, ln, "client1")
		waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
		dst := pyStr(cli.serverPeer)
		send := dialUnix(t, cli.Paths().SendToConnector)
		write(t, send, fr(`{"message_type": "nope"}`, "1"))
		write(t, send, fr(`{"message_type": "any"}`, "2"))
		expectFrame(t, "first frame on the wire", readRaw(t, tcp),
			fr(`{"message_type": "any", "destination_id": `+dst+`, "source_id": "client1"}`, "2"))

		app := listenApp(t, cli.Paths().ReceivePath("any"))
		var ac net.Conn
		write(t, tcp, fr(`{"message_type": "nope", "source_id": "srv", "transport_id": 5}`, "x"))
		expectFrame(t, "ack of a filtered type", readRaw(t, tcp), ackFrame(5, "client1"))
		write(t, tcp, fr(`{"message_type": "nope", "source_id": "srv"}`, "y"))
		write(t, tcp, fr(`{"message_type": "any", "source_id": "srv", "transport_id": 0}`, "z"))
		expectFrame(t, "first delivered", app.next(t, &ac), fr(`{"message_type": "any", "source_id": "srv"}`, "z"))
	})
	t.Run("server", func(t *testing.T) {
		dir := shortDir(t)
		srv := newConnector(t, dir, serverConf(dir, 0, opts{"send_message_types": []string{"any"},
			"recv_message_types": []string{"any", "in"}}), nil)
		tcp := fakeClient(t, srv, "client1")
		send := dialUnix(t, srv.Paths().SendToConnector)
		write(t, send, fr(`{"message_type": "in", "destination_id": "client1"}`, "1"))
		write(t, send, fr(`{"message_type": "any", "destination_id": "client1"}`, "2"))
		expectFrame(t, "first frame on the wire", readRaw(t, tcp),
			fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+pyStr(srv.SourceID())+`}`, "2"))

		app := listenApp(t, srv.Paths().ReceivePath("any"))
		var ac net.Conn
		write(t, tcp, fr(`{"message_type": "other", "source_id": "client1", "transport_id": 9, "wait_for_ack": true}`, "x"))
		expectFrame(t, "ack of a filtered type", readRaw(t, tcp), ackFrame(9, srv.SourceID()))
		write(t, tcp, fr(`{"message_type": "any", "source_id": "client1", "transport_id": 10, "wait_for_ack": true}`, "y"))
		expectFrame(t, "ack of a delivered type", readRaw(t, tcp), ackFrame(10, srv.SourceID()))
		expectFrame(t, "delivered without transport_id", app.next(t, &ac),
			fr(`{"message_type": "any", "source_id": "client1", "wait_for_ack": true}`, "y"))
	})
}

// TestWaitForAckPriorities: a wait_for_ack message blocks the client's send queue until its _ack;
// meanwhile queued messages are then sent by priority (smaller first), FIFO within a priority;
// transport_id counts per connection.
func TestWaitForAckPriorities(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"send_message_types": []string{"any", "a", "b"},
		"send_message_types_priorities": map[string]int{"a": 2, "b": 1}}), nil)
	tcp := acceptPeer(t, ln, "client1")
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	dst := pyStr(cli.serverPeer)
	head := func(ty string) string {
		return `{"message_type": "` + ty + `", "source_id": "client1", "destination_id": ` + dst
	}
	send := dialUnix(t, cli.Paths().SendToConnector)
	write(t, send, fr(head("any")+`, "wait_for_ack": true}`, "w1"))
	expectFrame(t, "acked message", readRaw(t, tcp), fr(head("any")+`, "wait_for_ack": true, "transport_id": 1}`, "w1"))
	order := []string{"a", "b", "a", "b", "b", "a"}
	for i, ty := range order {
		write(t, send, fr(head(ty)+`}`, strconv.Itoa(i)))
	}
	eventually(t, "6 messages queued behind the ack", func() bool { return cli.sendBacklog(cli.serverPeer) == 6 })
	if got := command(t, cli.Paths().Commander, "peek_queues__sync", nil); got != "{\n    \"queue_recv\": 0,\n    \"queue_send\": {\n        \""+cli.serverPeer+"\": 6\n    }\n}" {
		t.Fatalf("peek_queues: %q", got)
	}
	write(t, tcp, ackFrame(1, "srv"))
	for _, i := range []int{1, 3, 4, 0, 2, 5} {
		expectFrame(t, "priority order", readRaw(t, tcp), fr(head(order[i])+`}`, strconv.Itoa(i)))
	}
	write(t, send, fr(head("any")+`, "wait_for_ack": true}`, "w2"))
	expectFrame(t, "second acked message", readRaw(t, tcp), fr(head("any")+`, "wait_for_ack": true, "transport_id": 2}`, "w2"))
	write(t, tcp, ackFrame(2, "srv"))
	write(t, send, fr(head("a")+`}`, "after"))
	expectFrame(t, "after ack 2", readRaw(t, tcp), fr(head("a")+`}`, "after"))

	// a new connection restarts transport_id at 1
	tcp.Close()
	tcp = acceptPeer(t, ln, "client1")
	waitPeers(t, cli, "reconnected", func(p []string) bool { return len(p) == 1 })
	write(t, send, fr(head("any")+`, "wait_for_ack": true}`, "w3"))
	expectFrame(t, "acked message after reconnect", readRaw(t, tcp), fr(head("any")+`, "wait_for_ack": true, "transport_id": 1}`, "w3"))
}

// TestAwaitResponse covers await_response through two connectors: the reply returns on the
// caller's own connection, ids compare with Python dict-key equality, unmatched replies go to the
// listener, the waiter limit and an absent peer.
func TestAwaitResponse(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, nil, nil, nil, func(o *config.Options) { o.MaxAwaitingRequests = 1 })
	sp, cp := srv.Paths(), cli.Paths()
	dst := pyStr(cli.serverPeer)
	srvID := pyStr(srv.SourceID())
	srvApp := listenApp(t, sp.ReceivePath("any"))
	cliApp := listenApp(t, cp.ReceivePath("any"))
	var sc, cc net.Conn
	ssend := dialUnix(t, sp.SendToConnector)
	req := func(id string) []byte {
		return fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`, "await_response": true, "request_id": `+id+`}`, "q"+id)
	}
	reply := func(id, data string) []byte {
		return fr(`{"message_type": "any", "destination_id": "client1", "response_id": `+id+`, "source_id": `+srvID+`}`, data)
	}

	// response_id 1.0 answers request_id 1
	a1 := dialUnix(t, cp.SendToConnector)
	write(t, a1, req("1"))
	expectFrame(t, "server app gets request 1", srvApp.next(t, &sc), req("1"))
	write(t, ssend, reply("1.0", "r1"))
	expectFrame(t, "await reply 1", readRaw(t, a1), reply("1.0", "r1"))

	// "2" does not answer 2: delivered to the listener; 2 then answers
	a2 := dialUnix(t, cp.SendToConnector)
	write(t, a2, req("2"))
	expectFrame(t, "server app gets request 2", srvApp.next(t, &sc), req("2"))
	write(t, ssend, reply(`"2"`, "wrong type"))
	expectFrame(t, "string id goes to the listener", cliApp.next(t, &cc), reply(`"2"`, "wrong type"))
	write(t, ssend, reply("2", "r2"))
	expectFrame(t, "await reply 2", readRaw(t, a2), reply("2", "r2"))

	// waiter limit 1: request 4 is sent but not awaited while 3 waits
	a3 := dialUnix(t, cp.SendToConnector)
	write(t, a3, req("3"))
	expectFrame(t, "server app gets request 3", srvApp.next(t, &sc), req("3"))
	a4 := dialUnix(t, cp.SendToConnector)
	write(t, a4, req("4"))
	expectFrame(t, "server app gets request 4", srvApp.next(t, &sc), req("4"))
	write(t, ssend, reply("4", "r4"))
	expectFrame(t, "reply 4 goes to the listener", cliApp.next(t, &cc), reply("4", "r4"))
	write(t, ssend, reply("3", "r3"))
	expectFrame(t, "await reply 3", readRaw(t, a3), reply("3", "r3"))

	// await to an absent peer: connection closed without reply
	a5 := dialUnix(t, sp.SendToConnector)
	write(t, a5, fr(`{"message_type": "any", "destination_id": "nobody", "await_response": true, "request_id": 5}`, ""))
	expectClosed(t, "await to an absent peer", a5)
	if n := cli.waiterCount(); n != 0 {
		t.Fatalf("%d waiters left on the client", n)
	}
}

// TestAwaitResponseTimeout: after AwaitResponseTimeout the waiter is gone and a late reply is
// delivered to the listener.
func TestAwaitResponseTimeout(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, nil, nil, nil, func(o *config.Options) { o.AwaitResponseTimeout = 100 * time.Millisecond })
	dst := pyStr(cli.serverPeer)
	srvID := pyStr(srv.SourceID())
	srvApp := listenApp(t, srv.Paths().ReceivePath("any"))
	cliApp := listenApp(t, cli.Paths().ReceivePath("any"))
	var sc, cc net.Conn
	a := dialUnix(t, cli.Paths().SendToConnector)
	req := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`, "await_response": true, "request_id": "late"}`, "")
	write(t, a, req)
	expectFrame(t, "request", srvApp.next(t, &sc), req)
	eventually(t, "waiter expiry", func() bool { return cli.waiterCount() == 0 })
	reply := fr(`{"message_type": "any", "destination_id": "client1", "response_id": "late", "source_id": `+srvID+`}`, "late")
	write(t, dialUnix(t, srv.Paths().SendToConnector), reply)
	expectFrame(t, "late reply goes to the listener", cliApp.next(t, &cc), reply)
}

// TestPing: _ping requests in both directions are answered by the remote connector with the same
// data and are never delivered to the remote application.
func TestPing(t *testing.T) {
	t.Parallel()
	srv, cli := startPair(t, nil, nil, nil, nil)
	dst := pyStr(cli.serverPeer)
	srvID := pyStr(srv.SourceID())
	srvApp := listenApp(t, srv.Paths().ReceivePath("any"))
	cliApp := listenApp(t, cli.Paths().ReceivePath("any"))
	var sc, cc net.Conn

	p := dialUnix(t, cli.Paths().SendToConnector)
	write(t, p, fr(`{"message_type": "_ping", "source_id": "client1", "destination_id": `+dst+`, "await_response": true, "request_id": 5}`, "abc"))
	expectFrame(t, "ping reply from the server", readRaw(t, p), fr(`{"message_type": "_ping", "response_id": 5, "source_id": `+srvID+`}`, "abc"))
	sentinel := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`}`, "s")
	write(t, dialUnix(t, cli.Paths().SendToConnector), sentinel)
	expectFrame(t, "server app gets no ping", srvApp.next(t, &sc), sentinel)

	p = dialUnix(t, srv.Paths().SendToConnector)
	write(t, p, fr(`{"message_type": "_ping", "destination_id": "client1", "await_response": true, "request_id": "six", "source_id": `+srvID+`}`, "xyz"))
	expectFrame(t, "ping reply from the client", readRaw(t, p), fr(`{"message_type": "_ping", "response_id": "six", "source_id": "client1"}`, "xyz"))
	sentinel = fr(`{"message_type": "any", "destination_id": "client1", "source_id": `+srvID+`}`, "s")
	write(t, dialUnix(t, srv.Paths().SendToConnector), sentinel)
	expectFrame(t, "client app gets no ping", cliApp.next(t, &cc), sentinel)
}
