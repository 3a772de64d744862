package connector_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aioconn/aioconn/api"
)

// TestAPIChunkedFile: the Go API splits a large file into at most 9 chunks (chunked [basename,
// i, n]); the receiving connector reassembles them in numeric order into dst_name.
func TestAPIChunkedFile(t *testing.T) {
	for _, embedded := range []bool{false, true} {
		dir, _ := os.MkdirTemp("", "ch")
		defer os.RemoveAll(dir)
		in := filepath.Join(dir, "in")
		os.Mkdir(in, 0o755)
		common := `"use_ssl": false, "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR",
 "send_message_types": ["any"], "recv_message_types": ["any"], "debug_msg_counts": false`
		srv := startStation(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0],
 "file_recv_config": {"any": {"target_directory": "`+in+`"}}, `+common+`}`, embedded)
		cli := startStation(t, dir, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
			strconv.Itoa(srv.cn.TCPAddr().Port)+`], `+common+`}`, embedded)
		for deadline := time.Now().Add(5 * time.Second); len(cli.cn.ConnectedPeers()) == 0 && time.Now().Before(deadline); {
			select {
			case <-cli.cn.PeerChange():
			case <-time.After(time.Until(deadline)):
			}
		}
		got := make(chan string, 16)
		srv.api.StartWaitingForMessages("any", func(m *api.Message) {
			wf, _ := m.Get("with_file")
			got <- string(wf.Raw)
		}, false)
		content := make([]byte, 12345)
		rand.Read(content)
		src := filepath.Join(dir, "big.bin")
		os.WriteFile(src, content, 0o644)
		cli.api.SetChunkSize(1000) // 13 chunks of 1000 would scramble on a Python receiver: 9 are sent
		if err := cli.api.SendMessage(context.Background(), api.SendOptions{MessageType: "any",
			WithFile: &api.WithFile{SrcPath: src, DstType: "any", DstName: "big.bin"}}); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 9; i++ {
			select {
			case wf := <-got:
				if !bytes.Contains([]byte(wf), []byte(`"chunked": ["big.bin__aioconnectors_chunk", `+strconv.Itoa(i)+`, 9]`)) {
					t.Fatalf("chunk %d: %s", i, wf)
				}
			case <-time.After(10 * time.Second):
				b, _ := os.ReadFile(filepath.Join(dir, "aioconnectors.log"))
				t.Fatalf("chunk %d never delivered (embedded %v); log:\n%s", i, embedded, b)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, err := os.ReadFile(filepath.Join(in, "big.bin"))
			if err == nil && bytes.Equal(b, content) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("reassembled file: %d bytes, %v (embedded %v)", len(b), err, embedded)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := os.Stat(src); err == nil {
			t.Fatal("source kept (delete defaults to true)")
		}
	}
}
