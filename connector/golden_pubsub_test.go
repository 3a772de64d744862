package connector

import (
	"net"

	"github.com/aioconn/aioconn/codec"
	"strconv"
	"strings"
	"testing"
)

// TestGoldenBroker drives our broker with the nossl_pubsub capture: subscriptions and
// publications from two Python clients, and checks the bytes each subscriber receives.
func TestGoldenBroker(t *testing.T) {
	v := goldenSession(t, "nossl_pubsub")
	dir := shortDir(t)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "pubsub_central_broker": true, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "debug_msg_counts": false}`, nil)
	const port = 0
	sub, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	sub.Write(v["001"].bytesFor(t, port))
	sub.Write(v["002"].bytesFor(t, port))
	pub, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Write(v["003"].bytesFor(t, port))
	waitPeers(t, srv, "both clients", func(p []string) bool { return len(p) == 2 })
	// The subscription is processed on sub1's loop; its ping reply proves it was handled.
	sub.Write(pingFrame("sub1", 1))
	readRaw(t, sub)
	pub.Write(v["005"].bytesFor(t, port))
	expectBytes(t, "subscriber receives 006", readRaw(t, sub), v["006"].bytesFor(t, port))
	pub.Write(v["009"].bytesFor(t, port))
	expectBytes(t, "subscriber receives 010", readRaw(t, sub), v["010"].bytesFor(t, port))
}

// pingFrame is a `_ping` request from client name, answered by the connector itself.
func pingFrame(name string, id int) []byte {
	return frameOf(`{"message_type": "_ping", "source_id": "`+name+`", "request_id": `+strconv.Itoa(id)+`, "await_response": true}`, "p")
}

// TestGoldenSubscriberAndPublisher drives our client connectors as sub1 and pub1 against fake
// brokers speaking the captured bytes.
func TestGoldenSubscriberAndPublisher(t *testing.T) {
	v := goldenSession(t, "nossl_pubsub")
	dir := shortDir(t)
	ln, port := fakeServer(t)
	common := strings.ReplaceAll(`"server_sockaddr": ["127.0.0.1", PORT], "use_ssl": false, "connector_files_dirpath": "$DIR",
 "default_logger_dirpath": "$DIR", "debug_msg_counts": false`, "PORT", strconv.Itoa(port))
	sub := newConnector(t, dir, `{"is_server": false, "client_name": "sub1", "recv_message_types": ["type_pub"],
 "subscribe_message_types": ["type_pub"], `+common+`}`, nil)
	subTCP, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer subTCP.Close()
	expectBytes(t, "handshake 001", readRaw(t, subTCP), v["001"].bytesFor(t, port))
	expectBytes(t, "subscribe 002", readRaw(t, subTCP), v["002"].bytesFor(t, port))
	app := listenApp(t, sub.Paths().ReceivePath("type_pub"))
	var appConn net.Conn
	subTCP.Write(v["006"].bytesFor(t, port))
	expectBytes(t, "app receives 007", app.next(t, &appConn), v["007"].bytesFor(t, port))
	subTCP.Write(v["010"].bytesFor(t, port))
	expectBytes(t, "app receives 011", app.next(t, &appConn), v["011"].bytesFor(t, port))
	c := dialUnix(t, sub.Paths().Commander)
	c.Write(v["012"].bytesFor(t, port))
	expectBytes(t, "commander 013", readRaw(t, c), v["013"].bytesFor(t, port))

	pub := newConnector(t, dir, `{"is_server": false, "client_name": "pub1", "send_message_types": ["type_pub"], `+common+`}`, nil)
	pubTCP, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer pubTCP.Close()
	expectBytes(t, "handshake 003", readRaw(t, pubTCP), v["003"].bytesFor(t, port))
	waitPeers(t, pub, "pub1 connected", func(p []string) bool { return len(p) == 1 })
	send := dialUnix(t, pub.Paths().SendToConnector)
	send.Write(v["004"].bytesFor(t, port))
	expectBytes(t, "publication 005", readRaw(t, pubTCP), v["005"].bytesFor(t, port))
	send.Write(v["008"].bytesFor(t, port))
	expectBytes(t, "publication 009", readRaw(t, pubTCP), v["009"].bytesFor(t, port))

	// the subscriber's stop sends the unsubscribe frame
	sub.Stop(false, false, true)
	expectBytes(t, "unsubscribe 014", readRaw(t, subTCP), v["014"].bytesFor(t, port))
}

// frameOf builds a frame from JSON text and data.
func frameOf(js, data string) []byte {
	return codec.AppendFrame(nil, []byte(js), []byte(data), nil, false)
}
