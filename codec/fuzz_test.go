package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"
)

var routingKeys = []string{
	KeyMessageType, KeySourceID, KeyDestinationID, KeyRequestID, KeyResponseID, KeyWithBinary,
	KeyAwaitResponse, KeyWaitForAck, KeyTransportID, KeyWithFile, KeyMessageTypePublish,
}

var trickyJSON = []string{
	`{}`, ` {} `, "\t{\n}\r\n", `null`, `[]`, `"s"`, `1`, ``, `{`, `}`, `{"a":1}x`, `{"a":1,}`,
	`{"message_type": "\u00e9", "source_id": "\ud83d\ude00", "destination_id": "\ud800", "request_id": -0}`,
	`{"message_type":"a","message_type":"b","with_binary":true,"with_binary":0}`,
	`{"with_file": {"message_type": "x", "source_id": ["request_id", {"with_binary": true}]}, "x": [[], {}, [{}]]}`,
	`{"request_id": 1e5, "response_id": 1.0, "transport_id": -0.0e-0, "await_response": 1E+2}`,
	`{"\u006dessage_type": "esc key", "source\u005fid": "s", "with\/binary": 1, "wait_for_ack": "false"}`,
	`{"with_binary": "", "await_response": [], "wait_for_ack": {}, "with_file": null, "transport_id": 1e-400}`,
	"{\"message_type\": \"ctl\x01\"}", "{\"message_type\": \"\xff\xfe\"}", `{"a": "\x"}`, `{"a": "\u12"}`,
	`{"message_type_publish": "t", "message_type_publis": 1, "message_type_publishx": 2}`,
	`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":NaN}`, `{"a":[1,]}`, `{"a":{"b"}}`, `{"a" 1}`, `{1:1}`,
	`{"k": 1, "k": 2, "k": 3}`, `{"a": "\"", "k": "\\"}`, "\xef\xbb\xbf{}", `{"a":true,"b":false,"c":null}`,
}

func vectorJSON() (out []string) {
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			return
		}
		dir = filepath.Dir(dir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "..", "shared", "testdata", "wire", "manifest.json"))
	if err != nil {
		return // vectors absent: tricky seeds only
	}
	var m []manifestSession
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	for _, s := range m {
		for _, fr := range s.Frames {
			if fr.LenJSON != nil {
				out = append(out, fr.TransportJSONRaw)
			}
		}
	}
	return out
}

// pyTruthy is an independent oracle for Value.Truthy on the encoding/json
// decoded value (numbers decoded with UseNumber).
func pyTruthy(t *testing.T, v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			t.Fatalf("number %q: %v", v, err)
		}
		return f != 0
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	}
	t.Fatalf("unexpected %T", v)
	return false
}

func decodeAny(t *testing.T, raw []byte) any {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return v
}

// asObject reports whether encoding/json accepts in as a JSON object.
func asObject(in []byte) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(in, &m); err != nil || m == nil {
		return nil, false // m == nil: the input was `null`
	}
	return m, true
}

func FuzzScanHeader(f *testing.F) {
	for _, s := range append(vectorJSON(), trickyJSON...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Header
		err := ScanHeader(in, &h)
		m, ok := asObject(in)
		if ok != (err == nil) {
			t.Fatalf("ScanHeader(%q) err=%v, encoding/json object=%v", in, err, ok)
		}
		if err != nil {
			if !errors.Is(err, ErrBadJSON) {
				t.Fatalf("error does not wrap ErrBadJSON: %v", err)
			}
			if !reflect.DeepEqual(h, Header{}) {
				t.Fatal("header not zeroed on error")
			}
			if _, err := Lookup(in, "x"); err == nil {
				t.Fatal("Lookup accepted what ScanHeader rejected")
			}
			return
		}
		fields := headerFields(&h)
		for _, k := range routingKeys {
			v := fields[k]
			raw, present := m[k]
			if present != v.Present() {
				t.Fatalf("%q: key %s present=%v, header=%v", in, k, present, v.Present())
			}
			if !present {
				continue
			}
			if !bytes.Equal(raw, v.Raw) {
				t.Fatalf("%q: key %s raw %q, encoding/json %q", in, k, v.Raw, raw)
			}
			want := decodeAny(t, raw)
			if !reflect.DeepEqual(decodeAny(t, v.Raw), want) {
				t.Fatalf("%q: key %s value differs", in, k)
			}
			if s, ok := v.Str(); ok {
				if ws, isStr := want.(string); !isStr || ws != s {
					t.Fatalf("%q: key %s Str=%q want %q", in, k, s, want)
				}
			} else if _, isStr := want.(string); isStr {
				t.Fatalf("%q: key %s: Str failed on a string", in, k)
			}
			if v.Truthy() != pyTruthy(t, want) {
				t.Fatalf("%q: key %s Truthy=%v", in, k, v.Truthy())
			}
		}
		// Lookup of every key encoding/json found (bounded).
		n := 0
		for k, raw := range m {
			if n++; n > 16 {
				break
			}
			v, err := Lookup(in, k)
			if err != nil || !bytes.Equal(v.Raw, raw) {
				t.Fatalf("%q: Lookup(%q) = %q,%v want %q", in, k, v.Raw, err, raw)
			}
		}
	})
}

func FuzzFrame(f *testing.F) {
	f.Add([]byte{}, uint16(0))
	f.Add(AppendFrame(nil, []byte(`{"with_binary": true}`), []byte("data"), []byte("bin"), true), uint16(5))
	f.Add(AppendFrame(nil, []byte(`{"with_binary": 0}`), []byte("data"), []byte("bin"), true), uint16(9))
	f.Add(append(AppendFrame(nil, []byte(`{}`), nil, nil, false), AppendFrame(nil, []byte(`{"a": [1]}`), []byte("x"), nil, false)...), uint16(13))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}, uint16(2))
	f.Add([]byte{3, 0, 0, 0, 9, 0, '{'}, uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		const max = 1 << 12
		if size, err := FrameSize(in, max); err == nil && size > 0 && size <= len(in) {
			if fr, err := ParseBody(in[LenPrefix:size]); err == nil {
				roundTrip(t, fr)
			}
			// The connector's path: the same body twice through one memo (stored, then hit)
			// decodes exactly as without it.
			var m HeaderMemo
			for range 2 {
				var hm, hp Header
				fm, em := ParseBodyHeaderMemo(in[LenPrefix:size], &hm, &m)
				fp, ep := ParseBodyHeaderMemo(in[LenPrefix:size], &hp, nil)
				if (em == nil) != (ep == nil) || (em != nil && em.Error() != ep.Error()) ||
					!reflect.DeepEqual(fm, fp) || !reflect.DeepEqual(hm, hp) {
					t.Fatalf("memo decode differs: %v %+v %+v, without: %v %+v %+v", em, fm, hm, ep, fp, hp)
				}
			}
		}
		whole := decodeAll(t, max, in)
		cut := 0
		if len(in) > 0 {
			cut = int(split) % (len(in) + 1)
		}
		parts := decodeAll(t, max, in[:cut], in[cut:])
		if !reflect.DeepEqual(whole, parts) {
			t.Fatalf("split at %d differs:\n%v\n%v", cut, whole, parts)
		}
		bytewise := make([][]byte, len(in))
		for i := range in {
			bytewise[i] = in[i : i+1]
		}
		if one := decodeAll(t, max, bytewise...); !reflect.DeepEqual(whole, one) {
			t.Fatalf("byte-by-byte feed differs:\n%v\n%v", whole, one)
		}
		// Encode arbitrary sections, decode them back.
		j := []byte(`{"message_type": "any", "with_binary": true}`)
		fr := AppendFrame(nil, j, in, in[cut:], true)
		got, err := ParseBody(fr[LenPrefix:])
		if err != nil || !bytes.Equal(got.Data, in) || !bytes.Equal(got.Binary, in[cut:]) || len(got.Trailing) != 0 {
			t.Fatalf("encode/decode: %v", err)
		}
	})
}

type decoded struct {
	Frame Frame
	Err   string
}

func decodeAll(t *testing.T, max uint32, chunks ...[]byte) []decoded {
	d := Decoder{MaxFrame: max}
	var out []decoded
	for _, c := range chunks {
		d.Feed(c)
		for i := 0; ; i++ {
			if i > 1<<16 {
				t.Fatal("Decoder does not make progress")
			}
			fr, ok, err := d.Next()
			if err != nil {
				out = append(out, decoded{Err: err.Error()})
				if errors.Is(err, ErrFrameTooLarge) {
					return out
				}
				continue
			}
			if !ok {
				break
			}
			roundTrip(t, fr)
			out = append(out, decoded{Frame: cloneFrame(fr)})
		}
	}
	return out
}

func roundTrip(t *testing.T, fr Frame) {
	enc := AppendFrame(nil, fr.JSON, fr.Data, fr.Binary, fr.HasBinary)
	got, err := ParseBody(enc[LenPrefix:])
	if err != nil {
		t.Fatalf("re-parse: %v", err)
	}
	if !bytes.Equal(got.JSON, fr.JSON) || !bytes.Equal(got.Data, fr.Data) || !bytes.Equal(got.Binary, fr.Binary) ||
		got.HasBinary != fr.HasBinary || len(got.Trailing) != 0 {
		t.Fatalf("round trip differs")
	}
}

func FuzzSetKey(f *testing.F) {
	for i, s := range append(vectorJSON(), trickyJSON...) {
		f.Add([]byte(s), uint8(i), uint8(i/3))
	}
	keys := []string{"k", KeyWithBinary, KeyTransportID, "a", "é", "\x00", "bad\xff", ""}
	raws := []string{`1`, `"v"`, `true`, `null`, `{"x": [1, 2]}`, `[]`, `1.0e5`, ` 1`, `x`, `"\u00e9"`}
	f.Fuzz(func(t *testing.T, in []byte, ki, ri uint8) {
		key := keys[int(ki)%len(keys)]
		raw := []byte(raws[int(ri)%len(raws)])
		m, ok := asObject(in)
		rawOK := json.Valid(raw) && bytes.Equal(bytes.TrimSpace(raw), raw)
		out, err := SetKey([]byte("P"), in, key, raw)
		if want := ok && rawOK && utf8.ValidString(key); (err == nil) != want {
			t.Fatalf("SetKey(%q, %q, %q) err=%v, want ok=%v", in, key, raw, err, want)
		}
		if err == nil {
			checkRewrite(t, m, out, key, raw)
		} else if string(out) != "P" || !errors.Is(err, ErrBadJSON) {
			t.Fatalf("SetKey error path: %q %v", out, err)
		}
		out, err = DeleteKey([]byte("P"), in, key)
		if (err == nil) != ok {
			t.Fatalf("DeleteKey(%q, %q) err=%v, want ok=%v", in, key, err, ok)
		}
		if err == nil {
			checkRewrite(t, m, out, key, nil)
		}
	})
}

// checkRewrite checks out ("P" + JSON) against the original members m: key
// has value raw (or is absent when raw is nil), every other key unchanged.
func checkRewrite(t *testing.T, m map[string]json.RawMessage, out []byte, key string, raw []byte) {
	if out[0] != 'P' {
		t.Fatal("dst prefix lost")
	}
	out = out[1:]
	m2, ok := asObject(out)
	if !ok {
		t.Fatalf("output is not a valid object: %q", out)
	}
	var h Header
	if err := ScanHeader(out, &h); err != nil {
		t.Fatalf("ScanHeader rejects output %q: %v", out, err)
	}
	for k, v := range m {
		if k == key {
			continue
		}
		if !bytes.Equal(m2[k], v) {
			t.Fatalf("key %q changed: %q -> %q in %q", k, v, m2[k], out)
		}
	}
	got, present := m2[key]
	if raw == nil {
		if present {
			t.Fatalf("key %q still present in %q", key, out)
		}
	} else if !present || !bytes.Equal(got, raw) {
		t.Fatalf("key %q = %q want %q in %q", key, got, raw, out)
	}
	want := len(m)
	if _, had := m[key]; had && raw == nil {
		want--
	} else if !had && raw != nil {
		want++
	}
	if len(m2) != want {
		t.Fatalf("%d keys, want %d: %q", len(m2), want, out)
	}
}
