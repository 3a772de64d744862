package loop

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Streams: connections served by goroutines instead of gnet. gnet has no TLS and crypto/tls
// wants a blocking net.Conn, so a TLS connection (after its handshake) is enrolled with
// EnrollStream: one reader goroutine, one writer goroutine and one driver goroutine that makes
// every Handler call for the connection, in order, exactly as a gnet loop would (the Handler
// cannot tell the difference). Output is batched: while the writer goroutine writes one batch,
// the driver collects the next. Input is bounded: when more than streamInboundLimit bytes are
// buffered and unconsumed, the driver stops taking chunks from the reader, so TCP flow control
// pushes back on the peer.

const (
	streamChunk        = 64 << 10
	streamInboundLimit = 4 << 20
	streamCloseFlush   = 5 * time.Second
)

type asyncWrite struct {
	b    []byte
	done func(error)
}

type stream struct {
	c      *Conn
	nc     net.Conn
	eng    *Engine
	readCh chan []byte // chunks from the reader; closed at EOF/error (readErr set before)
	wakeCh chan struct{}
	quit   chan struct{} // closed by Close
	once   sync.Once

	readErr error

	mu     sync.Mutex // guards async and outN
	async  []asyncWrite
	outN   int // bytes accepted by Write and not yet written
	closed bool

	// driver-owned
	in       inbuf
	out      []byte
	spare    []byte
	writing  bool
	writeReq chan []byte
	writeRes chan writeResult
}

type writeResult struct {
	b   []byte
	err error
}

// EnrollStream serves an established connection (e.g. a *tls.Conn after its handshake) with
// Handler h on goroutines; h.OnOpen runs before EnrollStream returns. ctx is stored in Conn.Ctx.
// Concurrency-safe; the engine's Stop closes the connection.
func (e *Engine) EnrollStream(nc net.Conn, h Handler, ctx any) (*Conn, error) {
	select {
	case <-e.done:
		nc.Close()
		return nil, ErrStopped
	default:
	}
	c := &Conn{h: h, Ctx: ctx, network: "tcp"}
	s := &stream{c: c, nc: nc, eng: e, readCh: make(chan []byte, 16), wakeCh: make(chan struct{}, 1),
		quit: make(chan struct{}), writeReq: make(chan []byte, 1), writeRes: make(chan writeResult, 1)}
	c.st = s
	if !e.addStream(s) {
		nc.Close()
		return nil, ErrStopped
	}
	opened := make(chan struct{})
	go s.reader()
	go s.writer()
	go s.drive(opened)
	<-opened
	return c, nil
}

func (e *Engine) addStream(s *stream) bool {
	e.streamsMu.Lock()
	defer e.streamsMu.Unlock()
	if e.streamsClosed {
		return false
	}
	if e.streams == nil {
		e.streams = map[*stream]struct{}{}
	}
	e.streams[s] = struct{}{}
	e.streamsWG.Add(1)
	return true
}

func (e *Engine) removeStream(s *stream) {
	e.streamsMu.Lock()
	delete(e.streams, s)
	e.streamsMu.Unlock()
	e.streamsWG.Done()
}

// stopStreams closes every stream and waits for their drivers.
func (e *Engine) stopStreams(timeout time.Duration) {
	e.streamsMu.Lock()
	e.streamsClosed = true
	list := make([]*stream, 0, len(e.streams))
	for s := range e.streams {
		list = append(list, s)
	}
	e.streamsMu.Unlock()
	for _, s := range list {
		s.c.Close()
	}
	done := make(chan struct{})
	go func() { e.streamsWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

func (s *stream) reader() {
	for {
		b := (*chunkPool.Get().(*[]byte))[:streamChunk]
		n, err := s.nc.Read(b)
		if n > 0 {
			select {
			case s.readCh <- b[:n]:
			case <-s.quit:
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				s.readErr = err
			}
			close(s.readCh)
			return
		}
	}
}

func (s *stream) writer() {
	for b := range s.writeReq {
		_, err := s.nc.Write(b)
		s.writeRes <- writeResult{b, err}
	}
}

func (s *stream) drive(opened chan struct{}) {
	c := s.c
	defer s.eng.removeStream(s)
	c.h.OnOpen(c)
	close(opened)
	s.flush()
	var err error
	for err == nil {
		readCh := s.readCh
		if s.in.buffered() > streamInboundLimit {
			readCh = nil // backpressure: let the socket buffer fill up
		}
		select {
		case chunk, ok := <-readCh:
			if !ok {
				err = s.readErr
				if err == nil {
					err = io.EOF
				}
				break
			}
			s.in.compact()
			s.in.b = append(s.in.b, chunk...)
			putChunk(chunk)
			// Take the chunks already waiting too (a TLS read returns one record, ≤ 16 KiB):
			// one OnTraffic per burst, not per record.
			eof := false
			for more := true; more && s.in.buffered() <= streamInboundLimit; {
				select {
				case c2, ok2 := <-s.readCh:
					if !ok2 {
						eof, more = true, false
						break
					}
					s.in.b = append(s.in.b, c2...)
					putChunk(c2)
				default:
					more = false
				}
			}
			err = s.traffic()
			if err == nil && eof {
				err = s.readErr
				if err == nil {
					err = io.EOF
				}
			}
		case <-s.wakeCh:
			c.woken.Store(false)
			err = s.traffic()
		case res := <-s.writeRes:
			s.writing = false
			s.mu.Lock()
			s.outN -= len(res.b)
			s.mu.Unlock()
			s.spare = res.b[:0]
			if res.err != nil {
				err = res.err
				break
			}
			s.flush()
		case <-s.quit:
			err = errClosedLocally
		}
	}
	c.closed.Store(true)
	if err == errClosedLocally || err == io.EOF {
		s.drainOutput()
	}
	s.nc.Close()
	close(s.writeReq)
	if err == errClosedLocally || err == io.EOF {
		err = nil
	}
	c.h.OnClose(c, err)
}

var errClosedLocally = errors.New("loop: closed locally")

// traffic runs queued async writes and OnTraffic, then flushes. Driver only.
func (s *stream) traffic() error {
	s.mu.Lock()
	async := s.async
	s.async = nil
	s.mu.Unlock()
	for _, a := range async {
		s.write(a.b)
		if a.done != nil {
			a.done(nil)
		}
	}
	if c := s.c; c.tf != nil {
		before, err := c.beforeTraffic()
		if err != nil {
			return err
		}
		defer c.afterTraffic(before)
	}
	if err := s.c.h.OnTraffic(s.c); err != nil {
		return err
	}
	s.flush()
	return nil
}

func (s *stream) write(b []byte) {
	s.out = append(s.out, b...)
	s.mu.Lock()
	s.outN += len(b)
	s.mu.Unlock()
}

// flush hands the collected output to the writer unless a write is in progress. Driver only.
func (s *stream) flush() {
	if s.writing || len(s.out) == 0 {
		return
	}
	s.writing = true
	b := s.out
	s.out = s.spare
	s.spare = nil
	s.writeReq <- b
}

// drainOutput writes what is still buffered before closing (bounded in time). Driver only.
func (s *stream) drainOutput() {
	deadline := time.Now().Add(streamCloseFlush)
	s.nc.SetWriteDeadline(deadline)
	for s.writing || len(s.out) > 0 {
		if !s.writing {
			s.flush()
		}
		select {
		case res := <-s.writeRes:
			s.writing = false
			if res.err != nil {
				return
			}
		case <-time.After(time.Until(deadline)):
			return
		}
	}
}

func (s *stream) outbound() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outN
}

func (s *stream) asyncWrite(b []byte, done func(error)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.async = append(s.async, asyncWrite{b, done})
	s.mu.Unlock()
	s.wake()
	return nil
}

func (s *stream) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

func (s *stream) close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
	})
}

// chunkPool recycles the reader's 64 KiB read buffers (one allocation per read cost a stream
// more than its TLS decryption).
var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk); return &b }}

func putChunk(b []byte) {
	if cap(b) >= streamChunk {
		b = b[:streamChunk]
		chunkPool.Put(&b)
	}
}
