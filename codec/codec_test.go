package codec

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// Expected outputs below were produced with CPython 3 (json.dumps / repr).

func TestAppendPyString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"/<>&'", `"/<>&'"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f\u007f"`},
		{"é", `"\u00e9"`},
		{"日本", `"\u65e5\u672c"`},
		{"😀", `"\ud83d\ude00"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"mix é😀\x7f/end", `"mix \u00e9\ud83d\ude00\u007f/end"`},
		{"\ufffd", `"\ufffd"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"('127.0.0.1', 10673)", `"('127.0.0.1', 10673)"`},
	} {
		if got := string(AppendPyString(nil, c.in)); got != c.want {
			t.Errorf("AppendPyString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestAppendPyReprStr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `''`},
		{"abc", `'abc'`},
		{"it's", `"it's"`},
		{`say "hi"`, `'say "hi"'`},
		{`both ' and "`, `'both \' and "'`},
		{`back\slash`, `'back\\slash'`},
		{"\n\r\t", `'\n\r\t'`},
		{"\x00\x01\x1f\x7f", `'\x00\x01\x1f\x7f'`},
		{"é日本😀", `'é日本😀'`},
		{"\u00a0\u0085", `'\xa0\x85'`},
		{"\u200b", `'\u200b'`},
		{"\U000e0001", `'\U000e0001'`},
		{"\ud7ff", `'\ud7ff'`},
	} {
		if got := string(AppendPyReprStr(nil, c.in)); got != c.want {
			t.Errorf("AppendPyReprStr(%q) = %s, want %s", c.in, got, c.want)
		}
	}
	if got := string(AppendPyListRepr(nil, []string{"type_pub", "it's", "a\nb"})); got != `['type_pub', "it's", 'a\nb']` {
		t.Errorf("AppendPyListRepr = %s", got)
	}
	if got := string(AppendPyListRepr(nil, nil)); got != `[]` {
		t.Errorf("AppendPyListRepr(nil) = %s", got)
	}
	if got := string(AppendPyJSONList(nil, []string{"a", "é"})); got != `["a", "\u00e9"]` {
		t.Errorf("AppendPyJSONList = %s", got)
	}
	if got := string(AppendPyJSONList(nil, nil)); got != `[]` {
		t.Errorf("AppendPyJSONList(nil) = %s", got)
	}
}

func TestAppendPeekQueues(t *testing.T) {
	got := string(AppendPeekQueues(nil, -1, map[string]int{"b": 2, "a": 1, "é": 3}))
	want := "{\n    \"queue_recv\": null,\n    \"queue_send\": {\n        \"a\": 1,\n        \"b\": 2,\n        \"\\u00e9\": 3\n    }\n}"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
	got = string(AppendPeekQueues(nil, 5, nil))
	want = "{\n    \"queue_recv\": 5,\n    \"queue_send\": {}\n}"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestObj(t *testing.T) {
	var o Obj
	o.Begin([]byte("x"))
	if got := string(o.End()); got != "x{}" {
		t.Fatalf("empty: %s", got)
	}
	o = NewObj(nil)
	o.Int("transport_id", 7)
	o.Str("message_type", "_ack")
	o.Str("source_id", "client1")
	o.Bool("b", false)
	o.Null("n")
	o.Raw("r", []byte(`[1, 2]`))
	want := `{"transport_id": 7, "message_type": "_ack", "source_id": "client1", "b": false, "n": null, "r": [1, 2]}`
	if got := string(o.End()); got != want {
		t.Fatalf("got %s", got)
	}
}

func TestTruthy(t *testing.T) {
	for _, c := range []struct {
		json string
		want bool
	}{
		{`0`, false}, {`-0`, false}, {`0.0`, false}, {`-0.0`, false}, {`0e5`, false},
		{`1e-400`, false}, {`0.0e-0`, false}, {`1E-330`, false},
		{`2.4703282292062328e-324`, true}, {`2.4703282292062327e-324`, false},
		{`1`, true}, {`0.1`, true}, {`1e400`, true}, {`-1`, true}, {`10`, true},
		{`""`, false}, {`"false"`, true}, {`"0"`, true}, {`" "`, true}, {`"\u0000"`, true},
		{`true`, true}, {`false`, false}, {`null`, false},
		{`[]`, false}, {`[ ]`, false}, {"[\n]", false}, {`[0]`, true}, {`[[]]`, true},
		{`{}`, false}, {`{ }`, false}, {`{"a": 0}`, true},
	} {
		in := `{"with_binary": ` + c.json + `}`
		v, err := Lookup([]byte(in), "with_binary")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := v.Truthy(); got != c.want {
			t.Errorf("Truthy(%s) = %v, want %v", c.json, got, c.want)
		}
	}
	if (Value{}).Truthy() || (Value{}).Present() {
		t.Error("absent value must be falsy and not present")
	}
}

func TestValueStr(t *testing.T) {
	for _, c := range []struct{ raw, want string }{
		{`""`, ""},
		{`"abc"`, "abc"},
		{`"\u00e9\ud83d\ude00"`, "é😀"},
		{`"\ud800"`, "\ufffd"},
		{`"\ud800\u0041"`, "\ufffdA"},
		{`"\udc00\udc00"`, "\ufffd\ufffd"},
		{`"a\/b\"\\\n\t\r\b\f"`, "a/b\"\\\n\t\r\b\f"},
		{"\"\xff\"", "\ufffd"},
		{"\"\xed\xa0\x80\"", "\ufffd\ufffd\ufffd"},
	} {
		v, err := Lookup([]byte(`{"k": `+c.raw+`}`), "k")
		if err != nil {
			t.Fatal(err)
		}
		s, ok := v.Str()
		if !ok || s != c.want {
			t.Errorf("Str(%s) = %q,%v want %q", c.raw, s, ok, c.want)
		}
	}
	if _, ok := (Value{Raw: []byte("1"), Kind: KindNumber}).Str(); ok {
		t.Error("Str on number")
	}
}

func TestScanHeaderCases(t *testing.T) {
	in := ` { "message_type" : "a", "with_file": {"message_type": "nested", "x": ["source_id", {"a": [1, {}]}]},
	"\u0073ource_id": "esc\u00e9", "request_id": -0, "response_id": 1.0e5, "message_type": "last",
	"transport_id": 12345678901234567890, "other": null } `
	var h Header
	if err := ScanHeader([]byte(in), &h); err != nil {
		t.Fatal(err)
	}
	if s, _ := h.MessageType.Str(); s != "last" {
		t.Errorf("message_type %q", s)
	}
	if s, _ := h.SourceID.Str(); s != "escé" {
		t.Errorf("source_id %q", s)
	}
	if string(h.RequestID.Raw) != "-0" || string(h.ResponseID.Raw) != "1.0e5" || h.TransportID.Kind != KindNumber {
		t.Errorf("numbers %s %s %s", h.RequestID.Raw, h.ResponseID.Raw, h.TransportID.Raw)
	}
	if h.WithFile.Kind != KindObject || h.DestinationID.Present() {
		t.Errorf("with_file %v dest %v", h.WithFile.Kind, h.DestinationID.Present())
	}
	for _, bad := range []string{
		``, ` `, `null`, `[]`, `"x"`, `1`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1}x`, `{"a":1}{}`,
		`{'a':1}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`,
		"{\"a\":\"\x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, `{"a":[1,]}`, `{"a":[1}`, `{"a":{]}`,
		`{"a":{"b"}}`, `{"a":NaN}`, `{"a":Infinity}`, "\xef\xbb\xbf{}", `{"a":1 "b":2}`, `{1:2}`,
	} {
		if err := ScanHeader([]byte(bad), &h); !errors.Is(err, ErrBadJSON) {
			t.Errorf("ScanHeader(%q) = %v, want ErrBadJSON", bad, err)
		}
	}
	// Depth limit identical to encoding/json (10000 including the top level).
	ok := `{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`
	if err := ScanHeader([]byte(ok), &h); err != nil {
		t.Errorf("depth 10000: %v", err)
	}
	deep := `{"a":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	if err := ScanHeader([]byte(deep), &h); !errors.Is(err, ErrBadJSON) {
		t.Errorf("depth 10001: %v", err)
	}
}

func TestSetDeleteKey(t *testing.T) {
	for _, c := range []struct{ in, key, raw, set, del string }{
		{`{}`, "k", `1`, `{"k": 1}`, `{}`},
		{`{ }`, "k", `1`, `{ "k": 1}`, `{ }`},
		{`{"a": 1}`, "k", `"v"`, `{"a": 1, "k": "v"}`, `{"a": 1}`},
		{`{"a": 1.0, "k": 2}`, "k", `3`, `{"a": 1.0, "k": 3}`, `{"a": 1.0}`},
		{`{"k": 2, "a": 1}`, "k", `3`, `{"k": 3, "a": 1}`, `{"a": 1}`},
		{`{"k": 1, "a": 1, "k": 2, "b": 2}`, "k", `[]`, `{"a": 1, "k": [], "b": 2}`, `{"a": 1, "b": 2}`},
		{`{"k": 1, "k": 2}`, "k", `3`, `{"k": 3}`, `{}`},
		{`{"a": 0, "\u006b": 1, "k" : 2 }`, "k", `true`, `{"a": 0, "k" : true }`, `{"a": 0 }`},
		{"{\n  \"a\": 1,\n  \"k\": 2\n}", "k", `null`, "{\n  \"a\": 1,\n  \"k\": null\n}", "{\n  \"a\": 1\n}"},
		{`{"a": {"k": 1}}`, "k", `1`, `{"a": {"k": 1}, "k": 1}`, `{"a": {"k": 1}}`},
		{`{"a": 1}`, "é", `1`, `{"a": 1, "\u00e9": 1}`, `{"a": 1}`},
	} {
		got, err := SetKey([]byte("P"), []byte(c.in), c.key, []byte(c.raw))
		if err != nil || string(got) != "P"+c.set {
			t.Errorf("SetKey(%s, %s, %s) = %s, %v; want %s", c.in, c.key, c.raw, got, err, c.set)
		}
		got, err = DeleteKey([]byte("P"), []byte(c.in), c.key)
		if err != nil || string(got) != "P"+c.del {
			t.Errorf("DeleteKey(%s, %s) = %s, %v; want %s", c.in, c.key, got, err, c.del)
		}
	}
	for _, raw := range []string{``, ` 1`, `1 `, `x`, `{`, `1,2`} {
		if got, err := SetKey([]byte("P"), []byte(`{}`), "k", []byte(raw)); !errors.Is(err, ErrBadJSON) || string(got) != "P" {
			t.Errorf("SetKey raw %q: %s %v", raw, got, err)
		}
	}
	if _, err := SetKey(nil, []byte(`{}`), "bad\xff", []byte(`1`)); !errors.Is(err, ErrBadJSON) {
		t.Errorf("invalid UTF-8 key accepted: %v", err)
	}
	if _, err := DeleteKey(nil, []byte(`{"a":1`), "a"); !errors.Is(err, ErrBadJSON) {
		t.Errorf("DeleteKey on bad JSON: %v", err)
	}
}

func TestFrameErrors(t *testing.T) {
	if n, err := FrameSize([]byte{1, 2, 3}, 10); n != 0 || err != nil {
		t.Errorf("short prefix: %d %v", n, err)
	}
	_, err := FrameSize([]byte{11, 0, 0, 0}, 10)
	if !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "11") || !strings.Contains(err.Error(), "10") {
		t.Errorf("too large: %v", err)
	}
	for _, c := range []struct {
		body    []byte
		section string
	}{
		{[]byte{1}, "json_len"},
		{[]byte{2, 0, '{'}, "json"},
		{[]byte{2, 0, '{', '}', 0, 0}, "data_len"},
		{[]byte{2, 0, '{', '}', 1, 0, 0, 0}, "data"},
		{append([]byte{18, 0}, `{"with_binary": 1}`+"\x00\x00\x00\x00\x00"...), "bin_len"},
		{append([]byte{19, 0}, `{"with_binary": 1} `+"\x00\x00\x00\x00\x01\x00\x00\x00"...), "binary"},
	} {
		_, err := ParseBody(c.body)
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), c.section+" ") {
			t.Errorf("ParseBody(%q) = %v, want truncated %s", c.body, err, c.section)
		}
	}
	// ParseBody scans the JSON only when it may contain with_binary.
	if _, err := ParseBody(append([]byte{15, 0}, `["with_binary"]`+"\x00\x00\x00\x00"...)); !errors.Is(err, ErrBadJSON) {
		t.Errorf("non-object JSON: %v", err)
	}
	if f, err := ParseBody([]byte{1, 0, '[', 0, 0, 0, 0}); err != nil || string(f.JSON) != "[" {
		t.Errorf("unscanned JSON: %v", err)
	}
	// Trailing bytes are ignored; a binary section without with_binary too.
	fr := AppendFrame(nil, []byte(`{"with_binary": false}`), []byte("d"), []byte("bin"), true)
	f, err := ParseBody(fr[LenPrefix:])
	if err != nil || f.HasBinary || f.Binary != nil || string(f.Data) != "d" || len(f.Trailing) != 7 {
		t.Errorf("trailing: %+v %v", f, err)
	}
	if err := CheckJSONLen(make([]byte, 65536)); !errors.Is(err, ErrJSONTooLarge) {
		t.Errorf("CheckJSONLen: %v", err)
	}
	if err := CheckJSONLen(make([]byte, 65535)); err != nil {
		t.Errorf("CheckJSONLen max: %v", err)
	}
	if _, err := AppendFrameChecked(nil, make([]byte, 65536), nil, nil, false); !errors.Is(err, ErrJSONTooLarge) {
		t.Errorf("AppendFrameChecked: %v", err)
	}
}

func TestSpecExamples(t *testing.T) {
	// PEER-PROTOCOL.md §2.7 and LOCAL-API.md §3.2 worked examples.
	fr := AppendFrame(nil, []byte(`{"message_type": "_handshake_no_ssl", "source_id": "client1"}`), []byte("hello"), nil, false)
	if len(fr) != 76 || !bytes.Equal(fr[:6], []byte{0x48, 0, 0, 0, 0x3d, 0}) || !bytes.Equal(fr[67:71], []byte{5, 0, 0, 0}) {
		t.Errorf("handshake frame % x", fr)
	}
	var o Obj
	o.Begin(nil)
	o.Str(KeyMessageType, "any")
	o.Str(KeySourceID, "client1")
	o.Str(KeyDestinationID, "('127.0.0.1', 10673)")
	o.Bool(KeyWithBinary, true)
	j := o.End()
	fr = AppendFrame(nil, j, []byte(`"x"`), []byte{1, 2, 3}, true)
	if len(fr) != 130 || !bytes.Equal(fr[:6], []byte{0x7e, 0, 0, 0, 0x6e, 0}) || !bytes.Equal(fr[len(fr)-7:], []byte{3, 0, 0, 0, 1, 2, 3}) {
		t.Errorf("binary frame % x", fr)
	}
	if got := AppendCommand(nil, []byte("INFO")); !bytes.Equal(got, []byte{4, 0, 0, 0, 'I', 'N', 'F', 'O'}) {
		t.Errorf("command % x", got)
	}
}

func TestDecoder(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i := 0; i < 5; i++ {
		j := []byte(`{"message_type": "any", "with_binary": true}`)
		data := bytes.Repeat([]byte{byte(i)}, i*3)
		bin := bytes.Repeat([]byte{0xee}, i)
		want = append(want, data)
		stream = AppendFrame(stream, j, data, bin, true)
	}
	// Feed again without draining in between: frames must come out in order.
	var d Decoder
	d.Feed(stream[:10])
	d.Feed(stream[10:100])
	d.Feed(stream[100:])
	var got [][]byte
	for {
		f, ok, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, bytes.Clone(f.Data))
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: %x", i, got[i])
		}
	}
	// Sticky too-large error, then Reset.
	d = Decoder{MaxFrame: 8}
	d.Feed(stream)
	if _, _, err := d.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("want too large, got %v", err)
	}
	if _, _, err := d.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("not sticky: %v", err)
	}
	d.Reset()
	d.MaxFrame = 0
	d.Feed(stream)
	if _, ok, err := d.Next(); !ok || err != nil {
		t.Fatalf("after reset: %v %v", ok, err)
	}
	// A bad frame is consumed and decoding continues.
	bad := AppendFrame(nil, []byte(`{"with_binary": x}`), nil, nil, false)
	d.Reset()
	d.Feed(append(bad, stream...))
	if _, _, err := d.Next(); !errors.Is(err, ErrBadJSON) {
		t.Fatalf("want bad JSON, got %v", err)
	}
	if f, ok, err := d.Next(); !ok || err != nil || len(f.Data) != 0 {
		t.Fatalf("after bad frame: %v %v", ok, err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	fr := AppendFrame(nil, []byte(`{}`), []byte("abc"), nil, false)
	if _, _, err := ReadFrame(bytes.NewReader(fr[:7]), nil, 100); err != io.ErrUnexpectedEOF {
		t.Errorf("partial body: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(fr[:2]), nil, 100); err != io.ErrUnexpectedEOF {
		t.Errorf("partial prefix: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(fr), nil, 5); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("too large: %v", err)
	}
	f, buf, err := ReadFrame(bytes.NewReader(fr), make([]byte, 4), 100)
	if err != nil || string(f.Data) != "abc" || len(buf) < len(fr) {
		t.Errorf("grow: %v %q", err, f.Data)
	}
}
