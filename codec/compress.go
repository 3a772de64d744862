package codec

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Link compression (aioconn peers only, negotiated: connector's `link_compression`). After the
// switch point each direction of a link is a sequence of chunks, each one batch of whole frames
// (one flush of the sender) compressed on its own:
//
//	kind u8 | encoded length u24 BE | decoded length u32 BE | CRC-32C of the decoded bytes u32 BE | encoded bytes
//
// kind is ZStored (the bytes as they are: used when compression would not shrink them), ZS2 (an
// s2 block) or ZZstd (a zstd frame). A batch larger than ZChunkMax is cut into several chunks. The
// receiver accepts every kind whatever the link agreed on, checks both lengths and the CRC, and
// treats any mismatch as a corrupt stream (the connection is closed).

// Chunk kinds.
const (
	ZStored byte = 0
	ZS2     byte = 1
	ZZstd   byte = 2
)

const (
	// ZChunkMax is the largest decoded size of one chunk.
	ZChunkMax = 256 << 10
	// ZHeaderLen is the size of a chunk header.
	ZHeaderLen = 12
	// zMinCompress: smaller batches are stored (no compressor gains on a few bytes).
	zMinCompress = 64
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ZAlgorithm names a compression algorithm: "s2" or "zstd" (the `link_compression` values).
func ZAlgorithm(name string) (byte, error) {
	switch name {
	case "s2":
		return ZS2, nil
	case "zstd":
		return ZZstd, nil
	}
	return 0, fmt.Errorf("%w: unknown compression %q (s2 or zstd)", ErrCompressed, name)
}

// Compressor encodes the outgoing byte stream of one link. Not concurrency-safe: one per link,
// used by the goroutine that writes the link.
type Compressor struct {
	kind byte
	z    *zstd.Encoder
}

// NewCompressor returns a compressor for kind ZS2 or ZZstd.
func NewCompressor(kind byte) (*Compressor, error) {
	c := &Compressor{kind: kind}
	switch kind {
	case ZS2:
	case ZZstd:
		z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithWindowSize(ZChunkMax), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd encoder: %v", ErrCompressed, err)
		}
		c.z = z
	default:
		return nil, fmt.Errorf("%w: unknown compression kind %d", ErrCompressed, kind)
	}
	return c, nil
}

// Encode appends the chunks holding src to dst and returns the extended slice. src is only read.
func (c *Compressor) Encode(dst, src []byte) []byte {
	for len(src) > 0 {
		n := len(src)
		if n > ZChunkMax {
			n = ZChunkMax
		}
		dst = c.chunk(dst, src[:n])
		src = src[n:]
	}
	return dst
}

func (c *Compressor) chunk(dst, src []byte) []byte {
	h := len(dst)
	dst = append(dst, make([]byte, ZHeaderLen)...)
	kind := ZStored
	if len(src) >= zMinCompress {
		kind = c.kind
		switch kind {
		case ZS2:
			need := h + ZHeaderLen + s2.MaxEncodedLen(len(src))
			if cap(dst) < need {
				nd := make([]byte, len(dst), need)
				copy(nd, dst)
				dst = nd
			}
			enc := s2.Encode(dst[h+ZHeaderLen:need], src)
			dst = dst[:h+ZHeaderLen+len(enc)]
		case ZZstd:
			dst = c.z.EncodeAll(src, dst)
		}
		if len(dst)-h-ZHeaderLen >= len(src) { // no gain: store
			dst = dst[:h+ZHeaderLen]
			kind = ZStored
		}
	}
	if kind == ZStored {
		dst = append(dst, src...)
	}
	enc := len(dst) - h - ZHeaderLen
	binary.BigEndian.PutUint32(dst[h:], uint32(kind)<<24|uint32(enc))
	binary.BigEndian.PutUint32(dst[h+4:], uint32(len(src)))
	binary.BigEndian.PutUint32(dst[h+8:], crc32.Checksum(src, crcTable))
	return dst
}

// Decompressor decodes the incoming byte stream of one link. Not concurrency-safe: one per link,
// used by the goroutine that reads the link. The zero value is ready to use.
type Decompressor struct {
	z   *zstd.Decoder
	buf []byte // zstd output scratch
}

// Decode decodes the whole chunks at the start of src, appending their bytes to dst. It returns
// the extended dst and how many bytes of src it consumed (a chunk not yet complete stays in src
// for the next call). It stops early, after at least one chunk, once dst has grown by limit
// bytes or more. A corrupt chunk returns an error wrapping ErrCompressed; dst then holds the
// chunks decoded before it.
func (d *Decompressor) Decode(dst, src []byte, limit int) ([]byte, int, error) {
	used := 0
	start := len(dst)
	for len(src)-used >= ZHeaderLen && len(dst)-start < limit {
		hd := src[used:]
		w := binary.BigEndian.Uint32(hd)
		kind, enc := byte(w>>24), int(w&0xffffff)
		dec := int(binary.BigEndian.Uint32(hd[4:]))
		sum := binary.BigEndian.Uint32(hd[8:])
		if dec > ZChunkMax || dec == 0 {
			return dst, used, fmt.Errorf("%w: chunk at offset %d declares %d decoded bytes (1..%d)", ErrCompressed, used, dec, ZChunkMax)
		}
		if enc > s2.MaxEncodedLen(ZChunkMax)+ZHeaderLen {
			return dst, used, fmt.Errorf("%w: chunk at offset %d declares %d encoded bytes", ErrCompressed, used, enc)
		}
		if len(hd) < ZHeaderLen+enc {
			break
		}
		body := hd[ZHeaderLen : ZHeaderLen+enc]
		n := len(dst)
		if cap(dst)-n < dec {
			dst = grow(dst, dec)[:n]
		}
		prev := dst // room for exactly the declared size at least
		var err error
		switch kind {
		case ZStored:
			if enc != dec {
				err = fmt.Errorf("stored chunk of %d bytes declares %d", enc, dec)
			} else {
				dst = append(dst, body...)
			}
		case ZS2:
			var l int
			if l, err = s2.DecodedLen(body); err == nil && l != dec {
				err = fmt.Errorf("s2 block of %d bytes, %d declared", l, dec)
			}
			if err == nil {
				dst = dst[:n+dec]
				_, err = s2.Decode(dst[n:], body)
			}
		case ZZstd:
			if d.z == nil {
				d.z, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
					zstd.WithDecoderMaxMemory(2*ZChunkMax), zstd.WithDecoderMaxWindow(2*ZChunkMax), zstd.WithDecodeAllCapLimit(true))
				if err != nil {
					return dst, used, fmt.Errorf("%w: zstd decoder: %v", ErrCompressed, err)
				}
			}
			// Into a scratch buffer of exactly the declared size: with the cap limit zstd decodes
			// no more than that (many tiny frames declaring large contents cannot blow memory
			// up), and its size limits apply to this chunk only, not to what dst already holds.
			if cap(d.buf) < dec {
				d.buf = make([]byte, 0, dec)
			}
			var out []byte
			out, err = d.z.DecodeAll(body, d.buf[:0:dec])
			if err == nil && len(out) != dec {
				err = fmt.Errorf("zstd frame of %d bytes, %d declared", len(out), dec)
			}
			if err == nil {
				dst = append(dst, out...)
			}
		default:
			err = fmt.Errorf("unknown kind %d", kind)
		}
		if err == nil && crc32.Checksum(dst[n:], crcTable) != sum {
			err = fmt.Errorf("CRC mismatch")
		}
		if err != nil {
			return prev, used, fmt.Errorf("%w: chunk at offset %d: %v", ErrCompressed, used, err)
		}
		used += ZHeaderLen + enc
	}
	return dst, used, nil
}

// Close releases the decoder's resources. The Decompressor must not be used afterwards.
func (d *Decompressor) Close() {
	if d.z != nil {
		d.z.Close()
		d.z = nil
	}
}

// Close releases the encoder's resources. The Compressor must not be used afterwards.
func (c *Compressor) Close() {
	if c.z != nil {
		c.z.Close()
		c.z = nil
	}
}

// grow extends b by n bytes (contents of the new bytes unspecified).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}
