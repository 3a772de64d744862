package persist

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/aioconn/aioconn/codec"
)

// FuzzLoad: any file content loads without panicking; every delivered frame is a complete
// frame (prefix matches) that the codec parses; n counts the deliveries.
func FuzzLoad(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "python1033_send_to_client1")); err == nil {
		f.Add(b)
	}
	var b []byte
	for _, fr := range testFrames(4) {
		b = AppendRecord(b, fr)
	}
	f.Add(b)
	f.Add([]byte(Separator))
	f.Add([]byte(Separator + Separator))
	f.Add(append([]byte(Separator), frame(`{"a": 1}`, "x"+Separator[:24], "", false)...))
	f.Add([]byte("junk"))
	ours := Header()
	for _, fr := range testFrames(3) {
		ours = AppendAioconnRecord(ours, fr)
	}
	f.Add(ours)
	f.Add(ours[:len(ours)-3])
	f.Add(append([]byte("junk"), ours[HeaderLen:]...))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(dir, "p")
		if err := os.WriteFile(path, content, 0o666); err != nil {
			t.Fatal(err)
		}
		calls := 0
		n, _ := Load(path, func(fr []byte) error {
			calls++
			if len(fr) < 4 || int(binary.LittleEndian.Uint32(fr)) != len(fr)-4 {
				t.Fatalf("bad prefix in %q", fr)
			}
			p, err := codec.ParseBody(fr[4:])
			if err != nil || len(p.Trailing) != 0 {
				t.Fatalf("delivered unparsable frame %q: %v", fr, err)
			}
			if len(fr) > len(content) {
				t.Fatalf("frame longer than the file")
			}
			return nil
		})
		if n != calls {
			t.Fatalf("n=%d calls=%d", n, calls)
		}
	})
}

// FuzzRoundTrip: frames written with Append come back from Load, altered only as
// AppendRecord documents.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), []byte("bin"), uint8(3))
	f.Add([]byte("x"+Separator+"y"), []byte(Separator+Separator[:25]), uint8(2))
	f.Add([]byte(Separator[:24]), []byte(""), uint8(5))
	f.Add([]byte("x"+Separator+"y"), []byte(Separator+Separator[:25]), uint8(0x82))
	f.Add([]byte(Separator[:24]), []byte(RecordMark+Magic), uint8(0x85))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data, bin []byte, count uint8) {
		n := int(count%8) + 1
		var want [][]byte
		path := filepath.Join(dir, "p")
		os.Remove(path)
		ft := FormatAioconn
		if count&0x80 != 0 {
			ft = FormatPython
		}
		s := OpenFormat(path, 0, ft)
		for i := 0; i < n; i++ {
			var fr []byte
			d := data[:len(data)*i/n]
			if i%2 == 0 {
				fr = codec.AppendFrame(nil, []byte(`{"message_type": "any", "with_binary": true}`), d, bin, true)
			} else {
				fr = codec.AppendFrame(nil, []byte(`{"message_type": "any"}`), d, nil, false)
			}
			if err := s.Append(fr); err != nil {
				t.Fatal(err)
			}
			if ft == FormatPython {
				want = append(want, AppendRecord(nil, fr)[SepLen:])
			} else {
				want = append(want, fr) // never altered
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		_, err := Load(path, func(fr []byte) error { got = append(got, bytes.Clone(fr)); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%d records, want %d", len(got), n)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("record %d: got %q want %q", i, got[i], want[i])
			}
		}
	})
}
