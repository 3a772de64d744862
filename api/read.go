package api

import (
	"bufio"
	"errors"
	"io"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// bodyTimeout bounds the read of a frame body once its length prefix has arrived (Python's
// ASYNC_TIMEOUT around readexactly(next_length)); waiting for the prefix is unbounded.
const bodyTimeout = 10 * time.Second

// recvBufSize is the read buffer of one receive connection: frames up to this size (prefix
// included) are parsed in place, larger ones are read into a dedicated buffer.
const recvBufSize = 64 << 10

type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// frameReader reads message frames from one connection. Frames are returned as views into
// its buffers, valid until the next call to next. Not safe for concurrent use.
type frameReader struct {
	r       *bufio.Reader
	d       readDeadliner // nil: no deadlines (fuzzing)
	big     []byte
	pending int // bytes of r to discard before the next frame
	max     uint32
	h       codec.Header // scratch: ParseBodyHeader validates the whole JSON
}

func newFrameReader(src io.Reader, size int) *frameReader {
	fr := &frameReader{r: bufio.NewReaderSize(src, size), max: codec.DefaultMaxFrame}
	fr.d, _ = src.(readDeadliner)
	return fr
}

func (fr *frameReader) setDeadline(t time.Time) {
	if fr.d != nil {
		fr.d.SetReadDeadline(t)
	}
}

// next returns the next frame. A clean end of stream before a frame starts returns io.EOF;
// an end inside a frame returns io.ErrUnexpectedEOF; a bad frame (including a transport
// JSON that is not a valid JSON object) returns a codec error: the connection must be
// dropped after it.
func (fr *frameReader) next() (codec.Frame, error) {
	if fr.pending > 0 {
		fr.r.Discard(fr.pending)
		fr.pending = 0
	}
	p, err := fr.r.Peek(codec.LenPrefix)
	if err != nil {
		if len(p) > 0 && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return codec.Frame{}, err
	}
	size, err := codec.FrameSize(p, fr.max)
	if err != nil {
		return codec.Frame{}, err
	}
	var rec []byte
	timed := fr.r.Buffered() < size
	if timed {
		fr.setDeadline(time.Now().Add(bodyTimeout))
	}
	if size <= fr.r.Size() {
		rec, err = fr.r.Peek(size)
		if err == nil {
			fr.pending = size
		}
	} else {
		if cap(fr.big) < size {
			fr.big = make([]byte, size)
		}
		rec = fr.big[:size]
		_, err = io.ReadFull(fr.r, rec)
	}
	if timed {
		fr.setDeadline(time.Time{})
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return codec.Frame{}, err
	}
	// Python's unpack_message json.loads the header: a frame whose transport JSON is not a
	// JSON object ends the connection. ParseBodyHeader validates it in the same pass that
	// finds with_binary.
	return codec.ParseBodyHeader(rec[codec.LenPrefix:], &fr.h)
}

func frameMessage(f codec.Frame) Message {
	return Message{Header: f.JSON, Data: f.Data, Binary: f.Binary, HasBinary: f.HasBinary}
}
