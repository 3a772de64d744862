package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"testing"
)

// telemetry returns n frames of ~300-byte metric records (the telemetry-like payload).
func telemetry(n int) []byte {
	var out []byte
	for i := 0; i < n; i++ {
		js := []byte(fmt.Sprintf(`{"message_type": "metrics", "source_id": "sensor_%03d", "destination_id": "server", "request_id": %d}`, i%50, i))
		data := []byte(fmt.Sprintf(`{"host": "node-%03d.dc1.example.net", "metric": "cpu.utilization", "ts": %d, "value": %d.%02d, "tags": {"region": "eu-west-1", "rack": "r%02d", "env": "production", "service": "ingest"}, "unit": "percent", "interval_s": 10}`,
			i%100, 1764187200000+int64(i)*10, i%97, i%100, i%40))
		out = AppendFrame(out, js, data, nil, false)
	}
	return out
}

func zRoundTrip(t *testing.T, kind byte, src []byte, feed int) {
	t.Helper()
	c, err := NewCompressor(kind)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	enc := c.Encode(nil, src)
	var d Decompressor
	defer d.Close()
	pre := bytes.Repeat([]byte{'p'}, 3*ZChunkMax) // earlier bytes still held by the reader
	got, pend := pre[:len(pre):len(pre)], []byte(nil)
	for off := 0; off < len(enc); {
		n := feed
		if off+n > len(enc) {
			n = len(enc) - off
		}
		pend = append(pend, enc[off:off+n]...)
		off += n
		var used int
		got, used, err = d.Decode(got, pend, 1<<30)
		if err != nil {
			t.Fatalf("kind %d feed %d: %v", kind, feed, err)
		}
		pend = pend[used:]
	}
	got = got[len(pre):]
	if len(pend) != 0 || !bytes.Equal(got, src) {
		t.Fatalf("kind %d feed %d: %d bytes left over, equal %v", kind, feed, len(pend), bytes.Equal(got, src))
	}
}

func TestCompressRoundTrip(t *testing.T) {
	rnd := make([]byte, 3*ZChunkMax+17)
	rand.New(rand.NewSource(1)).Read(rnd)
	inputs := map[string][]byte{
		"one byte":       {7},
		"small frame":    telemetry(1)[:40],
		"one record":     telemetry(1),
		"batch":          telemetry(500),
		"over a chunk":   telemetry(2000),
		"incompressible": rnd,
	}
	for name, src := range inputs {
		for _, kind := range []byte{ZS2, ZZstd} {
			for _, feed := range []int{1 << 30, 4096, 7} {
				if feed == 7 && len(src) > 100000 {
					continue
				}
				t.Run(fmt.Sprintf("%s/%d/%d", name, kind, feed), func(t *testing.T) { zRoundTrip(t, kind, src, feed) })
			}
		}
	}
}

// TestCompressShrinks: telemetry batches get smaller; random data is stored, never grown by more
// than the chunk headers.
func TestCompressShrinks(t *testing.T) {
	src := telemetry(1000)
	for _, kind := range []byte{ZS2, ZZstd} {
		c, _ := NewCompressor(kind)
		enc := c.Encode(nil, src)
		c.Close()
		if len(enc) > len(src)/2 {
			t.Errorf("kind %d: %d -> %d bytes", kind, len(src), len(enc))
		}
		t.Logf("kind %d: %d -> %d bytes (%.1f×)", kind, len(src), len(enc), float64(len(src))/float64(len(enc)))
	}
	rnd := make([]byte, 100000)
	rand.New(rand.NewSource(2)).Read(rnd)
	c, _ := NewCompressor(ZZstd)
	defer c.Close()
	if enc := c.Encode(nil, rnd); len(enc) != len(rnd)+ZHeaderLen || enc[0] != ZStored {
		t.Errorf("random: %d -> %d bytes, kind %d", len(rnd), len(enc), enc[0])
	}
}

// TestDecompressLimit: Decode stops after the chunk that reaches the limit and resumes after.
func TestDecompressLimit(t *testing.T) {
	c, _ := NewCompressor(ZS2)
	defer c.Close()
	var enc []byte
	for i := 0; i < 3; i++ {
		enc = c.Encode(enc, telemetry(10))
	}
	var d Decompressor
	got, used, err := d.Decode(nil, enc, 1)
	if err != nil || used == 0 || used == len(enc) || len(got) != len(telemetry(10)) {
		t.Fatalf("limit 1: used %d of %d, got %d, %v", used, len(enc), len(got), err)
	}
	got, used2, err := d.Decode(got, enc[used:], 1<<20)
	if err != nil || used+used2 != len(enc) || len(got) != 3*len(telemetry(10)) {
		t.Fatalf("rest: used %d, got %d, %v", used2, len(got), err)
	}
}

// TestDecompressCorrupt: every single-byte change of a chunk is detected (header checks, codec
// errors or the CRC), and the bytes decoded before the bad chunk are kept.
func TestDecompressCorrupt(t *testing.T) {
	for _, kind := range []byte{ZS2, ZZstd} {
		c, _ := NewCompressor(kind)
		first := c.Encode(nil, telemetry(3))
		enc := c.Encode(append([]byte(nil), first...), telemetry(4))
		c.Close()
		for i := len(first); i < len(enc); i++ {
			bad := append([]byte(nil), enc...)
			bad[i] ^= 0x41
			var d Decompressor
			got, used, err := d.Decode(nil, bad, 1<<30)
			d.Close()
			if err == nil {
				if used < len(bad) { // a length grew: the chunk is incomplete, not yet wrong
					continue
				}
				t.Fatalf("kind %d: byte %d changed, not detected", kind, i)
			}
			if !errors.Is(err, ErrCompressed) || used != len(first) || !bytes.Equal(got, telemetry(3)) {
				t.Fatalf("kind %d byte %d: used %d, %v", kind, i, used, err)
			}
		}
	}
	if _, err := ZAlgorithm("gzip"); !errors.Is(err, ErrCompressed) {
		t.Fatal(err)
	}
}

func FuzzDecompress(f *testing.F) {
	for _, kind := range []byte{ZS2, ZZstd} {
		c, _ := NewCompressor(kind)
		f.Add(c.Encode(nil, telemetry(3)))
		c.Close()
	}
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decompressor
		defer d.Close()
		got, used, err := d.Decode(nil, b, 1<<20)
		if used < 0 || used > len(b) || (err == nil && len(got) > ZChunkMax*(used/ZHeaderLen+1)) {
			t.Fatalf("used %d of %d, %d bytes out", used, len(b), len(got))
		}
	})
}

func FuzzCompressRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), byte(1))
	f.Add(telemetry(2), byte(2))
	f.Fuzz(func(t *testing.T, b []byte, k byte) {
		kind := ZS2 + k%2
		if len(b) == 0 {
			return
		}
		zRoundTrip(t, kind, b, 1<<30)
	})
}

func BenchmarkCompress(b *testing.B) {
	src := telemetry(800) // ~ one 256 KiB flush batch
	for _, kind := range []byte{ZS2, ZZstd} {
		b.Run(fmt.Sprintf("kind%d", kind), func(b *testing.B) {
			c, _ := NewCompressor(kind)
			defer c.Close()
			var d Decompressor
			defer d.Close()
			enc := c.Encode(nil, src)
			b.ReportMetric(float64(len(src))/float64(len(enc)), "ratio")
			b.Run("encode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(src)))
				var dst []byte
				for i := 0; i < b.N; i++ {
					dst = c.Encode(dst[:0], src)
				}
			})
			b.Run("decode", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(src)))
				var dst []byte
				for i := 0; i < b.N; i++ {
					dst, _, _ = d.Decode(dst[:0], enc, 1<<30)
				}
			})
		})
	}
}
