package connector

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestBrokerForwardsFile: a publication with a file is stored by the broker (its own
// file_recv_config) and re-sent to the subscriber, which stores it in turn (PEER-PROTOCOL §7.4).
func TestBrokerForwardsFile(t *testing.T) {
	dir := shortDir(t)
	bdir, sdir := filepath.Join(dir, "b"), filepath.Join(dir, "s")
	os.Mkdir(bdir, 0o755)
	os.Mkdir(sdir, 0o755)
	broker := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "pubsub_central_broker": true, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "file_recv_config": {"any": {"target_directory": "`+bdir+`"}}, "debug_msg_counts": false}`, nil)
	sub := newConnector(t, dir, `{"is_server": false, "client_name": "sub1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(broker.TCPAddr().Port)+`], "use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "recv_message_types": ["news"], "subscribe_message_types": ["news"], "debug_msg_counts": false,
 "file_recv_config": {"any": {"target_directory": "`+sdir+`"}}}`, nil)
	waitPeers(t, broker, "sub1", func(p []string) bool { return len(p) == 1 && p[0] == "sub1" })
	app := listenApp(t, sub.Paths().ReceivePath("news"))
	var appConn net.Conn
	pub, err := net.Dial("tcp", broker.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "pub1"}`, "hello"))
	// the subscription is handled on sub1's link: prove it with a ping round trip there first
	waitPeers(t, broker, "pub1", func(p []string) bool { return len(p) == 2 })
	content := []byte("the file content\n")
	js := `{"message_type": "_pubsub", "source_id": "pub1", "destination_id": "x", "with_file": {"src_path": "/elsewhere/f.txt", "dst_type": "any", "dst_name": "f.txt"}, "with_binary": true, "message_type_publish": "news"}`
	pub.Write(appendFrameWithBinary(js, "d", content))
	got := app.next(t, &appConn)
	if b, err := os.ReadFile(filepath.Join(sdir, "f.txt")); err != nil || string(b) != string(content) {
		t.Fatalf("subscriber file: %q %v (message %q)", b, err, got)
	}
}

func appendFrameWithBinary(js, data string, bin []byte) []byte {
	return appendFrame([]byte(js), []byte(data), bin)
}
