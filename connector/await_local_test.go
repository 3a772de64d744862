package connector

import (
	"context"
	"strconv"
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

// TestLocalCountsOnceUnderBackpressure: with debug_msg_counts, a frame an in-process
// application hands over is counted once, however many times it met a full queue.
func TestLocalCountsOnceUnderBackpressure(t *testing.T) {
	dir := shortDir(t)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"debug_msg_counts": true}), func(o *config.Options) { o.MaxQueueSize = 2 })
	tcp, r := acceptLink(t, ln, cli)
	js := stallLink(t, cli, r)
	l := cli.Local()
	base := cli.stats.msgRecvdUDS.Load()
	const n = 6 // three times the queue's cap: the later ones wait for room
	done := make(chan error, 1)
	go func() {
		var batch []byte
		for i := range n {
			batch = codec.AppendFrame(batch, []byte(js+`}`), []byte(strconv.Itoa(i)), nil, false)
		}
		_, err := l.SendBatch(batch)
		done <- err
	}()
	p := cli.peerByName(cli.serverPeer)
	eventually(t, "the peer's queue full", func() bool { return p.q.Len() >= cli.cfg.MaxQueueSize })
	tcp.Write(frameOf(`{"transport_id": 1, "message_type": "_ack", "source_id": "srv"}`, ""))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := cli.stats.msgRecvdUDS.Load() - base; got != n {
		t.Fatalf("msgRecvdUDS counted %d for %d frames", got, n)
	}
}
