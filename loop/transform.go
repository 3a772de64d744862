package loop

import (
	"sync"
	"sync/atomic"
	"time"
)

// Byte-stream transforms (link compression): from a point the Handler chooses, each direction of
// a connection can be rewritten. Output: every byte given to Write and AsyncWrite after
// SetEncoder goes through the Encoder. Input: every byte not yet consumed when SetDecoder is
// called, and every byte read after, goes through the Decoder, and Peek, Discard and
// InboundBuffered then see the decoded bytes. The Handler cannot tell the difference otherwise.

// Encoder rewrites outgoing bytes. Called on the loop only, one call per Write.
type Encoder interface {
	// Encode appends the encoded form of src to dst and returns the extended slice.
	Encode(dst, src []byte) []byte
}

// Decoder rewrites incoming bytes. Called on the loop only.
type Decoder interface {
	// Decode decodes whole units at the start of src, appends their bytes to dst and returns the
	// extended dst and how many bytes of src it consumed (an incomplete unit stays for the next
	// call). It may stop once dst has grown by limit bytes. An error closes the connection.
	Decode(dst, src []byte, limit int) ([]byte, int, error)
}

// decodedLimit bounds the decoded bytes held for the Handler: past it, encoded bytes wait in
// the connection's read buffer. gnet keeps reading the socket meanwhile (it cannot pause a
// connection), so the Handler bounds the whole with Conn.Held, as on a plaintext connection.
// A variable for tests.
var decodedLimit = 4 << 20

type transform struct {
	enc     Encoder
	encBuf  []byte
	dec     Decoder
	din     inbuf    // decoded bytes not yet consumed
	full    bool     // the last pump stopped at decodedLimit with encoded bytes left
	wire    *wireTLS // TLS records (EnrollTLS): under enc and dec
	wireBuf []byte   // records of one Write
	mid     inbuf    // plaintext from wire, waiting for dec (both set)
	eof     bool     // the TLS peer closed (close_notify): close once the handler ran
	more    bool     // pumpTLS stopped with work left although din has room: wake again
	eofAt   time.Time
	rerr    error // a TLS read error after plaintext that the handler gets first
	closing bool  // Close's close_notify was written (closingTLS)
	closeAt time.Time
	soon    *time.Timer // wakeSoon's, re-armed (one per connection); loop-owned

	mu        sync.Mutex // guards async and asyncDone (AsyncWrite on an encoded connection)
	async     []asyncWrite
	asyncDone bool // the connection closed: no more AsyncWrites

	// byte counts since the switch (read with TransformCounts)
	plainOut, wireOut, wireIn, plainIn atomic.Int64
}

// TransformCounts returns the bytes that went through the transforms so far: given to Write
// (plainOut) and sent for them (wireOut) since SetEncoder, read from the socket (wireIn) and
// decoded from them (plainIn) since SetDecoder. All zero without transforms. Concurrency-safe.
func (c *Conn) TransformCounts() (plainOut, wireOut, wireIn, plainIn int64) {
	t := c.tfPub.Load()
	if t == nil {
		return 0, 0, 0, 0
	}
	return t.plainOut.Load(), t.wireOut.Load(), t.wireIn.Load(), t.plainIn.Load()
}

// decoding reports whether Peek, Discard and InboundBuffered see din.
func (t *transform) decoding() bool { return t.dec != nil || t.wire != nil }

// SetEncoder makes every later Write and AsyncWrite go through e (nil: none). Bytes already
// written are not affected. On the loop only.
func (c *Conn) SetEncoder(e Encoder) {
	if c.tf == nil {
		c.tf = &transform{}
		c.tfPub.Store(c.tf)
	}
	c.tf.enc = e
	c.encoded.Store(e != nil || c.tf.wire != nil)
}

// SetDecoder makes the bytes not yet consumed, and every later byte read, go through d. It
// decodes what is already buffered at once; a decoding error is returned (close the
// connection). Call it at most once per connection. On the loop only.
func (c *Conn) SetDecoder(d Decoder) error {
	if c.tf == nil {
		c.tf = &transform{}
		c.tfPub.Store(c.tf)
	}
	c.tf.dec = d
	if t := c.tf; t.wire != nil { // the plaintext not yet consumed goes through d
		t.mid.b = append(t.mid.b[:0], t.din.b[t.din.r:]...)
		t.mid.r = 0
		t.din.b, t.din.r = t.din.b[:0], 0
	}
	return c.pump()
}

// rawBuffered, rawPeek and rawDiscard reach the bytes as read from the socket.
func (c *Conn) rawPeek() []byte {
	b, _ := c.gc.Peek(-1)
	return b
}

// midSlack is how far plaintext waiting for a decoder (under TLS) may exceed decodedLimit, so
// that a whole unit always fits (link compression's chunks are at most 256 KiB encoded).
const midSlack = 1 << 20

// tlsPeekMax bounds the ciphertext offered to crypto/tls per decode: gnet's Peek copies a
// backlog that wraps its ring buffer, so offering all of a large backlog at each pass would
// cost in proportion to the backlog each time.
const tlsPeekMax = 256 << 10

// rawPeekN is rawPeek limited to n bytes.
func (c *Conn) rawPeekN(n int) []byte {
	b, _ := c.gc.Peek(min(n, c.gc.InboundBuffered()))
	return b
}

func (c *Conn) rawDiscard(n int) {
	if n <= 0 {
		return // gnet's Discard(0) would drop everything
	}
	c.gc.Discard(n)
}

// pump decodes buffered input into din, up to decodedLimit. On the loop only.
func (c *Conn) pump() error {
	t := c.tf
	if t == nil || !t.decoding() {
		return nil
	}
	if t.wire != nil {
		return c.pumpTLS()
	}
	room := decodedLimit - t.din.buffered()
	if room <= 0 {
		t.full = c.rawBuffered() > 0
		return nil
	}
	raw := c.rawPeek()
	if len(raw) == 0 {
		t.full = false
		return nil
	}
	used, err := t.decodeInto(raw, room)
	c.rawDiscard(used)
	t.full = used < len(raw) && t.din.buffered() >= decodedLimit
	return err
}

// decodeInto runs the decoder over src into din (at most room more bytes) and returns the
// bytes of src it consumed.
func (t *transform) decodeInto(src []byte, room int) (int, error) {
	t.din.compact()
	n := len(t.din.b)
	var used int
	var err error
	t.din.b, used, err = t.dec.Decode(t.din.b, src, room)
	t.wireIn.Add(int64(used))
	t.plainIn.Add(int64(len(t.din.b) - n))
	return used, err
}

// pumpTLS decrypts the records read into din, or, with a decoder too, into mid and from there
// through the decoder into din, until din is full or no stage can move. On the loop only.
func (c *Conn) pumpTLS() error {
	t := c.tf
	dst := &t.din
	if t.dec != nil {
		dst = &t.mid
	}
	limit := decodedLimit
	if t.dec != nil {
		limit += midSlack
	}
	moved := false
	for range 8 {
		moved = false
		if room := limit - dst.buffered(); room > 0 {
			raw := c.rawPeekN(tlsPeekMax)
			if len(raw) > 0 || t.wire.pending {
				dst.compact()
				n := len(dst.b)
				var used int
				var err error
				dst.b, used, err = t.wire.decode(dst.b, raw, room)
				c.rawDiscard(used)
				moved = used > 0 || len(dst.b) > n
				if out := t.wire.takeOut(); len(out) > 0 {
					c.gc.Write(out)
				}
				if err == errTLSClosed { // the handler still gets what came before it
					if !t.eof {
						t.eof, t.eofAt = true, time.Now()
					}
					err = nil
				}
				if err != nil {
					if t.din.buffered() > 0 || t.mid.buffered() > 0 {
						t.rerr = err // delivered first, closed after the handler (OnTraffic)
						break
					}
					return err
				}
			}
		}
		if t.dec != nil && t.mid.buffered() > 0 {
			if room := decodedLimit - t.din.buffered(); room > 0 {
				used, err := t.decodeInto(t.mid.b[t.mid.r:], room)
				t.mid.discard(used)
				moved = moved || used > 0
				if err != nil {
					return err
				}
			}
		}
		if !moved || t.din.buffered() >= decodedLimit {
			break
		}
	}
	waiting := c.rawBuffered() > 0 || t.wire.pending || t.mid.buffered() > 0
	t.full = waiting && (t.din.buffered() >= decodedLimit || t.mid.buffered() >= limit)
	t.more = waiting && moved && !t.full // stopped by the iteration bound: go on after the handler
	return nil
}

func (c *Conn) rawBuffered() int {
	return c.gc.InboundBuffered()
}

// beforeTraffic runs before OnTraffic on a transformed connection: queued AsyncWrites go through
// the encoder, buffered input through the decoder. It returns the decoded bytes available.
func (c *Conn) beforeTraffic() (int, error) {
	t := c.tf
	c.flushAsync()
	if err := c.pump(); err != nil {
		return 0, err
	}
	return t.din.buffered(), nil
}

// flushAsync writes the AsyncWrites queued for the loop, in order. On the loop only.
func (c *Conn) flushAsync() {
	t := c.tf
	t.mu.Lock()
	async := t.async
	t.async = nil
	t.mu.Unlock()
	for _, a := range async {
		c.Write(a.b)
		if a.done != nil {
			a.done(nil)
		}
	}
}

// failAsync reports err to the AsyncWrites that can no longer be written (the connection
// closed). Concurrency-safe.
func (t *transform) failAsync(err error) {
	t.mu.Lock()
	async := t.async
	t.async = nil
	t.asyncDone = true
	t.mu.Unlock()
	for _, a := range async {
		if a.done != nil {
			a.done(err)
		}
	}
}

// waiting reports whether input is left that the handler has not had: raw bytes, records
// inside crypto/tls, or bytes waiting for the decoder. On the loop only.
func (t *transform) waiting() bool {
	return t.more || t.full || (t.wire != nil && t.wire.pending) || t.mid.buffered() > 0
}

// afterTraffic wakes the connection again when OnTraffic consumed decoded bytes while more
// encoded bytes wait behind decodedLimit (no socket event would call OnTraffic for them).
func (c *Conn) afterTraffic(before int) {
	t := c.tf
	if t.decoding() && (t.full && t.din.buffered() < before || t.more) {
		c.Wake()
	}
}

type asyncWrite struct {
	b    []byte
	done func(error)
}

// encodedAsyncWrite queues b for the loop, which encodes and writes it before its next
// OnTraffic. Concurrency-safe.
func (c *Conn) encodedAsyncWrite(b []byte, done func(error)) error {
	t := c.tf
	t.mu.Lock()
	if t.asyncDone { // closed after the caller's check: failAsync has run
		t.mu.Unlock()
		return ErrClosed
	}
	t.async = append(t.async, asyncWrite{b, done})
	t.mu.Unlock()
	return c.Wake()
}
