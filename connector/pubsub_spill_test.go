package connector

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/persist"
)

// TestPubsubSpill: with disk_persistence_send covering the topic, publications a stuck
// subscriber's full queue cannot take are spilled to its persistence file instead of dropped.
func TestPubsubSpill(t *testing.T) {
	dir := shortDir(t)
	broker := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "pubsub_central_broker": true, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "disk_persistence_send": ["news"], "debug_msg_counts": false}`, func(o *config.Options) { o.MaxQueueSize = 4 })
	sub, err := net.Dial("tcp", broker.TCPAddr().String()) // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.(*net.TCPConn).SetReadBuffer(4096)
	sub.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "sub1"}`, "hello"))
	sub.Write(frameOf(`{"message_type": "_pubsub", "source_id": "sub1"}`, `{"subscribe_message_types": ["news"]}`))
	sub.Write(pingFrame("sub1", 1)) // barrier: the subscription is in place when the ping is answered
	readRaw(t, sub)
	pub, err := net.Dial("tcp", broker.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "pub1"}`, "hello"))
	big := strings.Repeat("x", 64<<10)
	const n = 200
	for i := 0; i < n; i++ {
		pub.Write(frameOf(`{"message_type": "_pubsub", "source_id": "pub1", "message_type_publish": "news"}`, strconv.Itoa(i)+big))
	}
	pub.Write(pingFrame("pub1", 2))
	readRaw(t, pub) // all publications handled
	p := broker.peerByName("sub1")
	if p.spills.Load() == 0 || p.drops.Load() != 0 {
		t.Fatalf("spills %d drops %d: want spills and no drops", p.spills.Load(), p.drops.Load())
	}
	path := persist.SendPath(broker.cfg.ConnectorFilesDirpath, broker.alnumID, "sub1")
	waitFile(t, path, func(b []byte) bool { return len(b) > 0 })
}
