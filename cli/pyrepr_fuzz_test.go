package cli

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aioconn/aioconn/codec"
)

var pyJSONSeeds = []string{
	`{"message_type": "any", "source_id": "client1", "request_id": 1, "await_response": true}`,
	`{"a": null, "b": false, "c": [1, 2.5, "x"], "d": {"e": 1e16}}`,
	`{"s": "('127.0.0.1', 10673)"}`,
	`{"f": 1.0, "g": 0.0001, "h": 0.00001, "i": 123456789012345678901234567890}`,
	`{"u": "\u00e9\n"}`, `{"queue_send": {"b": 1, "a": 2}, "queue_recv": 0}`,
	`[1, [], {"\u00e9": null, "t": true}]`, `"x"`, `"\ud800"`, `"\ud83d\ude00"`, "\"\xff\"",
	`{"a": 1, "a": 2}`, `1e400`, `-0.0`, `[[[[[]]]]]`,
	``, `[Errno 2] No such file or directory`, `{} {}`, `{`, `1 2`, `{"a":1}x`, `[1,]`, `{"a" 1}`,
}

// FuzzPyReprJSON: pyReprJSON never panics; invalid JSON (including trailing data, which
// json.loads rejects) is rendered as the repr of the text; a JSON string as the repr of the
// str json.loads makes of it.
func FuzzPyReprJSON(f *testing.F) {
	for _, s := range pyJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := pyReprJSON(b)
		if !json.Valid(b) {
			if want := string(codec.AppendPyReprStr(nil, string(b))); got != want {
				t.Fatalf("pyReprJSON(%q) = %s, want the str repr %s", b, got, want)
			}
			return
		}
		if got == "" {
			t.Fatalf("pyReprJSON(%q) is empty", b)
		}
		var s string
		if json.Unmarshal(b, &s) == nil && utf8.Valid(b) && !strings.Contains(strings.ToLower(string(b)), `\ud`) {
			if want := string(codec.AppendPyReprStr(nil, s)); got != want {
				t.Fatalf("pyReprJSON(%q) = %s, want %s", b, got, want)
			}
		}
	})
}

// FuzzPyJSONIndent: pyJSONIndent never panics, accepts exactly one JSON value (json.Valid), and
// its output is JSON text that decodes to the same value as the input.
func FuzzPyJSONIndent(f *testing.F) {
	for _, s := range pyJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := pyJSONIndent(b)
		if valid := json.Valid(b); ok != valid {
			t.Fatalf("pyJSONIndent(%q) ok=%v, json.Valid=%v", b, ok, valid)
		}
		if !ok {
			return
		}
		decode := func(p []byte) any {
			dec := json.NewDecoder(bytes.NewReader(p))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("decode %q: %v", p, err)
			}
			return v
		}
		if !json.Valid(out) {
			t.Fatalf("pyJSONIndent(%q) = %q: not JSON", b, out)
		}
		for _, c := range out {
			if c >= 0x80 {
				t.Fatalf("pyJSONIndent(%q) = %q: not ASCII (ensure_ascii)", b, out)
			}
		}
		if in, o := decode(b), decode(out); !reflect.DeepEqual(in, o) {
			t.Fatalf("pyJSONIndent(%q) = %q decodes to %#v, want %#v", b, out, o, in)
		}
		if again, ok := pyJSONIndent(out); !ok || !bytes.Equal(again, out) {
			t.Fatalf("pyJSONIndent not idempotent on %q: %q", out, again)
		}
	})
}
