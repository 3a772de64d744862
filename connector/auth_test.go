package connector

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/config"
)

// TestAuthClientPlaintext: hook_server_auth_client receives the socket address repr of each
// accepted plaintext connection; false closes it before any of its frames is processed.
func TestAuthClientPlaintext(t *testing.T) {
	dir := shortDir(t)
	asked := make(chan string, 4)
	cfg, err := config.Parse([]byte(strings.ReplaceAll(`{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false}`, "$DIR", dir)), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	allow := make(chan bool, 4)
	srv.AuthClient = func(name string) bool { asked <- name; return <-allow } // before Start
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hs := frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello")
	// refused
	c1, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1.Write(hs)
	if name := <-asked; !strings.HasPrefix(name, "('127.0.0.1', ") {
		t.Fatalf("hook got %q", name)
	}
	allow <- false
	buf := make([]byte, 1)
	if _, err := c1.Read(buf); err == nil {
		t.Fatal("refused connection still open")
	}
	if p := srv.ConnectedPeers(); len(p) != 0 {
		t.Fatalf("refused client identified: %v", p)
	}
	// accepted
	c2, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(hs)
	<-asked
	allow <- true
	waitPeers(t, srv, "client1 accepted", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
}
