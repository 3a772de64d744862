package connector

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
	"github.com/valyala/bytebufferpool"
)

// scrape fetches /metrics of c and returns its sample lines by "name{labels}".
func scrape(t testing.TB, c *Connector) map[string]float64 {
	t.Helper()
	a := c.MetricsAddr()
	if a == nil {
		t.Fatal("metrics server not running")
	}
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + a.String() + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: status %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func startMetrics(t *testing.T, c *Connector) {
	t.Helper()
	if err := c.SetMetricsListen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.SetMetricsListen("") })
}

// TestMetricsEndpoint sends traffic client → server (plain, wait_for_ack, await_response, a
// disallowed type) and checks what both connectors' /metrics report against what was sent.
func TestMetricsEndpoint(t *testing.T) {
	srv, cli := startPair(t, nil, nil, nil, nil)
	startMetrics(t, srv)
	startMetrics(t, cli)
	app := listenApp(t, srv.paths.ReceivePath("any"))
	var appConn net.Conn
	api := dialUnix(t, cli.paths.SendToConnector)
	srvPeer := pyStr(cli.serverPeer)
	const n = 200
	var sentBytes int
	for i := 0; i < n; i++ {
		f := fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+srvPeer+`}`, fmt.Sprintf("payload %d", i))
		sentBytes += len(f)
		write(t, api, f)
	}
	for i := 0; i < n; i++ {
		app.next(t, &appConn)
	}
	// wait_for_ack: one ack round trip measured on the client
	write(t, api, fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+srvPeer+`, "wait_for_ack": true}`, "acked"))
	app.next(t, &appConn)
	eventually(t, "ack wait observed", func() bool { return cli.stats.ackWait.count.Load() == 1 })
	// await_response: the server's application answers on the server's send socket
	req := dialUnix(t, cli.paths.SendToConnector)
	write(t, req, fr(`{"message_type": "any", "source_id": "client1", "destination_id": `+srvPeer+`, "request_id": 7, "await_response": true}`, "question"))
	app.next(t, &appConn)
	sapi := dialUnix(t, srv.paths.SendToConnector)
	write(t, sapi, fr(`{"message_type": "any", "destination_id": "client1", "response_id": 7}`, "answer"))
	if got := readRaw(t, req); !strings.Contains(string(got), "answer") {
		t.Fatalf("await_response reply %q", got)
	}
	// a type the client may not send
	write(t, api, fr(`{"message_type": "nope", "source_id": "client1", "destination_id": `+srvPeer+`}`, "x"))
	eventually(t, "type_not_allowed counted", func() bool { return cli.stats.dropTypeNotAllowed.Load() == 1 })

	cm := scrape(t, cli)
	sm := scrape(t, srv)
	peerLabel := strconv.Quote(cli.serverPeer)
	// n plain + 1 acked + 1 request queued by the client for the server
	if got := cm[`aioconn_peer_sent_messages_total{message_type="any",peer=`+peerLabel+`}`]; got != n+2 {
		t.Errorf("client sent messages = %v, want %d\n%v", got, n+2, keysWith(cm, "aioconn_peer"))
	}
	// the server received them (the acked one carries the transport_id the client stamps when
	// writing, so received bytes are at least the bytes sent by the application)
	if got := sm[`aioconn_peer_received_messages_total{message_type="any",peer="client1"}`]; got != n+2 {
		t.Errorf("server received messages = %v, want %d\n%v", got, n+2, keysWith(sm, "aioconn_peer"))
	}
	if got := sm[`aioconn_peer_received_bytes_total{message_type="any",peer="client1"}`]; got < float64(sentBytes) {
		t.Errorf("server received bytes = %v, want at least %d", got, sentBytes)
	}
	// the server answered once (response queued for client1); the client received it, and the
	// server's _ack is counted as an incoming _ack frame
	if got := sm[`aioconn_peer_sent_messages_total{message_type="any",peer="client1"}`]; got != 1 {
		t.Errorf("server sent messages = %v, want 1", got)
	}
	if got := cm[`aioconn_peer_received_messages_total{message_type="any",peer=`+peerLabel+`}`]; got != 1 {
		t.Errorf("client received messages = %v, want 1", got)
	}
	if got := cm[`aioconn_peer_received_messages_total{message_type="_ack",peer=`+peerLabel+`}`]; got != 1 {
		t.Errorf("client received _ack = %v, want 1", got)
	}
	for k, want := range map[string]float64{
		`aioconn_await_response_seconds_count`:                                   1,
		`aioconn_ack_wait_seconds_count`:                                         1,
		`aioconn_dropped_messages_total{reason="type_not_allowed"}`:              1,
		`aioconn_dropped_messages_total{reason="queue_full"}`:                    0,
		`aioconn_connected_peers`:                                                1,
		`aioconn_send_queue_messages{peer=` + peerLabel + `}`:                    0,
		`aioconn_reconnects_total`:                                               0,
		`aioconn_tls_handshakes_total{result="ok"}`:                              0,
		`aioconn_persistence_records_total{direction="send",operation="stored"}`: 0,
		`aioconn_info{role="client",source_id="client1"}`:                        1,
	} {
		if got, ok := cm[k]; !ok || got != want {
			t.Errorf("client %s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if _, ok := sm[`aioconn_receive_queue_messages{message_type="any"}`]; !ok {
		t.Errorf("server has no receive queue gauge for type any")
	}
	if _, ok := cm[`aioconn_await_response_seconds_bucket{le="+Inf"}`]; !ok {
		t.Errorf("no await_response histogram buckets")
	}

	// show_stats: the same counters as JSON through the commander
	var st Stats
	if err := json.Unmarshal([]byte(command(t, srv.paths.Commander, "show_stats__sync", nil)), &st); err != nil {
		t.Fatalf("show_stats: %v", err)
	}
	if st.Traffic["client1"]["any"].MessagesIn != n+2 || !st.Detailed || st.SourceID != srv.sourceID ||
		len(st.ConnectedPeers) != 1 || st.ConnectedPeers[0] != "client1" {
		t.Errorf("show_stats = %+v", st)
	}
	if uint64(sm[`aioconn_peer_received_bytes_total{message_type="any",peer="client1"}`]) != st.Traffic["client1"]["any"].BytesIn {
		t.Errorf("show_stats bytes %d differ from /metrics", st.Traffic["client1"]["any"].BytesIn)
	}

	// metrics off: no server, counting stops, show_stats still answers
	if err := cli.SetMetricsListen(""); err != nil {
		t.Fatal(err)
	}
	if cli.MetricsAddr() != nil || cli.stats.detailed.Load() {
		t.Fatal("metrics still on after SetMetricsListen(\"\")")
	}
	reply := command(t, cli.paths.Commander, "show_stats", nil)
	if !strings.Contains(reply, `"detailed":false`) || !strings.Contains(reply, `"type_not_allowed":1`) {
		t.Errorf("show_stats without metrics: %s", reply)
	}
}

func keysWith(m map[string]float64, prefix string) string {
	var b strings.Builder
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			fmt.Fprintf(&b, "%s %v\n", k, v)
		}
	}
	return b.String()
}

// TestLabelCap checks that peers and types beyond the cap are counted under "other" and that
// no count is lost.
func TestLabelCap(t *testing.T) {
	cn := &Connector{}
	cn.stats.traffic.max = 3
	var total, outBytes uint64
	for i := 0; i < 5; i++ {
		p := &peer{cn: cn, name: fmt.Sprintf("peer%d", i)}
		for j := 0; j < 5; j++ {
			for k := 0; k <= j; k++ { // alternate types so the one-entry cache is exercised
				p.countIn([]byte(fmt.Sprintf("t%d", j)), 10)
				f := fr(fmt.Sprintf(`{"message_type": "t%d"}`, k), "")
				p.countOut(qmsg{b: &bytebufferpool.ByteBuffer{B: f}})
				outBytes += uint64(len(f))
				total++
			}
		}
		p.mx.Load().publish()
	}
	snap := cn.stats.traffic.snapshot()
	if len(snap) != 4 {
		t.Fatalf("peer labels %v, want 3 + other", snap)
	}
	var in, out, outB uint64
	for peer, types := range snap {
		if len(types) > 4 {
			t.Errorf("peer %s has %d type labels, want at most 3 + other", peer, len(types))
		}
		for typ, x := range types {
			if typ != otherLabel && typ != "t0" && typ != "t1" && typ != "t2" {
				t.Errorf("unexpected type label %q", typ)
			}
			in += x.MessagesIn
			out += x.MessagesOut
			if x.BytesIn != 10*x.MessagesIn {
				t.Errorf("%s/%s bytes %+v", peer, typ, x)
			}
			outB += x.BytesOut
		}
	}
	if _, ok := snap[otherLabel]; !ok {
		t.Errorf("no %q peer label", otherLabel)
	}
	if in != total || out != total || outB != outBytes {
		t.Errorf("counted in %d out %d (%d bytes), want %d each (%d bytes)", in, out, outB, total, outBytes)
	}
}

// TestReload applies a changed config file to a running client: log level, subscriptions (sent
// to the broker at once), ignore_peer_traffic and metrics_listen are applied, the rest is
// reported as needing a restart; a broken file changes nothing.
func TestReload(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, serverConf(dir, 0, opts{"pubsub_central_broker": true}), nil)
	base := opts{"recv_message_types": []string{"any", "news", "sport"}, "subscribe_message_types": []string{"news"}}
	cliJSON := clientConf(dir, srv.TCPAddr().Port, "client1", base)
	cli := newConnector(t, dir, cliJSON, nil)
	waitLinked(t, srv, cli, "client1")
	eventually(t, "subscribed to news", func() bool { return contains(srv.subs.of("news"), "client1") })

	path := filepath.Join(dir, "client.json")
	write := func(extra opts) {
		m := map[string]any{}
		json.Unmarshal([]byte(cliJSON), &m)
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(opts{"default_logger_log_level": "DEBUG", "subscribe_message_types": []string{"sport"},
		"metrics_listen": "127.0.0.1:0", "ignore_peer_traffic": true, "silent": false, "max_size_file_upload": 5})
	res, err := cli.ReloadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cli.log.Level() != LevelDebug {
		t.Errorf("log level %v", cli.log.Level())
	}
	if got := cli.subscriptions(); len(got) != 1 || got[0] != "sport" {
		t.Errorf("subscriptions %v", got)
	}
	eventually(t, "broker moved client1 from news to sport", func() bool {
		return contains(srv.subs.of("sport"), "client1") && !contains(srv.subs.of("news"), "client1")
	})
	if cli.MetricsAddr() == nil {
		t.Errorf("metrics server not started by reload")
	}
	if !cli.ignore.Load().all {
		t.Errorf("ignore_peer_traffic not applied")
	}
	if want := []string{"max_size_file_upload", "silent"}; fmt.Sprint(res.NeedRestart) != fmt.Sprint(want) {
		t.Errorf("need restart %v, want %v", res.NeedRestart, want)
	}
	if len(res.Applied) != 4 {
		t.Errorf("applied %q", res.Applied)
	}
	// Same file again: nothing to apply, the restart keys are still reported.
	res, _ = cli.ReloadFile(path)
	if len(res.Applied) != 0 || len(res.NeedRestart) != 2 {
		t.Errorf("second reload %+v", res)
	}
	// A broken file changes nothing.
	os.WriteFile(path, []byte(`{"default_logger_log_level": `), 0o644)
	if _, err := cli.ReloadFile(path); err == nil {
		t.Errorf("broken file accepted")
	}
	// metrics_listen removed: the server stops.
	write(opts{"default_logger_log_level": "INFO"})
	res, _ = cli.ReloadFile(path)
	if cli.MetricsAddr() != nil || cli.log.Level() != LevelInfo {
		t.Errorf("after removing metrics_listen: addr %v level %v (%+v)", cli.MetricsAddr(), cli.log.Level(), res)
	}
	if got := cli.subscriptions(); len(got) != 1 || got[0] != "news" {
		t.Errorf("subscriptions back to the original %v", got)
	}
}

// TestReloadDisconnected: subscriptions reloaded while the client is not connected are sent at
// its next connection.
func TestReloadDisconnected(t *testing.T) {
	dir := shortDir(t)
	port := freePort(t)
	cliJSON := clientConf(dir, port, "client1", opts{"recv_message_types": []string{"news", "sport"}})
	cli := newConnector(t, dir, cliJSON, nil)
	cfg, err := config.Parse([]byte(clientConf(dir, port, "client1", opts{"recv_message_types": []string{"news", "sport"},
		"subscribe_message_types": []string{"sport", "nope"}})), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	cli.Reload(cfg)
	if got := cli.subscriptions(); len(got) != 1 || got[0] != "sport" {
		t.Fatalf("subscriptions %v", got)
	}
	srv := newConnector(t, dir, serverConf(dir, port, opts{"pubsub_central_broker": true}), nil)
	waitLinked(t, srv, cli, "client1")
	eventually(t, "subscribed at connection", func() bool { return contains(srv.subs.of("sport"), "client1") })
}

// BenchmarkCountIn is the per-message cost of the per-peer counters on the receive path
// (published every 64 messages here; the connector publishes once per read burst).
func BenchmarkCountIn(b *testing.B) {
	cn := &Connector{}
	p := &peer{cn: cn, name: "client1"}
	mt := []byte("telemetry")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.countIn(mt, 120)
		if i&63 == 0 {
			p.mx.Load().publish()
		}
	}
}

// BenchmarkCountOut is the per-message cost on the send path (message_type read from the frame).
func BenchmarkCountOut(b *testing.B) {
	cn := &Connector{}
	p := &peer{cn: cn, name: "client1"}
	q := qmsg{b: &bytebufferpool.ByteBuffer{B: fr(`{"message_type": "telemetry", "source_id": "client1", "destination_id": "srv"}`, "0123456789")}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p.countOut(q)
		if i&63 == 0 {
			p.mx.Load().publish()
		}
	}
}

// BenchmarkCountOff is the hot-path cost with metrics off: one plain load of the flag.
func BenchmarkCountOff(b *testing.B) {
	cn := &Connector{}
	p := &peer{cn: cn, name: "client1"}
	mt := []byte("telemetry")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if cn.stats.detailed.Load() {
			p.countIn(mt, 120)
		}
	}
}

// TestFrameType reads message_type in place or through the header scanner.
func TestFrameType(t *testing.T) {
	for _, c := range []struct{ js, want string }{
		{`{"message_type": "any", "source_id": "x"}`, "any"},
		{`{"message_type":"compact"}`, "compact"},
		{`{"source_id": "x", "message_type": "later"}`, "later"},
		{`{"message_type": "esc\"aped"}`, `esc"aped`},
		{`{"source_id": "x"}`, "unknown"},
	} {
		got, _ := frameType(fr(c.js, "d"), nil)
		if string(got) != c.want {
			t.Errorf("%s: got %q want %q", c.js, got, c.want)
		}
	}
	if got, _ := frameType([]byte{1, 0}, nil); string(got) != "unknown" {
		t.Errorf("short frame: %q", got)
	}
}

// TestTLSCounters: a strict TLS client's first connection (default certificate), the
// certificate issued by the server and the reconnection with it are counted on both sides.
func TestTLSCounters(t *testing.T) {
	srv, cli, _ := tlsPair(t, false)
	waitPeers(t, srv, "client1 identified by certificate", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	waitPeers(t, cli, "client connected", func(p []string) bool { return len(p) == 1 })
	s, c := srv.Stats(), cli.Stats()
	if s.TLS.CertificatesIssued != 1 || s.TLS.Handshakes < 2 || c.TLS.Handshakes < 2 || c.Reconnects < 1 {
		t.Errorf("server tls %+v; client tls %+v, reconnects %d", s.TLS, c.TLS, c.Reconnects)
	}
}

// TestReloadPriorities: send_message_types_priorities is applied on reload (the map route takes
// each frame's priority from), other changed keys are reported as needing a restart.
func TestReloadPriorities(t *testing.T) {
	dir := shortDir(t)
	base := opts{"send_message_types": []string{"any", "event"}, "send_message_types_priorities": map[string]int{"event": 1}}
	cli := newConnector(t, dir, clientConf(dir, freePort(t), "client1", base), nil)
	if p := cli.prios(); p["event"] != 1 || p["any"] != 0 {
		t.Fatalf("initial priorities %v", p)
	}
	cfg, err := config.Parse([]byte(clientConf(dir, 1, "client1", opts{"send_message_types": []string{"any", "event"},
		"send_message_types_priorities": map[string]int{"any": 2, "event": 0}})), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	res := cli.Reload(cfg)
	if p := cli.prios(); p["event"] != 0 || p["any"] != 2 || p["_ping"] != 0 {
		t.Fatalf("reloaded priorities %v", p)
	}
	if len(res.Applied) != 1 || !strings.Contains(res.Applied[0], "send_message_types_priorities") {
		t.Fatalf("applied %q", res.Applied)
	}
	// server_sockaddr differs in this file: reported, not applied
	if fmt.Sprint(res.NeedRestart) != "[server_sockaddr]" {
		t.Fatalf("need restart %v", res.NeedRestart)
	}
}
