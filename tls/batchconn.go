package tls

import (
	"net"
	"sync"
)

// BatchConn goes between a crypto/tls.Conn and its network connection so that the records of
// one large tls.Conn.Write leave in a few write system calls instead of one per record:
// crypto/tls writes every record (at most 16 KiB of data) with its own Write on the
// underlying connection, which for a stream of small messages is one syscall per ~100
// messages on each side.
//
// Use: bc := NewBatchConn(nc, 0); tc := tls.Client(bc, cfg) (or tls.Server); then write bulk
// data with bc.Batch(func() (int, error) { return tc.Write(b) }). Writes made outside Batch
// (the handshake, alerts, close_notify) go straight through, so nothing else changes.
//
// Concurrency: Batch and the writes crypto/tls makes may come from any goroutine; they are
// serialised by a mutex held while writing to the network connection, so record order is
// kept. Reads, deadlines and Close are the wrapped connection's. Memory: the buffer grows to
// at most max bytes (plus one record) and is reused.
type BatchConn struct {
	net.Conn
	mu  sync.Mutex
	on  int // nesting depth of Batch
	buf []byte
	max int
	err error // first error of a flush within the current batch
}

// DefaultBatchBytes is the flush threshold of NewBatchConn(c, 0).
const DefaultBatchBytes = 256 << 10

// NewBatchConn wraps c; a batch is written out whenever it reaches max bytes (<= 0:
// DefaultBatchBytes) and at the end of Batch.
func NewBatchConn(c net.Conn, max int) *BatchConn {
	if max <= 0 {
		max = DefaultBatchBytes
	}
	return &BatchConn{Conn: c, max: max}
}

// Write is called by crypto/tls with one record (or a handshake flight). Inside Batch it is
// collected; otherwise written at once.
func (b *BatchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on == 0 {
		return b.Conn.Write(p)
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(b.buf) > 0 && len(b.buf)+len(p) > b.max {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *BatchConn) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	if err != nil && b.err == nil {
		b.err = err
	}
	return err
}

// Batch runs write (a tls.Conn.Write, typically) with the records it produces collected, then
// writes what is left in one call. It returns write's count and its error, or the error of
// writing the records out.
func (b *BatchConn) Batch(write func() (int, error)) (int, error) {
	b.mu.Lock()
	b.on++
	b.mu.Unlock()
	n, err := write()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on--; b.on == 0 {
		ferr := b.flushLocked()
		if err == nil {
			err = b.err
			if err == nil {
				err = ferr
			}
		}
		b.err = nil
	}
	return n, err
}
