package api

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/uds"
)

// asyncTimeout is Python's Connector.ASYNC_TIMEOUT: the bound on connecting, on the send
// lock and on writing ("drain") a frame.
const asyncTimeout = 10 * time.Second

// inlineMax: frames whose data+binary are at most this size are assembled in one pooled
// buffer and written with one write(2); larger ones are written with writev without copying.
const inlineMax = 64 << 10

// API is the Go ConnectorAPI. Create it with New or NewFromFile; all methods are safe for
// concurrent use. Close releases the cached send connection and every receive listener.
type API struct {
	cfg      *config.APIOptions
	id       ident
	sendPath string
	preserve bool // uds_path_send_preserve_socket
	recvKeep bool // uds_path_receive_preserve_socket

	log    atomic.Pointer[slog.Logger]
	closed atomic.Bool

	// sem is the send lock of preserve mode (Python's send_message_lock): holding it grants
	// the right to use and replace conn. Frames on the cached connection never interleave.
	sem  chan struct{}
	conn net.Conn // cached send connection; guarded by sem

	mu      sync.Mutex // guards waiters and conns
	waiters map[string]*waiter
	conns   map[net.Conn]struct{} // every open connection, closed by Close
	wg      sync.WaitGroup        // accept and reader goroutines

	bufs sync.Pool // *[]byte frame buffers

	tr Transport // embedded mode (transport.go); nil: unix sockets

	chunk int64 // chunk size of large files (chunk.go); 0: ChunkSize

	idle []idleConn // preserve mode: await connections ready for another request; guarded by mu
}

// idleConn is an await connection kept for reuse, with its frame reader.
type idleConn struct {
	c  net.Conn
	fr *frameReader
}

// awaitIdleMax is the most await connections kept for reuse.
const awaitIdleMax = 8

// takeIdle returns an await connection ready for another request, or nil.
func (a *API) takeIdle() (net.Conn, *frameReader) {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.idle)
	if n == 0 {
		return nil, nil
	}
	ic := a.idle[n-1]
	a.idle[n-1] = idleConn{}
	a.idle = a.idle[:n-1]
	return ic.c, ic.fr
}

// putIdle keeps c for the next await request (or closes it when enough are kept).
func (a *API) putIdle(c net.Conn, fr *frameReader) {
	a.mu.Lock()
	if !a.closed.Load() && len(a.idle) < awaitIdleMax {
		a.idle = append(a.idle, idleConn{c, fr})
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.untrack(c)
}

type waiter struct {
	msgType, path string
	ln            *net.UnixListener
	h             Handler
}

// Handler receives one message delivered by the connector. Handlers of one connection are
// called sequentially, in arrival order; different connections (the connector normally
// keeps one per message type) run in different goroutines. m and its slices are valid only
// during the call: copy what you keep (Message.Clone). A handler may call any API method
// except Close (which waits for the handlers). While it runs, its connection is not read:
// a slow handler slows the connector's delivery loop (Python behaves the same). A panicking handler closes its connection (as an exception does in Python: the connector
// reconnects for the next message; the current one is lost).
type Handler func(m *Message)

// New returns an API for the connector described by cfg (the API keeps cfg; do not modify it
// afterwards). It validates cfg (config.APIOptions.Validate) and creates
// connector_files_dirpath if missing, as Python does. No connection is opened.
func New(cfg *config.APIOptions) (*API, error) {
	if cfg == nil {
		return nil, errors.New("api: nil config")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := mkdirAll(cfg.ConnectorFilesDirpath); err != nil {
		return nil, err
	}
	a := &API{
		cfg:      cfg,
		sendPath: cfg.SendToConnectorPath(),
		preserve: cfg.UDSPathSendPreserveSocket,
		recvKeep: cfg.UDSPathReceivePreserveSocket,
		sem:      make(chan struct{}, 1),
		waiters:  map[string]*waiter{},
		conns:    map[net.Conn]struct{}{},
	}
	a.id.sourceID = cfg.SourceID()
	a.id.memo = new(memoSlot)
	if !cfg.IsServer {
		a.id.defaultDest = cfg.PeerNameOfServer()
	}
	if len(cfg.SendMessageTypes) > 0 {
		a.id.defaultType, a.id.hasDefType = cfg.SendMessageTypes[0], true
	}
	a.log.Store(slog.New(slog.DiscardHandler))
	return a, nil
}

func mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("api: connector_files_dirpath %s: %w", dir, err)
	}
	return nil
}

// NewFromFile is New(config.LoadAPI(path)).
func NewFromFile(path string) (*API, error) {
	cfg, err := config.LoadAPI(path)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// SetLogger sets the logger for the few events Python logs and the Go API cannot return
// (a failed chown of a receive socket, a bad frame or a panicking handler on a receive
// connection). The default discards. Safe for concurrent use.
func (a *API) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	a.log.Store(l)
}

// SourceID is the source_id this API writes into its messages.
func (a *API) SourceID() string { return a.id.sourceID }

// Config returns the configuration the API was created with (do not modify it).
func (a *API) Config() *config.APIOptions { return a.cfg }

func (a *API) getBuf() *[]byte {
	if p, ok := a.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 512)
	return &b
}

func (a *API) putBuf(p *[]byte) {
	if cap(*p) > 2*inlineMax {
		return
	}
	*p = (*p)[:0]
	a.bufs.Put(p)
}

// track registers c for Close; it reports false (and closes c) when the API is closed.
func (a *API) track(c net.Conn) bool {
	a.mu.Lock()
	if a.closed.Load() {
		a.mu.Unlock()
		c.Close()
		return false
	}
	a.conns[c] = struct{}{}
	a.mu.Unlock()
	return true
}

func (a *API) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
	c.Close()
}

func (a *API) dial(ctx context.Context) (net.Conn, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	d := net.Dialer{Timeout: asyncTimeout}
	c, err := d.DialContext(ctx, "unix", a.sendPath)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("api: connect to %s: %w", a.sendPath, ctx.Err())
		}
		return nil, fmt.Errorf("%w %s: %w", ErrConnect, a.sendPath, err)
	}
	c = uds.Wrap(c)
	if !a.track(c) {
		return nil, ErrClosed
	}
	return c, nil
}

// frame is one encoded message: head holds the prefix, JSON and data length, and (inline)
// the data and binary too; otherwise data and binary are written from the caller's slices.
type frame struct {
	head, data, bin []byte
	inline          bool
}

func (a *API) encode(p *[]byte, o *SendOptions) (frame, error) {
	b, err := appendHeader((*p)[:0], &a.id, o)
	if err != nil {
		return frame{}, err
	}
	f := frame{inline: len(o.Data)+len(o.Binary) <= inlineMax}
	if f.inline {
		b = appendTail(b, o)
	} else {
		f.data, f.bin = o.Data, o.Binary
	}
	*p = b
	f.head = b
	return f, nil
}

// write writes f on c within min(ctx deadline, now+10 s). Cancellation of ctx closes c.
func writeFrame(ctx context.Context, c net.Conn, f frame) error {
	dl := time.Now().Add(asyncTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	c.SetWriteDeadline(dl)
	var err error
	if f.inline {
		_, err = c.Write(f.head)
	} else {
		bufs := net.Buffers{f.head, f.data}
		if len(f.bin) > 0 {
			bufs = append(bufs, binary.LittleEndian.AppendUint32(nil, uint32(len(f.bin))), f.bin)
		}
		_, err = bufs.WriteTo(c)
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// withCancel closes c when ctx is cancelled before stop is called. stop reports false when
// c was (or is being) closed because of ctx.
func withCancel(ctx context.Context, c net.Conn) (stop func() bool) {
	if ctx.Done() == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() { c.Close() })
}

// SendMessage sends one message to the connector, framed exactly as Python's pack_message
// does (transport JSON keys message_type, source_id, destination_id, request_id,
// response_id, with_binary, await_response, with_file, wait_for_ack, message_type_publish;
// only present keys). A nil error means the frame was written to the connector's socket
// (Python's True): there is no delivery guarantee, the connector sends nothing back.
//
// Preserve mode (uds_path_send_preserve_socket true): the frame goes on the API's one cached
// connection, opened on first use; if writing on the cached connection fails (connector
// restarted, or it closes after each frame because its own flag is false) the frame is
// written once more on a new connection. Writers are serialised (Python's send lock, bounded
// by 10 s and ctx). Non-preserve mode: one connection per message, closed after the write.
// A write is bounded by 10 s and by ctx; a write that fails or is cancelled midway closes
// its connection (the partial frame is lost, never followed by another frame on it).
//
// With o.AwaitResponse set, SendMessage behaves as SendMessageAwaitResponse and discards the
// reply. The API does not retain o's slices.
//
// Files of at least ChunkSize bytes are sent in chunks (chunk.go, LOCAL-API §4.1).
func (a *API) SendMessage(ctx context.Context, o SendOptions) error {
	if o.AwaitResponse {
		_, err := a.SendMessageAwaitResponse(ctx, o)
		return err
	}
	if a.closed.Load() {
		return ErrClosed
	}
	if _, done, err := a.maybeChunk(ctx, o, false); done {
		return err
	}
	if a.tr != nil {
		return a.trSend(&o)
	}
	p := a.getBuf()
	defer a.putBuf(p)
	f, err := a.encode(p, &o)
	if err != nil {
		return err
	}
	if !a.preserve {
		c, err := a.dial(ctx)
		if err != nil {
			return err
		}
		stop := withCancel(ctx, c)
		err = writeFrame(ctx, c, f)
		stop()
		a.untrack(c)
		return err
	}
	return a.sendPreserved(ctx, f)
}

func (a *API) lock(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(asyncTimeout)
	defer t.Stop()
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("api: send lock not acquired within 10 s")
	}
}

func (a *API) sendPreserved(ctx context.Context, f frame) error {
	if err := a.lock(ctx); err != nil {
		return err
	}
	defer func() { <-a.sem }()
	for {
		c, fresh := a.conn, false
		if c == nil {
			var err error
			if c, err = a.dial(ctx); err != nil {
				return err
			}
			a.conn, fresh = c, true
		}
		stop := withCancel(ctx, c)
		err := writeFrame(ctx, c, f)
		if stop() && err == nil {
			return nil
		}
		// The connection is broken, closed by ctx, or holds a partial frame: drop it.
		a.conn = nil
		a.untrack(c)
		if err == nil {
			return nil // written; only the cancellation raced with the end of the write
		}
		if fresh || ctx.Err() != nil || a.closed.Load() {
			if a.closed.Load() {
				return ErrClosed
			}
			return err
		}
		a.log.Load().Debug("api: cached send connection failed, reconnecting", "path", a.sendPath, "err", err)
	}
}

// SendMessageAwaitResponse sends o with await_response true on a dedicated connection and
// reads the single reply frame the connector writes back on it (the peer's message whose
// response_id equals o.RequestID, or the peer connector's answer to a _ping). The returned
// Message is owned by the caller.
//
// Each request goes on a connection of its own, as in Python; in preserve mode
// (uds_path_send_preserve_socket, the default) a connection whose request got its reply is used
// again for a later request (both connectors go on reading it), which saves a connect and an
// accept per round trip.
//
// The connector closing the connection without a reply (peer not connected, ignored traffic,
// invalid type...) returns an error wrapping ErrNoResponse (Python: (None, None, None)). The
// wait for the reply is bounded only by ctx (Python: await_response_timeout; the connector
// itself gives up after 3600 s without writing anything). o.RequestID should be set:
// without it a 1.0.33 connector registers a request id the peer cannot see, and no reply
// ever comes.
func (a *API) SendMessageAwaitResponse(ctx context.Context, o SendOptions) (*Message, error) {
	o.AwaitResponse = true
	if m, done, err := a.maybeChunk(ctx, o, true); done {
		return m, err
	}
	if a.tr != nil {
		if a.closed.Load() {
			return nil, ErrClosed
		}
		return a.trAwait(ctx, &o)
	}
	p := a.getBuf()
	f, err := a.encode(p, &o)
	if err != nil {
		a.putBuf(p)
		return nil, err
	}
	// Preserve mode: a connection whose last request got its reply is used again (the connector,
	// Python's as ours, goes on reading it after writing a reply), saving a connect and the
	// connector's accept per request. A write that fails on it (the connector restarted) is
	// retried once on a new connection.
	var c net.Conn
	var fr *frameReader
	if a.preserve {
		if c, fr = a.takeIdle(); c != nil && writeFrame(ctx, c, f) != nil {
			a.untrack(c)
			c, fr = nil, nil
		}
	}
	if c == nil {
		if c, err = a.dial(ctx); err != nil {
			a.putBuf(p)
			return nil, err
		}
		if err = writeFrame(ctx, c, f); err != nil {
			a.putBuf(p)
			a.untrack(c)
			return nil, fmt.Errorf("api: await_response write to %s: %w", a.sendPath, err)
		}
	}
	a.putBuf(p)
	stop := withCancel(ctx, c)
	if fr == nil {
		fr = newFrameReader(c, 4096)
	}
	fm, err := fr.next()
	var m *Message
	if err == nil {
		mm := frameMessage(fm)
		if a.preserve {
			// the reader's buffer serves the connection's next request; a reply too large for it
			// was read into fr.big, which an idle connection must not keep
			m, fr.big = mm.Clone(), nil
		} else {
			m = &mm // the reader goes with its connection
		}
	}
	if !stop() || err != nil || !a.preserve { // cancelled (closed), failed, or one request per connection
		a.untrack(c)
	} else {
		a.putIdle(c, fr)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case a.closed.Load():
			return nil, ErrClosed
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
			return nil, fmt.Errorf("%w (%s)", ErrNoResponse, a.sendPath)
		}
		return nil, fmt.Errorf("api: await_response reply on %s: %w", a.sendPath, err)
	}
	return m, nil
}

// PublishMessage publishes through a pubsub central broker: it sends o with message_type
// "_pubsub" and message_type_publish = o.MessageType (or o.MessageTypePublish when
// o.MessageType is empty), like Python's publish_message. Same semantics as SendMessage.
func (a *API) PublishMessage(ctx context.Context, o SendOptions) error {
	if o.MessageType != "" {
		o.MessageTypePublish = o.MessageType
	}
	o.MessageType = "_pubsub"
	return a.SendMessage(ctx, o)
}

// StartWaitingForMessages listens on the receive-from-connector socket of messageType and
// calls h for every message the connector delivers there (see Handler), like Python's
// start_waiting_for_messages:
//   - messageType must be in recv_message_types (ErrNotRecvType);
//   - if the socket path exists and reuse is false: ErrInUse (the connector treats the
//     file's existence as "a listener is present"); with reuse an existing socket file is
//     replaced (a live listener of another process is silently hijacked, as in Python);
//   - a second waiter for the same type on this API: ErrAlreadyWaiting;
//   - when receive_from_any_connector_owner is true (always, from a config file), the socket
//     is given to nobody:nogroup with mode 0770 so a connector of another user can connect;
//     that needs root, and a failure is only logged (INFO, as Python).
//
// With uds_path_receive_preserve_socket false, one message is read per connection.
// It returns once the socket listens; messages are handled in background goroutines.
func (a *API) StartWaitingForMessages(messageType string, h Handler, reuse bool) error {
	if h == nil {
		return ErrNilHandler
	}
	if a.tr != nil {
		return a.trListen(messageType, h)
	}
	if !slices.Contains(a.cfg.RecvMessageTypes, messageType) {
		return fmt.Errorf("%w: %q (recv_message_types %q)", ErrNotRecvType, messageType, a.cfg.RecvMessageTypes)
	}
	path := a.cfg.ReceiveFromConnectorPath(messageType)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return ErrClosed
	}
	if !reuse && uds.Exists(path) {
		return fmt.Errorf("%w: %s already in use. Cannot start_waiting_for_messages", ErrInUse, path)
	}
	if _, ok := a.waiters[messageType]; ok {
		return fmt.Errorf("%w: Already waiting for messages of type %s on socket %s", ErrAlreadyWaiting, messageType, path)
	}
	ln, err := uds.Listen(path, true)
	if err != nil {
		return fmt.Errorf("api: start_waiting_for_messages %s: %w", path, err)
	}
	if a.cfg.ReceiveFromAnyConnectorOwner {
		if err := uds.ChownNobody(path); err != nil {
			a.log.Load().Info("chown_nobody_permissions : "+err.Error(), "path", path)
		}
	}
	w := &waiter{msgType: messageType, path: path, ln: ln, h: h}
	a.waiters[messageType] = w
	a.wg.Add(1)
	go a.accept(w)
	return nil
}

func (a *API) accept(w *waiter) {
	defer a.wg.Done()
	for {
		uc, err := w.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and friends: Python's asyncio logs and keeps accepting; do the same
			// without spinning (a retry per 100 ms at most).
			a.log.Load().Error("api: accept failed", "path", w.path, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c := uds.Wrap(uc)
		a.wg.Add(1)
		if !a.track(c) {
			a.wg.Done()
			return
		}
		go a.serve(w, c)
	}
}

func (a *API) serve(w *waiter, c net.Conn) {
	defer a.wg.Done()
	defer a.untrack(c)
	fr := newFrameReader(c, recvBufSize)
	m := new(Message) // one per connection, refilled for every frame
	for {
		f, err := fr.next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				a.log.Load().Error("api: receive connection dropped", "path", w.path, "err", err)
			}
			return
		}
		*m = frameMessage(f)
		if !a.call(w, m) || !a.recvKeep {
			return
		}
	}
}

func (a *API) call(w *waiter, m *Message) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Load().Error("api: message handler panicked", "type", w.msgType, "panic", r)
			ok = false
		}
	}()
	w.h(m)
	return true
}

// StopWaitingForMessages stops accepting connections on messageType's socket and deletes
// the socket file (so the connector stops delivering: it drops or persists the messages of
// that type). As in Python, connections already accepted stay open and their messages are
// still handled until the connector closes them or Close is called. It does not wait for
// handlers, so it may be called from a Handler. ErrNotWaiting if no waiter exists for the
// type.
func (a *API) StopWaitingForMessages(messageType string) error {
	a.mu.Lock()
	w, ok := a.waiters[messageType]
	delete(a.waiters, messageType)
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotWaiting, messageType)
	}
	if w.ln == nil { // embedded
		return a.tr.Unlisten(messageType)
	}
	w.ln.Close()
	if err := uds.Remove(w.path); err != nil {
		return fmt.Errorf("api: stop_waiting_for_messages %s: %w", w.path, err)
	}
	return nil
}

// Close stops every waiter (deleting its socket file), closes the cached send connection,
// every receive connection and every in-flight await connection (their calls return
// ErrClosed), and waits for the reader goroutines to end. Later calls return ErrClosed.
// Close is idempotent. It must not be called from a Handler (it waits for the handlers).
func (a *API) Close() error {
	a.mu.Lock()
	if a.closed.Swap(true) {
		a.mu.Unlock()
		return nil
	}
	ws := a.waiters
	a.waiters = map[string]*waiter{}
	conns := a.conns
	a.conns = map[net.Conn]struct{}{}
	a.mu.Unlock()
	var errs []error
	for _, w := range ws {
		if w.ln == nil { // embedded
			a.tr.Unlisten(w.msgType)
			continue
		}
		w.ln.Close()
		if err := uds.Remove(w.path); err != nil {
			errs = append(errs, err)
		}
	}
	for c := range conns {
		c.Close()
	}
	a.wg.Wait()
	return errors.Join(errs...)
}
