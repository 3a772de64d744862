package codec

import (
	"bytes"
	"fmt"
	"testing"
)

// sameHeader reports whether got and want hold the same Values, each aliasing json at the
// same place.
func sameHeader(t *testing.T, json []byte, got, want *Header) {
	t.Helper()
	gf, wf := got.fields(), want.fields()
	for i := range gf {
		g, w := gf[i], wf[i]
		if g.Kind != w.Kind || !bytes.Equal(g.Raw, w.Raw) {
			t.Fatalf("field %d: memo %q (kind %d), scan %q (kind %d)", i, g.Raw, g.Kind, w.Raw, w.Kind)
		}
		if g.Raw != nil && (cap(json)-cap(g.Raw) != cap(json)-cap(w.Raw) || len(g.Raw) != len(w.Raw)) {
			t.Fatalf("field %d: memo's value does not alias the scanned JSON where the scan's does", i)
		}
	}
}

// checkMemo scans each input through one memo and compares with ScanHeader on a fresh copy.
func checkMemo(t *testing.T, inputs ...[]byte) {
	t.Helper()
	var m HeaderMemo
	for _, in := range inputs {
		json := bytes.Clone(in)
		var got, want Header
		m.misses = 1 // every miss replaces the memo, so that replacing is checked too
		gerr := m.Scan(json, &got)
		werr := ScanHeader(json, &want)
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("%q: memo error %v, scan error %v", in, gerr, werr)
		}
		sameHeader(t, json, &got, &want)
		for i := range json {
			json[i] = 'x' // the memo keeps its own copy
		}
	}
}

func TestHeaderMemo(t *testing.T) {
	a := []byte(`{"message_type": "telemetry", "source_id": "client1", "destination_id": "server1"}`)
	b := []byte(`{"message_type": "telemetry", "source_id": "client2", "destination_id": "server1", "with_binary": true}`)
	esc := []byte(`{"\u006dessage_type": "e", "request_id": 1e5, "message_type": "last"}`)
	long := append([]byte(`{"message_type": "m", "pad": "`), bytes.Repeat([]byte("p"), MaxMemoJSON)...)
	long = append(long, `"}`...)
	tests := []struct {
		name   string
		inputs [][]byte
	}{
		{"same twice", [][]byte{a, a, a}},
		{"changes", [][]byte{a, b, a, b}},
		{"error keeps the memo", [][]byte{a, []byte(`{"message_type": `), a}},
		{"error first", [][]byte{[]byte(`[]`), []byte(`[]`), a}},
		{"escaped and duplicate keys", [][]byte{esc, esc}},
		{"longer than the memo", [][]byte{long, long, a, long}},
		{"empty object", [][]byte{[]byte(`{}`), []byte(`{}`)}},
		{"prefix of the remembered", [][]byte{b, b[:len(b)-1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkMemo(t, tt.inputs...) })
	}
	for _, s := range trickyJSON {
		checkMemo(t, []byte(s), []byte(s))
	}
}

func TestParseBodyHeaderMemo(t *testing.T) {
	json := []byte(`{"message_type": "m", "with_binary": true}`)
	fr := AppendFrame(nil, json, []byte("data"), []byte("bin"), true)
	var m HeaderMemo
	for range 2 {
		var got, want Header
		gf, gerr := ParseBodyHeaderMemo(fr[LenPrefix:], &got, &m)
		wf, werr := ParseBodyHeader(fr[LenPrefix:], &want)
		if gerr != nil || werr != nil {
			t.Fatalf("errors: %v, %v", gerr, werr)
		}
		if !bytes.Equal(gf.Binary, wf.Binary) || !gf.HasBinary || !bytes.Equal(gf.Data, wf.Data) {
			t.Fatalf("frame %+v, want %+v", gf, wf)
		}
		sameHeader(t, gf.JSON, &got, &want)
	}
	if _, err := ParseBodyHeaderMemo(fr[LenPrefix:len(fr)-1], new(Header), &m); err == nil {
		t.Fatal("a truncated binary was accepted from the memo")
	}
}

// TestHeaderMemoReplacement: the memo is replaced on the 2nd and 10th miss, not between (a
// connection carrying one message copies nothing); headers too long to remember do not count as
// misses.
func TestHeaderMemoReplacement(t *testing.T) {
	a := []byte(`{"message_type": "a"}`)
	b := []byte(`{"message_type": "b", "destination_id": "d"}`)
	long := append([]byte(`{"message_type": "m", "pad": "`), bytes.Repeat([]byte("p"), MaxMemoJSON)...)
	long = append(long, `"}`...)
	var m HeaderMemo
	var h Header
	scan := func(j []byte) {
		t.Helper()
		if err := m.Scan(j, &h); err != nil {
			t.Fatal(err)
		}
	}
	scan(a)
	if m.json != nil {
		t.Fatalf("first miss remembered: %q", m.json)
	}
	scan(a)
	if !bytes.Equal(m.json, a) {
		t.Fatalf("second miss not remembered: %q", m.json)
	}
	for range 3 {
		scan(long)
	}
	for i := 3; i <= 9; i++ {
		scan(b)
		if !bytes.Equal(m.json, a) {
			t.Fatalf("miss %d replaced the memo", i)
		}
	}
	scan(b)
	if !bytes.Equal(m.json, b) {
		t.Fatalf("10th miss did not replace the memo (long headers counted?): %q", m.json)
	}
	scan(b) // a hit, through the replaced positions
	want := Header{}
	if err := ScanHeader(b, &want); err != nil {
		t.Fatal(err)
	}
	sameHeader(t, b, &h, &want)
}

// FuzzHeaderMemo: whatever two headers come in a row, the memo answers exactly as ScanHeader.
func FuzzHeaderMemo(f *testing.F) {
	for _, s := range append(vectorJSON(), trickyJSON...) {
		f.Add([]byte(s), []byte(s))
	}
	f.Add(benchJSON, benchJSON)
	f.Add(benchJSON, []byte(`{"message_type": "x"}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		checkMemo(t, a, b, a, b, b)
	})
}

// BenchmarkHeaderMemo: one header over and over, copied from the memo (BenchmarkScanHeader
// scans it every time).
func BenchmarkHeaderMemo(b *testing.B) {
	var m HeaderMemo
	var h Header
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJSON)))
	for b.Loop() {
		if err := m.Scan(benchJSON, &h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeaderMemoUnique: headers that never repeat (a request id in each), through a memo:
// against BenchmarkScanHeaderUnique, the memo's cost when it never helps.
func BenchmarkHeaderMemoUnique(b *testing.B) {
	uniq := uniqueHeaders()
	var m HeaderMemo
	var h Header
	b.ReportAllocs()
	b.SetBytes(int64(len(uniq[0])))
	i := 0
	for b.Loop() {
		if err := m.Scan(uniq[i], &h); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(uniq) {
			i = 0
		}
	}
}

func BenchmarkScanHeaderUnique(b *testing.B) {
	uniq := uniqueHeaders()
	var h Header
	b.ReportAllocs()
	b.SetBytes(int64(len(uniq[0])))
	i := 0
	for b.Loop() {
		if err := ScanHeader(uniq[i], &h); err != nil {
			b.Fatal(err)
		}
		if i++; i == len(uniq) {
			i = 0
		}
	}
}

// uniqueHeaders is benchJSON with 64 different request ids.
func uniqueHeaders() [][]byte {
	var out [][]byte
	for i := range 64 {
		j := bytes.TrimSuffix(bytes.TrimSpace(benchJSON), []byte("}"))
		out = append(out, append(bytes.Clone(j), fmt.Sprintf(`, "request_id": %d}`, 1000+i)...))
	}
	return out
}
