package codec

import (
	"testing"
)

// A typical app message: 100-byte transport JSON.
var benchJSON = []byte(`{"message_type": "any", "source_id": "client1", "destination_id": "('127.0.0.1', 10673)", "request_id": 7}`)

func benchFrame() []byte {
	return AppendFrame(nil, benchJSON, []byte(`{"text": "hello json", "n": 1}`), nil, false)
}

func decodeAndScan(buf []byte, h *Header) (Frame, error) {
	size, err := FrameSize(buf, DefaultMaxFrame)
	if err != nil {
		return Frame{}, err
	}
	f, err := ParseBody(buf[LenPrefix:size])
	if err != nil {
		return f, err
	}
	return f, ScanHeader(f.JSON, h)
}

func decodeAndScanOnePass(buf []byte, h *Header) (Frame, error) {
	size, err := FrameSize(buf, DefaultMaxFrame)
	if err != nil {
		return Frame{}, err
	}
	return ParseBodyHeader(buf[LenPrefix:size], h)
}

func BenchmarkDecodeAndScan(b *testing.B) {
	buf := benchFrame()
	var h Header
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := decodeAndScan(buf, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAndScanOnePass(b *testing.B) {
	buf := benchFrame()
	var h Header
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := decodeAndScanOnePass(buf, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanHeader(b *testing.B) {
	var h Header
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJSON)))
	for b.Loop() {
		if err := ScanHeader(benchJSON, &h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	data := []byte(`{"text": "hello json", "n": 1}`)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendFrame(dst[:0], benchJSON, data, nil, false)
	}
}

func BenchmarkSetKey(b *testing.B) {
	dst := make([]byte, 0, 256)
	raw := []byte("12345")
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = SetKey(dst[:0], benchJSON, KeyTransportID, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeleteKey(b *testing.B) {
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = DeleteKey(dst[:0], benchJSON, KeyDestinationID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkObjAck(b *testing.B) {
	dst := make([]byte, 0, 256)
	var o Obj
	b.ReportAllocs()
	for b.Loop() {
		o.Begin(dst[:0])
		o.Int(KeyTransportID, 7)
		o.Str(KeyMessageType, "_ack")
		o.Str(KeySourceID, "('127.0.0.1', 10673)")
		dst = o.End()
	}
}

func BenchmarkDecoderSplit(b *testing.B) {
	var stream []byte
	for i := 0; i < 10; i++ {
		stream = append(stream, benchFrame()...)
	}
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		for off := 0; off < len(stream); off += 500 {
			d.Feed(stream[off:min(off+500, len(stream))])
			for {
				_, ok, err := d.Next()
				if err != nil {
					b.Fatal(err)
				}
				if !ok {
					break
				}
			}
		}
	}
}
