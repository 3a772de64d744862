package connector

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
)

// filePair starts a server that stores files of dst_type "any" under dir/in and a client.
func filePair(t *testing.T) (*Connector, *Connector, string) {
	t.Helper()
	return filePairWith(t, "")
}

// filePairWith is filePair with extra config keys for both sides (`, "key": value` text).
func filePairWith(t *testing.T, extra string) (*Connector, *Connector, string) {
	t.Helper()
	dir := shortDir(t)
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false,
 "file_recv_config": {"any": {"target_directory": "`+in+`"}}`+extra+`}`, nil)
	cli := newConnector(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(srv.TCPAddr().Port)+`], "use_ssl": false, "connector_files_dirpath": "$DIR",
 "default_logger_dirpath": "$DIR", "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false`+extra+`}`, nil)
	waitPeers(t, srv, "client1", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	return srv, cli, dir
}

func fileMsg(cli *Connector, src, dstType, dstName, extra string) []byte {
	return frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+
		`, "with_file": {"src_path": `+pyStr(src)+`, "dst_type": "`+dstType+`", "dst_name": `+pyStr(dstName)+extra+`}}`, "f")
}

// TestLargeFileStreamed: a 48 MiB file (over rxStreamMin, so streamed on both sides) arrives
// intact; the source is deleted (delete absent means true); the application gets the message
// without the file bytes.
func TestLargeFileStreamed(t *testing.T) {
	srv, cli, dir := filePair(t)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var appConn net.Conn
	src := filepath.Join(dir, "big.bin")
	f, _ := os.Create(src)
	h := sha256.New()
	io.CopyN(io.MultiWriter(f, h), rand.Reader, 48<<20)
	f.Close()
	want := h.Sum(nil)
	dialUnix(t, cli.Paths().SendToConnector).Write(fileMsg(cli, src, "any", "big.bin", ""))
	got := app.next(t, &appConn)
	if bytes.Contains(got, []byte("with_binary")) || len(got) > 1000 {
		t.Fatalf("delivered message still carries the file: %d bytes %q", len(got), got[:min(len(got), 200)])
	}
	rf, err := os.Open(filepath.Join(dir, "in", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	io.Copy(h2, rf)
	rf.Close()
	if !bytes.Equal(h2.Sum(nil), want) {
		t.Fatal("received file differs")
	}
	waitGone(t, src)
}

// TestFileRefusals: traversal, an unknown dst_type and an existing file are refused by the
// receiver (nothing written outside the target directory, the link stays up); a missing source
// gives file_error on the wire, as 1.0.33 does.
func TestFileRefusals(t *testing.T) {
	srv, cli, dir := filePair(t)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var appConn net.Conn
	send := dialUnix(t, cli.Paths().SendToConnector)
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("x"), 0o644)
		return p
	}
	send.Write(fileMsg(cli, mk("a"), "any", "../escape.txt", `, "delete": false`))
	app.next(t, &appConn)
	send.Write(fileMsg(cli, mk("b"), "other", "b.txt", `, "delete": false`))
	app.next(t, &appConn)
	os.WriteFile(filepath.Join(dir, "in", "exists.txt"), []byte("old"), 0o644)
	send.Write(fileMsg(cli, mk("c"), "any", "exists.txt", `, "delete": false`))
	app.next(t, &appConn)
	send.Write(fileMsg(cli, filepath.Join(dir, "missing"), "any", "m.txt", ""))
	got := app.next(t, &appConn)
	if !strings.Contains(string(got), `"file_error": "[Errno 2] No such file or directory: '`+filepath.Join(dir, "missing")+`'"`) {
		t.Fatalf("file_error not delivered: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "escape.txt")); err == nil {
		t.Fatal("traversal wrote outside the target directory")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "in", "exists.txt")); string(b) != "old" {
		t.Fatal("existing file overwritten")
	}
	if _, err := os.Stat(filepath.Join(dir, "in", "b.txt")); err == nil {
		t.Fatal("file of an unknown dst_type written")
	}
	// the link still works
	waitPeers(t, srv, "still connected", func(p []string) bool { return len(p) == 1 })
	deadline := time.Now().Add(time.Second)
	_ = deadline
}

// TestWholeOversizedFileFrame: a file frame over MaxFrame that is already fully buffered when it
// is examined is handled (not refused): the file is written and the message delivered.
func TestWholeOversizedFileFrame(t *testing.T) {
	dir := shortDir(t)
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false,
 "file_recv_config": {"any": {"target_directory": "`+in+`"}}}`, func(o *config.Options) { o.MaxFrame = 1024 })
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var appConn net.Conn
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	content := bytes.Repeat([]byte("z"), 64<<10)
	fr := appendFrame([]byte(`{"message_type": "any", "source_id": "client1", "destination_id": "x", "with_file": {"src_path": "/s", "dst_type": "any", "dst_name": "w.bin"}, "with_binary": true}`), []byte("d"), content)
	// handshake and the whole file frame in one write: fully buffered before it is read
	tcp.Write(append(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello"), fr...))
	app.next(t, &appConn)
	if b, err := os.ReadFile(filepath.Join(in, "w.bin")); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("file: %d bytes, %v", len(b), err)
	}
}

// TestNoFrameInsideFileFrame: a _ping reply (written by the link itself) while the link streams
// a file frame out comes after that frame, never inside it.
func TestNoFrameInsideFileFrame(t *testing.T) {
	dir := shortDir(t)
	ln, port := fakeServer(t)
	cli := newConnector(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+strconv.Itoa(port)+`],
 "use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false}`, nil)
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	readRaw(t, tcp) // handshake
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	src := filepath.Join(dir, "big")
	os.WriteFile(src, bytes.Repeat([]byte("f"), 32<<20), 0o644)
	dialUnix(t, cli.Paths().SendToConnector).Write(fileMsg(cli, src, "any", "big", `, "delete": false`))
	// as soon as the file frame starts, ask for pings
	var head [4]byte
	tcp.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tcp, head[:]); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		tcp.Write(pingFrame("srv", i))
	}
	size := int(head[0]) | int(head[1])<<8 | int(head[2])<<16 | int(head[3])<<24
	if size < 32<<20 {
		t.Fatalf("first frame of %d bytes, want the file frame", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(tcp, body); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(`"_ping"`)) {
		t.Fatal("a _ping reply was written inside the file frame")
	}
	if !bytes.HasSuffix(body, bytes.Repeat([]byte("f"), 1024)) {
		t.Fatal("file frame does not end with the file's bytes")
	}
	for i := 1; i <= 20; i++ {
		if got := readRaw(t, tcp); !bytes.Contains(got, []byte(`"response_id": `+strconv.Itoa(i))) {
			t.Fatalf("reply %d: %q", i, got[:min(len(got), 120)])
		}
	}
}

// TestFileOverReceiverLimit: a file larger than the receiver's max_size_file_upload is refused by
// the receiver (not written), with a log line naming the sender, the type and the name; the
// message is still delivered without the file.
func TestFileOverReceiverLimit(t *testing.T) {
	dir := shortDir(t)
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false, "max_size_file_upload": 1000,
 "file_recv_config": {"any": {"target_directory": "`+in+`"}}}`, nil)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var appConn net.Conn
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello"))
	tcp.Write(appendFrame([]byte(`{"message_type": "any", "source_id": "client1", "destination_id": "x", "with_file": {"src_path": "/s", "dst_type": "any", "dst_name": "big.bin"}, "with_binary": true}`), []byte("d"), bytes.Repeat([]byte("b"), 5000)))
	got := app.next(t, &appConn)
	if bytes.Contains(got, []byte("with_binary")) {
		t.Fatalf("delivered with the file bytes: %q", got[:min(len(got), 200)])
	}
	if _, err := os.Stat(filepath.Join(in, "big.bin")); err == nil {
		t.Fatal("file over the receiver's limit was written")
	}
	srv.Logger().Close() // flush: the log line is written before the message is delivered
	b, _ := os.ReadFile(filepath.Join(dir, "aioconnectors.log"))
	if !bytes.Contains(b, []byte(`file from client1 refused (dst_type "any", dst_name "big.bin")`)) || !bytes.Contains(b, []byte("max_size_file_upload")) {
		t.Fatalf("no refusal line naming sender, type and name in the log:\n%s", b)
	}
}
