package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAioconnLayout pins the FormatAioconn bytes: header, then per record the mark, the
// CRC32C of the frame and the frame unaltered (even when it holds the separator or the mark).
func TestAioconnLayout(t *testing.T) {
	f1 := frame(`{"message_type": "any"}`, "x"+Separator+RecordMark+Magic, "", false)
	f2 := frame(`{"message_type": "any", "with_binary": true}`, "", Separator[:25], true)
	path := filepath.Join(t.TempDir(), "p")
	s := Open(path, 0)
	if err := s.AppendBatch([][]byte{f1, f2}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, _ := os.ReadFile(path)
	want := []byte("\x89AIOCP\r\n\x01\x00\x00\x00")
	for _, f := range [][]byte{f1, f2} {
		want = append(want, 0xac, 'R', 'E', 'C')
		want = binary.LittleEndian.AppendUint32(want, crc32.Checksum(f, crc32.MakeTable(crc32.Castagnoli)))
		want = append(want, f...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file\n got  %q\n want %q", got, want)
	}
	if s.Size() != int64(len(want)) {
		t.Fatalf("Size %d", s.Size())
	}
	recs, err := loadAll(t, path)
	if err != nil || len(recs) != 2 || !bytes.Equal(recs[0], f1) || !bytes.Equal(recs[1], f2) {
		t.Fatalf("%q %v", recs, err)
	}
	if f, ok := Detect(got); f != FormatAioconn || !ok {
		t.Fatal("Detect")
	}
}

// TestAioconnTornTail cuts the file at every byte of the last record (a crash during the
// write): the earlier records load, the cut bytes are one damaged range, and LoadAndRemove
// keeps exactly those bytes aside and removes the file.
func TestAioconnTornTail(t *testing.T) {
	fs := testFrames(4)
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	writeFrames(t, full, fs)
	b, _ := os.ReadFile(full)
	lastStart := len(b) - len(fs[3]) - RecordOverhead
	cut := filepath.Join(dir, "cut")
	for end := lastStart + 1; end < len(b); end++ {
		os.WriteFile(cut, b[:end], 0o666)
		got, err := loadAll(t, cut)
		var de *DamageError
		if len(got) != 3 || !errors.As(err, &de) || !errors.Is(err, ErrCorruptRecord) ||
			len(de.Ranges) != 1 || de.Ranges[0] != (Range{int64(lastStart), int64(end - lastStart)}) {
			t.Fatalf("cut at %d: %d records, %v", end, len(got), err)
		}
		n, err := LoadAndRemove(cut, 0, func([]byte) error { return nil })
		if n != 3 || !errors.As(err, &de) || Exists(cut) {
			t.Fatalf("cut at %d: LoadAndRemove %d %v", end, n, err)
		}
		aside, _ := os.ReadFile(de.Aside)
		if !bytes.Equal(aside, b[lastStart:end]) || de.Aside != cut+".corrupt-"+itoa(lastStart) ||
			!strings.Contains(err.Error(), cut) || !strings.Contains(err.Error(), "offset "+itoa(lastStart)) {
			t.Fatalf("cut at %d: aside %s %d bytes; %v", end, de.Aside, len(aside), err)
		}
		os.Remove(de.Aside)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestAioconnCorruptMiddle: a flipped byte (in the mark, the CRC, the length or the payload)
// costs only that record; loading resumes at the next intact record.
func TestAioconnCorruptMiddle(t *testing.T) {
	fs := testFrames(6)
	dir := t.TempDir()
	path := filepath.Join(dir, "p")
	writeFrames(t, path, fs)
	b, _ := os.ReadFile(path)
	start := HeaderLen
	for i := 0; i < 2; i++ {
		start += RecordOverhead + len(fs[i])
	}
	end := start + RecordOverhead + len(fs[2])
	for _, at := range []int{start, start + 5, start + RecordOverhead + 1, start + RecordOverhead + 7, end - 1} {
		c := bytes.Clone(b)
		c[at] ^= 0x40
		os.WriteFile(path, c, 0o666)
		got, err := loadAll(t, path)
		var de *DamageError
		if len(got) != 5 || !bytes.Equal(got[2], fs[3]) || !errors.As(err, &de) || len(de.Ranges) != 1 ||
			de.Ranges[0] != (Range{int64(start), int64(end - start)}) {
			t.Fatalf("flip at %d: %d records, %v", at, len(got), err)
		}
	}
}

// TestAioconnAppendAfterTornTail: a torn tail followed by records appended after a restart
// loses only the torn bytes.
func TestAioconnAppendAfterTornTail(t *testing.T) {
	fs := testFrames(4)
	path := filepath.Join(t.TempDir(), "p")
	writeFrames(t, path, fs[:2])
	b, _ := os.ReadFile(path)
	os.WriteFile(path, b[:len(b)-5], 0o666)
	s := Open(path, 0)
	s.AppendBatch(fs[2:])
	s.Close()
	got, err := loadAll(t, path)
	if len(got) != 3 || !bytes.Equal(got[0], fs[0]) || !bytes.Equal(got[1], fs[2]) || !bytes.Equal(got[2], fs[3]) ||
		!errors.Is(err, ErrBadRecord) {
		t.Fatalf("%d %v", len(got), err)
	}
}

// TestStoreKeepsFileFormat: a Store appends in the format of the file it finds (a Python file
// left by a Python connector stays a Python file), and in its own format for new files.
func TestStoreKeepsFileFormat(t *testing.T) {
	fs := testFrames(4)
	dir := t.TempDir()
	py := filepath.Join(dir, "py")
	writeFramesF(t, py, fs[:2], FormatPython)
	s := Open(py, 0)
	s.AppendBatch(fs[2:])
	s.Close()
	b, _ := os.ReadFile(py)
	if !bytes.HasPrefix(b, sep) || bytes.Contains(b, mark) {
		t.Fatal("Python file got aioconn records")
	}
	if got, err := loadAll(t, py); err != nil || len(got) != 4 {
		t.Fatalf("%d %v", len(got), err)
	}
	ours := filepath.Join(dir, "ours")
	writeFrames(t, ours, fs[:2])
	s = OpenFormat(ours, 0, FormatPython)
	s.AppendBatch(fs[2:])
	s.Close()
	if got, err := loadAll(t, ours); err != nil || len(got) != 4 {
		t.Fatalf("%d %v", len(got), err)
	}
	if b, _ := os.ReadFile(ours); bytes.Contains(b, sep) {
		t.Fatal("aioconn file got Python records")
	}
}

// TestStoreFileRemovedUnderneath: when the file is deleted behind an open Store
// (delete_previous_persistence_remains), the next commit creates a new file instead of
// writing into the unlinked one.
func TestStoreFileRemovedUnderneath(t *testing.T) {
	fs := testFrames(3)
	for _, ft := range []Format{FormatAioconn, FormatPython} {
		path := filepath.Join(t.TempDir(), "p")
		s := OpenFormat(path, 0, ft)
		s.Append(fs[0])
		s.Flush()
		os.Remove(path)
		s.Append(fs[1])
		s.Append(fs[2])
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		got, err := loadAll(t, path)
		if err != nil || len(got) != 2 || !bytes.Equal(got[0], fs[1]) {
			t.Fatalf("%v: %d %v", ft, len(got), err)
		}
		if st, _ := os.Stat(path); st.Size() != s.Size() {
			t.Fatalf("%v: Size %d file %d", ft, s.Size(), st.Size())
		}
		s.Close()
	}
}

// TestMoveTo: the file is handed over whole; later appends start a new file.
func TestMoveTo(t *testing.T) {
	fs := testFrames(3)
	dir := t.TempDir()
	path, work := filepath.Join(dir, "p"), filepath.Join(dir, "p.replay")
	s := Open(path, 0)
	if ok, err := s.MoveTo(work); ok || err != nil {
		t.Fatalf("no file: %v %v", ok, err)
	}
	s.Append(fs[0])
	s.Append(fs[1])
	if ok, err := s.MoveTo(work); !ok || err != nil || Exists(path) {
		t.Fatalf("move: %v %v", ok, err)
	}
	s.Append(fs[2])
	s.Close()
	a, err1 := loadAll(t, work)
	b, err2 := loadAll(t, path)
	if err1 != nil || err2 != nil || len(a) != 2 || len(b) != 1 || !bytes.Equal(b[0], fs[2]) {
		t.Fatalf("%d %d %v %v", len(a), len(b), err1, err2)
	}
}

// TestUnsupportedVersion: a file of another version is set aside whole, never deleted.
func TestUnsupportedVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	writeFrames(t, path, testFrames(2))
	b, _ := os.ReadFile(path)
	b[len(Magic)] = 2
	os.WriteFile(path, b, 0o666)
	n, err := LoadAndRemove(path, 0, func([]byte) error { t.Fatal("called"); return nil })
	var de *DamageError
	if n != 0 || !errors.Is(err, ErrUnsupportedVersion) || !errors.As(err, &de) || Exists(path) {
		t.Fatalf("%d %v", n, err)
	}
	if a, _ := os.ReadFile(de.Aside); !bytes.Equal(a, b) {
		t.Fatal("aside differs")
	}
}

// TestParseFormat covers the names.
func TestParseFormat(t *testing.T) {
	for s, want := range map[string]Format{"": FormatAioconn, "aioconn": FormatAioconn, "python": FormatPython} {
		if f, ok := ParseFormat(s); !ok || f != want || (s != "" && f.String() != s) {
			t.Errorf("%q: %v %v", s, f, ok)
		}
	}
	if _, ok := ParseFormat("json"); ok {
		t.Error("json accepted")
	}
}
