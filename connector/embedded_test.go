package connector_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
)

// The same suite runs with applications on the unix sockets and embedded (api.NewWithTransport
// on connector.Local): only the application↔connector hop differs.
func TestAPISuiteSockets(t *testing.T)  { apiSuite(t, false) }
func TestAPISuiteEmbedded(t *testing.T) { apiSuite(t, true) }

type station struct {
	cn  *connector.Connector
	api *api.API
}

func startStation(t *testing.T, dir, js string, embedded bool) station {
	t.Helper()
	js = strings.ReplaceAll(js, "$DIR", dir)
	cfg, err := config.Parse([]byte(js), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ReconnectInterval = 50 * time.Millisecond
	cn, err := connector.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Close)
	acfg, err := config.ParseAPI([]byte(js), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	acfg.ReceiveFromAnyConnectorOwner = false
	var a *api.API
	if embedded {
		a, err = api.NewWithTransport(acfg, cn.Local())
	} else {
		a, err = api.New(acfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return station{cn, a}
}

func apiSuite(t *testing.T, embedded bool) {
	dir, err := os.MkdirTemp("", "em")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	common := `"use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any", "other"], "recv_message_types": ["any", "other", "t1"], "debug_msg_counts": false`
	srv := startStation(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "pubsub_central_broker": true, `+common+`}`, embedded)
	port := strconv.Itoa(srv.cn.TCPAddr().Port)
	cli := startStation(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+port+`],
 "subscribe_message_types": ["t1"], `+common+`}`, embedded)
	for deadline := time.Now().Add(5 * time.Second); len(srv.cn.ConnectedPeers()) == 0 || len(cli.cn.ConnectedPeers()) == 0; {
		select {
		case <-srv.cn.PeerChange():
		case <-cli.cn.PeerChange():
		case <-time.After(time.Until(deadline)):
			t.Fatal("stations did not connect")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type got struct {
		typ, header, data, bin string
	}
	recv := func(s station, types ...string) chan got {
		ch := make(chan got, 16)
		for _, typ := range types {
			typ := typ
			if err := s.api.StartWaitingForMessages(typ, func(m *api.Message) {
				ch <- got{typ, string(m.Header), string(m.Data), string(m.Binary)}
				if v, _ := m.Get("await_response"); v.Truthy() {
					id, _ := m.Get("request_id")
					src, _ := m.Get("source_id")
					dst, _ := src.Str()
					n, _ := id.Int()
					s.api.SendMessage(ctx, api.SendOptions{MessageType: typ, DestinationID: dst, ResponseID: n, Data: []byte("answer")})
				}
			}, false); err != nil {
				t.Fatal(err)
			}
		}
		return ch
	}
	srvIn := recv(srv, "any", "other")
	cliIn := recv(cli, "any", "t1")
	next := func(ch chan got) got {
		t.Helper()
		select {
		case g := <-ch:
			return g
		case <-ctx.Done():
			t.Fatal("no message")
		}
		return got{}
	}
	srvID := srv.cn.SourceID()
	// client -> server, two types, binary
	if err := cli.api.SendMessage(ctx, api.SendOptions{MessageType: "any", Data: []byte(`{"n": 1}`)}); err != nil {
		t.Fatal(err)
	}
	if g := next(srvIn); g.header != `{"message_type": "any", "source_id": "client1", "destination_id": "('127.0.0.1', `+port+`)"}` || g.data != `{"n": 1}` {
		t.Fatalf("server got %+v", g)
	}
	cli.api.SendMessage(ctx, api.SendOptions{MessageType: "other", Data: []byte("d"), Binary: []byte{1, 2}})
	if g := next(srvIn); g.typ != "other" || g.bin != "\x01\x02" || !strings.Contains(g.header, `"with_binary": true`) {
		t.Fatalf("server got %+v", g)
	}
	// server -> client
	srv.api.SendMessage(ctx, api.SendOptions{MessageType: "any", DestinationID: "client1", Data: []byte("down")})
	if g := next(cliIn); g.data != "down" || !strings.Contains(g.header, `"source_id": "`+srvID+`"`) {
		t.Fatalf("client got %+v", g)
	}
	// wait_for_ack: delivered with wait_for_ack, without transport_id
	cli.api.SendMessage(ctx, api.SendOptions{MessageType: "any", Data: []byte("ack"), WaitForAck: true})
	if g := next(srvIn); !strings.Contains(g.header, `"wait_for_ack": true`) || strings.Contains(g.header, "transport_id") {
		t.Fatalf("server got %+v", g)
	}
	// await_response both ways (the receiving handler answers)
	m, err := cli.api.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "any", RequestID: 7, Data: []byte("q")})
	if err != nil || string(m.Data) != "answer" {
		t.Fatalf("client await: %v %v", m, err)
	}
	next(srvIn) // the request itself
	m, err = srv.api.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "any", DestinationID: "client1", RequestID: 9, Data: []byte("q")})
	if err != nil || string(m.Data) != "answer" {
		t.Fatalf("server await: %v %v", m, err)
	}
	next(cliIn)
	// _ping, answered by the remote connector
	m, err = cli.api.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "_ping", RequestID: 1, Data: []byte("PING")})
	if err != nil || string(m.Data) != "PING" {
		t.Fatalf("ping: %v %v", m, err)
	}
	// await to an absent peer: no response
	if _, err := srv.api.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "any", DestinationID: "nobody", RequestID: 3}); err == nil {
		t.Fatal("await to an absent peer answered")
	}
	// publish: the broker forwards to the subscriber (client1 subscribes t1)
	cli.api.PublishMessage(ctx, api.SendOptions{MessageType: "t1", Data: []byte("news")})
	if g := next(cliIn); g.typ != "t1" || g.data != "news" || g.header != `{"message_type": "t1", "source_id": "`+srvID+`", "destination_id": "client1"}` {
		t.Fatalf("subscriber got %+v", g)
	}
	// a type the client may not send never arrives; a later message does (order barrier)
	cli.api.SendMessage(ctx, api.SendOptions{MessageType: "t1", Data: []byte("nope")})
	cli.api.SendMessage(ctx, api.SendOptions{MessageType: "any", Data: []byte("after")})
	if g := next(srvIn); g.data != "after" {
		t.Fatalf("filtered type delivered: %+v", g)
	}
}

// TestSendMessagesBatch: api.SendMessages over the socket and the embedded path delivers every
// message of its batches in order (data and binary intact), refuses a batch holding an await or
// file message before sending any of it, and Local.SendBatch names the malformed frame.
func TestSendMessagesBatch(t *testing.T) {
	for _, embedded := range []bool{false, true} {
		t.Run(map[bool]string{false: "sockets", true: "embedded"}[embedded], func(t *testing.T) {
			dir, err := os.MkdirTemp("", "eb")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			common := `"use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false`
			srv := startStation(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], `+common+`}`, embedded)
			cli := startStation(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
				strconv.Itoa(srv.cn.TCPAddr().Port)+`], `+common+`}`, embedded)
			for deadline := time.Now().Add(5 * time.Second); len(cli.cn.ConnectedPeers()) == 0; {
				select {
				case <-cli.cn.PeerChange():
				case <-time.After(time.Until(deadline)):
					t.Fatal("not connected")
				}
			}
			const total = 3000
			got := make(chan string, total)
			if err := srv.api.StartWaitingForMessages("any", func(m *api.Message) {
				got <- string(m.Data) + "|" + string(m.Binary)
			}, false); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if n, err := cli.api.SendMessages(ctx, []api.SendOptions{{MessageType: "any", Data: []byte("x")},
				{MessageType: "any", AwaitResponse: true}}); n != 0 || !errors.Is(err, api.ErrBatch) {
				t.Fatalf("await in batch: %d, %v", n, err)
			}
			want := make([]string, 0, total)
			for sent := 0; sent < total; {
				batch := make([]api.SendOptions, 0, 500)
				for i := 0; i < 500; i++ {
					o := api.SendOptions{MessageType: "any", Data: []byte("m" + strconv.Itoa(sent+i))}
					if i%7 == 0 {
						o.Binary = []byte{byte(i), 0, 1}
					}
					want = append(want, string(o.Data)+"|"+string(o.Binary))
					batch = append(batch, o)
				}
				n, err := cli.api.SendMessages(ctx, batch)
				if err != nil || n != len(batch) {
					t.Fatalf("SendMessages: %d, %v", n, err)
				}
				sent += n
			}
			for i, w := range want {
				select {
				case g := <-got:
					if g != w {
						t.Fatalf("message %d: got %q want %q", i, g, w)
					}
				case <-ctx.Done():
					t.Fatalf("%d of %d delivered", i, total)
				}
			}
			select {
			case g := <-got:
				t.Fatalf("extra message %q (the refused batch leaked)", g)
			default:
			}
			if embedded {
				bad := []byte{9, 0, 0, 0, 1, 2} // declares 9 bytes, holds 2
				if n, err := cli.cn.Local().SendBatch(bad); n != 0 || !errors.Is(err, codec.ErrTruncated) ||
					!strings.Contains(err.Error(), "frame 0") {
					t.Fatalf("malformed batch: %d, %v", n, err)
				}
			}
		})
	}
}
