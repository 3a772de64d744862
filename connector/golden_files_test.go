package connector

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const capturedSrc = "/tmp/aioconnectors/nossl_p2p/file_src.txt"

// withSrc re-encodes a vector with the captured source path replaced by src.
func withSrc(t *testing.T, v *vector, port int, src string) []byte {
	t.Helper()
	c := *v
	c.JSONRaw = strings.ReplaceAll(c.JSONRaw, capturedSrc, src)
	return c.bytesFor(t, port)
}

// TestGoldenFileSend: our client embeds the file exactly as 1.0.33 does (with_binary appended,
// or binary_offset inside with_file when the application also sent a binary) and keeps the source
// file when delete is false.
func TestGoldenFileSend(t *testing.T) {
	v := goldenSession(t, "nossl_p2p")
	dir := shortDir(t)
	src := filepath.Join(dir, "file_src.txt")
	os.WriteFile(src, []byte("file content 123\n"), 0o644)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, strings.ReplaceAll(`{"is_server": false, "client_name": "client1",
 "server_sockaddr": ["127.0.0.1", PORT], "use_ssl": false, "connector_files_dirpath": "$DIR",
 "default_logger_dirpath": "$DIR", "send_message_types": ["any"], "recv_message_types": ["any"],
 "debug_msg_counts": false}`, "PORT", strconv.Itoa(port)), nil)
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	readRaw(t, tcp)
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	send := dialUnix(t, cli.Paths().SendToConnector)
	for _, pair := range [][2]string{{"030", "031"}, {"033", "034"}} {
		send.Write(withSrc(t, v[pair[0]], port, src))
		expectBytes(t, "tcp "+pair[1], readRaw(t, tcp), withSrc(t, v[pair[1]], port, src))
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("source deleted despite delete false: %v", err)
	}
}

// TestGoldenFileReceive: our server writes the file under file_recv_config's target directory and
// delivers the message with the file bytes removed from the binary, as 1.0.33 does.
func TestGoldenFileReceive(t *testing.T) {
	v := goldenSession(t, "nossl_p2p")
	dir := shortDir(t)
	target := filepath.Join(dir, "files")
	os.Mkdir(target, 0o755)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false,
 "file_recv_config": {"any": {"target_directory": "`+target+`/{source_id}/"}}}`, nil)
	const port = 0
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var appConn net.Conn
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp.Write(v["001"].bytesFor(t, port))
	for _, pair := range [][3]string{{"031", "032", "vec_file.txt"}, {"034", "035", "vec_file2.txt"}} {
		tcp.Write(v[pair[0]].bytesFor(t, port))
		expectBytes(t, "app receives "+pair[1], app.next(t, &appConn), v[pair[1]].bytesFor(t, port))
		got, err := os.ReadFile(filepath.Join(target, "client1", pair[2]))
		if err != nil || string(got) != "file content 123\n" {
			t.Fatalf("%s: %q, %v", pair[2], got, err)
		}
	}
}
