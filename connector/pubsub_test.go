package connector

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
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

// TestPubsubKeys (raw TCP subscribers and publisher, exact wire bytes): a publication carrying a
// key Python's broker API does not accept is dropped (Python compatibility), one carrying 1.6's
// `tag` is forwarded with it; request_id, response_id, await_response and wait_for_ack are
// forwarded; with wait_for_ack every subscriber link stamps its own transport_id and waits for
// its own _ack (stop-and-wait per link: one subscriber not acking does not hold the other).
func TestPubsubKeys(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	brk := psBroker(t, dir, []string{"t"}, nil)
	s1, s2 := fakeClient(t, brk, "s1"), fakeClient(t, brk, "s2")
	psSubscribeRaw(t, s1, brk, "s1", "t")
	psSubscribeRaw(t, s2, brk, "s2", "t")
	pub := fakeClient(t, brk, "p1")
	both := func(what, extra, data string) {
		t.Helper()
		expectFrame(t, what+" (s1)", readRaw(t, s1), delivered(brk, "t", "s1", extra, data))
		expectFrame(t, what+" (s2)", readRaw(t, s2), delivered(brk, "t", "s2", extra, data))
	}
	write(t, pub, pubFrame("p1", "x", "t", `, "color": "red"`, "unknown key"))
	write(t, pub, pubFrame("p1", "x", "t", `, "tag": "tg-1"`, "tagged"))
	both("the tagged publication comes first: the unknown key one was dropped", `, "tag": "tg-1"`, "tagged")
	if b, _ := os.ReadFile(filepath.Join(dir, "aioconnectors.log")); !strings.Contains(string(b), `dropped: unexpected key "color"`) {
		t.Fatalf("no warning for the dropped publication in the log:\n%s", b)
	}
	write(t, pub, pubFrame("p1", "x", "t", `, "request_id": 7, "response_id": "r7"`, "ids"))
	both("request_id and response_id", `, "request_id": 7, "response_id": "r7"`, "ids")
	write(t, pub, pubFrame("p1", "x", "t", `, "request_id": "q", "await_response": true`, "await"))
	both("await_response", `, "request_id": "q", "await_response": true`, "await")
	// null and false keys are not forwarded (Python's API defaults)
	write(t, pub, pubFrame("p1", "x", "t", `, "request_id": null, "wait_for_ack": false, "await_response": false`, "falsy"))
	both("falsy keys", "", "falsy")

	// wait_for_ack: each link numbers its own frames and waits for its own _ack
	for i := 1; i <= 2; i++ {
		write(t, pub, pubFrame("p1", "x", "t", `, "wait_for_ack": true`, "ack"+strconv.Itoa(i)))
	}
	expectFrame(t, "s1 acked frame 1", readRaw(t, s1), delivered(brk, "t", "s1", `, "wait_for_ack": true, "transport_id": 1`, "ack1"))
	expectFrame(t, "s2 acked frame 1", readRaw(t, s2), delivered(brk, "t", "s2", `, "wait_for_ack": true, "transport_id": 1`, "ack1"))
	write(t, s1, ackFrame(1, "s1"))
	expectFrame(t, "s1 acked frame 2 while s2 has not acked", readRaw(t, s1), delivered(brk, "t", "s1", `, "wait_for_ack": true, "transport_id": 2`, "ack2"))
	write(t, s2, ackFrame(1, "s2"))
	expectFrame(t, "s2 acked frame 2", readRaw(t, s2), delivered(brk, "t", "s2", `, "wait_for_ack": true, "transport_id": 2`, "ack2"))
	write(t, s1, ackFrame(2, "s1"))
	write(t, s2, ackFrame(2, "s2"))
	// the binary section stays shared after an acked frame (no stale state on the link)
	write(t, pub, frBin(`{"message_type": "_pubsub", "source_id": "p1", "with_binary": true, "message_type_publish": "t"}`, "d", "\x00bin"))
	for _, s := range []struct {
		c    net.Conn
		name string
	}{{s1, "s1"}, {s2, "s2"}} {
		expectFrame(t, s.name+" binary", readRaw(t, s.c),
			frBin(`{"message_type": "t", "source_id": `+pyStr(brk.SourceID())+`, "destination_id": `+pyStr(s.name)+`, "with_binary": true}`, "d", "\x00bin"))
	}
}

// TestPubsubSlowSubscriber: a raw subscriber that never reads does not slow the others. The
// broker's per-peer queue is small (MaxQueueSize 64): once the stuck link's socket buffers and
// output limit are full its queue fills and further publications for it are dropped and counted
// (peer.drops), while the two connector subscribers receive every publication in order. The stuck
// subscriber's backlog stays bounded: when it finally reads, it gets exactly the publications
// that were not dropped, in order, and nothing else.
func TestPubsubSlowSubscriber(t *testing.T) {
	t.Parallel()
	const (
		queue = 64
		batch = 32 // < queue: a fast subscriber never has more than one batch queued
		total = 38 * batch
		size  = 32 << 10
	)
	dir := shortDir(t)
	brk := psBroker(t, dir, []string{"t"}, func(o *config.Options) { o.MaxQueueSize = queue })
	slow := fakeClient(t, brk, "slow")
	psSubscribeRaw(t, slow, brk, "slow", "t")
	fast := []string{"sub1", "sub2"}
	apps := make([]*appListener, len(fast))
	conns := make([]net.Conn, len(fast))
	for i, n := range fast {
		c := psClient(t, dir, brk, n, []string{"t"}, []string{"t"}, nil)
		apps[i] = listenApp(t, c.Paths().ReceivePath("t"))
		psPingClient(t, c, brk, i)
	}
	pub := fakeClient(t, brk, "pub1")
	pad := strings.Repeat("x", size)
	data := func(i int) string { return strconv.Itoa(100000+i) + pad }

	for i := 0; i < total; i += batch {
		for j := i; j < i+batch; j++ {
			write(t, pub, pubFrame("pub1", "x", "t", "", data(j)))
		}
		for k, n := range fast {
			for j := i; j < i+batch; j++ {
				expectFrame(t, n+" publication "+strconv.Itoa(j), apps[k].next(t, &conns[k]), delivered(brk, "t", n, "", data(j)))
			}
		}
	}
	psPingRaw(t, pub, brk, "pub1", 1) // every publication was fanned out
	sp := brk.peerByName("slow")
	drops := int(sp.drops.Load())
	if drops == 0 || drops >= total {
		t.Fatalf("slow subscriber drops %d of %d", drops, total)
	}
	if n := sp.q.Len(); n > queue {
		t.Fatalf("slow subscriber queue %d > %d", n, queue)
	}
	for _, n := range fast {
		if d := brk.peerByName(n).drops.Load(); d != 0 {
			t.Fatalf("%s: %d drops", n, d)
		}
	}
	t.Logf("slow subscriber: %d of %d publications dropped", drops, total)
	// The stuck subscriber reads at last: the publications kept for it, in order, then the marker.
	want := psMarker(t, brk, "slow", "t", "marker")
	var seqs []int
	for {
		b := readRaw(t, slow)
		if string(b) == string(want) {
			break
		}
		seq := -1
		for j := 0; j < total; j++ {
			if string(b) == string(delivered(brk, "t", "slow", "", data(j))) {
				seq = j
				break
			}
		}
		if seq < 0 || len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
			t.Fatalf("slow subscriber frame %d: unexpected or out of order (after %v): %.120q", len(seqs), seqs, b)
		}
		seqs = append(seqs, seq)
	}
	if len(seqs) != total-drops {
		t.Fatalf("slow subscriber received %d publications, %d dropped, of %d: %v", len(seqs), drops, total, seqs)
	}
}

// TestPubsubUnsubscribeOnStop: a client connector's stop sends its unsubscribe frame and the
// broker stops delivering to that name: a raw peer reconnecting under the same name without
// subscribing receives no publication. A link that dies without the unsubscribe frame keeps its
// subscription (the table is not cleared on disconnect, as in Python), so there the raw peer does
// receive it.
func TestPubsubUnsubscribeOnStop(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	brk := psBroker(t, dir, []string{"t"}, nil)
	sub := psClient(t, dir, brk, "sub1", []string{"t"}, []string{"t"}, nil)
	psPingClient(t, sub, brk, 1)
	dead := fakeClient(t, brk, "sub2")
	psSubscribeRaw(t, dead, brk, "sub2", "t")
	pub := fakeClient(t, brk, "pub1")
	if got := brk.subs.of("t"); len(got) != 2 {
		t.Fatalf("subscription table %v", got)
	}

	sub.Stop(false, false, true)
	dead.Close()
	waitPeers(t, brk, "both subscribers gone", func(p []string) bool { return !contains(p, "sub1") && !contains(p, "sub2") })
	if got := brk.subs.of("t"); len(got) != 1 || got[0] != "sub2" {
		t.Fatalf("subscription table after the stop %v", got)
	}
	again1, again2 := fakeClient(t, brk, "sub1"), fakeClient(t, brk, "sub2")
	write(t, pub, pubFrame("pub1", "x", "t", "", "after stop"))
	psPingRaw(t, pub, brk, "pub1", 1)
	m1 := psMarker(t, brk, "sub1", "t", "marker1")
	expectFrame(t, "unsubscribed sub1 gets no publication", readRaw(t, again1), m1)
	expectFrame(t, "sub2, never unsubscribed, still gets it", readRaw(t, again2), delivered(brk, "t", "sub2", "", "after stop"))
}

// unknownKeyAgrees checks the byte scan of unknownPublicationKey against decoding the JSON.
func unknownKeyAgrees(t *testing.T, js string) {
	t.Helper()
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(js), &m) != nil {
		return // not a JSON object: never reaches the check (the header scan rejects it)
	}
	got, bad := unknownPublicationKey([]byte(js))
	want, wantBad := unknownPublicationKeyDecoded([]byte(js))
	if bad != wantBad {
		t.Fatalf("%s: scan %q %v, decoded %q %v", js, got, bad, want, wantBad)
	}
	if bad && publicationKey(got) {
		t.Fatalf("%s: scan returned %q", js, got)
	}
}

// TestUnknownPublicationKey: the allocation-free key scan agrees with decoding the JSON, including
// nested objects and arrays, strings holding JSON punctuation, and escaped keys.
func TestUnknownPublicationKey(t *testing.T) {
	for _, js := range []string{
		`{}`,
		`{"message_type": "_pubsub", "source_id": "p", "message_type_publish": "t"}`,
		`{"message_type": "_pubsub", "tag": "x", "request_id": 1, "response_id": "r", "await_response": true, "wait_for_ack": false, "with_binary": true, "destination_id": "d"}`,
		`{"message_type": "_pubsub", "color": "red"}`,
		`{"with_file": {"src_path": "/a", "color": [1, {"x": 2}]}, "message_type": "t"}`,
		`{"message_type": "a\"b,\"color\": {", "tag": "}]"}`,
		`{"message_type": "t", "extra": null}`,
		`{"message_typ\u0065": "t"}`,
		`{"c\u006flor": "t"}`,
		`{"message_type": "caf\u00e9"}`,
		`{"a": [[], {}, [{"b": 1}]], "message_type": "t"}`,
		`{"request_id": [1, 2], "data": 1}`,
		`{"": "2", "tag": "x"}`,
	} {
		unknownKeyAgrees(t, js)
	}
	if got, bad := unknownPublicationKey([]byte(`{"message_type": "_pubsub", "color": "red"}`)); !bad || got != "color" {
		t.Fatalf("got %q %v", got, bad)
	}
	clean := []byte(`{"message_type": "_pubsub", "source_id": "p", "with_file": {"x": [1]}, "message_type_publish": "t"}`)
	if n := testing.AllocsPerRun(100, func() { unknownPublicationKey(clean) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func FuzzUnknownPublicationKey(f *testing.F) {
	for _, s := range []string{`{"message_type": "_pubsub", "message_type_publish": "t"}`, `{"x": {"y": [1, "z"]}}`,
		`{"t\u0061g": "\"", "a": 1}`, `{"tag": "x", "b": [{}]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, js string) {
		unknownKeyAgrees(t, js)
	})
}
