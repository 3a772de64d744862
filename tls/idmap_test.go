package tls

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceIDMapJSON(t *testing.T) {
	var m SourceIDMap
	if got := string(m.AppendJSON(nil)); got != `{"source_id_2_cert": {}, "cert_2_source_id": {}}` {
		t.Errorf("empty: %s", got)
	}
	m.Set("a\"b\\c", "01")
	m.Set("é€😀\n\t\x01\x7f", "02")
	m.Set("x", "03")
	// json.dumps of the same dict (Python 3.11):
	want := `{"source_id_2_cert": {"a\"b\\c": "01", "\u00e9\u20ac\ud83d\ude00\n\t\u0001\u007f": "02", "x": "03"}, ` +
		`"cert_2_source_id": {"01": "a\"b\\c", "02": "\u00e9\u20ac\ud83d\ude00\n\t\u0001\u007f", "03": "x"}}`
	if got := string(m.AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	back, err := ParseSourceIDMap([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if string(back.AppendJSON(nil)) != want {
		t.Error("round trip")
	}
	// re-setting keeps the place; removing drops both sides; Python dict order otherwise
	m.Set("a\"b\\c", "04")
	if s, _ := m.Serial("a\"b\\c"); s != "04" || m.Names()[0] != "a\"b\\c" {
		t.Errorf("re-set: %v", m.Names())
	}
	if _, ok := m.Remove("x"); !ok {
		t.Error("remove x")
	}
	if _, ok := m.Name("03"); ok {
		t.Error("serial of x still mapped")
	}
	if _, ok := m.Remove("x"); ok {
		t.Error("second remove")
	}
	if m.Len() != 2 {
		t.Errorf("len %d", m.Len())
	}
}

func TestParseSourceIDMap(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		names   string // Names() joined with ","
		encoded string // "" = same as in
	}{
		{`{"source_id_2_cert": {}, "cert_2_source_id": {}}`, true, "", ""},
		{`{}`, true, "", `{"source_id_2_cert": {}, "cert_2_source_id": {}}`},
		{`{"cert_2_source_id": {"01": "a"}, "source_id_2_cert": {"a": "01"}}`, true, "a",
			`{"source_id_2_cert": {"a": "01"}, "cert_2_source_id": {"01": "a"}}`},
		{`{"source_id_2_cert":{"b":"02","a":"01","b":"03"},"cert_2_source_id":{},"other":[1,{"x":2}]}`, true, "b,a",
			`{"source_id_2_cert": {"b": "03", "a": "01"}, "cert_2_source_id": {}}`},
		{` {"source_id_2_cert": {"a": "01"}} ` + "\n", true, "a", `{"source_id_2_cert": {"a": "01"}, "cert_2_source_id": {}}`},
		{``, false, "", ""},
		{`[]`, false, "", ""},
		{`{"source_id_2_cert": {"a": 1}}`, false, "", ""},
		{`{"source_id_2_cert": []}`, false, "", ""},
		{`{"source_id_2_cert": {}} {}`, false, "", ""},
		{`{"source_id_2_cert": {"a": "01"`, false, "", ""},
		{"{\"source_id_2_cert\": {\"\xff\": \"01\"}}", false, "", ""},
	} {
		m, err := ParseSourceIDMap([]byte(tc.in))
		if !tc.ok {
			if err == nil || !errors.Is(err, ErrMap) {
				t.Errorf("%q: err %v, want ErrMap", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := strings.Join(m.Names(), ","); got != tc.names {
			t.Errorf("%q: names %q want %q", tc.in, got, tc.names)
		}
		want := tc.encoded
		if want == "" {
			want = tc.in
		}
		if got := string(m.AppendJSON(nil)); got != want {
			t.Errorf("%q: encoded %s want %s", tc.in, got, want)
		}
	}
}

func TestReadWriteSourceIDMap(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "source_id_2_cert.json")
	m, err := ReadSourceIDMap(p)
	if err != nil || m.Len() != 0 {
		t.Fatalf("missing file: %v %v", m, err)
	}
	m.Set("client1", "47AE5E40784ABD1765B0C845C91269B8E3C73EE5")
	if err := WriteSourceIDMap(p, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat %v %v", fi, err)
	}
	data, _ := os.ReadFile(p)
	if string(data) != `{"source_id_2_cert": {"client1": "47AE5E40784ABD1765B0C845C91269B8E3C73EE5"}, "cert_2_source_id": {"47AE5E40784ABD1765B0C845C91269B8E3C73EE5": "client1"}}` {
		t.Errorf("file %s", data)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	os.WriteFile(p, []byte("{"), 0o644)
	if _, err := ReadSourceIDMap(p); !errors.Is(err, ErrMap) || !strings.Contains(err.Error(), p) {
		t.Errorf("corrupt file: %v", err)
	}
}
