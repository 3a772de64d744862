package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aioconn/aioconn/codec"
)

// frame builds a complete frame with the codec.
func frame(json, data, bin string, withBinary bool) []byte {
	return codec.AppendFrame(nil, []byte(json), []byte(data), []byte(bin), withBinary)
}

// splitFrames splits concatenated frames (each with its prefix).
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("short frame tail %d", len(b))
		}
		n := int(binary.LittleEndian.Uint32(b)) + 4
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func loadAll(t testing.TB, path string) ([][]byte, error) {
	t.Helper()
	var got [][]byte
	n, err := Load(path, func(f []byte) error {
		got = append(got, bytes.Clone(f))
		return nil
	})
	if n != len(got) {
		t.Fatalf("Load returned n=%d, delivered %d", n, len(got))
	}
	return got, err
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Skipf("golden file missing (%v); regenerate with testdata/gen_golden.py", err)
	}
	return b
}

// TestGoldenPython1033 checks the file the real 1.0.33 connector wrote (server, disk
// persistence on, 10 messages to the absent client1, one with the separator in data and
// binary): Load yields what 1.0.33's loader yields, and Append of the frames the API sent
// produces the very same bytes.
func TestGoldenPython1033(t *testing.T) {
	file := readTestdata(t, "python1033_send_to_client1")
	frames := splitFrames(t, readTestdata(t, "python1033_frames"))
	loaded := splitFrames(t, readTestdata(t, "python1033_loaded"))
	if len(frames) != 10 || len(loaded) != 10 {
		t.Fatalf("golden: %d frames, %d loaded", len(frames), len(loaded))
	}

	got, err := loadAll(t, filepath.Join("testdata", "python1033_send_to_client1"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(got) != len(loaded) {
		t.Fatalf("Load: %d records, Python loaded %d", len(got), len(loaded))
	}
	for i := range got {
		if !bytes.Equal(got[i], loaded[i]) {
			t.Errorf("record %d:\n got  %q\n want %q", i, got[i], loaded[i])
		}
	}

	dir := t.TempDir()
	path := SendPath(dir, "127001_10673", "client1")
	s := OpenFormat(path, 0, FormatPython)
	for i, f := range frames {
		if err := s.Append(f); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mine, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mine, file) {
		t.Fatalf("Append output differs from the 1.0.33 file (%d vs %d bytes)", len(mine), len(file))
	}

	// Same with one batch.
	path2 := path + "_batch"
	s2 := OpenFormat(path2, 0, FormatPython)
	if err := s2.AppendBatch(frames); err != nil {
		t.Fatal(err)
	}
	if s2.Buffered() != 0 {
		t.Fatal("AppendBatch left bytes buffered")
	}
	mine2, _ := os.ReadFile(path2)
	if !bytes.Equal(mine2, file) {
		t.Fatal("AppendBatch output differs from the 1.0.33 file")
	}
	s2.Close()
}

func TestAppendRecordReplacement(t *testing.T) {
	S, R := Separator, Replacement
	cases := []struct{ name, in, want string }{
		{"plain", "abc", "abc"},
		{"empty", "", ""},
		{"whole", S, R},
		{"middle", "x" + S + "y", "x" + R + "y"},
		{"twice", S + S, R + R},
		{"overlapping", "@@@PERSISTENCE_SEPARATOR@@@PERSISTENCE_SEPARATOR@@@", R + "PERSISTENCE_SEPARATOR@@@"},
		{"partial head", "@@@PERSISTENCE_", "@@@PERSISTENCE_"},
		{"tail 23 kept", "x" + S[:23], "x" + S[:23]},
		{"tail 24 altered", "x" + S[:24], "x#" + S[1:24]},
		{"tail 25 altered", "x" + S[:25], "x#" + S[1:25]},
		{"tail 26 altered", "x" + S[:26], "x#" + S[1:26]},
		{"replacement then tail", S + S[:24], R + "#" + S[1:24]},
		{"four at signs", "@@@@", "@@@@"},
	}
	for _, c := range cases {
		got := AppendRecord([]byte("pre"), []byte(c.in))
		want := "pre" + S + c.want
		if string(got) != want {
			t.Errorf("%s: got %q want %q", c.name, got, want)
		}
		if len(got) != 3+SepLen+len(c.in) {
			t.Errorf("%s: length changed", c.name)
		}
		if strings.Count(string(got[3:]), S) != 1 {
			t.Errorf("%s: record holds %d separators", c.name, strings.Count(string(got[3:]), S))
		}
	}
}

func TestSizeRule(t *testing.T) {
	for _, ft := range []Format{FormatPython, FormatAioconn} {
		f := frame(`{"message_type": "any"}`, "0123456789", "", false)
		rec, head := int64(len(f)+SepLen), int64(0)
		if ft == FormatAioconn {
			rec, head = int64(len(f)+RecordOverhead), int64(HeaderLen)
		}
		cases := []struct {
			max      int64
			fits     int // records that fit
			preexist int64
		}{
			{head + rec, 1, 0},
			{head + rec - 1, 0, 0},
			{head + 2*rec - 1, 1, 0},
			{head + 2*rec, 2, 0},
			{rec + 30, 0, 31},
			{rec + 30, 1, 30},
		}
		for i, c := range cases {
			path := filepath.Join(t.TempDir(), "p")
			if c.preexist > 0 {
				// an existing file in the format under test
				pre := bytes.Repeat([]byte{'x'}, int(c.preexist))
				copy(pre, sep)
				if ft == FormatAioconn {
					copy(pre, header)
				}
				os.WriteFile(path, pre, 0o666)
			}
			s := OpenFormat(path, c.max, ft)
			stored := 0
			for k := 0; k < 3; k++ {
				err := s.Append(f)
				if err == nil {
					stored++
					continue
				}
				if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("Cannot store message of size %d", len(f))) ||
					!strings.Contains(err.Error(), path) {
					t.Fatalf("%v case %d: error %v", ft, i, err)
				}
			}
			if stored != c.fits {
				t.Errorf("%v case %d: stored %d, want %d", ft, i, stored, c.fits)
			}
			want := c.preexist + int64(stored)*rec
			if c.preexist == 0 && stored > 0 {
				want += head
			}
			if got := s.Size(); got != want {
				t.Errorf("%v case %d: Size %d want %d", ft, i, got, want)
			}
			s.Close()
			if got := s.Size(); got != want && stored > 0 {
				t.Errorf("%v case %d: Size after Close %d want %d", ft, i, got, want)
			}
		}
	}
}

func TestAppendBadFrame(t *testing.T) {
	s := Open(filepath.Join(t.TempDir(), "p"), 0)
	for _, f := range [][]byte{nil, {1, 0}, {5, 0, 0, 0, 1}} {
		if err := s.Append(f); !errors.Is(err, ErrBadFrame) {
			t.Errorf("Append(%v) = %v", f, err)
		}
	}
	good := frame(`{"a": 1}`, "d", "", false)
	err := s.AppendBatch([][]byte{good, {1, 2}, good})
	if !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("AppendBatch: %v", err)
	}
	s.Close()
	got, err := loadAll(t, s.Path())
	if err != nil || len(got) != 2 {
		t.Fatalf("Load: %d %v", len(got), err)
	}
}

func testFrames(n int) [][]byte {
	var fs [][]byte
	for i := 0; i < n; i++ {
		switch i % 4 {
		case 0:
			fs = append(fs, frame(fmt.Sprintf(`{"message_type": "any", "request_id": %d}`, i), fmt.Sprint("data", i), "", false))
		case 1:
			fs = append(fs, frame(`{"message_type": "any", "with_binary": true}`, "d", strings.Repeat("b", i), true))
		case 2:
			fs = append(fs, frame(`{"message_type": "x"}`, "", "", false))
		case 3:
			fs = append(fs, frame(`{"message_type": "y", "with_binary": true}`, strings.Repeat("z", 3000), "\x00\x01", true))
		}
	}
	return fs
}

func writeFrames(t testing.TB, path string, fs [][]byte) {
	t.Helper()
	writeFramesF(t, path, fs, FormatAioconn)
}

func writeFramesF(t testing.TB, path string, fs [][]byte, f Format) {
	t.Helper()
	s := OpenFormat(path, 0, f)
	if err := s.AppendBatch(fs); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashTruncation cuts the file at every byte of the last record: the earlier records
// survive, the cut record is skipped with ErrBadRecord.
func TestCrashTruncation(t *testing.T) {
	fs := testFrames(3)
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	writeFramesF(t, full, fs, FormatPython)
	b, _ := os.ReadFile(full)
	lastStart := len(b) - len(fs[2]) - SepLen
	cut := filepath.Join(dir, "cut")
	for end := lastStart; end < len(b); end++ {
		os.WriteFile(cut, b[:end], 0o666)
		got, err := loadAll(t, cut)
		// A cut inside the separator leaves trailing bytes after record 2, ignored as by
		// Python; from the full separator on the third record is there and truncated.
		wantBad := end >= lastStart+SepLen
		if len(got) != 2 || !bytes.Equal(got[0], fs[0]) || !bytes.Equal(got[1], fs[1]) {
			t.Fatalf("cut at %d: %d records", end, len(got))
		}
		if wantBad != (err != nil) || (err != nil && !errors.Is(err, ErrBadRecord)) {
			t.Fatalf("cut at %d: err %v", end, err)
		}
	}
	// A bare trailing separator (crash between the separator and the frame) is a bad record.
	os.WriteFile(cut, append(bytes.Clone(b), sep...), 0o666)
	got, err := loadAll(t, cut)
	if len(got) != 3 || !errors.Is(err, ErrBadRecord) || !errors.Is(err, codec.ErrTruncated) {
		t.Fatalf("trailing separator: %d %v", len(got), err)
	}
}

func TestLoadCorruptMiddleContinues(t *testing.T) {
	fs := testFrames(3)
	path := filepath.Join(t.TempDir(), "p")
	var b []byte
	b = AppendRecord(b, fs[0])
	b = append(b, sep...)
	b = append(b, "garbage that is not a frame"...)
	b = AppendRecord(b, fs[1])
	b = AppendRecord(b, []byte{9, 0, 0, 0, 3, 0, 'a', 'b', 'c', 0, 0, 0, 0}) // JSON not an object
	b = AppendRecord(b, fs[2])
	os.WriteFile(path, b, 0o666)
	got, err := loadAll(t, path)
	if len(got) != 3 || !bytes.Equal(got[2], fs[2]) {
		t.Fatalf("got %d records", len(got))
	}
	if !errors.Is(err, ErrBadRecord) || !strings.Contains(err.Error(), "2 record(s)") {
		t.Fatalf("err %v", err)
	}
}

// TestLoadInvalidFile: a file in neither format loads nothing, is reported as damaged (with
// ErrInvalidFile) and is left alone by Load; an empty file or a torn aioconn header is just
// empty.
func TestLoadInvalidFile(t *testing.T) {
	dir := t.TempDir()
	for i, content := range []string{"@@@PERSISTENCE_SEPARATOR@@", "xx" + Separator, Replacement, "\x89AIOCP\r\nzz"} {
		p := filepath.Join(dir, fmt.Sprint("f", i))
		os.WriteFile(p, []byte(content), 0o666)
		n, err := Load(p, func([]byte) error { t.Fatal("called"); return nil })
		var de *DamageError
		if n != 0 || !errors.Is(err, ErrBadRecord) || !errors.As(err, &de) || !strings.Contains(err.Error(), p) ||
			len(de.Ranges) != 1 || de.Ranges[0] != (Range{0, int64(len(content))}) {
			t.Errorf("%q: %d %v", content, n, err)
		}
		if i < 3 && !errors.Is(err, ErrInvalidFile) {
			t.Errorf("%q: %v", content, err)
		}
		if _, serr := os.Stat(p); serr != nil {
			t.Errorf("Load removed %s", p)
		}
	}
	for i, content := range []string{"", Magic[:3], string(header[:HeaderLen-1])} {
		p := filepath.Join(dir, fmt.Sprint("e", i))
		os.WriteFile(p, []byte(content), 0o666)
		if n, err := Load(p, nil); n != 0 || err != nil {
			t.Errorf("%q: %d %v", content, n, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing"), nil); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

// TestLoadRecomputesPrefix: the record's own prefix is ignored, trailing bytes dropped.
func TestLoadRecomputesPrefix(t *testing.T) {
	f := frame(`{"message_type": "any"}`, "abc", "", false)
	bad := bytes.Clone(f)
	binary.LittleEndian.PutUint32(bad, 9999)
	bad = append(bad, "trailing"...)
	// with_binary falsy: binary section present in the record but not parsed (Python).
	wb := frame(`{"with_binary": false}`, "d", "bin", true)
	path := filepath.Join(t.TempDir(), "p")
	os.WriteFile(path, append(append(append([]byte(Separator), bad...), Separator...), wb...), 0o666)
	got, err := loadAll(t, path)
	if err != nil || len(got) != 2 {
		t.Fatalf("%d %v", len(got), err)
	}
	if !bytes.Equal(got[0], f) {
		t.Errorf("got %q want %q", got[0], f)
	}
	if want := frame(`{"with_binary": false}`, "d", "", false); !bytes.Equal(got[1], want) {
		t.Errorf("got %q want %q", got[1], want)
	}
}

// TestLoadSeparatorTail: a file written by Python with a frame ending in the first 24-26
// bytes of the separator (which Python itself cannot read back) loads whole.
func TestLoadSeparatorTail(t *testing.T) {
	for m := SepLen - 3; m < SepLen; m++ {
		f1 := frame(`{"message_type": "any"}`, "abc"+Separator[:m], "", false)
		f2 := frame(`{"message_type": "any"}`, "second", "", false)
		f3 := frame(`{"message_type": "any", "with_binary": true}`, "third", "xx"+Separator[:m], true)
		var b []byte
		for _, f := range [][]byte{f1, f2, f3, f2} {
			b = append(append(b, sep...), f...) // unaltered, as Python writes it
		}
		path := filepath.Join(t.TempDir(), "p")
		os.WriteFile(path, b, 0o666)
		got, err := loadAll(t, path)
		if err != nil || len(got) != 4 || !bytes.Equal(got[0], f1) || !bytes.Equal(got[1], f2) || !bytes.Equal(got[2], f3) || !bytes.Equal(got[3], f2) {
			t.Fatalf("m=%d: %d records, err %v: %q", m, len(got), err, got)
		}
	}
}

func TestLoadChunkBoundaries(t *testing.T) {
	// Many records of varied sizes cross the 64 KiB read boundaries everywhere.
	var fs [][]byte
	for i := 0; i < 400; i++ {
		fs = append(fs, frame(`{"message_type": "any", "with_binary": true}`, strings.Repeat("@", i*7%1000), strings.Repeat("\x40", i*13%700), true))
	}
	fs = append(fs, frame(`{"message_type": "big"}`, strings.Repeat("q", 300_000), "", false))
	for _, ft := range []Format{FormatAioconn, FormatPython} {
		path := filepath.Join(t.TempDir(), "p")
		writeFramesF(t, path, fs, ft)
		got, err := loadAll(t, path)
		if err != nil || len(got) != len(fs) {
			t.Fatalf("%v: %d %v", ft, len(got), err)
		}
		for i := range fs {
			if !bytes.Equal(got[i], fs[i]) {
				t.Fatalf("%v: record %d differs", ft, i)
			}
		}
	}
}

func TestLoadOversizedRecordSkipped(t *testing.T) {
	old := maxRecord
	maxRecord = 1000
	defer func() { maxRecord = old }()
	fs := [][]byte{
		frame(`{"a": 1}`, "x", "", false),
		frame(`{"a": 2}`, strings.Repeat("y", 200_000), "", false),
		frame(`{"a": 3}`, "z", "", false),
	}
	path := filepath.Join(t.TempDir(), "p")
	writeFramesF(t, path, fs, FormatPython)
	got, err := loadAll(t, path)
	if len(got) != 2 || !bytes.Equal(got[1], fs[2]) || !errors.Is(err, ErrBadRecord) || !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Fatalf("%d %v", len(got), err)
	}
}

func TestLoadCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	writeFrames(t, path, testFrames(5))
	stop := errors.New("stop")
	calls := 0
	n, err := Load(path, func([]byte) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if n != 2 || !errors.Is(err, stop) {
		t.Fatalf("%d %v", n, err)
	}
}

func TestLoadAndRemove(t *testing.T) {
	for _, ft := range []Format{FormatAioconn, FormatPython} {
		t.Run(ft.String(), func(t *testing.T) { testLoadAndRemove(t, ft) })
	}
}

func testLoadAndRemove(t *testing.T, ft Format) {
	writeFrames := func(t testing.TB, path string, fs [][]byte) { t.Helper(); writeFramesF(t, path, fs, ft) }
	fs := testFrames(10)
	dir := t.TempDir()
	path := filepath.Join(dir, "p")

	// Everything: file removed.
	writeFrames(t, path, fs)
	got := 0
	n, err := LoadAndRemove(path, 0, func(f []byte) error {
		if !bytes.Equal(f, fs[got]) {
			t.Fatalf("record %d differs", got)
		}
		got++
		return nil
	})
	if n != 10 || err != nil || Exists(path) {
		t.Fatalf("all: %d %v exists=%v", n, err, Exists(path))
	}

	// Limited: the rest stays, in order, over several rounds.
	writeFrames(t, path, fs)
	os.Chmod(path, 0o640)
	var all [][]byte
	for round := 0; round < 10 && Exists(path); round++ {
		n, err := LoadAndRemove(path, 3, func(f []byte) error {
			all = append(all, bytes.Clone(f))
			return nil
		})
		if err != nil || (n != 3 && n != 1) {
			t.Fatalf("round %d: %d %v", round, n, err)
		}
		if Exists(path) {
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Fatalf("mode %v", st.Mode())
			}
		}
	}
	if len(all) != 10 || Exists(path) {
		t.Fatalf("rounds: %d records, exists=%v", len(all), Exists(path))
	}
	for i := range fs {
		if !bytes.Equal(all[i], fs[i]) {
			t.Fatalf("record %d differs", i)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left files: %v", ents)
	}

	// Exactly max records: the file goes.
	writeFrames(t, path, fs[:3])
	if n, err := LoadAndRemove(path, 3, func([]byte) error { return nil }); n != 3 || err != nil || Exists(path) {
		t.Fatalf("exact: %d %v", n, err)
	}

	// Callback refuses the 4th: it and the rest stay.
	writeFrames(t, path, fs)
	stop := errors.New("queue full")
	calls := 0
	n, err = LoadAndRemove(path, 0, func([]byte) error {
		calls++
		if calls == 4 {
			return stop
		}
		return nil
	})
	if n != 3 || !errors.Is(err, stop) {
		t.Fatalf("refuse: %d %v", n, err)
	}
	rest, err := loadAll(t, path)
	if err != nil || len(rest) != 7 || !bytes.Equal(rest[0], fs[3]) {
		t.Fatalf("rest: %d %v", len(rest), err)
	}

	// Invalid file: removed (Python deletes it), its bytes kept aside.
	os.WriteFile(path, []byte("nonsense"), 0o666)
	if n, err := LoadAndRemove(path, 0, nil); n != 0 || !errors.Is(err, ErrInvalidFile) || Exists(path) ||
		!strings.Contains(err.Error(), path+".corrupt-0") {
		t.Fatalf("invalid: %d %v", n, err)
	}
	if b, _ := os.ReadFile(path + ".corrupt-0"); string(b) != "nonsense" {
		t.Fatalf("aside: %q", b)
	}
	os.Remove(path + ".corrupt-0")

	// Bad last record: the file goes, the damaged tail is kept aside.
	writeFramesF(t, path, fs[:2], ft)
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-3], 0o666)
	var de *DamageError
	if n, err := LoadAndRemove(path, 0, func([]byte) error { return nil }); n != 1 || !errors.Is(err, ErrBadRecord) || Exists(path) ||
		!errors.As(err, &de) || de.Aside == "" {
		t.Fatalf("bad: %d %v", n, err)
	}
	if a, _ := os.ReadFile(de.Aside); int64(len(a)) != de.Ranges[0].Len || de.Ranges[0].Off+de.Ranges[0].Len != int64(len(b)-3) {
		t.Fatalf("aside %d bytes, ranges %v", len(a), de.Ranges)
	}
	os.Remove(de.Aside)
	if _, err := LoadAndRemove(path, 0, nil); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestStoreReopenAndBuffering(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	fs := testFrames(4)
	s := Open(path, 0)
	if s.Size() != 0 || Exists(path) {
		t.Fatal("Open created the file")
	}
	s.Append(fs[0])
	if s.Buffered() == 0 {
		t.Fatal("Append not buffered")
	}
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatal("written before Flush")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Append(fs[1])
	s.Close()
	s.Append(fs[2]) // reopens, appends after
	s.Close()
	s2 := Open(path, 0)
	s2.Append(fs[3])
	s2.Close()
	got, err := loadAll(t, path)
	if err != nil || len(got) != 4 {
		t.Fatalf("%d %v", len(got), err)
	}
	if st, _ := os.Stat(path); st.Size() != s2.Size() {
		t.Fatalf("Size %d vs %d", s2.Size(), st.Size())
	}
	// Big frame (> commit size) goes straight to the file, order kept.
	big := frame(`{"big": true}`, strings.Repeat("B", commitSize+5), "", false)
	s2.Append(fs[0])
	s2.Append(big)
	s2.Append(fs[1])
	s2.Close()
	got, err = loadAll(t, path)
	if err != nil || len(got) != 7 || !bytes.Equal(got[5], big) || !bytes.Equal(got[6], fs[1]) {
		t.Fatalf("big: %d %v", len(got), err)
	}
	// Append to a missing directory fails cleanly.
	bad := Open(filepath.Join(path, "sub", "p"), 0)
	if err := bad.Append(fs[0]); err == nil || !strings.Contains(err.Error(), "persist: open") {
		t.Fatalf("bad dir: %v", err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	s := Open(path, 0)
	fs := testFrames(8)
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				if err := s.Append(fs[g]); err != nil {
					t.Error(err)
				}
				if i%50 == 0 {
					s.Flush()
				}
			}
		}(g)
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	s.Close()
	got, err := loadAll(t, path)
	if err != nil || len(got) != 1600 {
		t.Fatalf("%d %v", len(got), err)
	}
}

func TestPathsAndDeleteRemains(t *testing.T) {
	dir := t.TempDir()
	if got := SendPath(dir, "127001_10673", "('127.0.0.1', 10673)"); got != dir+"/connector_disk_persistence_send_from_127001_10673_to_peer_12700110673" {
		t.Errorf("SendPath %s", got)
	}
	if got := RecvPath(dir, "client1", "any"); got != dir+"/connector_disk_persistence_recv_by_client1_any" {
		t.Errorf("RecvPath %s", got)
	}
	names := map[string]bool{
		"connector_disk_persistence_send_from_127001_10673_to_peer_client1": true,
		"connector_disk_persistence_send_from_127001_10673_to_peer_":        true,
		"connector_disk_persistence_recv_by_127001_10673_any":               true,
		"connector_disk_persistence_recv_by_127001_10673_any.tail123":       true,
		"connector_disk_persistence_send_from_127001_1067_to_peer_x":        false,
		"connector_disk_persistence_recv_by_127001_10673":                   false,
		"uds_path_commander_127001_10673":                                   false,
		"other":                                                             false,
	}
	for n := range names {
		os.WriteFile(filepath.Join(dir, n), nil, 0o666)
	}
	var warned []string
	if err := DeleteRemains(dir, "127001_10673", func(p string) { warned = append(warned, p) }); err != nil {
		t.Fatal(err)
	}
	for n, del := range names {
		if Exists(filepath.Join(dir, n)) == del {
			t.Errorf("%s: deleted=%v", n, !del)
		}
	}
	if len(warned) != 4 {
		t.Errorf("warned %v", warned)
	}
	if err := DeleteRemains(filepath.Join(dir, "missing"), "x", nil); err == nil {
		t.Error("missing dir: no error")
	}
}
