package api_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aioconn/aioconn/api"
)

// With at_least_once on both connectors, SendMessageDurable returns once the message is fsynced
// in the client connector's log; from there it reaches the server application at least once,
// across reconnects and restarts of either connector.
func Example_durable() {
	p := startPair(types+`, "at_least_once": true`, "", "", true)
	defer p.stop()
	got := make(chan string, 1)
	p.srv.StartWaitingForMessages("any", func(m *api.Message) { got <- string(m.Data) }, false)
	err := p.cli.SendMessageDurable(context.Background(), api.SendOptions{MessageType: "any", Data: []byte("kept")})
	fmt.Println(err, <-got)
	// Output: <nil> kept
}

// TestSendMessageDurableNoTransport: the socket API has no durable send.
func TestSendMessageDurableNoTransport(t *testing.T) {
	p := startPair(types, "", "", false)
	defer p.stop()
	if err := p.cli.SendMessageDurable(context.Background(), api.SendOptions{MessageType: "any"}); !errors.Is(err, api.ErrNoDurable) {
		t.Fatalf("socket API: %v, want ErrNoDurable", err)
	}
	e := startPair(types, "", "", true) // embedded, but at_least_once not configured
	defer e.stop()
	if err := e.cli.SendMessageDurable(context.Background(), api.SendOptions{MessageType: "any"}); err == nil {
		t.Fatal("durable send without at_least_once succeeded")
	}
}
