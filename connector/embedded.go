package connector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
)

// Embedded mode: a Go application in the connector's own process talks to it through a Local
// instead of the unix sockets. Frames go straight into the connector's routing (the same code
// as the send socket: filters, await_response, acks, persistence) and delivered messages come
// out of the type rings to the application's handler; only the application↔connector hop
// disappears, the peer link is unchanged. Package api uses a Local as its Transport
// (api.NewWithTransport); the methods below match that interface.

// ErrNoLocalType is returned by Listen for a type that is not in recv_message_types.
var ErrNoLocalType = errors.New("connector: message type not in recv_message_types")

// Local is the in-process endpoint of a connector. Concurrency-safe.
type Local struct {
	cn *Connector
	mu sync.Mutex // serialises route calls (the apiConn buffers are single-threaded)
	a  apiConn
}

// Local returns the connector's in-process endpoint (one per connector).
func (c *Connector) Local() *Local {
	c.localOnce.Do(func() { c.local = &Local{cn: c} })
	return c.local
}

// Send hands one complete frame (prefix included) to the connector, exactly as if it had been
// written on the send_to_connector socket; the connector copies what it keeps. While the
// destination queue is full it waits (backpressure) up to half a second, then drops as the
// socket path does.
func (l *Local) Send(frame []byte) error {
	_, err := l.send(frame, nil, false)
	return err
}

// wakeTouched wakes the links the route calls since the last wake queued frames for, and empties
// the list keeping its array (no allocation per send). Caller holds l.mu (Wake never blocks).
func (l *Local) wakeTouched() {
	if !l.a.flushPending(l.cn, false) && !l.a.rewake.Swap(true) {
		// frames a full queue refused stay held: retry once the touched links drained some
		time.AfterFunc(rewakeDelay, func() {
			l.mu.Lock()
			l.a.rewake.Store(false)
			l.wakeTouched()
			l.mu.Unlock()
		})
	}
	l.a.wakeTouched()
}

// send routes frame (retry: it was already routed once and met backpressure); ended reports
// that the connector ended an await request at once (what
// closes an application's await connection on the socket path).
func (l *Local) send(frame []byte, r replier, retry bool) (ended bool, err error) {
	var start time.Time
	for ; ; retry = true {
		l.mu.Lock()
		if r == nil {
			r = localNoReply{}
		}
		l.a.retry = retry // a frame is counted once (debug_msg_counts), not at each retry
		err = l.cn.route(r, &l.a, frame, 0, false)
		l.wakeTouched()
		ended = l.a.closeAfter
		l.a.closeAfter = false
		l.mu.Unlock()
		if err != errBackpressure {
			return ended, err
		}
		if start.IsZero() {
			start = time.Now()
		}
		if time.Since(start) > backpressureMax {
			l.mu.Lock()
			l.a.blockedSince = time.Now().Add(-2 * backpressureMax) // give up: the next route drops
			l.mu.Unlock()
		}
		time.Sleep(rewakeDelay)
	}
}

// SendDurable is Send with the at_least_once acceptance signal: it returns nil once the
// message is fsynced in the sender's log for its peer (from there the connector delivers it at
// least once, across reconnects and restarts of either side, see docs/persistence.md). While
// the log's window is full it waits (backpressure), up to ctx. It returns an error wrapping
// ErrNotDurable when the message was handled without the guarantee (at_least_once not
// configured or not covering its type, a file, a peer that is a Python connector: the message
// was then routed as by Send), and ctx's error if ctx ends first (the message may still be
// delivered). Concurrency-safe; concurrent calls share the log's fsyncs (group commit).
func (l *Local) SendDurable(ctx context.Context, frame []byte) error {
	for retry := false; ; retry = true {
		l.mu.Lock()
		l.a.aloSender = nil
		l.a.retry = retry
		err := l.cn.route(localNoReply{}, &l.a, frame, 0, false)
		s, seq := l.a.aloSender, l.a.aloSeq
		l.a.aloSender = nil
		l.wakeTouched()
		l.a.closeAfter = false
		if err == errBackpressure && s == nil && l.cn.alo == nil {
			l.a.blockedSince = time.Time{}
		}
		l.mu.Unlock()
		if err == errBackpressure {
			t := time.NewTimer(rewakeDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if err != nil {
			return err
		}
		if s == nil {
			return fmt.Errorf("%w (sent, if at all, without it)", ErrNotDurable)
		}
		return s.waitDurable(ctx, seq)
	}
}

// SendAwait hands an await_response frame and waits for the reply frame (the caller owns it),
// or for ctx. (nil, nil) means the connector ended the request without a reply, as when it
// closes an application's await connection (peer absent, ignored traffic), or stopped waiting
// for it (await_response_timeout).
func (l *Local) SendAwait(ctx context.Context, frame []byte) ([]byte, error) {
	r := &localReplier{ch: make(chan []byte, 1)}
	ended, err := l.send(frame, r, false)
	if err != nil {
		return nil, err
	}
	if ended {
		return nil, nil
	}
	select {
	case b, ok := <-r.ch:
		if !ok {
			return nil, nil
		}
		return b, nil
	case <-ctx.Done():
		l.cn.forgetWaitersOf(r)
		return nil, ctx.Err()
	}
}

// Listen makes the connector deliver messages of messageType to h instead of dialing the
// type's receive socket. h runs on one goroutine per type, sequentially; frame is a complete
// frame valid only during the call. One listener per type; Unlisten removes it.
func (l *Local) Listen(messageType string, h func(frame []byte)) error {
	cn := l.cn
	if _, ok := cn.recvTypes[messageType]; !ok {
		return fmt.Errorf("%w: %s", ErrNoLocalType, messageType)
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.sinks == nil {
		cn.sinks = map[string]*localSink{}
	}
	if old := cn.sinks[messageType]; old != nil {
		return fmt.Errorf("connector: already listening for %s", messageType)
	}
	s := &localSink{h: h, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	cn.sinks[messageType] = s
	if rt := cn.recv[messageType]; rt != nil {
		rt.sink.Store(s)
		go s.run(rt)
	}
	return nil
}

// Unlisten stops local delivery of messageType (messages then go to its socket, if any).
func (l *Local) Unlisten(messageType string) error {
	cn := l.cn
	cn.mu.Lock()
	s := cn.sinks[messageType]
	delete(cn.sinks, messageType)
	rt := cn.recv[messageType]
	cn.mu.Unlock()
	if s == nil {
		return fmt.Errorf("connector: not listening for %s", messageType)
	}
	if rt != nil {
		rt.sink.CompareAndSwap(s, nil)
	}
	s.stop()
	return nil
}

// localSink delivers one type's ring to an in-process handler.
type localSink struct {
	h    func(frame []byte)
	wake chan struct{}
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func (s *localSink) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *localSink) stop() {
	s.once.Do(func() { close(s.quit) })
}

// run drains rt's ring into the handler until stopped (or the ring's run ends).
func (s *localSink) run(rt *recvType) {
	var batch []*bytebufferpool.ByteBuffer
	var tags []aloTag
	for {
		for {
			batch = rt.q.PopBatch(batch[:0], sendBatchMsgs)
			if len(batch) == 0 {
				break
			}
			for i, b := range batch {
				frame, tag, tagged := splitALOTag(b.B)
				s.h(frame)
				if tagged {
					tags = append(tags, tag)
				}
				bytebufferpool.Put(b)
				batch[i] = nil
			}
			if len(tags) > 0 { // at_least_once: handed over once the handler returned
				rt.cn.aloDelivered(tags)
				tags = tags[:0]
			}
		}
		select {
		case <-s.wake:
		case <-s.quit:
			return
		case <-rt.stopped:
			return
		}
	}
}

// localReplier receives an embedded await's reply.
type localReplier struct {
	ch   chan []byte
	once sync.Once
}

func (r *localReplier) reply(b *bytebufferpool.ByteBuffer, _ bool, _ *loop.Conn) {
	out := append([]byte(nil), b.B...)
	bytebufferpool.Put(b)
	r.once.Do(func() { r.ch <- out })
}

func (r *localReplier) drop()   { r.once.Do(func() { close(r.ch) }) }
func (r *localReplier) expire() { r.drop() }

// localNoReply is the replier of plain (non-await) embedded sends.
type localNoReply struct{}

func (localNoReply) reply(b *bytebufferpool.ByteBuffer, _ bool, _ *loop.Conn) {
	bytebufferpool.Put(b)
}
func (localNoReply) drop()   {}
func (localNoReply) expire() {}

// SendBatch hands frames (complete frames back to back, prefixes included) to the connector in
// order, exactly as that many Send calls would, under one routing lock and with one wake per
// touched link while nothing waits. A frame that meets a full queue waits as Send does. It
// returns how many frames were handed over before an error (a malformed frame: the rest is not
// sent). Concurrency-safe; the connector copies what it keeps.
func (l *Local) SendBatch(frames []byte) (int, error) {
	n := 0
	for len(frames) > 0 {
		var pending []byte // a frame that met backpressure: sent by send, which waits
		var err error
		l.mu.Lock()
		for len(frames) > 0 {
			size, ferr := codec.FrameSize(frames, codec.DefaultMaxFrame)
			if ferr == nil && (size == 0 || size > len(frames)) {
				ferr = fmt.Errorf("%w: batch holds %d bytes for a frame of %d", codec.ErrTruncated, len(frames), size)
			}
			if ferr != nil {
				err = fmt.Errorf("connector: SendBatch frame %d: %w", n, ferr)
				break
			}
			f := frames[:size]
			l.a.retry = false
			if err = l.cn.route(localNoReply{}, &l.a, f, 0, false); err == errBackpressure {
				pending, err = f, nil
				frames = frames[size:]
				break
			}
			l.a.closeAfter = false
			if err != nil {
				err = fmt.Errorf("connector: SendBatch frame %d: %w", n, err)
				break
			}
			frames = frames[size:]
			n++
		}
		l.wakeTouched()
		l.mu.Unlock()
		if err != nil {
			return n, err
		}
		if pending != nil {
			if _, err := l.send(pending, nil, true); err != nil {
				return n, fmt.Errorf("connector: SendBatch frame %d: %w", n, err)
			}
			n++
		}
	}
	return n, nil
}
