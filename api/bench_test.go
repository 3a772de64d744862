package api

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/aioconn/aioconn/codec"
)

var benchOpts = SendOptions{MessageType: "any", DestinationID: "client1", RequestID: 12345,
	Data: bytes.Repeat([]byte("x"), 100)}

// BenchmarkAppendHeader: /encode, a header with a request id (never remembered); /memo, a
// telemetry sender's header (no request id), copied from the API's memo.
func BenchmarkAppendHeader(b *testing.B) {
	memoOpts := benchOpts
	memoOpts.RequestID = nil
	for _, c := range []struct {
		name string
		memo *memoSlot
		o    *SendOptions
	}{{"encode", nil, &benchOpts}, {"memo", new(memoSlot), &memoOpts}} {
		b.Run(c.name, func(b *testing.B) {
			id := ident{sourceID: "('127.0.0.1', 10673)", defaultType: "any", hasDefType: true, memo: c.memo}
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				out, err := appendHeader(buf[:0], &id, c.o)
				if err != nil {
					b.Fatal(err)
				}
				buf = appendTail(out, c.o)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// drainConnector accepts connections on the API's send path and discards everything.
func drainConnector(b *testing.B, path string) {
	listenFake(b, path, func(c *net.UnixConn) error {
		_, err := io.Copy(io.Discard, c)
		return err
	})
}

func BenchmarkSendMessagePreserved(b *testing.B) {
	cfg := serverCfg(b, shortDir(b), "")
	drainConnector(b, cfg.SendToConnectorPath())
	a := newAPI(b, cfg)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.SendMessage(ctx, benchOpts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendMessagesPreserved: SendMessages with 128 messages per call (one write each);
// ns/op is per message.
func BenchmarkSendMessagesPreserved(b *testing.B) {
	cfg := serverCfg(b, shortDir(b), "")
	drainConnector(b, cfg.SendToConnectorPath())
	a := newAPI(b, cfg)
	ctx := context.Background()
	msgs := make([]SendOptions, 128)
	for i := range msgs {
		msgs[i] = benchOpts
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i += len(msgs) {
		k := min(len(msgs), b.N-i)
		if n, err := a.SendMessages(ctx, msgs[:k]); err != nil || n != k {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkSendMessagePreservedParallel(b *testing.B) {
	cfg := serverCfg(b, shortDir(b), "")
	drainConnector(b, cfg.SendToConnectorPath())
	a := newAPI(b, cfg)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.SendMessage(ctx, benchOpts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSendMessageNonPreserved(b *testing.B) {
	cfg := serverCfg(b, shortDir(b), `"uds_path_send_preserve_socket": false`)
	drainConnector(b, cfg.SendToConnectorPath())
	a := newAPI(b, cfg)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.SendMessage(ctx, benchOpts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFrameReader: parsing delivered frames from a buffered stream (no socket).
func BenchmarkFrameReader(b *testing.B) {
	id := ident{sourceID: "client1", defaultDest: "('127.0.0.1', 10673)"}
	one, _ := appendHeader(nil, &id, &benchOpts)
	one = appendTail(one, &benchOpts)
	stream := bytes.Repeat(one, 1000)
	r := bytes.NewReader(stream)
	fr := newFrameReader(r, recvBufSize)
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fr.next(); err != nil {
			r.Reset(stream)
			fr.r.Reset(r)
			fr.pending = 0
			if _, err := fr.next(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReceive: connector-like writer -> API listener -> handler, over a real socket.
func BenchmarkReceive(b *testing.B) {
	cfg := serverCfg(b, shortDir(b), "")
	a := newAPI(b, cfg)
	done := make(chan struct{}, 1)
	n, target := 0, 0
	if err := a.StartWaitingForMessages("any", func(m *Message) {
		n++
		if n == target {
			done <- struct{}{}
		}
	}, false); err != nil {
		b.Fatal(err)
	}
	c, err := net.Dial("unix", cfg.ReceiveFromConnectorPath("any"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	one := codec.AppendFrame(nil, []byte(`{"message_type": "any", "source_id": "client1", "destination_id": "('127.0.0.1', 10673)"}`), benchOpts.Data, nil, false)
	batch := bytes.Repeat(one, 100)
	target = b.N
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		k := min(100, b.N-i)
		if _, err := c.Write(batch[:k*len(one)]); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}
