package codec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

type manifestFrame struct {
	File             string                     `json:"file"`
	Socket           string                     `json:"socket"`
	SockKind         string                     `json:"sock_kind"`
	Direction        string                     `json:"direction"`
	Action           string                     `json:"action"`
	StreamOffset     int                        `json:"stream_offset"`
	Size             int                        `json:"size"`
	LenTotal         int                        `json:"len_total"`
	LenJSON          *int                       `json:"len_json"`
	TransportJSONRaw string                     `json:"transport_json_raw"`
	TransportJSON    map[string]json.RawMessage `json:"transport_json"`
	DataHex          string                     `json:"data_hex"`
	LenBinary        *int                       `json:"len_binary"`
	BinaryHex        string                     `json:"binary_hex"`
	TrailingBytes    int                        `json:"trailing_bytes"`
	PayloadText      *string                    `json:"payload_text"`
	PayloadJSON      json.RawMessage            `json:"payload_json"`
}

type manifestStream struct {
	File          string `json:"file"`
	Socket        string `json:"socket"`
	Direction     string `json:"direction"`
	Bytes         int    `json:"bytes"`
	TLSCiphertext bool   `json:"tls_ciphertext"`
}

type manifestSession struct {
	Session string           `json:"session"`
	Frames  []manifestFrame  `json:"frames"`
	Streams []manifestStream `json:"streams"`
}

// excluded vectors (see the vectors' README "Capture method and known artifacts").
var excludedVectors = map[string]string{
	// The client's own commander answer lists the relay port ('127.0.0.1', 20673)
	// instead of the server port: a capture artifact, not reproducible bytes.
	"nossl_p2p/063_cmd_client_show_connected_peers__uds_cmd_client1_conn2tool.bin": "capture artifact: relay port",
}

func wireDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("go.mod not found above the test directory; cannot locate golden vectors")
		}
		dir = parent
	}
	wd := filepath.Join(dir, "..", "shared", "testdata", "wire")
	if _, err := os.Stat(filepath.Join(wd, "manifest.json")); err != nil {
		t.Skipf("golden vectors absent (%v)", err)
	}
	return wd
}

func loadManifest(t testing.TB) (string, []manifestSession) {
	t.Helper()
	wd := wireDir(t)
	raw, err := os.ReadFile(filepath.Join(wd, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m []manifestSession
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 {
		t.Fatalf("manifest has %d sessions, want 4", len(m))
	}
	return wd, m
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqualAny(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("unmarshal %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("unmarshal %q: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func headerFields(h *Header) map[string]*Value {
	return map[string]*Value{
		KeyMessageType: &h.MessageType, KeySourceID: &h.SourceID, KeyDestinationID: &h.DestinationID,
		KeyRequestID: &h.RequestID, KeyResponseID: &h.ResponseID, KeyWithBinary: &h.WithBinary,
		KeyAwaitResponse: &h.AwaitResponse, KeyWaitForAck: &h.WaitForAck, KeyTransportID: &h.TransportID,
		KeyWithFile: &h.WithFile, KeyMessageTypePublish: &h.MessageTypePublish,
	}
}

// rebuildPyJSON rebuilds a transport JSON from its decoded fields in the key
// order Python uses (PEER-PROTOCOL.md §3.3) with Obj.
func rebuildPyJSON(t *testing.T, fr *manifestFrame, h *Header) []byte {
	t.Helper()
	var o Obj
	o.Begin(nil)
	str := func(k string, v Value) {
		if !v.Present() {
			return
		}
		s, ok := v.Str()
		if !ok {
			t.Fatalf("%s: %s is %v, want string", fr.File, k, v.Kind)
		}
		o.Str(k, s)
	}
	id := func(k string, v Value) {
		switch v.Kind {
		case KindAbsent:
		case KindNumber:
			n, ok := v.Int()
			if !ok {
				t.Fatalf("%s: %s=%s not an int", fr.File, k, v.Raw)
			}
			o.Int(k, n)
		default:
			str(k, v)
		}
	}
	flag := func(k string, v Value) {
		if v.Present() {
			if v.Kind != KindTrue {
				t.Fatalf("%s: %s=%s, want true", fr.File, k, v.Raw)
			}
			o.Bool(k, true)
		}
	}
	mt, _ := h.MessageType.Str()
	n := 0
	for _, v := range headerFields(h) {
		if v.Present() {
			n++
		}
	}
	switch {
	case mt == "_ack":
		id(KeyTransportID, h.TransportID)
		str(KeyMessageType, h.MessageType)
		str(KeySourceID, h.SourceID)
	case mt == "_ping" && h.ResponseID.Present() && !h.DestinationID.Present():
		str(KeyMessageType, h.MessageType)
		id(KeyResponseID, h.ResponseID)
		str(KeySourceID, h.SourceID)
	default:
		// API order; the sending connector appends with_binary (file
		// without app binary, i.e. no binary_offset) and transport_id.
		var wf map[string]json.RawMessage
		if h.WithFile.Present() {
			if err := json.Unmarshal(h.WithFile.Raw, &wf); err != nil {
				t.Fatal(err)
			}
		}
		_, hasOffset := wf["binary_offset"]
		connWB := wf != nil && !hasOffset && fr.Direction != "app2conn"
		str(KeyMessageType, h.MessageType)
		str(KeySourceID, h.SourceID)
		str(KeyDestinationID, h.DestinationID)
		id(KeyRequestID, h.RequestID)
		id(KeyResponseID, h.ResponseID)
		if !connWB {
			flag(KeyWithBinary, h.WithBinary)
		}
		flag(KeyAwaitResponse, h.AwaitResponse)
		if wf != nil {
			var in Obj
			in.Begin(nil)
			for _, k := range []string{"src_path", "dst_type", "dst_name", "delete", "owner", "binary_offset", "file_error", "chunked"} {
				raw, ok := wf[k]
				if !ok {
					continue
				}
				var v any
				if err := json.Unmarshal(raw, &v); err != nil {
					t.Fatal(err)
				}
				switch v := v.(type) {
				case string:
					in.Str(k, v)
				case bool:
					in.Bool(k, v)
				case float64:
					in.Int(k, int64(v))
				default:
					t.Fatalf("%s: with_file.%s unexpected %T", fr.File, k, v)
				}
				delete(wf, k)
			}
			if len(wf) != 0 {
				t.Fatalf("%s: unexpected with_file keys %v", fr.File, wf)
			}
			o.Raw(KeyWithFile, in.End())
		}
		flag(KeyWaitForAck, h.WaitForAck)
		str(KeyMessageTypePublish, h.MessageTypePublish)
		if connWB {
			flag(KeyWithBinary, h.WithBinary)
		}
		id(KeyTransportID, h.TransportID)
	}
	if o.Len() != n {
		t.Fatalf("%s: rebuilt %d keys, header has %d", fr.File, o.Len(), n)
	}
	return o.End()
}

// parseReprList parses a Python repr of a list of simple strings.
func parseReprList(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ", ") {
		out = append(out, p[1:len(p)-1])
	}
	return out
}

func TestGoldenVectors(t *testing.T) {
	wd, sessions := loadManifest(t)
	var nMsg, nCmd, nRebuilt, nReply int
	for _, s := range sessions {
		for i := range s.Frames {
			fr := &s.Frames[i]
			if why, ok := excludedVectors[fr.File]; ok {
				t.Logf("skip %s: %s", fr.File, why)
				continue
			}
			file, err := os.ReadFile(filepath.Join(wd, fr.File))
			if err != nil {
				t.Fatal(err)
			}
			if len(file) != fr.Size {
				t.Fatalf("%s: %d bytes, manifest says %d", fr.File, len(file), fr.Size)
			}
			size, err := FrameSize(file, 1<<20)
			if err != nil || size != fr.Size {
				t.Fatalf("%s: FrameSize=%d,%v want %d", fr.File, size, err, fr.Size)
			}
			if fr.LenJSON != nil {
				nMsg++
				checkMessageVector(t, fr, file)
				nRebuilt++
				continue
			}
			if fr.SockKind != "uds_cmd" || fr.PayloadText == nil {
				t.Fatalf("%s: neither message nor commander frame", fr.File)
			}
			nCmd++
			payload := []byte(*fr.PayloadText)
			if got := AppendCommand(nil, payload); !bytes.Equal(got, file) {
				t.Fatalf("%s: AppendCommand mismatch\n got %q\nwant %q", fr.File, got, file)
			}
			p, _, err := ReadCommand(bytes.NewReader(file), nil, 1<<20)
			if err != nil || !bytes.Equal(p, payload) {
				t.Fatalf("%s: ReadCommand=%q,%v", fr.File, p, err)
			}
			if fr.Direction != "conn2tool" {
				continue
			}
			var want []byte
			switch {
			case *fr.PayloadText == "{}": // falsy result
				continue
			case strings.Contains(fr.Action, "show_connected_peers"):
				var items []string
				if err := json.Unmarshal(fr.PayloadJSON, &items); err != nil {
					t.Fatal(err)
				}
				want = AppendPyJSONList(nil, items)
			case strings.Contains(fr.Action, "peek_queues"):
				var q struct {
					QueueRecv int            `json:"queue_recv"`
					QueueSend map[string]int `json:"queue_send"`
				}
				if err := json.Unmarshal(fr.PayloadJSON, &q); err != nil {
					t.Fatal(err)
				}
				want = AppendPeekQueues(nil, q.QueueRecv, q.QueueSend)
			case strings.Contains(fr.Action, "show_subscribe_message_types"):
				want = AppendPyListRepr(nil, parseReprList(*fr.PayloadText))
			case strings.Contains(fr.Action, "show_log_level"):
				want = []byte("INFO")
			default:
				t.Fatalf("%s: unhandled commander reply", fr.File)
			}
			if !bytes.Equal(want, payload) {
				t.Fatalf("%s: reply encoding\n got %q\nwant %q", fr.File, want, payload)
			}
			nReply++
		}
	}
	t.Logf("%d message frames (%d rebuilt from fields), %d commander frames (%d replies re-encoded)", nMsg, nRebuilt, nCmd, nReply)
	if nMsg < 90 || nCmd < 10 {
		t.Fatalf("too few vectors: %d message, %d commander", nMsg, nCmd)
	}
}

func checkMessageVector(t *testing.T, fr *manifestFrame, file []byte) {
	t.Helper()
	body := file[LenPrefix:]
	f, err := ParseBody(body)
	if err != nil {
		t.Fatalf("%s: ParseBody: %v", fr.File, err)
	}
	if string(f.JSON) != fr.TransportJSONRaw || len(f.JSON) != *fr.LenJSON {
		t.Fatalf("%s: json %q want %q", fr.File, f.JSON, fr.TransportJSONRaw)
	}
	if !bytes.Equal(f.Data, mustHex(t, fr.DataHex)) {
		t.Fatalf("%s: data %x want %s", fr.File, f.Data, fr.DataHex)
	}
	if f.HasBinary != (fr.LenBinary != nil) {
		t.Fatalf("%s: HasBinary=%v", fr.File, f.HasBinary)
	}
	if fr.LenBinary != nil && (!bytes.Equal(f.Binary, mustHex(t, fr.BinaryHex)) || len(f.Binary) != *fr.LenBinary) {
		t.Fatalf("%s: binary %x want %s", fr.File, f.Binary, fr.BinaryHex)
	}
	if len(f.Trailing) != fr.TrailingBytes {
		t.Fatalf("%s: trailing %d want %d", fr.File, len(f.Trailing), fr.TrailingBytes)
	}
	var h Header
	if err := ScanHeader(f.JSON, &h); err != nil {
		t.Fatalf("%s: ScanHeader: %v", fr.File, err)
	}
	var h2 Header
	f2, err := ParseBodyHeader(body, &h2)
	if err != nil || !reflect.DeepEqual(f2, f) || !reflect.DeepEqual(h2, h) {
		t.Fatalf("%s: ParseBodyHeader differs: %v", fr.File, err)
	}
	for k, v := range headerFields(&h) {
		want, ok := fr.TransportJSON[k]
		if !ok {
			if v.Present() {
				t.Fatalf("%s: %s present in header but not in manifest", fr.File, k)
			}
			continue
		}
		if !v.Present() || !jsonEqualAny(t, v.Raw, want) {
			t.Fatalf("%s: %s = %s, want %s", fr.File, k, v.Raw, want)
		}
		lv, err := Lookup(f.JSON, k)
		if err != nil || !lv.Equal(*v) {
			t.Fatalf("%s: Lookup(%s)=%v,%v", fr.File, k, lv, err)
		}
	}
	// Re-encode from the parsed sections.
	if got := AppendFrame(nil, f.JSON, f.Data, f.Binary, f.HasBinary); !bytes.Equal(got, file) {
		t.Fatalf("%s: AppendFrame mismatch\n got %x\nwant %x", fr.File, got, file)
	}
	// Rebuild the JSON from scratch in Python key order.
	if got := rebuildPyJSON(t, fr, &h); string(got) != fr.TransportJSONRaw {
		t.Fatalf("%s: rebuilt JSON\n got %s\nwant %s", fr.File, got, fr.TransportJSONRaw)
	}
}

// TestGoldenStreams decodes every plaintext message stream with the Decoder
// fed in chunks of several sizes and checks the frames against the per-frame
// vectors of the same socket and direction.
func TestGoldenStreams(t *testing.T) {
	wd, sessions := loadManifest(t)
	checked := 0
	for _, s := range sessions {
		for _, st := range s.Streams {
			if st.TLSCiphertext || strings.Contains(st.File, "uds_cmd") {
				continue
			}
			stream, err := os.ReadFile(filepath.Join(wd, st.File))
			if err != nil {
				t.Fatal(err)
			}
			var want []*manifestFrame
			for i := range s.Frames {
				fr := &s.Frames[i]
				if fr.Socket == st.Socket && fr.Direction == st.Direction && fr.LenJSON != nil {
					want = append(want, fr)
				}
			}
			sort.Slice(want, func(i, j int) bool { return want[i].StreamOffset < want[j].StreamOffset })
			if len(want) == 0 {
				t.Fatalf("%s: no frames in manifest", st.File)
			}
			for _, chunk := range []int{1, 3, 7, 64, len(stream)} {
				var d Decoder
				var got []Frame
				for off := 0; off < len(stream); off += chunk {
					d.Feed(stream[off:min(off+chunk, len(stream))])
					for {
						f, ok, err := d.Next()
						if err != nil {
							t.Fatalf("%s chunk %d: %v", st.File, chunk, err)
						}
						if !ok {
							break
						}
						// Frames are only valid until the next Next: copy.
						got = append(got, cloneFrame(f))
					}
				}
				if d.Buffered() != 0 {
					t.Fatalf("%s: %d bytes left", st.File, d.Buffered())
				}
				if len(got) != len(want) {
					t.Fatalf("%s chunk %d: %d frames, want %d", st.File, chunk, len(got), len(want))
				}
				for i, f := range got {
					if string(f.JSON) != want[i].TransportJSONRaw || hex.EncodeToString(f.Data) != want[i].DataHex {
						t.Fatalf("%s chunk %d frame %d: %q", st.File, chunk, i, f.JSON)
					}
				}
			}
			// ReadFrame over the same stream.
			r := bytes.NewReader(stream)
			var buf []byte
			for i := range want {
				var f Frame
				var err error
				f, buf, err = ReadFrame(r, buf, 1<<20)
				if err != nil || string(f.JSON) != want[i].TransportJSONRaw {
					t.Fatalf("%s: ReadFrame %d: %q %v", st.File, i, f.JSON, err)
				}
			}
			if _, _, err := ReadFrame(r, buf, 1<<20); err == nil || err.Error() != "EOF" {
				t.Fatalf("%s: want EOF, got %v", st.File, err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no streams checked")
	}
}

func cloneFrame(f Frame) Frame {
	return Frame{
		JSON: bytes.Clone(f.JSON), Data: bytes.Clone(f.Data), Binary: bytes.Clone(f.Binary),
		HasBinary: f.HasBinary, Trailing: bytes.Clone(f.Trailing),
	}
}
