package connector

import (
	"context"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// TestLocalAwaitExpires: an in-process await_response request whose reply never comes ends
// when the connector stops waiting (await_response_timeout), as (nil, nil), not only when the
// caller's context ends.
func TestLocalAwaitExpires(t *testing.T) {
	// the server's application is absent: the request is dropped there, nothing answers
	_, cli := startPair(t, nil, nil, nil, func(o *config.Options) { o.AwaitResponseTimeout = 100 * time.Millisecond })
	js := `{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) +
		`, "await_response": true, "request_id": 1}`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reply, err := cli.Local().SendAwait(ctx, codec.AppendFrame(nil, []byte(js), []byte("q"), nil, false))
	if reply != nil || err != nil {
		t.Fatalf("SendAwait = %q, %v; want nil, nil once the connector stopped waiting", reply, err)
	}
	if ctx.Err() != nil {
		t.Fatal("SendAwait returned only when its context ended")
	}
}
