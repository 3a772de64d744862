package api

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func boolp(b bool) *bool { return &b }

// The plain sends of the nossl_p2p session, in capture order, with the vector each produced
// on the client's first (preserved) send_to_connector connection.
var clientSends = []struct {
	vec string
	o   SendOptions
}{
	{"002", SendOptions{MessageType: "any", Data: []byte(`{"text": "hello json", "n": 1}`)}},
	{"005", SendOptions{MessageType: "any", Data: []byte(`"plain string"`)}},
	{"008", SendOptions{MessageType: "any", Data: []byte(`plain string`)}},
	{"011", SendOptions{MessageType: "any", Data: []byte("\x00\x01\x02raw\xff")}},
	{"014", SendOptions{MessageType: "any", Data: []byte(`{"x": 1}`), Binary: []byte{0, 1, 2, 3, 0xfe, 0xff}}},
	{"023", SendOptions{MessageType: "any", Data: []byte(`{"r": 1}`), RequestID: 8}},
	{"026", SendOptions{MessageType: "any", Data: []byte(`{"ack": "me"}`), WaitForAck: true}},
	{"030", SendOptions{MessageType: "any", Data: []byte(`{"f": 1}`), WithFile: &WithFile{
		SrcPath: "/tmp/aioconnectors/nossl_p2p/file_src.txt", DstType: "any", DstName: "vec_file.txt", Delete: boolp(false)}}},
	{"033", SendOptions{MessageType: "any", Data: []byte(`{"f": 2}`), Binary: []byte("BIN"), WithFile: &WithFile{
		SrcPath: "/tmp/aioconnectors/nossl_p2p/file_src.txt", DstType: "any", DstName: "vec_file2.txt", Delete: boolp(false)}}},
	{"049", SendOptions{MessageType: "any", DestinationID: "('127.0.0.1', 10673)", ResponseID: 9,
		Data: []byte(`{"reply_to": 9, "from": "client1_app"}`)}},
}

var serverSends = []struct {
	vec string
	o   SendOptions
}{
	{"020", SendOptions{MessageType: "any", DestinationID: "client1", ResponseID: 7, Data: []byte(`{"reply_to": 7, "from": "server_app"}`)}},
	{"040", SendOptions{MessageType: "any", DestinationID: "client1", Data: []byte(`{"from": "server", "n": 2}`)}},
	{"043", SendOptions{MessageType: "any", DestinationID: "client1", Data: []byte("raw text"), Binary: []byte{0xca, 0xfe}}},
}

// TestGoldenSendPreserved replays the session's plain sends through one API in preserve mode
// and compares the bytes the connector would read with the captured streams.
func TestGoldenSendPreserved(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server bool
		stream string
	}{
		{"client", false, "streams/uds_send_client1_conn1_app2conn.bin"},
		{"server", true, "streams/uds_send_server_conn1_app2conn.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			cfg := clientCfg(t, dir, "")
			sends := clientSends
			if tc.server {
				cfg, sends = serverCfg(t, dir, ""), serverSends
			}
			got := make(chan []byte, 4)
			listenFake(t, cfg.SendToConnectorPath(), recordAll(got))
			a := newAPI(t, cfg)
			var want []byte
			for _, s := range sends {
				if err := a.SendMessage(context.Background(), s.o); err != nil {
					t.Fatalf("%s: %v", s.vec, err)
				}
				want = append(want, vec(t, "nossl_p2p", s.vec)...)
			}
			a.Close()
			stream := recv(t, got)
			mustEqualBytes(t, "stream vs frames", stream, want)
			mustEqualBytes(t, "stream vs capture", stream, vec(t, "nossl_p2p", tc.stream))
		})
	}
}

// TestGoldenSendNonPreserved: one connection per message, each carrying exactly its frame.
func TestGoldenSendNonPreserved(t *testing.T) {
	dir := shortDir(t)
	cfg := clientCfg(t, dir, `"uds_path_send_preserve_socket": false`)
	got := make(chan []byte, 1)
	listenFake(t, cfg.SendToConnectorPath(), recordAll(got))
	a := newAPI(t, cfg)
	for _, s := range clientSends {
		if err := a.SendMessage(context.Background(), s.o); err != nil {
			t.Fatalf("%s: %v", s.vec, err)
		}
		mustEqualBytes(t, s.vec, recv(t, got), vec(t, "nossl_p2p", s.vec))
	}
}

func TestGoldenPublish(t *testing.T) {
	dir := shortDir(t)
	cfg := apiConfig(t, dir, `"is_server": false, "client_name": "pub1", "send_message_types": ["type_pub"], `+golden10673)
	got := make(chan []byte, 1)
	listenFake(t, cfg.SendToConnectorPath(), recordAll(got))
	a := newAPI(t, cfg)
	ctx := context.Background()
	if err := a.PublishMessage(ctx, SendOptions{MessageType: "type_pub", Data: []byte(`{"news": 1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishMessage(ctx, SendOptions{MessageType: "type_pub", Data: []byte("headline"), Binary: []byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	want := append(vec(t, "nossl_pubsub", "004"), vec(t, "nossl_pubsub", "008")...)
	mustEqualBytes(t, "publish stream", recv(t, got), want)
}

// TestGoldenAwait: each await request goes on its own connection; the reply frame written
// back by the connector is returned as is.
func TestGoldenAwait(t *testing.T) {
	for _, tc := range []struct {
		name       string
		server     bool
		req, reply string
		o          SendOptions
	}{
		{"c2s_request_response", false, "017", "022", SendOptions{MessageType: "any", Data: []byte(`{"q": "question"}`), RequestID: 7}},
		{"c2s_ping", false, "036", "039", SendOptions{MessageType: "_ping", Data: []byte("PING 11111"), RequestID: 1}},
		{"s2c_request_response", true, "046", "051", SendOptions{MessageType: "any", DestinationID: "client1", Data: []byte(`{"q": "s?"}`), RequestID: 9}},
		{"s2c_ping", true, "052", "055", SendOptions{MessageType: "_ping", DestinationID: "client1", Data: []byte("PING 22222"), RequestID: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			cfg := clientCfg(t, dir, "")
			if tc.server {
				cfg = serverCfg(t, dir, "")
			}
			reply := vec(t, "nossl_p2p", tc.reply)
			got := make(chan []byte, 1)
			listenFake(t, cfg.SendToConnectorPath(), replyWith(got, reply))
			a := newAPI(t, cfg)
			m, err := a.SendMessageAwaitResponse(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "request", recv(t, got), vec(t, "nossl_p2p", tc.req))
			f := parseVec(t, reply)
			mustEqualBytes(t, "reply header", m.Header, f.JSON)
			mustEqualBytes(t, "reply data", m.Data, f.Data)
			if m.HasBinary || m.Binary != nil {
				t.Errorf("reply binary %q", m.Binary)
			}
			v, err := m.Get("response_id")
			if err != nil || string(v.Raw) != string(mustGet(t, f.JSON, "response_id")) {
				t.Errorf("Get(response_id) = %q, %v", v.Raw, err)
			}
		})
	}
}

func mustGet(t *testing.T, js []byte, key string) []byte {
	t.Helper()
	m := Message{Header: js}
	v, err := m.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return v.Raw
}

// TestGoldenCommander: the request bytes of the tool equal the captured ones and the reply
// payload is returned verbatim.
func TestGoldenCommander(t *testing.T) {
	type call func(*RemoteTool, context.Context) ([]byte, error)
	for _, tc := range []struct {
		name       string
		server     bool
		req, reply string
		call       call
	}{
		{"server_show_connected_peers", true, "056", "057", (*RemoteTool).ShowConnectedPeers},
		{"server_peek_queues", true, "058", "059", (*RemoteTool).PeekQueues},
		{"server_show_log_level", true, "060", "061", (*RemoteTool).ShowLogLevel},
		{"client_show_connected_peers", false, "062", "063", (*RemoteTool).ShowConnectedPeers},
		{"client_show_subscribe_message_types", false, "064", "065", (*RemoteTool).ShowSubscribeMessageTypes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			cfg := clientCfg(t, dir, "")
			if tc.server {
				cfg = serverCfg(t, dir, "")
			}
			reply := vec(t, "nossl_p2p", tc.reply)
			got := make(chan []byte, 1)
			listenFake(t, cfg.CommanderPath(), replyWith(got, reply))
			tool := NewRemoteTool(cfg)
			out, err := tc.call(tool, context.Background())
			if err != nil {
				t.Fatal(err)
			}
			mustEqualBytes(t, "request", recv(t, got), vec(t, "nossl_p2p", tc.req))
			mustEqualBytes(t, "reply", out, reply[4:])
		})
	}
}

// TestGoldenReceive: the connector's stream to a listener is delivered frame by frame.
func TestGoldenReceive(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server bool
		stream string
	}{
		{"server", true, "streams/uds_recv_any_server_conn1_conn2app.bin"},
		{"client", false, "streams/uds_recv_any_client1_conn1_conn2app.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			cfg := clientCfg(t, dir, "")
			if tc.server {
				cfg = serverCfg(t, dir, "")
			}
			a := newAPI(t, cfg)
			got := make(chan *Message, 64)
			if err := a.StartWaitingForMessages("any", func(m *Message) { got <- m.Clone() }, false); err != nil {
				t.Fatal(err)
			}
			stream := vec(t, "nossl_p2p", tc.stream)
			c, err := net.Dial("unix", cfg.ReceiveFromConnectorPath("any"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Write in two uneven pieces to cross buffer boundaries.
			if _, err := c.Write(stream[:len(stream)/3]); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(stream[len(stream)/3:]); err != nil {
				t.Fatal(err)
			}
			for i, fb := range splitFrames(t, stream) {
				f := parseVec(t, fb)
				m := recv(t, got)
				if !bytes.Equal(m.Header, f.JSON) || !bytes.Equal(m.Data, f.Data) || !bytes.Equal(m.Binary, f.Binary) || m.HasBinary != f.HasBinary {
					t.Errorf("frame %d: got %q %q %q, want %q %q %q", i, m.Header, m.Data, m.Binary, f.JSON, f.Data, f.Binary)
				}
			}
			if err := a.StopWaitingForMessages("any"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(cfg.ReceiveFromConnectorPath("any")); !os.IsNotExist(err) {
				t.Errorf("socket file still there after StopWaitingForMessages: %v", err)
			}
		})
	}
}

var _ = filepath.Join
