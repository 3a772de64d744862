package connector_test

import (
	"context"
	"encoding/binary"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/api"
)

// BenchmarkEmbeddedChain: 100-byte messages from an embedded application through its client
// connector, TCP, the server connector, to an embedded application, lossless (credit window of
// 16 000 messages). Both connectors run in this process; see benchmarks/RESULTS.md for the
// two-process figure.
func BenchmarkEmbeddedChain(b *testing.B) {
	dir, _ := os.MkdirTemp("", "eb")
	defer os.RemoveAll(dir)
	t := &testing.T{}
	common := `"use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false`
	srv := startStation(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], `+common+`}`, true)
	defer srv.cn.Close()
	defer srv.api.Close()
	cli := startStation(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(srv.cn.TCPAddr().Port)+`], `+common+`}`, true)
	defer cli.cn.Close()
	defer cli.api.Close()
	for deadline := time.Now().Add(5 * time.Second); len(cli.cn.ConnectedPeers()) == 0 && time.Now().Before(deadline); {
		<-cli.cn.PeerChange()
	}
	var got atomic.Int64
	var lastSeq int64 = -1
	var bad atomic.Int64
	srv.api.StartWaitingForMessages("any", func(m *api.Message) {
		seq := int64(binary.LittleEndian.Uint64(m.Data))
		if seq != lastSeq+1 {
			bad.Add(1)
		}
		lastSeq = seq
		got.Add(1)
	}, false)
	ctx := context.Background()
	data := make([]byte, 100)
	const window = 16000
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for int64(i)-got.Load() >= window {
			time.Sleep(10 * time.Microsecond)
		}
		binary.LittleEndian.PutUint64(data, uint64(i))
		if err := cli.api.SendMessage(ctx, api.SendOptions{MessageType: "any", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); got.Load() < int64(b.N); {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", got.Load(), b.N)
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	if bad.Load() != 0 {
		b.Fatalf("%d out-of-order messages", bad.Load())
	}
}
