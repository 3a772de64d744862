package api_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
)

// These examples run: each starts a server and a client connector in this process (what
// `aioconn create_connector server.json` and `client.json` do as separate processes) and plays
// the applications with package api.

// pair is a server and a client connector with one API each.
type pair struct {
	dir      string
	srv, cli *api.API
	stop     func()
}

// startPair starts both connectors; extra is added to both configs; embedded binds the APIs to
// the connectors in-process (api.NewWithTransport) instead of the unix sockets.
func startPair(extra, srvExtra, cliExtra string, embedded bool) *pair {
	dir, _ := os.MkdirTemp("", "ex")
	p := &pair{dir: dir}
	var stops []func()
	p.stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		os.RemoveAll(dir)
	}
	common := `"use_ssl": false, "connector_files_dirpath": "` + dir + `", "default_logger_dirpath": "` + dir + `",
 "debug_msg_counts": false` + extra
	start := func(js string) (*connector.Connector, *api.API) {
		cfg, err := config.Parse([]byte(js), "example.json")
		if err != nil {
			panic(err)
		}
		cn, err := connector.New(cfg, io.Discard)
		if err != nil {
			panic(err)
		}
		if err := cn.Start(); err != nil {
			panic(err)
		}
		stops = append(stops, cn.Close)
		acfg, _ := config.ParseAPI([]byte(js), "example.json")
		acfg.ReceiveFromAnyConnectorOwner = false
		var a *api.API
		if embedded {
			a, err = api.NewWithTransport(acfg, cn.Local())
		} else {
			a, err = api.New(acfg)
		}
		if err != nil {
			panic(err)
		}
		stops = append(stops, func() { a.Close() })
		return cn, a
	}
	srvCn, srv := start(`{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], ` + common + srvExtra + `}`)
	cliCn, cli := start(`{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", ` +
		strconv.Itoa(srvCn.TCPAddr().Port) + `], ` + common + cliExtra + `}`)
	for deadline := time.Now().Add(5 * time.Second); len(srvCn.ConnectedPeers()) == 0 && time.Now().Before(deadline); {
		select {
		case <-srvCn.PeerChange():
		case <-time.After(time.Until(deadline)):
		}
	}
	_ = cliCn
	p.srv, p.cli = srv, cli
	return p
}

const types = `, "send_message_types": ["any"], "recv_message_types": ["any"]`

// A client application sends a message; the server application receives it.
func Example_pointToPoint() {
	p := startPair(types, "", "", false)
	defer p.stop()
	got := make(chan string, 1)
	p.srv.StartWaitingForMessages("any", func(m *api.Message) {
		src, _ := m.Get("source_id")
		s, _ := src.Str()
		got <- s + ": " + string(m.Data)
	}, false)
	p.cli.SendMessage(context.Background(), api.SendOptions{MessageType: "any", Data: []byte(`{"text": "hello"}`)})
	fmt.Println(<-got)
	// Output: client1: {"text": "hello"}
}

// The server application answers a request with the request's message_type and response_id.
func Example_requestResponse() {
	p := startPair(types, "", "", false)
	defer p.stop()
	ctx := context.Background()
	p.srv.StartWaitingForMessages("any", func(m *api.Message) {
		id, _ := m.Get("request_id")
		n, _ := id.Int()
		p.srv.SendMessage(ctx, api.SendOptions{MessageType: "any", DestinationID: "client1", ResponseID: n,
			Data: []byte(strings.ToUpper(string(m.Data)))})
	}, false)
	reply, err := p.cli.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "any", RequestID: 7, Data: []byte("question")})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply.Data))
	// Output: QUESTION
}

// A client publishes through a pub/sub central broker; a subscribed client receives it with the
// broker's source_id.
func Example_publishSubscribe() {
	p := startPair(`, "send_message_types": ["news"], "recv_message_types": ["news"]`,
		`, "pubsub_central_broker": true`, `, "subscribe_message_types": ["news"]`, false)
	defer p.stop()
	got := make(chan string, 1)
	p.cli.StartWaitingForMessages("news", func(m *api.Message) { got <- string(m.Header) + " " + string(m.Data) }, false)
	p.cli.PublishMessage(context.Background(), api.SendOptions{MessageType: "news", Data: []byte("headline")})
	fmt.Println(strings.Replace(<-got, "('127.0.0.1', 0)", "broker", 1))
	// Output: {"message_type": "news", "source_id": "broker", "destination_id": "client1"} headline
}

// A file rides in a message (with_file); the receiving connector stores it under its
// file_recv_config target directory before the application gets the message.
func Example_fileTransfer() {
	dir, _ := os.MkdirTemp("", "exf")
	defer os.RemoveAll(dir)
	p := startPair(types, `, "file_recv_config": {"any": {"target_directory": "`+dir+`/{source_id}"}}`, "", false)
	defer p.stop()
	got := make(chan struct{}, 1)
	p.srv.StartWaitingForMessages("any", func(m *api.Message) { got <- struct{}{} }, false)
	src := filepath.Join(p.dir, "report.txt")
	os.WriteFile(src, []byte("quarterly numbers\n"), 0o644)
	p.cli.SendMessage(context.Background(), api.SendOptions{MessageType: "any",
		WithFile: &api.WithFile{SrcPath: src, DstType: "any", DstName: "report.txt"}})
	<-got
	b, _ := os.ReadFile(filepath.Join(dir, "client1", "report.txt"))
	fmt.Print(string(b))
	// Output: quarterly numbers
}

// Embedded mode: the applications are bound to their connectors in-process
// (api.NewWithTransport with connector.Local), with the same API and semantics.
func Example_embedded() {
	p := startPair(types, "", "", true)
	defer p.stop()
	got := make(chan string, 1)
	p.srv.StartWaitingForMessages("any", func(m *api.Message) { got <- string(m.Data) }, false)
	p.cli.SendMessage(context.Background(), api.SendOptions{MessageType: "any", Data: []byte("no socket hop")})
	fmt.Println(<-got)
	// Output: no socket hop
}
