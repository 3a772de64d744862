package api_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/aioconn/aioconn/api"
)

// The examples need a running connector (python3 -m aioconnectors create_connector
// config.json, or aioconn create_connector config.json) configured by the same file.

func ExampleAPI_SendMessage() {
	a, err := api.NewFromFile("/etc/aioconnectors/client1.json")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	// Python: await api.send_message(message_type='any', data={'text': 'hello json', 'n': 1})
	err = a.SendMessage(context.Background(), api.SendOptions{
		MessageType: "any",
		Data:        []byte(`{"text": "hello json", "n": 1}`),
	})
	if err != nil {
		log.Print(err)
	}
}

func ExampleAPI_SendMessageAwaitResponse() {
	a, err := api.NewFromFile("/etc/aioconnectors/client1.json")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A _ping is answered by the peer connector itself, echoing the data.
	m, err := a.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "_ping", Data: []byte("PING"), RequestID: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s\n", m.Header, m.Data)
}

func ExampleAPI_StartWaitingForMessages() {
	a, err := api.NewFromFile("/etc/aioconnectors/server.json")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	// Answer every await request with the same type, response_id = request_id and
	// destination_id = source_id; print the others.
	err = a.StartWaitingForMessages("any", func(m *api.Message) {
		if aw, _ := m.Get("await_response"); aw.Truthy() {
			rid, _ := m.Get("request_id")
			src, _ := m.Get("source_id")
			dst, _ := src.Str()
			id, _ := rid.Int()
			if err := a.SendMessage(context.Background(), api.SendOptions{
				MessageType: "any", DestinationID: dst, ResponseID: id, Data: []byte(`{"ok": true}`),
			}); err != nil {
				log.Print(err)
			}
			return
		}
		fmt.Printf("%s %q\n", m.Header, m.Data) // m is only valid during the call
	}, false)
	if err != nil {
		log.Fatal(err)
	}
	time.Sleep(time.Minute)
	a.StopWaitingForMessages("any")
}

func ExampleAPI_PublishMessage() {
	a, err := api.NewFromFile("/etc/aioconnectors/pub1.json")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	// Sent as message_type "_pubsub", message_type_publish "type_pub".
	if err := a.PublishMessage(context.Background(), api.SendOptions{MessageType: "type_pub", Data: []byte(`{"news": 1}`)}); err != nil {
		log.Print(err)
	}
}

func ExampleRemoteTool() {
	a, err := api.NewFromFile("/etc/aioconnectors/server.json")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	tool := api.NewRemoteTool(a.Config())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	peers, err := tool.ShowConnectedPeers(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", peers) // e.g. ["client1"]
}

func ExampleRemoteTool_StopConnector() {
	a, err := api.NewFromFile("/etc/aioconnectors/server.json")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	// Python: await tool.stop_connector(shutdown=True)
	out, err := api.NewRemoteTool(a.Config()).StopConnector(context.Background(), false, true, true, false)
	fmt.Printf("%s %v\n", out, err)
}
