package connector

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
)

// TestKeepAlive: a 1.6 keep-alive ping is sent every keep_alive_period with the exact 1.6.3
// header; unanswered ones close the link after max_number_of_unanswered_keep_alive.
func TestKeepAlive(t *testing.T) {
	dir := shortDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	newConnector(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+port+`],
 "use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "debug_msg_counts": false,
 "keep_alive_period": 1, "max_number_of_unanswered_keep_alive": 2}`, func(o *config.Options) {
		o.KeepAlivePeriod = 20 * time.Millisecond
		o.KeepAliveTimeout = 20 * time.Millisecond
		o.EnableClientTryReconnect = false
	})
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	readRaw(t, tcp) // handshake
	want := frameOf(`{"await_response": true, "request_id": "keep_alive_client_check", "destination_id": "('127.0.0.1', `+port+`)", "message_type": "_ping", "source_id": "client1"}`, "keep_alive_client_check")
	// answered pings keep the link
	for i := 0; i < 3; i++ {
		expectBytes(t, "keep-alive ping", readRaw(t, tcp), want)
		tcp.Write(frameOf(`{"message_type": "_ping", "response_id": "keep_alive_client_check", "source_id": "srv"}`, "keep_alive_client_check"))
	}
	// unanswered: the client closes after two misses
	tcp.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for {
		_, err := tcp.Read(buf)
		if err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("link still open after unanswered keep-alives")
			}
			return
		}
	}
}
