package connector

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/config"
)

// Integration tests of publish/subscribe (PEER-PROTOCOL §7.4, LOCAL-API §6): a Go broker with Go
// client connectors or raw TCP peers, real sockets everywhere. Every "nothing was delivered" check
// is made with an ordering barrier, never with a sleep:
//   - a `_ping` round trip on a TCP link proves every earlier frame on that link was processed by
//     the broker (frames of one connection are handled in order on its loop);
//   - a marker sent by the broker's application to a subscriber after that barrier travels through
//     the same FIFO peer queue as a publication would have: when the marker is the next frame the
//     subscriber sees, no publication was queued before it.

// psBroker starts a pub/sub central broker handling (sending and receiving) types.
func psBroker(t *testing.T, dir string, types []string, tweak func(*config.Options)) *Connector {
	t.Helper()
	return newConnector(t, dir, serverConf(dir, 0, opts{"pubsub_central_broker": true,
		"send_message_types": types, "recv_message_types": types}), tweak)
}

// psClient starts a client connector of brk named name and waits until both sides see the link.
func psClient(t *testing.T, dir string, brk *Connector, name string, types, subscribe []string, tweak func(*config.Options)) *Connector {
	t.Helper()
	extra := opts{"send_message_types": types, "recv_message_types": types}
	if subscribe != nil {
		extra["subscribe_message_types"] = subscribe
	}
	c := newConnector(t, dir, clientConf(dir, brk.TCPAddr().Port, name, extra), tweak)
	waitLinked(t, brk, c, name)
	return c
}

// psPingClient is the barrier for a client connector: a `_ping` request sent by the client's
// application travels on the client's TCP link to the broker, whose reply comes back on the same
// application connection. Every frame the client wrote on that link before (its subscription
// frames in particular) has then been processed by the broker.
func psPingClient(t *testing.T, cli *Connector, brk *Connector, id int) {
	t.Helper()
	c := dialUnix(t, cli.Paths().SendToConnector)
	n := strconv.Itoa(id)
	write(t, c, fr(`{"message_type": "_ping", "source_id": `+pyStr(cli.SourceID())+`, "destination_id": `+pyStr(cli.serverPeer)+
		`, "await_response": true, "request_id": `+n+`}`, "ping"+n))
	expectFrame(t, "ping reply", readRaw(t, c), fr(`{"message_type": "_ping", "response_id": `+n+`, "source_id": `+pyStr(brk.SourceID())+`}`, "ping"+n))
	c.Close()
}

// psPingRaw is the barrier for a raw TCP peer named name (nothing else may be in flight towards it).
func psPingRaw(t *testing.T, c net.Conn, brk *Connector, name string, id int) {
	t.Helper()
	n := strconv.Itoa(id)
	write(t, c, fr(`{"message_type": "_ping", "source_id": `+pyStr(name)+`, "request_id": `+n+`, "await_response": true}`, "p"))
	expectFrame(t, "raw ping reply", readRaw(t, c), fr(`{"message_type": "_ping", "response_id": `+n+`, "source_id": `+pyStr(brk.SourceID())+`}`, "p"))
}

// psSubscribeRaw sends the subscription frame of a raw peer named name and waits until the broker
// processed it.
func psSubscribeRaw(t *testing.T, c net.Conn, brk *Connector, name string, topics ...string) {
	t.Helper()
	q := make([]string, len(topics))
	for i, s := range topics {
		q[i] = pyStr(s)
	}
	write(t, c, fr(`{"message_type": "_pubsub", "source_id": `+pyStr(name)+`}`, `{"subscribe_message_types": [`+strings.Join(q, ", ")+`]}`))
	psPingRaw(t, c, brk, name, 1000)
}

// pubFrame is a publication of topic as a publisher's application (or a raw publisher) writes it.
func pubFrame(src, dst, topic, extra, data string) []byte {
	return fr(`{"message_type": "_pubsub", "source_id": `+pyStr(src)+`, "destination_id": `+pyStr(dst)+
		`, "message_type_publish": `+pyStr(topic)+extra+`}`, data)
}

// delivered is the frame a subscriber receives for a publication of topic without extra keys.
func delivered(brk *Connector, topic, sub, extra, data string) []byte {
	return fr(`{"message_type": `+pyStr(topic)+`, "source_id": `+pyStr(brk.SourceID())+`, "destination_id": `+pyStr(sub)+extra+`}`, data)
}

// psMarker makes the broker's application send a message of type topic to sub, and returns the
// frame sub's application (or a raw sub) receives.
func psMarker(t *testing.T, brk *Connector, sub, topic, data string) []byte {
	t.Helper()
	m := fr(`{"message_type": `+pyStr(topic)+`, "destination_id": `+pyStr(sub)+`, "source_id": `+pyStr(brk.SourceID())+`}`, data)
	c := dialUnix(t, brk.Paths().SendToConnector)
	write(t, c, m)
	return m
}

// TestPubsubFanout: a broker, three subscriber connectors and one publisher connector (subscribed
// too). Every subscriber's application receives every publication of its topics with the broker's
// rewritten header (source_id = broker, destination_id = subscriber), data and binary unchanged;
// the publisher receives its own publication; a topic not subscribed is not delivered; the broker's
// own application listening on the topic receives none of it.
func TestPubsubFanout(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	types := []string{"t1", "t2"}
	brk := psBroker(t, dir, types, nil)
	subs := []*Connector{
		psClient(t, dir, brk, "sub1", types, []string{"t1"}, nil),
		psClient(t, dir, brk, "sub2", types, []string{"t1"}, nil),
		psClient(t, dir, brk, "sub3", types, []string{"t1", "t2"}, nil),
	}
	pub := psClient(t, dir, brk, "pub1", types, []string{"t1"}, nil)
	all := append(append([]*Connector(nil), subs...), pub)
	names := []string{"sub1", "sub2", "sub3", "pub1"}
	apps := map[string]map[string]*appListener{}
	conns := map[string]map[string]*net.Conn{}
	for i, c := range all {
		apps[names[i]] = map[string]*appListener{}
		conns[names[i]] = map[string]*net.Conn{}
		for _, ty := range types {
			apps[names[i]][ty] = listenApp(t, c.Paths().ReceivePath(ty))
			conns[names[i]][ty] = new(net.Conn)
		}
		psPingClient(t, c, brk, i+1) // its subscription is in the broker's table
	}
	brkApp := listenApp(t, brk.Paths().ReceivePath("t1"))
	var brkConn net.Conn

	send := dialUnix(t, pub.Paths().SendToConnector)
	dst := pub.serverPeer
	write(t, send, pubFrame("pub1", dst, "t1", "", `{"n": 1}`))
	write(t, send, frBin(`{"message_type": "_pubsub", "source_id": "pub1", "destination_id": `+pyStr(dst)+
		`, "with_binary": true, "message_type_publish": "t1"}`, "d2", "B\x00\xffin"))
	write(t, send, pubFrame("pub1", dst, "t2", "", "only sub3"))
	for _, n := range names {
		expectFrame(t, n+" publication 1", apps[n]["t1"].next(t, conns[n]["t1"]), delivered(brk, "t1", n, "", `{"n": 1}`))
		expectFrame(t, n+" publication 2", apps[n]["t1"].next(t, conns[n]["t1"]),
			frBin(`{"message_type": "t1", "source_id": `+pyStr(brk.SourceID())+`, "destination_id": `+pyStr(n)+`, "with_binary": true}`, "d2", "B\x00\xffin"))
	}
	// sub3 received t2, so the broker processed that publication: a marker of type t2 sent to the
	// others now is the first t2 frame they see.
	expectFrame(t, "sub3 t2", apps["sub3"]["t2"].next(t, conns["sub3"]["t2"]), delivered(brk, "t2", "sub3", "", "only sub3"))
	for _, n := range []string{"sub1", "sub2", "pub1"} {
		want := psMarker(t, brk, n, "t2", "marker")
		expectFrame(t, n+" got no t2 publication", apps[n]["t2"].next(t, conns[n]["t2"]), want)
	}
	// The broker's application: a direct t1 message from the publisher, sent on the same link after
	// the publications, is the first frame it receives.
	direct := fr(`{"message_type": "t1", "source_id": "pub1", "destination_id": `+pyStr(dst)+`}`, "direct")
	write(t, send, direct)
	expectFrame(t, "broker app gets no publication", brkApp.next(t, &brkConn), direct)
	for _, c := range all {
		if d := brk.peerByName(c.SourceID()).drops.Load(); d != 0 {
			t.Fatalf("%s: %d drops", c.SourceID(), d)
		}
	}
}

// TestPubsubReconnect: after each disconnect_client (commander of the broker) the subscriber
// reconnects and re-subscribes; publications flow again and each arrives exactly once, however
// many times the client re-sent its subscription (a Python broker appends the client to its list
// at every reconnect and would deliver duplicates).
func TestPubsubReconnect(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	brk := psBroker(t, dir, []string{"t1"}, nil)
	sub := psClient(t, dir, brk, "sub1", []string{"t1"}, []string{"t1"}, nil)
	app := listenApp(t, sub.Paths().ReceivePath("t1"))
	var ac net.Conn
	pub := fakeClient(t, brk, "pub1")
	psPingClient(t, sub, brk, 1)
	for round := 0; round < 5; round++ {
		r := strconv.Itoa(round)
		if round > 0 {
			oldB, oldC := brk.peerByName("sub1"), sub.peerByName(sub.serverPeer)
			if got := command(t, brk.Paths().Commander, "disconnect_client", map[string]any{"client_id": "sub1"}); got != "True" {
				t.Fatalf("disconnect_client: %q", got)
			}
			waitNewPeer(t, brk, "sub1", oldB)
			waitNewPeer(t, sub, sub.serverPeer, oldC)
			psPingClient(t, sub, brk, 10+round) // the re-subscription was processed
		}
		write(t, pub, pubFrame("pub1", "x", "t1", "", "round "+r))
		psPingRaw(t, pub, brk, "pub1", round) // the publication was fanned out
		want := psMarker(t, brk, "sub1", "t1", "marker "+r)
		expectFrame(t, "publication round "+r, app.next(t, &ac), delivered(brk, "t1", "sub1", "", "round "+r))
		expectFrame(t, "no duplicate round "+r, app.next(t, &ac), want)
	}
	if got := brk.subs.of("t1"); len(got) != 1 || got[0] != "sub1" {
		t.Fatalf("subscription table %v", got)
	}
}

// TestPubsubSetSubscribe: set_subscribe_message_types on the client's commander discards types
// not in recv_message_types, replies with the Python list repr (`{}` when empty), is reflected by
// show_subscribe_message_types, and the broker stops and starts delivering accordingly. On a server
// both commands reply `{}`; on a client that is not connected the list stays unchanged and the
// reply is the unchanged list (Python catches the error and returns its current list).
func TestPubsubSetSubscribe(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	types := []string{"t1", "t2"}
	brk := psBroker(t, dir, types, nil)
	sub := psClient(t, dir, brk, "sub1", types, []string{"t1"}, nil)
	cmd := sub.Paths().Commander
	apps := map[string]*appListener{"t1": listenApp(t, sub.Paths().ReceivePath("t1")), "t2": listenApp(t, sub.Paths().ReceivePath("t2"))}
	conns := map[string]*net.Conn{"t1": new(net.Conn), "t2": new(net.Conn)}
	pub := fakeClient(t, brk, "pub1")
	psPingClient(t, sub, brk, 1)

	show := func(want string) {
		t.Helper()
		if got := command(t, cmd, "show_subscribe_message_types__sync", nil); got != want {
			t.Fatalf("show_subscribe_message_types: %q, want %q", got, want)
		}
	}
	set := func(types []string, want string) {
		t.Helper()
		if got := command(t, cmd, "set_subscribe_message_types", map[string]any{"message_types": types}); got != want {
			t.Fatalf("set_subscribe_message_types %v: %q, want %q", types, got, want)
		}
		psPingClient(t, sub, brk, 2) // the (un)subscription frames were processed
	}
	round := 0
	// publish publishes t1 and t2 and checks which ones sub1 receives: a delivered topic arrives,
	// an undelivered one is proved absent by a marker sent after the barrier.
	publish := func(want ...string) {
		t.Helper()
		round++
		r := strconv.Itoa(round)
		for _, ty := range types {
			write(t, pub, pubFrame("pub1", "x", ty, "", ty+" round "+r))
		}
		psPingRaw(t, pub, brk, "pub1", round)
		for _, ty := range types {
			if contains(want, ty) {
				expectFrame(t, ty+" delivered round "+r, apps[ty].next(t, conns[ty]), delivered(brk, ty, "sub1", "", ty+" round "+r))
			} else {
				m := psMarker(t, brk, "sub1", ty, "marker "+r)
				expectFrame(t, ty+" not delivered round "+r, apps[ty].next(t, conns[ty]), m)
			}
		}
	}
	show("['t1']")
	publish("t1")
	set([]string{"t2", "nope", "t2"}, "['t2']") // unknown type discarded, duplicates collapsed
	show("['t2']")
	publish("t2")
	set([]string{"t1", "t2"}, "['t1', 't2']")
	show("['t1', 't2']")
	publish("t1", "t2")
	set([]string{}, "{}")
	show("{}")
	publish()
	set([]string{"t1"}, "['t1']")
	publish("t1")

	// on the broker (a server): nothing, `{}`
	if got := command(t, brk.Paths().Commander, "set_subscribe_message_types", map[string]any{"message_types": []string{"t1"}}); got != "{}" {
		t.Fatalf("set on a server: %q", got)
	}
	if got := command(t, brk.Paths().Commander, "show_subscribe_message_types__sync", nil); got != "{}" {
		t.Fatalf("show on a server: %q", got)
	}

	// a client that is not connected keeps its list
	sub.Stop(false, false, true)
	if got := command(t, cmd, "set_subscribe_message_types", map[string]any{"message_types": []string{"t2"}}); got != "['t1']" {
		t.Fatalf("set while not connected: %q", got)
	}
	show("['t1']")
}
