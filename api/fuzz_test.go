package api

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/aioconn/aioconn/codec"
)

// splitReader returns at most n bytes per Read, to split frames anywhere.
type splitReader struct {
	r io.Reader
	n int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(p) > s.n {
		p = p[:s.n]
	}
	return s.r.Read(p)
}

// FuzzFrameReader: the receive/await reader never panics, agrees with codec.ParseBody on
// valid frames whatever the read sizes, and stops at the first bad frame.
func FuzzFrameReader(f *testing.F) {
	for _, session := range []string{"nossl_p2p", "nossl_pubsub"} {
		dir := filepath.Join(wireDirOrEmpty(), session)
		for _, pat := range []string{"streams/uds_recv_*.bin", "*uds_send_*_conn2app_*.bin", "*uds_recv_*.bin"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			for _, p := range m {
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b, 7)
				}
			}
		}
	}
	f.Add(codec.AppendFrame(nil, []byte(`{"with_binary": 1}`), []byte("d"), []byte("b"), true), 1)
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0}, 3)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		if split <= 0 || split > 1<<16 {
			split = 1 + (split&0xff+256)%256
		}
		fr := newFrameReader(&splitReader{bytes.NewReader(b), split}, 4096)
		fr.max = 1 << 20
		rest := b
		for i := 0; i < 1000; i++ {
			got, err := fr.next()
			if err != nil {
				return
			}
			size, err := codec.FrameSize(rest, 1<<20)
			if err != nil || size == 0 || size > len(rest) {
				t.Fatalf("frame %d returned but the input has no complete frame", i)
			}
			want, err := codec.ParseBody(rest[4:size])
			if err != nil {
				t.Fatalf("frame %d: reader accepted what ParseBody rejects: %v", i, err)
			}
			if !bytes.Equal(got.JSON, want.JSON) || !bytes.Equal(got.Data, want.Data) ||
				!bytes.Equal(got.Binary, want.Binary) || got.HasBinary != want.HasBinary {
				t.Fatalf("frame %d differs", i)
			}
			rest = rest[size:]
		}
	})
}

func wireDirOrEmpty() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "testdata", "wire")
		}
		dir = filepath.Dir(dir)
	}
	return ""
}
