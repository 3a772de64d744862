package connector

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/config"
)

// TestSendBackpressure: while the peer's queue is full (its send loop waits for an _ack), the
// connector stops reading the application instead of dropping; once the ack arrives every message
// is delivered, in order.
func TestSendBackpressure(t *testing.T) {
	dir := shortDir(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(dir + "/aioconnectors.log")
			t.Logf("log:\n%s", b)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cli := newConnector(t, dir, strings.ReplaceAll(`{"is_server": false, "client_name": "client1",
 "server_sockaddr": ["127.0.0.1", PORT], "use_ssl": false, "connector_files_dirpath": "$DIR",
 "default_logger_dirpath": "$DIR", "debug_msg_counts": false, "send_message_types": ["any"]}`, "PORT", strconv.Itoa(port)),
		func(o *config.Options) { o.MaxQueueSize = 4 })
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	readRaw(t, tcp) // handshake
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	dst := "\"('127.0.0.1', " + strconv.Itoa(port) + ")\""
	send := dialUnix(t, cli.Paths().SendToConnector)
	send.Write(frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`, "wait_for_ack": true}`, "first"))
	const n = 20 // five times the queue cap
	var batch []byte
	for i := 0; i < n; i++ {
		batch = append(batch, frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+dst+`}`, strconv.Itoa(i))...)
	}
	send.Write(batch)
	first := readRaw(t, tcp)
	if !strings.Contains(string(first), `"transport_id": 1`) {
		t.Fatalf("first frame: %q", first)
	}
	tcp.Write(frameOf(`{"transport_id": 1, "message_type": "_ack", "source_id": "srv"}`, ""))
	for i := 0; i < n; i++ {
		got := readRaw(t, tcp)
		if !strings.HasSuffix(string(got), "\x00"+strconv.Itoa(i)) && !strings.HasSuffix(string(got), strconv.Itoa(i)) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
	if d := cli.stats.dropQueueFull.Load(); d != 0 {
		t.Fatalf("%d messages dropped despite backpressure", d)
	}
}
