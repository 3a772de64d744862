// Package loop is aioconn's event loop: a thin layer over gnet/v2 that owns the TCP and unix-socket
// listeners of one connector run, enrolls dialed connections (TCP peers, application listener
// sockets) into the same loops, and hands every event to a per-listener or per-connection Handler.
// It knows nothing of aioconnectors; it is the only package that imports gnet.
//
// Threading: every Handler method runs on the event loop that owns the connection; handlers must
// never block (no disk, DNS or dial work: do it on a goroutine and come back with Conn.Wake or
// Conn.AsyncWrite). Methods documented as concurrency-safe may be called from any goroutine.
package loop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"
	"golang.org/x/sys/unix"
)

// Errors of package loop.
var (
	ErrStopped    = errors.New("loop: engine stopped")
	ErrNoListener = errors.New("loop: at least one listener is required")
	ErrClosed     = errors.New("loop: connection closed")
	// errTLSClosed: the peer closed its TLS stream (close_notify); a clean close.
	errTLSClosed = errors.New("loop: TLS peer closed the connection")
)

// Handler receives the events of the connections it owns. All methods run on the owning event loop.
type Handler interface {
	// OnOpen is called once when the connection is registered on its loop.
	OnOpen(c *Conn)
	// OnTraffic is called when bytes are buffered for reading (c.InboundBuffered() > 0) or after
	// a Wake, and, when the peer closed while input is left, once more before OnClose with
	// c.Closing() true (again while it takes some). Returning a non-nil error closes the
	// connection (OnClose receives it).
	OnTraffic(c *Conn) error
	// OnClose is called once when the connection is gone; err is nil on a clean EOF.
	OnClose(c *Conn, err error)
}

// Listener names an address to listen on ("tcp://127.0.0.1:10673" or "unix:///path/to/socket")
// and the Handler of the connections accepted there.
type Listener struct {
	Addr    string
	Handler Handler
}

// Options tunes the engine. The zero value is usable.
type Options struct {
	// Loops is the number of event loops (default: one per CPU).
	Loops int
	// ReusePort sets SO_REUSEPORT on the TCP listener (SO_REUSEADDR is always set, as asyncio does).
	ReusePort bool
	// ReadBufferCap is the per-connection read buffer size (default 64 KiB).
	ReadBufferCap int
}

// Conn is one connection on the loop. Reading methods (Peek, Discard, InboundBuffered) and Write
// must be called on the loop (inside a Handler method); Wake, AsyncWrite, Close and the accessors
// marked so are concurrency-safe.
type Conn struct {
	gc      gnet.Conn
	h       Handler
	network string
	woken   atomic.Bool
	closed  atomic.Bool
	tf      *transform                // byte-stream transforms (transform.go, tlswire.go), loop-owned; nil: none
	tfPub   atomic.Pointer[transform] // tf, for TransformCounts off the loop
	encoded atomic.Bool               // tf.enc is set (read by AsyncWrite off the loop)
	ending  bool                      // the peer closed: the Handler is offered what is left (Closing), loop-owned
	m       *member                   // the Group member engine it belongs to; nil: an engine of its own
	refused bool                      // its member was stopping at OnOpen: closed unseen by the Handler (loop-written, read after Register)
	abort   atomic.Bool               // its member's Stop: a closing TLS connection does not wait for its output
	// Ctx belongs to the Handler (set it in OnOpen or before Enroll); loop never touches it.
	Ctx any
}

// Peek returns the next n buffered bytes without consuming them (n <= 0: everything buffered).
// The slice is valid only until the next Discard or the end of the Handler call. On the loop only.
func (c *Conn) Peek(n int) ([]byte, error) {
	if c.tf != nil && c.tf.decoding() {
		return c.tf.din.peek(n)
	}
	return c.gc.Peek(n)
}

// Discard consumes n buffered bytes. On the loop only.
func (c *Conn) Discard(n int) (int, error) {
	if c.tf != nil && c.tf.decoding() {
		return c.tf.din.discard(n)
	}
	return c.gc.Discard(n)
}

// InboundBuffered is the number of bytes ready to read. On the loop only.
func (c *Conn) InboundBuffered() int {
	if c.tf != nil && c.tf.decoding() {
		return c.tf.din.buffered()
	}
	return c.gc.InboundBuffered()
}

// Held is every input byte the connection holds for the Handler: as read from the socket and,
// on a transformed (TLS, compressed) connection, decoded, so that it also counts what waits
// behind the decoded-bytes cap (for backpressure bounds). On the loop only.
func (c *Conn) Held() int {
	n := c.gc.InboundBuffered()
	if t := c.tf; t != nil && t.decoding() {
		n += t.din.buffered() + t.mid.buffered()
	}
	return n
}

// Closing reports whether the peer closed the connection and the Handler is being offered the
// input that is left, before OnClose: it must take now whatever it can (drop what it cannot,
// counting it), since nothing can wait; input it leaves is lost. On the loop only.
func (c *Conn) Closing() bool { return c.ending }

// OutboundBuffered is the number of bytes accepted by Write but not yet sent. On the loop only.
func (c *Conn) OutboundBuffered() int {
	return c.gc.OutboundBuffered()
}

// Write sends b now (one write syscall) and buffers what the socket does not take. b may be reused
// by the caller after Write returns. On the loop only.
func (c *Conn) Write(b []byte) (int, error) {
	if c.tf != nil && (c.tf.enc != nil || c.tf.wire != nil) {
		return c.tfWrite(b)
	}
	return c.gc.Write(b)
}

// tfWrite writes b through the encoder (link compression) and the TLS record layer.
func (c *Conn) tfWrite(b []byte) (int, error) {
	t := c.tf
	out := b
	if t.enc != nil {
		t.encBuf = t.enc.Encode(t.encBuf[:0], b)
		t.plainOut.Add(int64(len(b)))
		t.wireOut.Add(int64(len(t.encBuf)))
		out = t.encBuf
	}
	if t.wire != nil {
		var err error
		if t.wireBuf, err = t.wire.encode(t.wireBuf[:0], out); err != nil {
			return 0, err
		}
		out = t.wireBuf
	}
	_, err := c.gc.Write(out)
	if cap(t.encBuf) > 1<<20 {
		t.encBuf = nil
	}
	if cap(t.wireBuf) > 1<<20 {
		t.wireBuf = nil
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// WriteFrom writes b on c at once, as Write does, when c is served by the same gnet event loop as
// from, and reports whether it did; otherwise (another loop, a transformed (TLS, compressed) or closed
// connection) it does nothing and the caller uses AsyncWrite. It saves the wake-up and the loop
// iteration of an AsyncWrite. Call it only from a Handler method running for from.
func (c *Conn) WriteFrom(from *Conn, b []byte) bool {
	if from == nil || c.gc == nil || from.gc == nil || c.tf != nil || c.closed.Load() || c.gc.EventLoop() != from.gc.EventLoop() {
		return false
	}
	_, err := c.gc.Write(b)
	return err == nil
}

// AsyncWrite queues b to be written on the connection's loop; b must not be modified until done
// is called (done may be nil; it runs on the loop). Concurrency-safe.
func (c *Conn) AsyncWrite(b []byte, done func(err error)) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.encoded.Load() {
		return c.encodedAsyncWrite(b, done)
	}
	var cb gnet.AsyncCallback
	if done != nil {
		cb = func(_ gnet.Conn, err error) error { done(err); return nil }
	}
	return c.gc.AsyncWrite(b, cb)
}

// Wake makes the loop call OnTraffic for this connection soon; many Wakes before the loop runs
// collapse into one call. Concurrency-safe.
func (c *Conn) Wake() error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.woken.Swap(true) {
		return nil
	}
	return c.gc.Wake(nil)
}

// Close closes the connection. A TLS connection first writes what was queued before Close, then
// close_notify, and waits (at most tlsCloseFlush) for gnet to send its output; a plaintext one is
// closed by gnet, which writes only what the socket takes at once of any buffered output.
// Concurrency-safe.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if t := c.tfPub.Load(); t != nil && t.wire != nil { // close_notify first, on the loop
		return c.gc.Wake(nil)
	}
	return c.gc.Close()
}

// Closed reports whether Close was called or the connection is gone. Concurrency-safe.
func (c *Conn) Closed() bool { return c.closed.Load() }

// RemoteAddr is the peer's address. Concurrency-safe.
func (c *Conn) RemoteAddr() net.Addr {
	return c.gc.RemoteAddr()
}

// LocalAddr is the local address. Concurrency-safe.
func (c *Conn) LocalAddr() net.Addr {
	return c.gc.LocalAddr()
}

// Network is "tcp" or "unix". Concurrency-safe.
func (c *Conn) Network() string { return c.network }

// Fd is the socket's descriptor (for socket options). On the loop only.
func (c *Conn) Fd() int {
	return c.gc.Fd()
}

// NetConn is the *tls.Conn of a connection enrolled with EnrollTLS, nil for others.
// Concurrency-safe for reading its state; never read from or write to it directly.
func (c *Conn) NetConn() net.Conn {
	if t := c.tfPub.Load(); t != nil && t.wire != nil {
		return t.wire.tc
	}
	return nil
}

// Engine runs the listeners of one connector run on gnet event loops.
type Engine struct {
	eng      gnet.Engine
	tcp      Handler
	unixH    map[string]Handler
	booted   chan struct{}
	started  chan struct{} // closed by the first OnTick: every loop is registered and running
	done     chan struct{}
	runErr   error
	tcpAddr  net.Addr
	stopOnce sync.Once
	m        *member // set: a member of a Group (group.go), sharing the group's loops
	gnet.BuiltinEventEngine
}

// splitListeners checks ls (at least one; each "tcp://host:port", at most once, or
// "unix:///path") and returns each one's network ("tcp", "unix") and address.
func splitListeners(ls []Listener) (nets, addrs []string, err error) {
	if len(ls) == 0 {
		return nil, nil, ErrNoListener
	}
	for _, l := range ls {
		network, addr, ok := strings.Cut(l.Addr, "://")
		switch {
		case !ok || network != "tcp" && network != "unix":
			return nil, nil, fmt.Errorf("loop: unsupported listener address %q", l.Addr)
		case network == "tcp" && slices.Contains(nets, "tcp"):
			return nil, nil, fmt.Errorf("loop: only one tcp listener is supported (%s)", l.Addr)
		}
		nets, addrs = append(nets, network), append(addrs, addr)
	}
	return nets, addrs, nil
}

// Start listens on every listener and runs the loops in the background. It returns once the
// listeners are bound (or binding failed).
func Start(ls []Listener, o Options) (*Engine, error) {
	nets, where, err := splitListeners(ls)
	if err != nil {
		return nil, err
	}
	e := &Engine{unixH: map[string]Handler{}, booted: make(chan struct{}), started: make(chan struct{}), done: make(chan struct{})}
	addrs := make([]string, 0, len(ls))
	var tcpAddr string
	for i, l := range ls {
		if nets[i] == "tcp" {
			e.tcp = l.Handler
			tcpAddr = where[i]
		} else {
			e.unixH[where[i]] = l.Handler
		}
		addrs = append(addrs, l.Addr)
	}
	if o.ReadBufferCap == 0 {
		o.ReadBufferCap = 64 << 10
	}
	opts := []gnet.Option{
		gnet.WithMulticore(o.Loops != 1),
		gnet.WithReadBufferCap(o.ReadBufferCap),
		gnet.WithWriteBufferCap(64 << 10),
		gnet.WithLoadBalancing(gnet.LeastConnections),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogLevel(logging.ErrorLevel),
		gnet.WithLogger(quietLogger{}),
		gnet.WithTicker(true),
		gnet.WithReuseAddr(true),
		gnet.WithReusePort(o.ReusePort),
	}
	if o.Loops > 0 {
		opts = append(opts, gnet.WithNumEventLoop(o.Loops))
	}
	go func() {
		err := gnet.Rotate(e, addrs, opts...)
		select {
		case <-e.booted:
		default:
			e.runErr = err
			close(e.booted)
		}
		if err != nil && e.runErr == nil {
			e.runErr = err
		}
		close(e.done)
	}()
	<-e.booted
	if e.runErr != nil {
		return nil, fmt.Errorf("loop: listen %s: %w", strings.Join(addrs, ", "), e.runErr)
	}
	select { // gnet calls OnBoot before its loops exist; the ticker starts after them
	case <-e.started:
	case <-e.done:
		if e.runErr == nil {
			e.runErr = ErrStopped
		}
		return nil, fmt.Errorf("loop: start %s: %w", strings.Join(addrs, ", "), e.runErr)
	}
	if tcpAddr != "" {
		fd, err := e.eng.DupListener("tcp", tcpAddr)
		if err == nil {
			if sa, err2 := unix.Getsockname(fd); err2 == nil {
				if in4, ok := sa.(*unix.SockaddrInet4); ok {
					e.tcpAddr = &net.TCPAddr{IP: net.IP(in4.Addr[:]).To4(), Port: in4.Port}
				}
			}
			unix.Close(fd)
		}
	}
	return e, nil
}

// TCPAddr is the bound address of the TCP listener (useful with port 0), or nil.
func (e *Engine) TCPAddr() net.Addr { return e.tcpAddr }

// OnBoot implements gnet.EventHandler.
func (e *Engine) OnBoot(eng gnet.Engine) gnet.Action {
	e.eng = eng
	close(e.booted)
	return gnet.None
}

// OnTick implements gnet.EventHandler: its first call tells Start that the loops are running.
func (e *Engine) OnTick() (time.Duration, gnet.Action) {
	select {
	case <-e.started:
	default:
		close(e.started)
	}
	return time.Hour, gnet.None
}

// OnOpen implements gnet.EventHandler.
func (e *Engine) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c, ok := gc.Context().(*Conn)
	if !ok { // accepted on a listener
		c = &Conn{gc: gc}
		if la := gc.LocalAddr(); la != nil && la.Network() == "unix" {
			c.network = "unix"
			c.h = e.unixH[la.String()]
		} else {
			c.network = "tcp"
			c.h = e.tcp
		}
		if c.h == nil {
			return nil, gnet.Close
		}
		gc.SetContext(c)
	}
	c.gc = gc
	if c.m != nil && !c.m.join(c) {
		// The Handler never sees this connection (no OnOpen, so no OnClose) and Enroll reports
		// ErrStopped, as an engine of its own refuses after Stop.
		c.refused = true
		c.closed.Store(true)
		gc.SetContext(nil)
		return nil, gnet.Close
	}
	c.h.OnOpen(c)
	if c.closed.Load() {
		return nil, gnet.Close
	}
	return nil, gnet.None
}

// OnTraffic implements gnet.EventHandler.
func (e *Engine) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		return gnet.Close
	}
	c.woken.Store(false)
	if t := c.tf; t != nil {
		if t.wire != nil && c.closed.Load() { // Close was called: close_notify, then close
			return c.closingTLS()
		}
		before, err := c.beforeTraffic()
		if err != nil {
			c.closeErr(err)
			return gnet.Close
		}
		defer c.afterTraffic(before)
	}
	if err := c.h.OnTraffic(c); err != nil {
		c.closeErr(err)
		return gnet.Close
	}
	if t := c.tf; t != nil {
		if t.rerr != nil { // a bad record after good ones: the handler had the good ones first
			c.closeErr(t.rerr)
			return gnet.Close
		}
		if t.eof {
			if !t.waiting() || time.Since(t.eofAt) > tlsCloseFlush {
				return gnet.Close // TLS close_notify and all before it handled: a clean close
			}
			c.wakeSoon() // until handled
		}
	}
	return gnet.None
}

// drainAtEOF marks a connection that the peer's EOF (or TLS close_notify) closes as Closing,
// also for its OnClose, and gives the Handler the input it still holds, as long as it takes some:
// on a plaintext connection what a Handler held back for backpressure, on a transformed one also
// what waits behind the decoded-bytes cap (gnet closes at EOF at once). The Handler cannot wait
// here: what it leaves is lost. On the loop only.
func (c *Conn) drainAtEOF() {
	c.ending = true
	t := c.tf
	if t != nil && (!t.decoding() || t.closing || t.rerr != nil) {
		return
	}
	for range 256 {
		raw, held := c.gc.InboundBuffered(), 0
		if t != nil {
			held = t.din.buffered() + t.mid.buffered()
			if c.pump() != nil || t.din.buffered() == 0 {
				return
			}
		} else if raw == 0 {
			return
		}
		if c.h.OnTraffic(c) != nil {
			return
		}
		if c.gc.InboundBuffered() == raw && (t == nil || t.din.buffered()+t.mid.buffered() == held) {
			return // the Handler took nothing more
		}
	}
}

// tlsCloseFlush bounds how long a closing TLS connection waits for its output to drain, or a
// closed one for its last input to be handled (as tls.Conn.Close bounded its write).
const tlsCloseFlush = 5 * time.Second

// wakeSoon calls OnTraffic again in 10 ms (a closing TLS connection polling its output, or its
// last input), past Wake's collapsing and the closed flag. One timer per connection, re-armed:
// every socket event meanwhile calls it again. Loop-owned (c.tf set); OnClose stops the timer.
func (c *Conn) wakeSoon() {
	if t := c.tf; t.soon != nil {
		t.soon.Reset(10 * time.Millisecond)
		return
	}
	c.tf.soon = time.AfterFunc(10*time.Millisecond, func() { c.gc.Wake(nil) })
}

// closingTLS runs Close's part on the loop: the writes queued before Close, then close_notify,
// then the connection stays open (input ignored) until gnet has sent its buffered output or
// tlsCloseFlush passed: gnet's own close sends only what the socket takes at once.
func (c *Conn) closingTLS() gnet.Action {
	t := c.tf
	if !t.closing {
		t.closing = true
		t.closeAt = time.Now()
		c.flushAsync()
		t.wire.closeNotify(c)
	}
	if c.abort.Load() || c.gc.OutboundBuffered() == 0 || time.Since(t.closeAt) > tlsCloseFlush {
		return gnet.Close
	}
	c.wakeSoon()
	return gnet.None
}

// OnClose implements gnet.EventHandler.
func (e *Engine) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, ok := gc.Context().(*Conn)
	if !ok {
		return gnet.None
	}
	c.closed.Store(true)
	ce := c.takeCloseErr()
	if ce != nil && err == nil {
		err = ce
	}
	// the peer closed (EOF, or TLS close_notify handled in OnTraffic): Closing, and what it sent
	// before is offered to the Handler; not after a local Close or a Handler or decoding error
	if eof := errors.Is(err, io.EOF); ce == nil && (eof || c.tf != nil && c.tf.eof) {
		c.drainAtEOF()
		if eof && c.tf != nil && c.tf.eof {
			err = nil // close_notify came before the FIN: a clean TLS close
		}
	}
	if t := c.tf; t != nil {
		if t.wire != nil { // every close of a TLS link ends with close_notify (sent once by crypto/tls)
			t.wire.closeNotify(c) // gnet sends what the socket takes after OnClose
		}
		t.failAsync(ErrClosed)
		if t.soon != nil {
			t.soon.Stop()
		}
	}
	c.h.OnClose(c, err)
	if c.m != nil {
		c.m.leave(c)
	}
	return gnet.None
}

var closeErrs sync.Map // *Conn -> error: the error a handler returned, reported in OnClose

func (c *Conn) closeErr(err error) { closeErrs.Store(c, err) }
func (c *Conn) takeCloseErr() error {
	v, ok := closeErrs.LoadAndDelete(c)
	if !ok {
		return nil
	}
	return v.(error)
}

// Enroll registers an established connection (dialed by the caller off the loop) with Handler h
// on one of the engine's loops; h.OnOpen runs before Enroll returns. ctx is stored in Conn.Ctx
// before OnOpen. nc is closed by Enroll (the loop owns a duplicate of its descriptor).
// Concurrency-safe; blocks until the loop accepted the connection, so never call it on a loop.
func (e *Engine) Enroll(nc net.Conn, h Handler, ctx any) (*Conn, error) {
	c := &Conn{h: h, Ctx: ctx, network: nc.RemoteAddr().Network()}
	if err := e.enroll(c, nc); err != nil {
		return nil, err
	}
	return c, nil
}

func (e *Engine) enroll(c *Conn, nc net.Conn) error {
	if c.m = e.m; c.m != nil && c.m.stopped() {
		nc.Close()
		return fmt.Errorf("loop: enroll %s: %w", nc.RemoteAddr(), ErrStopped)
	}
	if enrollHook != nil {
		enrollHook(e)
	}
	gctx := gnet.NewContext(context.Background(), c)
	gctx = gnet.NewNetConnContext(gctx, nc)
	ch, err := e.eng.Register(gctx)
	if err != nil {
		nc.Close()
		return fmt.Errorf("loop: enroll %s: %w", nc.RemoteAddr(), err)
	}
	res := <-ch
	if res.Err != nil {
		return fmt.Errorf("loop: enroll %s: %w", nc.RemoteAddr(), res.Err)
	}
	if c.refused { // set in OnOpen, before gnet sends the result
		return fmt.Errorf("loop: enroll %s: %w", nc.RemoteAddr(), ErrStopped)
	}
	return nil
}

// enrollHook, set by tests only, runs in enroll after the stop check, before the registration.
var enrollHook func(*Engine)

// Stop closes every listener and connection and waits (at most timeout) for the loops to end
// (a Group member's: for its connections' OnClose; the group's loops go on).
// Concurrency-safe and idempotent; never call it on a loop.
func (e *Engine) Stop(timeout time.Duration) error {
	var err error
	e.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if e.m != nil { // a Group member: its listeners and connections only
			err = e.m.stop(ctx)
			close(e.done)
			return
		}
		// gnet's Stop polls for the end every 500 ms; the engine is over as soon as Rotate
		// returns (e.done), so wait for that instead.
		go e.eng.Stop(ctx)
		select {
		case <-e.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}

// Done is closed when the engine has stopped.
func (e *Engine) Done() <-chan struct{} { return e.done }
