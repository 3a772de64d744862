package loop

import "io"

// inbuf is a connection's buffered input held by loop itself (a transform's decoded bytes, or
// TLS plaintext waiting for a decoder): b[r:] is not consumed yet. Loop-owned.
type inbuf struct {
	b []byte
	r int
}

// buffered is the number of bytes not consumed yet.
func (in *inbuf) buffered() int { return len(in.b) - in.r }

// compact makes room before an append: empties the buffer when everything was consumed, or moves
// the rest to the front once more than half was consumed.
func (in *inbuf) compact() {
	if in.r == 0 {
		return
	}
	if in.r == len(in.b) {
		in.b, in.r = in.b[:0], 0
	} else if in.r >= len(in.b)/2 {
		n := copy(in.b, in.b[in.r:])
		in.b, in.r = in.b[:n], 0
	}
}

// peek returns the next n bytes (n <= 0: all), or all there is with io.ErrShortBuffer.
func (in *inbuf) peek(n int) ([]byte, error) {
	if n <= 0 {
		return in.b[in.r:], nil
	}
	if n > in.buffered() {
		return in.b[in.r:], io.ErrShortBuffer
	}
	return in.b[in.r : in.r+n], nil
}

// discard consumes up to n bytes and returns how many.
func (in *inbuf) discard(n int) (int, error) {
	n = min(n, in.buffered())
	in.r += n
	return n, nil
}
