package persist

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rotate keeps benchmark files small (the page cache, not the disk, is measured): every
// 1<<16 records the file is closed and removed with the timer stopped.
func rotate(b *testing.B, s *Store, i int) {
	if i&(1<<16-1) != 1<<16-1 {
		return
	}
	b.StopTimer()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	os.Remove(s.Path())
	b.StartTimer()
}

func benchFrame() []byte {
	return frame(`{"message_type": "any", "source_id": "('127.0.0.1', 10673)", "destination_id": "client1", "request_id": 1}`,
		strings.Repeat("d", 100), "", false)
}

// BenchmarkAppend: buffered appends with the default 256 KiB group commit (one write per
// ~1500 records of this size).
func BenchmarkAppend(b *testing.B) {
	fr := benchFrame()
	s := Open(filepath.Join(b.TempDir(), "p"), 1<<62)
	b.ReportAllocs()
	b.SetBytes(int64(len(fr) + SepLen))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Append(fr); err != nil {
			b.Fatal(err)
		}
		rotate(b, s, i)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendFlushEach: one write system call per record (Python's pattern, minus the
// open/close per record).
func BenchmarkAppendFlushEach(b *testing.B) {
	fr := benchFrame()
	s := Open(filepath.Join(b.TempDir(), "p"), 1<<62)
	b.ReportAllocs()
	b.SetBytes(int64(len(fr) + SepLen))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Append(fr); err != nil {
			b.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			b.Fatal(err)
		}
		rotate(b, s, i)
	}
	s.Close()
}

// BenchmarkAppendBatch64: batches of 64 records, one write each.
func BenchmarkAppendBatch64(b *testing.B) {
	fr := benchFrame()
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = fr
	}
	s := Open(filepath.Join(b.TempDir(), "p"), 1<<62)
	b.ReportAllocs()
	b.SetBytes(int64(64 * (len(fr) + SepLen)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
		rotate(b, s, i<<6|63)
	}
	s.Close()
}

// BenchmarkLoad: streaming load of 10 000 records (per record cost).
func BenchmarkLoad(b *testing.B) {
	fr := benchFrame()
	path := filepath.Join(b.TempDir(), "p")
	s := Open(path, 1<<62)
	for i := 0; i < 10000; i++ {
		s.Append(fr)
	}
	s.Close()
	st, _ := os.Stat(path)
	b.ReportAllocs()
	b.SetBytes(st.Size() / 10000)
	b.ResetTimer()
	for i := 0; i < b.N; i += 10000 {
		if _, err := Load(path, func([]byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpillReplay: the persistence round trip of one 100-byte message in the default
// format: Store.Append (group commit) and LoadAndRemove of the file, in files of 10 000
// records (issue target: at least 500 000 messages/s).
func BenchmarkSpillReplay(b *testing.B) {
	for _, ft := range []Format{FormatAioconn, FormatPython} {
		b.Run(ft.String(), func(b *testing.B) {
			fr := frame(`{"message_type": "any", "source_id": "client1", "destination_id": "('127.0.0.1', 10673)"}`,
				strings.Repeat("d", 100), "", false)
			path := filepath.Join(b.TempDir(), "p")
			s := OpenFormat(path, 1<<62, ft)
			const per = 10000
			b.ReportAllocs()
			b.SetBytes(int64(len(fr)))
			b.ResetTimer()
			for done := 0; done < b.N; done += per {
				n := min(per, b.N-done)
				for i := 0; i < n; i++ {
					if err := s.Append(fr); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				got, err := LoadAndRemove(path, 0, func([]byte) error { return nil })
				if err != nil || got != n {
					b.Fatal(got, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
