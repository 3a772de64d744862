package connector_test

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
)

// FuzzPeerStream feeds arbitrary bytes to the receive side of a plaintext TCP link of a running
// pub/sub broker (peerHandler.OnTraffic, tryStream, process, handshake, brokerHandle): a client
// handshakes as "fz", then sends the fuzz bytes in two writes split at a fuzzed offset and
// half-closes. The broker must not panic, must close the link after the EOF, and must then still
// serve a fresh client: handshake, subscribe, publish to itself and answer a ping.
func FuzzPeerStream(f *testing.F) {
	dir, err := os.MkdirTemp("", "fzp")
	if err != nil {
		f.Fatal(err)
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		f.Fatal(err)
	}
	js := strings.NewReplacer("$DIR", dir, "$IN", in).Replace(`{"is_server": true,
 "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false, "pubsub_central_broker": true,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "debug_msg_counts": false,
 "send_message_types": ["any"], "recv_message_types": ["any"],
 "file_recv_config": {"any": {"target_directory": "$IN"}}}`)
	cfg, err := config.Parse([]byte(js), "fuzz.json")
	if err != nil {
		f.Fatal(err)
	}
	cfg.MaxFrame = 64 << 10 // small, so that oversized (and streamed file) frames are cheap to reach
	cn, err := connector.New(cfg, io.Discard)
	if err != nil {
		f.Fatal(err)
	}
	if err := cn.Start(); err != nil {
		f.Fatal(err)
	}
	defer cn.Close()
	addr := cn.TCPAddr().String()

	frame := func(js, data string) []byte {
		return codec.AppendFrame(nil, []byte(js), []byte(data), nil, false)
	}
	frameBin := func(js, data, bin string) []byte {
		return codec.AppendFrame(nil, []byte(js), []byte(data), []byte(bin), true)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	handshake := func(name string) []byte {
		return frame(`{"message_type": "_handshake_no_ssl", "source_id": "`+name+`"}`, "hello")
	}

	msg := frame(`{"message_type": "any", "source_id": "fz", "destination_id": "server"}`, "data")
	withFile := frameBin(`{"message_type": "any", "source_id": "fz", "destination_id": "server", "with_file": {"src_path": "/x/f.txt", "dst_type": "any", "dst_name": "f.txt", "binary_offset": 2}, "with_binary": true}`, "d", "abthe file")
	sub := frame(`{"message_type": "_pubsub", "source_id": "fz"}`, `{"subscribe_message_types": ["news", "chktopic"]}`)
	pub := frame(`{"message_type": "_pubsub", "source_id": "fz", "message_type_publish": "news"}`, "n")
	pubBin := frameBin(`{"message_type": "_pubsub", "source_id": "fz", "message_type_publish": "chktopic", "with_binary": true}`, "n", "bin")
	pubFile := frameBin(`{"message_type": "_pubsub", "source_id": "fz", "destination_id": "x", "message_type_publish": "news", "with_file": {"src_path": "/e/g.txt", "dst_type": "any", "dst_name": "g.txt"}, "with_binary": true}`, "d", "content")
	ping := frame(`{"message_type": "_ping", "source_id": "fz", "request_id": 7, "await_response": true}`, "p")
	pingNoID := frame(`{"message_type": "_ping", "source_id": "fz", "await_response": true}`, "p")
	ack := frame(`{"message_type": "_ack", "source_id": "fz", "transport_id": 3}`, "")
	acked := frame(`{"message_type": "any", "source_id": "fz", "destination_id": "server", "transport_id": 5}`, "x")

	f.Add(cat(msg, msg), uint16(0))
	f.Add(withFile, uint16(len(withFile)/2))
	f.Add(cat(sub, pub, pubBin, pubFile), uint16(len(sub)+3))
	f.Add(cat(ping, pingNoID, ack, acked), uint16(1))
	f.Add(cat(handshake("other"), frame(`{"message_type": "_handshake_no_ssl"}`, "nope")), uint16(0))
	// a streamed file frame: a declared length above rxStreamMin, only the start of its binary sent
	{
		js := `{"message_type": "any", "source_id": "fz", "destination_id": "server", "with_file": {"src_path": "/x/big", "dst_type": "any", "dst_name": "big"}, "with_binary": true}`
		b := codec.AppendFrame(nil, []byte(js), []byte("d"), []byte("0123456789"), true)
		total := uint32(len(b) - 4 - 10 + 2<<20)
		binary.LittleEndian.PutUint32(b, total)
		binary.LittleEndian.PutUint32(b[len(b)-14:], 2<<20)
		f.Add(b, uint16(len(b)-5))
	}
	// a frame whose JSON length points past its size
	{
		b := frame(`{"message_type": "any"}`, "x")
		binary.LittleEndian.PutUint16(b[4:], 0xfff0)
		f.Add(cat(b, msg), uint16(0))
	}
	f.Add(cat(msg[:len(msg)-1]), uint16(3))                // truncated frame
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0}, uint16(2)) // huge declared length
	f.Add([]byte{0x00, 0x00, 0x01, 0x00, 0, 0}, uint16(0)) // over MaxFrame, not a file
	f.Add([]byte{0, 0, 0, 0}, uint16(0))                   // empty frame
	f.Add([]byte{}, uint16(0))

	hsFZ := handshake("fz")
	check := cat(handshake("chk"),
		frame(`{"message_type": "_pubsub", "source_id": "chk"}`, `{"subscribe_message_types": ["chktopic"]}`),
		frame(`{"message_type": "_pubsub", "source_id": "chk", "message_type_publish": "chktopic"}`, "ok"),
		frame(`{"message_type": "_ping", "source_id": "chk", "request_id": 424242, "await_response": true}`, "p"))

	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		k := min(int(split), len(b))
		// write errors are fine: the broker may close the link at a bad frame
		if _, err := c.Write(append(append([]byte(nil), hsFZ...), b[:k]...)); err == nil && k < len(b) {
			c.Write(b[k:])
		}
		c.(*net.TCPConn).CloseWrite()
		// the broker must close the link once it has read the EOF (bounded)
		if _, err := io.Copy(io.Discard, c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("link still open 5 s after EOF")
			}
		}
		c.Close()

		// a fresh client is still served: its publication comes back and its ping is answered
		c2, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial after input: %v", err)
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c2.Write(check); err != nil {
			t.Fatalf("write check: %v", err)
		}
		var buf []byte
		gotPub, gotPing := false, false
		for !gotPub || !gotPing {
			var fr codec.Frame
			fr, buf, err = codec.ReadFrame(c2, buf, 1<<20)
			if err != nil {
				t.Fatalf("check after input (publication %v, ping %v): %v", gotPub, gotPing, err)
			}
			mt, _ := codec.Lookup(fr.JSON, "message_type")
			s, _ := mt.Str()
			switch s {
			case "chktopic":
				gotPub = string(fr.Data) == "ok" || gotPub
			case "_ping":
				rid, _ := codec.Lookup(fr.JSON, "response_id")
				gotPing = string(rid.Raw) == "424242" || gotPing
			}
		}
	})
}
