package api

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestIntegrationPython(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real connectors")
	}
	py := pythonConnector(t)
	t.Run("preserve", func(t *testing.T) { runIntegration(t, startPair(t, py, py, nil)) })
	t.Run("no_preserve", func(t *testing.T) { runIntegration(t, startPair(t, py, py, noPreserve)) })
}

// noPreserve: one connection per message on both unix sockets, on both sides.
var noPreserve = map[string]any{"uds_path_send_preserve_socket": false, "uds_path_receive_preserve_socket": false}

func TestIntegrationAioconn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real connectors")
	}
	g := goConnector(t)
	t.Run("preserve", func(t *testing.T) { runIntegration(t, startPair(t, g, g, nil)) })
	t.Run("no_preserve", func(t *testing.T) { runIntegration(t, startPair(t, g, g, noPreserve)) })
}

// replier answers await requests (same type, response_id = request_id, destination_id =
// source_id, data "re:"+data) and passes every other message on as a clone.
func replier(t *testing.T, a **API, out chan<- *Message) Handler {
	return func(m *Message) {
		aw, _ := m.Get("await_response")
		if aw.Truthy() {
			rid, _ := m.Get("request_id")
			src, _ := m.Get("source_id")
			mt, _ := m.Get("message_type")
			dst, _ := src.Str()
			typ, _ := mt.Str()
			var id any
			if n, ok := rid.Int(); ok {
				id = n
			} else {
				id, _ = rid.Str()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := (*a).SendMessage(ctx, SendOptions{MessageType: typ, DestinationID: dst, ResponseID: id,
				Data: append([]byte("re:"), m.Data...)})
			if err != nil {
				t.Errorf("reply: %v", err)
			}
			return
		}
		out <- m.Clone()
	}
}

func str(t *testing.T, m *Message, key string) string {
	t.Helper()
	v, err := m.Get(key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if s, ok := v.Str(); ok {
		return s
	}
	return string(v.Raw)
}

func runIntegration(t *testing.T, p pair) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var srv, cli *API
	srv = newAPI(t, loadAPIConfig(t, p.serverCfg))
	cli = newAPI(t, loadAPIConfig(t, p.clientCfg))
	toSrv := make(chan *Message, 16)
	toCli := make(chan *Message, 16)
	if err := srv.StartWaitingForMessages("any", replier(t, &srv, toSrv), false); err != nil {
		t.Fatal(err)
	}
	if err := cli.StartWaitingForMessages("any", replier(t, &cli, toCli), false); err != nil {
		t.Fatal(err)
	}

	t.Run("client_to_server", func(t *testing.T) {
		if err := cli.SendMessage(ctx, SendOptions{MessageType: "any", Data: []byte(`{"n": 1}`), Binary: []byte{0, 0xff}}); err != nil {
			t.Fatal(err)
		}
		m := recv(t, toSrv)
		if str(t, m, "source_id") != "client1" || string(m.Data) != `{"n": 1}` || string(m.Binary) != "\x00\xff" || !m.HasBinary {
			t.Errorf("server got %s %q %q", m.Header, m.Data, m.Binary)
		}
	})
	t.Run("server_to_client", func(t *testing.T) {
		if err := srv.SendMessage(ctx, SendOptions{MessageType: "any", DestinationID: "client1", Data: []byte(`"hi"`), RequestID: 42}); err != nil {
			t.Fatal(err)
		}
		m := recv(t, toCli)
		if str(t, m, "source_id") != srv.SourceID() || string(m.Data) != `"hi"` || str(t, m, "request_id") != "42" || m.HasBinary {
			t.Errorf("client got %s %q", m.Header, m.Data)
		}
	})
	t.Run("await_client_to_server", func(t *testing.T) {
		m, err := cli.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "any", Data: []byte("q1"), RequestID: 7})
		if err != nil {
			t.Fatal(err)
		}
		if str(t, m, "response_id") != "7" || string(m.Data) != "re:q1" || str(t, m, "source_id") != srv.SourceID() {
			t.Errorf("reply %s %q", m.Header, m.Data)
		}
	})
	t.Run("await_server_to_client", func(t *testing.T) {
		m, err := srv.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "any", DestinationID: "client1", Data: []byte("q2"), RequestID: "r-9"})
		if err != nil {
			t.Fatal(err)
		}
		if str(t, m, "response_id") != "r-9" || string(m.Data) != "re:q2" || str(t, m, "source_id") != "client1" {
			t.Errorf("reply %s %q", m.Header, m.Data)
		}
	})
	t.Run("ping", func(t *testing.T) {
		m, err := cli.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "_ping", Data: []byte("PING 1"), RequestID: 1})
		if err != nil {
			t.Fatal(err)
		}
		if str(t, m, "message_type") != "_ping" || str(t, m, "response_id") != "1" || string(m.Data) != "PING 1" {
			t.Errorf("client ping reply %s %q", m.Header, m.Data)
		}
		m, err = srv.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "_ping", DestinationID: "client1", Data: []byte("PING 2"), RequestID: 2})
		if err != nil {
			t.Fatal(err)
		}
		if str(t, m, "response_id") != "2" || string(m.Data) != "PING 2" || str(t, m, "source_id") != "client1" {
			t.Errorf("server ping reply %s %q", m.Header, m.Data)
		}
	})
	t.Run("wait_for_ack", func(t *testing.T) {
		if err := cli.SendMessage(ctx, SendOptions{MessageType: "any", Data: []byte("acked"), WaitForAck: true}); err != nil {
			t.Fatal(err)
		}
		m := recv(t, toSrv)
		if str(t, m, "wait_for_ack") != "true" || string(m.Data) != "acked" {
			t.Errorf("server got %s %q", m.Header, m.Data)
		}
		if v, _ := m.Get("transport_id"); v.Present() {
			t.Errorf("transport_id not stripped: %s", m.Header)
		}
	})
	t.Run("no_response_for_unknown_peer", func(t *testing.T) {
		_, err := srv.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "any", DestinationID: "nobody", Data: []byte("x"), RequestID: 5})
		if err == nil || !strings.Contains(err.Error(), "without a response") {
			t.Errorf("await to an absent peer: %v", err)
		}
	})
	t.Run("await_repeated", func(t *testing.T) {
		// sequential requests (on one reused connection in preserve mode), one that the
		// connector ends without a reply in the middle, and more after it
		for i := 0; i < 6; i++ {
			if i == 3 {
				if _, err := srv.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "any", DestinationID: "nobody", Data: []byte("x"), RequestID: 50}); err == nil {
					t.Fatal("await to an absent peer answered")
				}
			}
			q := "q" + strconv.Itoa(i)
			m, err := cli.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "any", Data: []byte(q), RequestID: 100 + i})
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if str(t, m, "response_id") != strconv.Itoa(100+i) || string(m.Data) != "re:"+q {
				t.Fatalf("request %d: reply %s %q", i, m.Header, m.Data)
			}
		}
	})
	t.Run("remote_tool", func(t *testing.T) {
		stool := NewRemoteTool(srv.Config())
		out, err := stool.ShowConnectedPeers(ctx)
		if err != nil || string(out) != `["client1"]` {
			t.Errorf("show_connected_peers: %q %v", out, err)
		}
		out, err = stool.PeekQueues(ctx)
		if err != nil || !strings.Contains(string(out), `"queue_recv": 0`) || !strings.Contains(string(out), `"client1": `) {
			t.Errorf("peek_queues: %q %v", out, err)
		}
		out, err = stool.ShowLogLevel(ctx)
		if err != nil || string(out) != "INFO" {
			t.Errorf("show_log_level: %q %v", out, err)
		}
		ctool := NewRemoteTool(cli.Config())
		out, err = ctool.ShowConnectedPeers(ctx)
		if err != nil || !strings.Contains(string(out), "127.0.0.1") {
			t.Errorf("client show_connected_peers: %q %v", out, err)
		}
		out, err = ctool.IgnorePeerTrafficShow(ctx)
		if err != nil || string(out) != "False" {
			t.Errorf("ignore_peer_traffic_show: %q %v", out, err)
		}
	})
	select {
	case m := <-toSrv:
		t.Errorf("unexpected message at the server: %s", m.Header)
	case m := <-toCli:
		t.Errorf("unexpected message at the client: %s", m.Header)
	default:
	}
}
