package connector_test

import (
	"encoding/binary"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
)

// FuzzLocalSendBatch hands arbitrary bytes to Local.SendBatch of a running server connector
// (no client connected): it must never panic, never report more frames than the batch holds
// whole, and name the frame at fault when it refuses one.
func FuzzLocalSendBatch(f *testing.F) {
	dir, err := os.MkdirTemp("", "fz")
	if err != nil {
		f.Fatal(err)
	}
	defer os.RemoveAll(dir)
	js := strings.ReplaceAll(`{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "debug_msg_counts": false,
 "send_message_types": ["any"], "recv_message_types": ["any"]}`, "$DIR", dir)
	cfg, err := config.Parse([]byte(js), "fuzz.json")
	if err != nil {
		f.Fatal(err)
	}
	cn, err := connector.New(cfg, io.Discard)
	if err != nil {
		f.Fatal(err)
	}
	if err := cn.Start(); err != nil {
		f.Fatal(err)
	}
	defer cn.Close()
	frame := func(header, data string) []byte {
		return codec.AppendFrame(nil, []byte(header), []byte(data), nil, false)
	}
	ok := frame(`{"message_type": "any", "source_id": "server", "destination_id": "client1"}`, "data")
	f.Add(append(append([]byte(nil), ok...), ok...))
	f.Add(ok[:len(ok)-1])
	f.Add(frame(`{"message_type": 5}`, ""))
	f.Add(frame(`{`, "x"))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0})
	f.Add([]byte{})
	l := cn.Local()
	f.Fuzz(func(t *testing.T, b []byte) {
		whole := 0
		for rest := b; len(rest) >= 4; whole++ {
			size := 4 + int(binary.LittleEndian.Uint32(rest))
			if size > len(rest) || size < 4 {
				break
			}
			rest = rest[size:]
		}
		n, err := l.SendBatch(b)
		if n < 0 || n > whole {
			t.Fatalf("SendBatch reported %d frames, the batch holds %d whole", n, whole)
		}
		if err != nil && !strings.Contains(err.Error(), "frame") {
			t.Fatalf("error does not name the frame: %v", err)
		}
	})
}
