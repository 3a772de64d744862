package connector

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/persist"
)

// countRecords is the number of intact records of a persistence file (either format); -1 when
// the file holds damaged data or does not exist.
func countRecords(path string) int {
	n, err := persist.Load(path, nil)
	if err != nil {
		return -1
	}
	return n
}

// wantFormat checks the format of a persistence file's content.
func wantFormat(t *testing.T, b []byte, python bool) {
	t.Helper()
	if f, ok := persist.Detect(b); !ok || (f == persist.FormatPython) != python {
		t.Fatalf("file format %v (recognised %v), want python=%v: %q", f, ok, python, b)
	}
}

// TestSendPersistence: messages for an absent client are stored in its send-persistence file (our
// format by default, Python's with AIOCONN_PERSISTENCE_FORMAT=python) and replayed first, in order,
// when the client connects; the file is then gone.
func TestSendPersistence(t *testing.T) {
	for _, python := range []bool{false, true} {
		t.Run(map[bool]string{false: "aioconn", true: "python"}[python], func(t *testing.T) {
			if python {
				t.Setenv(PersistFormatEnv, "python")
			}
			testSendPersistence(t, python)
		})
	}
}

func testSendPersistence(t *testing.T, python bool) {
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
	waitFile(t, path, func([]byte) bool { return countRecords(path) == 5 })
	b, _ := os.ReadFile(path)
	wantFormat(t, b, python)
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
	waitFile(t, path, func([]byte) bool { return countRecords(path) == 3 })
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
	waitFile(t, path, func([]byte) bool { return countRecords(path) == 4 })
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var conn net.Conn
	// the probe connection of the connector comes first and is empty (as in Python)
	for i, w := range want {
		got := app.nextNonEmpty(t, &conn)
		expectBytes(t, "delivered "+strconv.Itoa(i), got, w)
	}
	waitGone(t, path)
}

// TestReplayPythonFileAndDamage: a send file left by a Python connector (its format) is replayed;
// a file of ours with a torn tail replays its intact records, keeps the damaged bytes aside
// (.corrupt-<offset>, logged with the file and offset) and the connector goes on: a later
// message flows, and a new file is written in our format.
func TestReplayPythonFileAndDamage(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "disk_persistence_send": true, "debug_msg_counts": false}`, nil)
	id := pyStr(srv.SourceID())
	msg := func(s string) []byte {
		return frameOf(`{"message_type": "any", "source_id": `+id+`, "destination_id": "client1"}`, s)
	}
	// client1: a Python file (separator in a payload, rewritten as Python does)
	path1 := persist.SendPath(srv.cfg.ConnectorFilesDirpath, srv.alnumID, "client1")
	py := persist.OpenFormat(path1, 0, persist.FormatPython)
	want1 := [][]byte{msg("p0"), msg("p1 " + persist.Separator), msg("p2")}
	if err := py.AppendBatch(want1); err != nil {
		t.Fatal(err)
	}
	py.Close()
	want1[1] = msg("p1 " + persist.Replacement)
	// client2: our format, torn in the middle of its third record
	msg2 := func(s string) []byte {
		return frameOf(`{"message_type": "any", "source_id": `+id+`, "destination_id": "client2"}`, s)
	}
	path2 := persist.SendPath(srv.cfg.ConnectorFilesDirpath, srv.alnumID, "client2")
	ours := persist.Open(path2, 0)
	want2 := [][]byte{msg2("o0"), msg2("o1")}
	ours.AppendBatch(append(want2, msg2("torn")))
	ours.Close()
	b, _ := os.ReadFile(path2)
	torn := len(b) - len(msg2("torn")) - persist.RecordOverhead
	os.WriteFile(path2, b[:len(b)-3], 0o666)

	for i, c := range []struct {
		name string
		want [][]byte
	}{{"client1", want1}, {"client2", want2}} {
		tcp, err := net.Dial("tcp", srv.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer tcp.Close()
		tcp.Write(frameOf(`{"message_type": "_handshake_no_ssl", "source_id": "`+c.name+`"}`, "hello"))
		for k, w := range c.want {
			expectBytes(t, c.name+" replayed "+strconv.Itoa(k), readRaw(t, tcp), w)
		}
		if i == 1 {
			// replay done: new traffic flows after the intact records
			send := dialUnix(t, srv.Paths().SendToConnector)
			send.Write(msg2("after"))
			expectBytes(t, "after", readRaw(t, tcp), msg2("after"))
		}
	}
	waitGone(t, path1)
	waitGone(t, path2)
	aside := path2 + ".corrupt-" + strconv.Itoa(torn)
	a, err := os.ReadFile(aside)
	if err != nil || !bytes.Equal(a, b[torn:len(b)-3]) {
		t.Fatalf("aside %s: %v (%d bytes)", aside, err, len(a))
	}
	if _, err := os.Stat(path1 + ".replay"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("replay file left: %v", err)
	}
	// the log names the file and the offset
	lb, _ := os.ReadFile(filepath.Join(dir, "aioconnectors.log"))
	if l := string(lb); !strings.Contains(l, path2) || !strings.Contains(l, "offset "+strconv.Itoa(torn)) || !strings.Contains(l, aside) {
		t.Errorf("no log line names %s at offset %d: %s", path2, torn, l)
	}
}
