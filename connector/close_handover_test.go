package connector

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileThenPeerClose: a peer sends a message, a file (8 MiB, more than the file writer takes
// at once) and one more message, or nothing after the file, then closes at once. What it sent
// before closing is handled: the link's last call (or, when the file was the last thing read, its
// OnClose) waits (bounded) for the file's writer, so every message arrives, in order, and the
// file is on disk.
func TestFileThenPeerClose(t *testing.T) {
	for _, after := range []bool{true, false} {
		t.Run(map[bool]string{true: "message-after", false: "file-last"}[after], func(t *testing.T) {
			fileThenPeerClose(t, after)
		})
	}
}

func fileThenPeerClose(t *testing.T, after bool) {
	dir := shortDir(t)
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false,
 "file_recv_config": {"any": {"target_directory": "`+in+`"}}}`, nil)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("z"), 8<<20)
	msg := `{"message_type": "any", "source_id": "client1", "destination_id": "x"}`
	out := frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`, "hello")
	out = append(out, frameOf(msg, "before")...)
	out = append(out, appendFrame([]byte(`{"message_type": "any", "source_id": "client1", "destination_id": "x", "with_file": {"src_path": "/s", "dst_type": "any", "dst_name": "w.bin"}, "with_binary": true}`), []byte("thefile"), content)...)
	want := []string{"before", "thefile"}
	if after {
		out = append(out, frameOf(msg, "after")...)
		want = append(want, "after")
	}
	if _, err := tcp.Write(out); err != nil {
		t.Fatal(err)
	}
	tcp.Close()
	r := &frameReader{c: app.accept(t)}
	for i, w := range want {
		_, b, ok := r.body(t, 10*time.Second, i)
		if !ok || string(b.Data) != w {
			t.Fatalf("message %d: %q (delivered: %v), want %q; dropped %d", i, b.Data, ok, w, srv.stats.dropQueueFull.Load())
		}
	}
	if st, err := os.Stat(filepath.Join(in, "w.bin")); err != nil || st.Size() != int64(len(content)) {
		t.Fatalf("the file on disk: %v, %v", st, err)
	}
}
