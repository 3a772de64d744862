package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// LenPrefix is the size of the u32 length prefix of every frame (message
// frames and commander frames).
const LenPrefix = 4

// MaxJSON is the largest transport JSON a frame can carry (u16 json_len).
const MaxJSON = math.MaxUint16

// DefaultMaxFrame is the frame_len limit a Decoder uses when MaxFrame is 0.
// It is above the 1.0.33 default upload chunk (1e9 bytes) plus 64 KiB.
const DefaultMaxFrame uint32 = 1 << 30

const maxInt = int(^uint(0) >> 1)

// FrameSize inspects the start of a buffered stream. It returns the total size
// of the first frame INCLUDING the 4-byte prefix when b holds at least the
// prefix, or 0 when fewer than 4 bytes are present. It returns an error
// wrapping ErrFrameTooLarge when the declared length exceeds max. Works for
// message frames and commander frames alike. Pure function; no allocation on
// success.
func FrameSize(b []byte, max uint32) (int, error) {
	if len(b) < LenPrefix {
		return 0, nil
	}
	n := binary.LittleEndian.Uint32(b)
	if n > max || uint64(n) > uint64(maxInt-LenPrefix) {
		return 0, fmt.Errorf("%w: declared %d bytes, max %d", ErrFrameTooLarge, n, max)
	}
	return int(n) + LenPrefix, nil
}

// Frame views the sections of one message frame. All slices alias the parsed
// buffer: the caller owns that buffer and the views stay valid exactly as long
// as it is kept unmodified. Binary is nil when HasBinary is false. Trailing
// holds the bytes after the last parsed section, which Python silently
// ignores (normally empty).
type Frame struct {
	JSON, Data, Binary []byte
	HasBinary          bool
	Trailing           []byte
}

func truncated(section string, need uint64, have int) error {
	return fmt.Errorf("%w: %s needs %d bytes, %d left", ErrTruncated, section, need, have)
}

// ParseBody parses a frame body (the bytes after the 4-byte prefix) exactly as
// Python 1.0.33 does: u16 json_len, json, u32 data_len, data, then u32
// bin_len and binary ONLY when the JSON's with_binary is truthy (Python
// truthiness); trailing bytes are ignored (returned in Frame.Trailing).
// A section that runs past the end returns an error wrapping ErrTruncated
// naming the section. The JSON is validated only as far as finding
// with_binary requires: when the JSON cannot contain the key with_binary
// (the name does not occur and there is no backslash) it is not scanned at
// all; otherwise it must be a valid JSON object (else an error wrapping
// ErrBadJSON). Validate with ScanHeader, or use ParseBodyHeader, before
// trusting the JSON. No allocation on success.
func ParseBody(body []byte) (f Frame, err error) {
	if err = parseSections(body, &f); err != nil {
		return Frame{}, err
	}
	if !mayHaveKey(f.JSON, KeyWithBinary) {
		return f, nil
	}
	wb, err := Lookup(f.JSON, KeyWithBinary)
	if err != nil {
		return Frame{}, err
	}
	if err = finishBody(&f, wb.Truthy()); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// mayHaveKey reports whether json can hold key (an ASCII name without
// characters JSON must escape) as a top-level key: false only when the name
// does not occur literally and no backslash escape could spell it.
func mayHaveKey(json []byte, key string) bool {
	return bytes.IndexByte(json, '\\') >= 0 || bytes.Contains(json, []byte(key))
}

// ParseBodyHeader is ParseBody plus ScanHeader(f.JSON, h) in a single pass
// over the JSON (the cheapest way to read a frame and route it). Unlike
// ParseBody it always validates the JSON. On error h is zeroed.
func ParseBodyHeader(body []byte, h *Header) (f Frame, err error) {
	return ParseBodyHeaderMemo(body, h, nil)
}

// parseSections reads json and data; f.Trailing temporarily holds the rest.
func parseSections(body []byte, f *Frame) error {
	if len(body) < 2 {
		return truncated("json_len", 2, len(body))
	}
	jl := int(binary.LittleEndian.Uint16(body))
	p := 2
	if len(body)-p < jl {
		return truncated("json", uint64(jl), len(body)-p)
	}
	f.JSON = body[p : p+jl : p+jl]
	p += jl
	if len(body)-p < 4 {
		return truncated("data_len", 4, len(body)-p)
	}
	dl := uint64(binary.LittleEndian.Uint32(body[p:]))
	p += 4
	if uint64(len(body)-p) < dl {
		return truncated("data", dl, len(body)-p)
	}
	f.Data = body[p : p+int(dl) : p+int(dl)]
	p += int(dl)
	f.Trailing = body[p:]
	return nil
}

func finishBody(f *Frame, withBinary bool) error {
	if !withBinary {
		return nil
	}
	rest := f.Trailing
	if len(rest) < 4 {
		return truncated("bin_len", 4, len(rest))
	}
	bl := uint64(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if uint64(len(rest)) < bl {
		return truncated("binary", bl, len(rest))
	}
	f.Binary = rest[:bl:bl]
	f.HasBinary = true
	f.Trailing = rest[bl:]
	return nil
}

// CheckJSONLen returns an error wrapping ErrJSONTooLarge when json cannot be
// carried by a frame (more than 65535 bytes).
func CheckJSONLen(json []byte) error {
	if len(json) > MaxJSON {
		return fmt.Errorf("%w: %d bytes, max %d", ErrJSONTooLarge, len(json), MaxJSON)
	}
	return nil
}

// BodyLen returns frame_len for the given sections (without the prefix).
func BodyLen(json, data, binary []byte, withBinary bool) uint64 {
	n := uint64(2+len(json)+4) + uint64(len(data))
	if withBinary {
		n += 4 + uint64(len(binary))
	}
	return n
}

// AppendFrame appends a complete message frame (prefix included) to dst and
// returns it. The binary section (bin_len + binary) is written iff
// withBinary. Preconditions, checked by AppendFrameChecked but not here:
// len(json) <= MaxJSON (see CheckJSONLen) and the body fits in 4 GiB - 1;
// violating them produces a frame with wrapped length fields (never a panic).
// No allocation beyond growing dst.
func AppendFrame(dst, json, data, binary []byte, withBinary bool) []byte {
	n := BodyLen(json, data, binary, withBinary)
	dst = binary32(dst, uint32(n))
	dst = append(dst, byte(len(json)), byte(len(json)>>8))
	dst = append(dst, json...)
	dst = binary32(dst, uint32(len(data)))
	dst = append(dst, data...)
	if withBinary {
		dst = binary32(dst, uint32(len(binary)))
		dst = append(dst, binary...)
	}
	return dst
}

// AppendFrameChecked is AppendFrame with the size preconditions checked
// (ErrJSONTooLarge, ErrFrameTooLarge); dst is returned unchanged on error.
func AppendFrameChecked(dst, json, data, binary []byte, withBinary bool) ([]byte, error) {
	if err := CheckJSONLen(json); err != nil {
		return dst, err
	}
	if n := BodyLen(json, data, binary, withBinary); n > math.MaxUint32 {
		return dst, fmt.Errorf("%w: body of %d bytes does not fit u32", ErrFrameTooLarge, n)
	}
	return AppendFrame(dst, json, data, binary, withBinary), nil
}

func binary32(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// AppendCommand appends a commander frame: u32 LE length + payload (a request
// JSON or a reply text).
func AppendCommand(dst, payload []byte) []byte {
	dst = binary32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// readPrefixed reads one u32-prefixed record into buf (grown as needed) and
// returns the record (prefix included) and the buffer.
func readPrefixed(r io.Reader, buf []byte, max uint32) ([]byte, []byte, error) {
	if cap(buf) < LenPrefix {
		buf = make([]byte, 512)
	}
	buf = buf[:cap(buf)]
	if _, err := io.ReadFull(r, buf[:LenPrefix]); err != nil {
		return nil, buf, err
	}
	size, err := FrameSize(buf[:LenPrefix], max)
	if err != nil {
		return nil, buf, err
	}
	if size > len(buf) {
		nb := make([]byte, size)
		copy(nb, buf[:LenPrefix])
		buf = nb
	}
	if _, err := io.ReadFull(r, buf[LenPrefix:size]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	return buf[:size], buf, nil
}

// ReadFrame reads exactly one message frame from r (blocking) into buf,
// growing it when needed, and parses it. It returns the frame (aliasing the
// returned buffer) and the possibly grown buffer to pass to the next call.
// A clean EOF before the first byte returns io.EOF; EOF inside a frame
// returns io.ErrUnexpectedEOF. max bounds frame_len (ErrFrameTooLarge).
func ReadFrame(r io.Reader, buf []byte, max uint32) (Frame, []byte, error) {
	rec, buf, err := readPrefixed(r, buf, max)
	if err != nil {
		return Frame{}, buf, err
	}
	f, err := ParseBody(rec[LenPrefix:])
	return f, buf, err
}

// ReadCommand reads one commander frame (u32 length + payload) from r into
// buf and returns the payload (aliasing the returned buffer) and the buffer.
func ReadCommand(r io.Reader, buf []byte, max uint32) ([]byte, []byte, error) {
	rec, buf, err := readPrefixed(r, buf, max)
	if err != nil {
		return nil, buf, err
	}
	return rec[LenPrefix:], buf, nil
}

// Decoder is a resumable stream decoder for message frames, for callers that
// read with an io.Reader: Feed bytes split anywhere, then call Next until it
// reports ok == false. Frames that lie entirely inside one fed slice are
// returned without copying (aliasing that slice); only a frame that spans
// feeds is assembled in an internal buffer (bounded by MaxFrame). Not safe
// for concurrent use.
//
// Ownership: Feed retains p; the caller must not modify p until Next has
// returned ok == false or an error (at that point any unconsumed tail has
// been copied). A returned Frame is valid until the next Feed or Next call.
type Decoder struct {
	// MaxFrame bounds frame_len; 0 means DefaultMaxFrame.
	MaxFrame uint32

	in      []byte // unconsumed part of the last fed slice (aliased)
	pend    []byte // partial frame carried over between feeds (owned)
	release int    // bytes of pend handed out by the previous Next
	err     error  // sticky framing error
}

// Feed adds p to the stream.
func (d *Decoder) Feed(p []byte) {
	d.drop()
	if len(d.in) > 0 {
		d.pend = append(d.pend, d.in...)
	}
	d.in = p
}

// Buffered returns the number of bytes fed but not yet returned as frames.
func (d *Decoder) Buffered() int { return len(d.pend) - d.release + len(d.in) }

// Reset discards all buffered data and any sticky error (MaxFrame is kept).
func (d *Decoder) Reset() {
	d.in, d.pend, d.release, d.err = nil, d.pend[:0], 0, nil
}

func (d *Decoder) drop() {
	if d.release > 0 {
		n := copy(d.pend, d.pend[d.release:])
		d.pend = d.pend[:n]
		d.release = 0
		if cap(d.pend) > 1<<20 && n == 0 {
			d.pend = nil
		}
	}
}

// Next returns the next complete frame. ok is false when more input is
// needed. An error wrapping ErrFrameTooLarge is sticky (the stream cannot be
// resynchronised; call Reset to reuse the Decoder); an ErrTruncated or
// ErrBadJSON error consumes the offending frame, so Next may be called again.
func (d *Decoder) Next() (f Frame, ok bool, err error) {
	if d.err != nil {
		return Frame{}, false, d.err
	}
	d.drop()
	max := d.MaxFrame
	if max == 0 {
		max = DefaultMaxFrame
	}
	if len(d.pend) == 0 {
		size, err := FrameSize(d.in, max)
		if err != nil {
			d.err = err
			return Frame{}, false, err
		}
		if size == 0 || size > len(d.in) {
			// Incomplete: keep the tail in our own buffer.
			d.pend = append(d.pend, d.in...)
			d.in = nil
			return Frame{}, false, nil
		}
		rec := d.in[:size:size]
		d.in = d.in[size:]
		if len(d.in) == 0 {
			d.in = nil
		}
		f, err := ParseBody(rec[LenPrefix:])
		return f, err == nil, err
	}
	// A frame spans feeds: complete it in pend.
	if len(d.pend) < LenPrefix {
		k := min(LenPrefix-len(d.pend), len(d.in))
		d.pend = append(d.pend, d.in[:k]...)
		d.in = d.in[k:]
	}
	size, err := FrameSize(d.pend, max)
	if err != nil {
		d.err = err
		return Frame{}, false, err
	}
	if size == 0 {
		d.in = nil
		return Frame{}, false, nil
	}
	if need := size - len(d.pend); need > 0 {
		k := min(need, len(d.in))
		d.pend = append(d.pend, d.in[:k]...)
		d.in = d.in[k:]
		if k < need {
			d.in = nil
			return Frame{}, false, nil
		}
	}
	if len(d.in) == 0 {
		d.in = nil
	}
	d.release = size
	f, err = ParseBody(d.pend[LenPrefix:size:size])
	return f, err == nil, err
}
