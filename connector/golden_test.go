package connector

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/codec"
)

// vector is one frame of the 1.0.33 capture (shared/testdata/wire/manifest.json).
type vector struct {
	File       string `json:"file"`
	SockKind   string `json:"sock_kind"`
	Direction  string `json:"direction"`
	JSONRaw    string `json:"transport_json_raw"`
	DataHex    string `json:"data_hex"`
	BinaryHex  string `json:"binary_hex"`
	LenBinary  *int   `json:"len_binary"`
	Payload    string `json:"payload_text"`
	rawPayload []byte
}

// goldenSession loads the vectors of one session keyed by their 3-digit number.
func goldenSession(t *testing.T, session string) map[string]*vector {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "..", "shared", "testdata", "wire")
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Skipf("golden vectors not available (%v): they live in ../shared/testdata/wire beside the repo", err)
	}
	var m []struct {
		Session string    `json:"session"`
		Frames  []*vector `json:"frames"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	out := map[string]*vector{}
	for _, s := range m {
		if s.Session != session {
			continue
		}
		for _, f := range s.Frames {
			raw, err := os.ReadFile(filepath.Join(dir, f.File))
			if err != nil {
				t.Fatal(err)
			}
			f.rawPayload = raw
			out[filepath.Base(f.File)[:3]] = f
		}
	}
	return out
}

// bytesFor re-encodes the vector with the captured server port 10673 replaced by port (the
// capture's only environment-dependent value); commander records are returned as captured.
func (v *vector) bytesFor(t *testing.T, port int) []byte {
	t.Helper()
	if v.SockKind == "uds_cmd" {
		return v.rawPayload
	}
	data, _ := hex.DecodeString(v.DataHex)
	bin, _ := hex.DecodeString(v.BinaryHex)
	js := strings.ReplaceAll(v.JSONRaw, "('127.0.0.1', 10673)", "('127.0.0.1', "+strconv.Itoa(port)+")")
	out := codec.AppendFrame(nil, []byte(js), data, bin, v.LenBinary != nil)
	if port == 10673 && !bytes.Equal(out, v.rawPayload) {
		t.Fatalf("%s: re-encoding differs from the capture", v.File)
	}
	return out
}

func expectBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

const goldenServerCfg = `{"is_server": true, "server_sockaddr": ["127.0.0.1", 0], "use_ssl": false,
 "connector_files_dirpath": "$DIR", "default_logger_dirpath": "$DIR", "send_message_types": ["any"],
 "recv_message_types": ["any"], "debug_msg_counts": false}`

// TestGoldenServer drives our server connector with the frames a Python client connector and
// Python applications produced in the nossl_p2p capture, and checks every byte the server writes on
// the TCP link, on the application listener socket, on await connections and on the commander.
func TestGoldenServer(t *testing.T) {
	v := goldenSession(t, "nossl_p2p")
	dir := shortDir(t)
	srv := newConnector(t, dir, goldenServerCfg, nil)
	const port = 0 // the server's source_id is built from its configured port
	p := srv.Paths()
	app := listenApp(t, p.ReceivePath("any"))
	var appConn net.Conn

	tcp, err := net.Dial("tcp", srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	tcp.Write(v["001"].bytesFor(t, port))
	waitPeers(t, srv, "client1 identified", func(p []string) bool { return len(p) == 1 && p[0] == "client1" })

	// client -> server messages reach the server application unchanged
	for _, pair := range [][2]string{{"003", "004"}, {"006", "007"}, {"009", "010"}, {"012", "013"}, {"015", "016"}, {"024", "025"}} {
		tcp.Write(v[pair[0]].bytesFor(t, port))
		expectBytes(t, "app receives "+pair[1], app.next(t, &appConn), v[pair[1]].bytesFor(t, port))
	}
	// request from the client, answered by the server application
	tcp.Write(v["018"].bytesFor(t, port))
	expectBytes(t, "app receives 019", app.next(t, &appConn), v["019"].bytesFor(t, port))
	send := dialUnix(t, p.SendToConnector)
	send.Write(v["020"].bytesFor(t, port))
	expectBytes(t, "tcp 021", readRaw(t, tcp), v["021"].bytesFor(t, port))
	// wait_for_ack: the server acks transport_id 1, then delivers without transport_id
	tcp.Write(v["027"].bytesFor(t, port))
	expectBytes(t, "tcp ack 028", readRaw(t, tcp), v["028"].bytesFor(t, port))
	expectBytes(t, "app receives 029", app.next(t, &appConn), v["029"].bytesFor(t, port))
	// _ping from the client is answered by the connector itself
	tcp.Write(v["037"].bytesFor(t, port))
	expectBytes(t, "tcp ping reply 038", readRaw(t, tcp), v["038"].bytesFor(t, port))
	// server -> client
	send.Write(v["040"].bytesFor(t, port))
	expectBytes(t, "tcp 041", readRaw(t, tcp), v["041"].bytesFor(t, port))
	send.Write(v["043"].bytesFor(t, port))
	expectBytes(t, "tcp 044", readRaw(t, tcp), v["044"].bytesFor(t, port))
	// await_response from the server application: reply comes back on its own connection
	await := dialUnix(t, p.SendToConnector)
	await.Write(v["046"].bytesFor(t, port))
	expectBytes(t, "tcp 047", readRaw(t, tcp), v["047"].bytesFor(t, port))
	tcp.Write(v["050"].bytesFor(t, port))
	expectBytes(t, "await reply 051", readRaw(t, await), v["051"].bytesFor(t, port))
	ping := dialUnix(t, p.SendToConnector)
	ping.Write(v["052"].bytesFor(t, port))
	expectBytes(t, "tcp 053", readRaw(t, tcp), v["053"].bytesFor(t, port))
	tcp.Write(v["054"].bytesFor(t, port))
	expectBytes(t, "ping reply 055", readRaw(t, ping), v["055"].bytesFor(t, port))
	// commander
	for _, pair := range [][2]string{{"056", "057"}, {"058", "059"}, {"060", "061"}} {
		c := dialUnix(t, p.Commander)
		c.Write(v[pair[0]].bytesFor(t, port))
		expectBytes(t, "commander "+pair[1], readRaw(t, c), v[pair[1]].bytesFor(t, port))
	}
}

// TestGoldenClient drives our client connector against a fake server speaking the captured bytes.
func TestGoldenClient(t *testing.T) {
	v := goldenSession(t, "nossl_p2p")
	dir := shortDir(t)
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
	expectBytes(t, "handshake 001", readRaw(t, tcp), v["001"].bytesFor(t, port))
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	p := cli.Paths()
	app := listenApp(t, p.ReceivePath("any"))
	var appConn net.Conn
	send := dialUnix(t, p.SendToConnector)
	for _, pair := range [][2]string{{"002", "003"}, {"005", "006"}, {"008", "009"}, {"011", "012"}, {"014", "015"}, {"023", "024"}} {
		send.Write(v[pair[0]].bytesFor(t, port))
		expectBytes(t, "tcp "+pair[1], readRaw(t, tcp), v[pair[1]].bytesFor(t, port))
	}
	// await request: reply returned on the caller's own connection
	await := dialUnix(t, p.SendToConnector)
	await.Write(v["017"].bytesFor(t, port))
	expectBytes(t, "tcp 018", readRaw(t, tcp), v["018"].bytesFor(t, port))
	tcp.Write(v["021"].bytesFor(t, port))
	expectBytes(t, "await reply 022", readRaw(t, await), v["022"].bytesFor(t, port))
	// wait_for_ack: transport_id 1 appended
	send.Write(v["026"].bytesFor(t, port))
	expectBytes(t, "tcp 027", readRaw(t, tcp), v["027"].bytesFor(t, port))
	tcp.Write(v["028"].bytesFor(t, port))
	// ping
	ping := dialUnix(t, p.SendToConnector)
	ping.Write(v["036"].bytesFor(t, port))
	expectBytes(t, "tcp 037", readRaw(t, tcp), v["037"].bytesFor(t, port))
	tcp.Write(v["038"].bytesFor(t, port))
	expectBytes(t, "ping reply 039", readRaw(t, ping), v["039"].bytesFor(t, port))
	// server -> client application
	for _, pair := range [][2]string{{"041", "042"}, {"044", "045"}, {"047", "048"}} {
		tcp.Write(v[pair[0]].bytesFor(t, port))
		expectBytes(t, "app receives "+pair[1], app.next(t, &appConn), v[pair[1]].bytesFor(t, port))
	}
	send.Write(v["049"].bytesFor(t, port))
	expectBytes(t, "tcp 050", readRaw(t, tcp), v["050"].bytesFor(t, port))
	tcp.Write(v["053"].bytesFor(t, port))
	expectBytes(t, "tcp ping reply 054", readRaw(t, tcp), v["054"].bytesFor(t, port))
	// commander (063 is a capture artifact: it shows the relay's port)
	c := dialUnix(t, p.Commander)
	c.Write(v["064"].bytesFor(t, port))
	expectBytes(t, "commander 065", readRaw(t, c), v["065"].bytesFor(t, port))
	c = dialUnix(t, p.Commander)
	c.Write(v["062"].bytesFor(t, port))
	expectBytes(t, "commander show_connected_peers", readRaw(t, c)[4:], []byte(`["('127.0.0.1', `+strconv.Itoa(port)+`)"]`))
}
