package connector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// filesTJ is the transport JSON the expected strings below were rendered with, by
// python3 -c "print(TEMPLATE.format(**json.loads(filesTJ)))" (CPython 3.11).
const filesTJ = `{"message_type": "any", "source_id": "('127.0.0.1', 10673)", "destination_id": "client1", "request_id": 7, "response_id": "r\u00e9", "with_binary": true, "await_response": false, "with_file": {"src_path": "/tmp/a", "dst_type": "any", "dst_name": "sub/a.txt", "delete": false, "owner": null, "chunked": ["a.txt__aioconnectors_chunk", 1, 13], "n": 1.5}, "f1": 1.0, "f2": 1e16, "f3": 1e-05, "f4": 123456789012345678901234567890, "f5": -0, "f6": -0.0, "f7": 0.1, "f8": 1e400, "f9": 2.5e-7, "f10": 123456789.123456789, "q": "it's", "dq": "say \"hi\"", "both": "a'b\"c", "ctl": "a\nb\u0001\u00ff\u2028", "lst": [1, "x", true, null, {"k": [2.0]}], "empty": {}, "el": [], "big": 9007199254740993, "exp": 1E2, "neg": -12}`

func TestPyFormatPython(t *testing.T) {
	cases := []struct{ tmpl, want string }{
		{"/tmp/aioconnectors/{message_type}/{source_id}/", "/tmp/aioconnectors/any/('127.0.0.1', 10673)/"},
		{"{source_id}/{with_file[dst_name]}", "('127.0.0.1', 10673)/sub/a.txt"},
		{"{request_id}{response_id}{with_binary}{await_response}", "7r\u00e9TrueFalse"},
		{"{with_file}", "{'src_path': '/tmp/a', 'dst_type': 'any', 'dst_name': 'sub/a.txt', 'delete': False, 'owner': None, 'chunked': ['a.txt__aioconnectors_chunk', 1, 13], 'n': 1.5}"},
		{"{with_file[owner]}|{with_file[chunked]}|{with_file[n]}|{with_file[delete]}", "None|['a.txt__aioconnectors_chunk', 1, 13]|1.5|False"},
		{"{f1} {f2} {f3} {f4} {f5} {f6} {f7} {f8} {f9} {f10}", "1.0 1e+16 1e-05 123456789012345678901234567890 0 -0.0 0.1 inf 2.5e-07 123456789.12345679"},
		{"{q} {dq} {both} {ctl}", "it's say \"hi\" a'b\"c a\nb\u0001\u00ff\u2028"},
		{"{lst} {empty} {el}", "[1, 'x', True, None, {'k': [2.0]}] {} []"},
		{"{lst[0]}{lst[4][k][0]}", "12.0"},
		{"{{literal}} {{{message_type}}} }}", "{literal} {any} }"},
		{"{big} {exp} {neg}", "9007199254740993 100.0 -12"},
		{"{message_type!r} {request_id!s} {ctl!r}", "'any' 7 'a\\nb\\x01\u00ff\\u2028'"},
		{"{with_file[chunked][0]}", "a.txt__aioconnectors_chunk"},
		{"{lst[01]}", "x"},
		{"{message_type[0]}", "a"},
		{"{message_type:}", "any"},
		{"{message_type!r:}", "'any'"},
		{"{response_id!a} {q!r} {both!r}", `'r\xe9' "it's" 'a\'b"c'`},
		{"", ""},
		{"no fields", "no fields"},
	}
	for _, c := range cases {
		got, err := PyFormat(c.tmpl, []byte(filesTJ))
		if err != nil || got != c.want {
			t.Errorf("%q:\n got  %q, %v\n want %q", c.tmpl, got, err, c.want)
		}
	}
}

func TestPyFormatErrors(t *testing.T) {
	// Python raises for all of these (texts in comments); the last ones Python renders but
	// we refuse (format specs, attribute access).
	cases := []struct{ tmpl, want string }{
		{"{unknown}", `unknown key "unknown"`},             // KeyError: 'unknown'
		{"{ message_type}", `unknown key " message_type"`}, // KeyError
		{"{}", "Replacement index"},                        // IndexError
		{"{0}", "Replacement index 0"},                     // IndexError
		{"{message_type", "expected '}' before end of string"},
		{"a}b", "Single '}' encountered in format string"},
		{"{message_type[x]}", "string indices must be integers"},
		{"{with_file[nokey]}", `unknown key "nokey"`},
		{"{lst[9]}", "list index out of range"},
		{"{lst[x]}", "list indices must be integers or slices, not str"},
		{"{lst[-1]}", "list indices must be integers or slices, not str"},
		{"{lst[ 0]}", "list indices must be integers or slices, not str"},
		{"{with_file[chunked][1][0]}", "'int' object is not subscriptable"},
		{"{a{b}", "unexpected '{' in field name"},
		{"{message_type!x}", "Unknown conversion specifier x"},
		{"{message_type!}", "unmatched '{' in format spec"},
		{"{message_type!r", "unmatched '{' in format spec"},
		{"{message_type!rx}", "expected ':' after conversion specifier"},
		{"{message_type!", "end of string while looking for conversion specifier"},
		{"{with_file[]}", "Empty attribute in format string"},
		{"{with_file[dst_name}", "expected '}' before end of string"},
		{"{with_file[dst_name]x}", "Only '.' or '[' may follow ']'"},
		{"{with_file[0]}", "unknown key 0"},
		{"{message_type:>10}", "format spec ':>10' is not supported"},
		{"{request_id:d}", "not supported"},
		{"{message_type.upper}", "attribute access"},
	}
	for _, c := range cases {
		got, err := PyFormat(c.tmpl, []byte(filesTJ))
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), strconv.Quote(c.tmpl)) {
			t.Errorf("%q: got %q, %v; want error containing %q", c.tmpl, got, err, c.want)
		}
	}
	for _, js := range []string{``, `[]`, `{"a": 1`, `{"a": 1} x`, `"s"`} {
		if _, err := PyFormat("{a}", []byte(js)); !errors.Is(err, ErrFormat) {
			t.Errorf("JSON %q: %v", js, err)
		}
	}
	// The JSON is only needed when there is a field.
	if got, err := PyFormat("/plain/{{x}}", []byte("not json")); err != nil || got != "/plain/{x}" {
		t.Errorf("plain: %q %v", got, err)
	}
	// Duplicate keys: json.loads keeps the first position and the last value.
	if got, err := PyFormat("{d}|{a}", []byte(`{"a": 1, "d": {"x": 1, "y": 2, "x": 3}, "a": 2}`)); err != nil || got != "{'x': 3, 'y': 2}|2" {
		t.Errorf("duplicates: %q %v", got, err)
	}
}

func TestPyFloatRepr(t *testing.T) {
	// python3: str(json.loads(n))
	cases := [][2]string{{"0.0", "0.0"}, {"-0.0", "-0.0"}, {"1.5", "1.5"}, {"1e16", "1e+16"}, {"1e15", "1000000000000000.0"}, {"123456789012345.6", "123456789012345.6"}, {"1234567890123456.7", "1234567890123456.8"}, {"0.0001", "0.0001"}, {"0.00001", "1e-05"}, {"1e-4", "0.0001"}, {"5e-324", "5e-324"}, {"1.7976931348623157e308", "1.7976931348623157e+308"}, {"1e308", "1e+308"}, {"1E400", "inf"}, {"-1E400", "-inf"}, {"3.141592653589793", "3.141592653589793"}, {"100.0", "100.0"}, {"1e22", "1e+22"}, {"12345678901234567890.0", "1.2345678901234567e+19"}, {"0.1e1", "1.0"}, {"2.5E-7", "2.5e-07"}, {"-1.25e-10", "-1.25e-10"}, {"9999999999999999.0", "1e+16"}, {"999999999999999.9", "999999999999999.9"}, {"1e-5", "1e-05"}, {"0.000123", "0.000123"}}
	for _, c := range cases {
		if got := string(appendPyNumber(nil, c[0])); got != c[1] {
			t.Errorf("%s: got %s want %s", c[0], got, c[1])
		}
	}
}

func TestTargetPathPython(t *testing.T) {
	t.Setenv("AC_SUB", "subdir")
	os.Unsetenv("NOPE_X")
	// python3: abspath(normpath(expandvars(expanduser(join(d, n)))))
	cases := [][3]string{
		{"/srv/in/", "a.txt", "/srv/in/a.txt"},
		{"/srv/in", "sub/a.txt", "/srv/in/sub/a.txt"},
		{"/srv/in/", "a/../b.txt", "/srv/in/b.txt"},
		{"/srv/in/", "./x", "/srv/in/x"},
		{"/srv/in/", "$AC_SUB/f", "/srv/in/subdir/f"},
		{"/srv/in/", "$NOPE_X/f", "/srv/in/$NOPE_X/f"},
		{"/srv/in/", "x//y", "/srv/in/x/y"},
		{"/srv/in//", "x/", "/srv/in/x"},
		{"/srv/in/", "~x", "/srv/in/~x"},
		{"//srv/in/", "a", "//srv/in/a"},
		{"/", "etc/x", "/etc/x"},
	}
	for _, c := range cases {
		got, err := TargetPath(c[0], c[1])
		if err != nil || got != c[2] {
			t.Errorf("TargetPath(%q, %q) = %q, %v; want %q", c[0], c[1], got, err, c[2])
		}
	}
}

func TestTargetPathTraversal(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "in")
	outside := filepath.Join(root, "out")
	for _, d := range []string{dir, outside, filepath.Join(dir, "realsub")} {
		os.MkdirAll(d, 0o755)
	}
	os.Symlink(outside, filepath.Join(dir, "escape"))
	os.Symlink("../out/f", filepath.Join(dir, "escfile"))
	os.Symlink("realsub", filepath.Join(dir, "oksub"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling"))
	os.Symlink("loop", filepath.Join(dir, "loop"))
	t.Setenv("AC_UP", "../..")
	refused := []string{
		"../x", "/etc/passwd", "a/../../x", "..", ".", "", "a/..", "x\x00y",
		"escape/f", "escape", "escfile", "dangling", "loop/x", "$AC_UP/x",
		"../in2/x", // sibling with the same prefix
	}
	for _, n := range refused {
		got, err := TargetPath(dir+"/", n)
		if !errors.Is(err, ErrTraversal) {
			t.Errorf("%q: got %q, %v; want ErrTraversal", n, got, err)
			continue
		}
		if n != "" && !strings.Contains(err.Error(), strconv.Quote(n)) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%q: error does not name dst_name and dir: %v", n, err)
		}
	}
	allowed := map[string]string{
		"a.txt":        dir + "/a.txt",
		"new/deep/f":   dir + "/new/deep/f",
		"oksub/f":      dir + "/oksub/f",
		"realsub/../b": dir + "/b",
		"escape_not/x": dir + "/escape_not/x",
		"..hidden":     dir + "/..hidden",
	}
	for n, want := range allowed {
		if got, err := TargetPath(dir, n); err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", n, got, err, want)
		}
	}
	if _, err := TargetPath("", "a"); !errors.Is(err, ErrNoTargetDir) {
		t.Errorf("empty dir: %v", err)
	}
	// The target directory itself may be a symlink (configuration).
	link := filepath.Join(root, "link")
	os.Symlink(dir, link)
	if got, err := TargetPath(link, "oksub/f"); err != nil || got != link+"/oksub/f" {
		t.Errorf("linked dir: %q %v", got, err)
	}
	if _, err := TargetPath(link, "escape/f"); !errors.Is(err, ErrTraversal) {
		t.Errorf("linked dir escape: %v", err)
	}
}

func TestChunkInfo(t *testing.T) {
	ok := []struct {
		wf   string
		want Chunk
	}{
		{`{"dst_name": "a__aioconnectors_chunk_2_13", "chunked": ["a__aioconnectors_chunk", 2, 13]}`, Chunk{"a__aioconnectors_chunk", 2, 13}},
		{`{"chunked": ["d/x.bin__aioconnectors_chunk", 1, 1]}`, Chunk{"d/x.bin__aioconnectors_chunk", 1, 1}},
	}
	for _, c := range ok {
		got, found, err := ChunkInfo([]byte(c.wf))
		if err != nil || !found || got != c.want {
			t.Errorf("%s: %+v %v %v", c.wf, got, found, err)
		}
	}
	if c := (Chunk{"a__aioconnectors_chunk", 2, 13}); c.FileName() != "a__aioconnectors_chunk_2_13" || c.DstName() != "a" {
		t.Errorf("names %s %s", c.FileName(), c.DstName())
	}
	for _, wf := range []string{`{}`, `{"chunked": null}`, `{"chunked": []}`, `{"chunked": false}`, `{"chunked": ""}`} {
		if _, found, err := ChunkInfo([]byte(wf)); found || err != nil {
			t.Errorf("%s: found=%v err=%v", wf, found, err)
		}
	}
	for _, wf := range []string{`{"chunked": ["a__aioconnectors_chunk", 2]}`, `{"chunked": ["a__aioconnectors_chunk", "2", 3]}`,
		`{"chunked": ["a", 1, 3]}`, `{"chunked": [1, 1, 3]}`, `{"chunked": ["a__aioconnectors_chunk", 4, 3]}`,
		`{"chunked": ["a__aioconnectors_chunk", 0, 3]}`, `{"chunked": ["a__aioconnectors_chunk", 1.0, 3]}`,
		`{"chunked": "x"}`, `{"chunked": ["__aioconnectors_chunk", 1, 1]}`, `not json`} {
		if _, found, err := ChunkInfo([]byte(wf)); found || !errors.Is(err, ErrBadChunk) {
			t.Errorf("%s: found=%v err=%v", wf, found, err)
		}
	}
}

func writeChunks(t *testing.T, dir, base string, parts [][]byte, only ...int) {
	t.Helper()
	n := len(parts)
	for i, p := range parts {
		if len(only) > 0 && !containsInt(only, i+1) {
			continue
		}
		name := fmt.Sprintf("%s_%d_%d", base, i+1, n)
		if err := os.WriteFile(filepath.Join(dir, name), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestReassembleChunks13: 13 chunks are joined in numeric order (1.0.33 would give
// 1,10,11,12,13,2,...: a corrupted file).
func TestReassembleChunks13(t *testing.T) {
	dir := t.TempDir()
	base := "big.bin" + ChunkIndicator
	var parts [][]byte
	var want []byte
	for i := 1; i <= 13; i++ {
		p := bytes.Repeat([]byte{byte('A' + i - 1)}, 1000+i)
		parts = append(parts, p)
		want = append(want, p...)
	}
	// A stale chunk of another transfer and unrelated files do not count.
	os.WriteFile(filepath.Join(dir, base+"_1_2"), []byte("stale"), 0o644)
	os.WriteFile(filepath.Join(dir, base+"_01_13"), []byte("odd"), 0o644)
	writeChunks(t, dir, base, parts, 1, 2, 3, 10, 11, 12, 13)
	dst, done, err := ReassembleChunks(dir, base, 13, false)
	if done || err != nil || dst != filepath.Join(dir, "big.bin") {
		t.Fatalf("partial: %q %v %v", dst, done, err)
	}
	writeChunks(t, dir, base, parts)
	dst, done, err = ReassembleChunks(dir, base, 13, false)
	if !done || err != nil {
		t.Fatalf("full: %v %v", done, err)
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, want) {
		t.Fatalf("content differs (%d vs %d bytes)", len(got), len(want))
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "big.bin,big.bin__aioconnectors_chunk_01_13,big.bin__aioconnectors_chunk_1_2" {
		t.Fatalf("left: %v", names)
	}
	if st, _ := os.Stat(dst); st.Mode().Perm()&0o600 != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}

	// Exists, no override: chunks removed, file kept (Python).
	writeChunks(t, dir, base, parts[:2])
	dst, done, err = ReassembleChunks(dir, base, 2, false)
	if !done || !errors.Is(err, ErrFileExists) {
		t.Fatalf("exists: %v %v", done, err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, want) {
		t.Fatal("existing file changed")
	}
	if _, err := os.Stat(filepath.Join(dir, base+"_2_2")); err == nil {
		t.Fatal("chunks not removed")
	}
	// Override: replaced.
	writeChunks(t, dir, base, parts[:2])
	if _, done, err = ReassembleChunks(dir, base, 2, true); !done || err != nil {
		t.Fatalf("override: %v %v", done, err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, append(bytes.Clone(parts[0]), parts[1]...)) {
		t.Fatal("override content")
	}
	for _, b := range []string{"", "a/b" + ChunkIndicator, "x", ChunkIndicator} {
		if _, _, err := ReassembleChunks(dir, b, 2, true); !errors.Is(err, ErrBadChunk) {
			t.Errorf("basename %q: %v", b, err)
		}
	}
	if _, _, err := ReassembleChunks(filepath.Join(dir, "missing"), base, 2, true); err == nil {
		t.Error("missing dir: no error")
	}
}

func TestParseOwner(t *testing.T) {
	u, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Skip(err)
	}
	uid, gid, ok := ParseOwner(u.Username + ":" + g.Name)
	if !ok || strconv.Itoa(uid) != u.Uid || strconv.Itoa(gid) != u.Gid {
		t.Fatalf("%s:%s -> %d %d %v", u.Username, g.Name, uid, gid, ok)
	}
	for _, s := range []string{"", u.Username, ":", u.Username + ":", ":" + g.Name, "no_such_user_x:" + g.Name, u.Username + ":no_such_group_x"} {
		if _, _, ok := ParseOwner(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzPyFormat(f *testing.F) {
	f.Add("/tmp/{message_type}/{source_id}/{with_file[dst_name]}", []byte(filesTJ))
	f.Add("{lst[4][k][0]!r:}{{}}", []byte(filesTJ))
	f.Add("{a[", []byte(`{"a": [1]}`))
	f.Add("{f}", []byte(`{"f": 1e-7}`))
	f.Fuzz(func(t *testing.T, tmpl string, js []byte) {
		out, err := PyFormat(tmpl, js)
		if err != nil && (!errors.Is(err, ErrFormat) || out != "") {
			t.Fatalf("%q: %q %v", tmpl, out, err)
		}
		if err == nil && !strings.ContainsAny(tmpl, "{}") && out != tmpl {
			t.Fatalf("plain %q rendered %q", tmpl, out)
		}
	})
}

func FuzzTargetPath(f *testing.F) {
	root := f.TempDir()
	dir := filepath.Join(root, "in")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.Symlink(root, filepath.Join(dir, "up"))
	os.Symlink("sub", filepath.Join(dir, "side"))
	for _, s := range []string{"a", "../x", "/etc/passwd", "a/../../x", "up/x", "side/../../x", "$HOME/x", "~/x", "sub/./../sub/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		p, err := TargetPath(dir, name)
		if err != nil {
			if p != "" || !errors.Is(err, ErrTraversal) {
				t.Fatalf("%q: %q %v", name, p, err)
			}
			return
		}
		if !strings.HasPrefix(p, dir+"/") || filepath.Clean(p) != p {
			t.Fatalf("%q resolved outside: %q", name, p)
		}
		if r, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil && !strings.HasPrefix(r+"/", dir+"/") {
			t.Fatalf("%q resolves through a symlink to %q", name, r)
		}
	})
}

// BenchmarkPyFormat: the usual target_directory template.
func BenchmarkPyFormat(b *testing.B) {
	js := []byte(`{"message_type": "any", "source_id": "client1", "destination_id": "('127.0.0.1', 10673)", "with_file": {"src_path": "/tmp/a", "dst_type": "any", "dst_name": "a.txt"}}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := PyFormat("/tmp/aioconnectors/{message_type}/{source_id}/", js); err != nil {
			b.Fatal(err)
		}
	}
}
