package connector

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/persist"
)

// TestSendPersistence: messages for an absent client are stored in its send-persistence file (the
// Python format) and replayed first, in order, when the client connects; the file is then gone.
func TestSendPersistence(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "disk_persistence_send": true, "debug_msg_counts": false}`, nil)
	send := dialUnix(t, srv.Paths().SendToConnector)
	var want [][]byte
	for i := 0; i < 5; i++ {
		f := frameOf(`{"message_type": "any", "source_id": `+pyStr(srv.SourceID())+`, "destination_id": "client1"}`, "m"+strconv.Itoa(i))
		want = append(want, f)
		send.Write(f)
	}
	path := persist.SendPath(srv.cfg.ConnectorFilesDirpath, srv.alnumID, "client1")
	waitFile(t, path, func(b []byte) bool { return strings.Count(string(b), persist.Separator) == 5 })
	// the client connects: persisted messages come first
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello"))
	for i, w := range want {
		expectBytes(t, "replayed "+strconv.Itoa(i), readRaw(t, tcp), w)
	}
	waitGone(t, path)
}

// TestLostQueuePersisted: messages still queued when a link is lost are stored and sent to the
// client's next connection.
func TestLostQueuePersisted(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "disk_persistence_send": ["any"], "debug_msg_counts": false}`, nil)
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	tcp.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello"))
	waitPeers(t, srv, "client1", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	send := dialUnix(t, srv.Paths().SendToConnector)
	id := pyStr(srv.SourceID())
	send.Write(frameOf(`{"message_type": "any", "source_id": `+id+`, "destination_id": "client1", "wait_for_ack": true}`, "acked"))
	readRaw(t, tcp) // sent, never acked: the queue stays blocked
	var want [][]byte
	for i := 0; i < 3; i++ {
		f := frameOf(`{"message_type": "any", "source_id": `+id+`, "destination_id": "client1"}`, "q"+strconv.Itoa(i))
		want = append(want, f)
		send.Write(f)
	}
	waitQueued(t, srv, "client1", 3)
	tcp.Close()
	path := persist.SendPath(srv.cfg.ConnectorFilesDirpath, srv.alnumID, "client1")
	waitFile(t, path, func(b []byte) bool { return strings.Count(string(b), persist.Separator) == 3 })
	tcp2, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp2.Close()
	tcp2.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello"))
	for i, w := range want {
		expectBytes(t, "replayed "+strconv.Itoa(i), readRaw(t, tcp2), w)
	}
}

// TestRecvPersistence: with no listener, messages of a persisted type go to the type's file and
// are delivered, in order, once the application listens again.
func TestRecvPersistence(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "disk_persistence_recv": true, "debug_msg_counts": false}`, nil)
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello"))
	var want [][]byte
	for i := 0; i < 4; i++ {
		f := frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": "x"}`, "r"+strconv.Itoa(i))
		want = append(want, f)
		tcp.Write(f)
	}
	path := persist.RecvPath(srv.cfg.ConnectorFilesDirpath, srv.alnumID, "any")
	waitFile(t, path, func(b []byte) bool { return strings.Count(string(b), persist.Separator) == 4 })
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var conn net.Conn
	// the probe connection of the connector comes first and is empty (as in Python)
	for i, w := range want {
		got := app.nextNonEmpty(t, &conn)
		expectBytes(t, "delivered "+strconv.Itoa(i), got, w)
	}
	waitGone(t, path)
}
