package connector

import (
	"bytes"
	"errors"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	"github.com/valyala/bytebufferpool"
)

// apiConn is the state of one application connection on the send_to_connector socket (loop-owned).
type apiConn struct {
	touched      []*peer
	bufs         [2][]byte // alternating targets of header rewrites
	scratch      []byte
	name         []byte // destination peer of the current frame
	mtype        []byte // message_type of the current frame
	closeAfter   bool
	blockedSince time.Time        // when backpressure on this connection began (zero: not blocked)
	retry        bool             // the current frame is being retried after backpressure (already counted)
	aloSender    *aloSender       // at_least_once: the log the last routed frame went to (nil: none)
	aloSeq       uint64           // and its sequence number there
	rewake       atomic.Bool      // a retry wake is scheduled
	memo         codec.HeaderMemo // the application's last header (most repeat it)

	// frames routed to one peer at one priority, pushed to its queue together (flushPending):
	// one ring lock per batch instead of per frame
	pend     []qmsg
	pendSz   []int
	pendB    int64 // sum of pendSz (checked per frame against the queue's byte cap)
	pendPeer *peer
	pendPrio int
	// since when a full queue refuses the frames left in pend (zero: none refused)
	pendStuckSince time.Time
}

// pushBatch is the most frames held in apiConn.pend before they are pushed.
const pushBatch = 64

// flushPending pushes the held frames to their peer's queue and reports whether none is left.
// A queue that another producer (a connection on another loop, an embedded application, the
// broker) filled since this connection's check (route) refuses some: they stay held, in order,
// and route takes no frame from this connection until they are in. They are dropped (and
// logged) only when the queue took none of them for backpressureMax, or when force is set
// (the connection is closing, or its unread input reached backpressureInbound). What it pushes
// lists the peer among those to wake. Call it before wakeTouched. Loop-owned (or under
// Local.mu).
func (a *apiConn) flushPending(cn *Connector, force bool) bool {
	if len(a.pend) == 0 {
		return true
	}
	p := a.pendPeer
	n := p.q.PushBatch(a.pend, a.pendSz, a.pendPrio)
	if n > 0 {
		a.touchPeer(p) // a retry: no new frame for p may come to list it
	}
	if n < len(a.pend) && p.q.Closed() { // the peer left: its close emptied the queue
		cn.loseQueued(p, a.pend[n:])
		n = len(a.pend)
	}
	if n == len(a.pend) {
		a.clearPending()
		return true
	}
	for _, sz := range a.pendSz[:n] {
		a.pendB -= int64(sz)
	}
	a.pend, a.pendSz, a.pendStuckSince = heldRest(a.pend, a.pendSz, n, a.pendStuckSince)
	m := len(a.pend)
	if !force && time.Since(a.pendStuckSince) < backpressureMax {
		return false
	}
	for _, m := range a.pend {
		m.release()
	}
	cn.dropSendFull(p, m)
	a.clearPending()
	return true
}

// loseQueued takes frames for p that its queue refused because the link closed (its OnClose
// closed and emptied the queue): those of disk_persistence_send types are persisted, after what
// the close persisted, once p was identified; the rest are dropped and counted. Concurrency-safe.
func (cn *Connector) loseQueued(p *peer, msgs []qmsg) {
	n := len(msgs)
	if cn.cfg.DiskPersistenceSend.Any() && p.ident.Load() {
		n -= cn.persistQueued(p.name, msgs)
	} else {
		for _, m := range msgs {
			m.release()
		}
	}
	if n > 0 {
		cn.stats.dropQueueFull.Add(int64(n))
		cn.log.Errorf("%s queue_send_to_connector_put : peer %s left, %d messages dropped", cn.sourceID, p.name, n)
	}
}

// dropSendFull counts and logs n messages for p dropped because its queue stayed full.
func (cn *Connector) dropSendFull(p *peer, n int) {
	cn.stats.dropQueueFull.Add(int64(n))
	cn.log.Errorf("%s queue_send_to_connector_put : queue full for peer %s, %d messages dropped", cn.sourceID, p.name, n)
}

// clearPending empties the held batch, keeping its arrays (their messages were pushed or released).
func (a *apiConn) clearPending() {
	clear(a.pend)
	a.pend, a.pendSz, a.pendPeer, a.pendB = a.pend[:0], a.pendSz[:0], nil, 0
	a.pendStuckSince = time.Time{}
}

// heldRest is what a partial push leaves of a held batch (vs and their sizes, n of them
// pushed): the rest moved to the front of the same arrays, in order, and since when the batch
// is refused (restarted at now when the push made progress).
func heldRest[T any](vs []T, sizes []int, n int, since time.Time) ([]T, []int, time.Time) {
	m := copy(vs, vs[n:])
	clear(vs[m:])
	if since.IsZero() || n > 0 {
		since = time.Now()
	}
	return vs[:m], sizes[:copy(sizes, sizes[n:])], since
}

// Backpressure limits: how long, and up to how many buffered input bytes, an application's
// connection is left unread while its destination queue is full before messages are dropped.
const (
	backpressureMax     = 500 * time.Millisecond
	backpressureInbound = 32 << 20
)

// errBackpressure tells OnTraffic to keep the frame and retry later.
var errBackpressure = errors.New("connector: destination queue full (backpressure)")

// retryLater re-wakes the connection after rewakeDelay. Loop-owned.
func (a *apiConn) retryLater(c *loop.Conn) {
	if a.rewake.Swap(true) {
		return
	}
	time.AfterFunc(rewakeDelay, func() {
		a.rewake.Store(false)
		c.Wake()
	})
}

// apiHandler serves the send_to_connector socket (LOCAL-API §4.2).
type apiHandler struct{ cn *Connector }

func (h *apiHandler) OnOpen(c *loop.Conn) {
	c.Ctx = &apiConn{}
	h.cn.apiConns.Add(1)
	if h.cn.cfg.DebugMsgCounts {
		h.cn.stats.msgRecvdUDS.Add(1) // Python counts one extra per connection (LOCAL §10)
	}
}

func (h *apiHandler) OnTraffic(c *loop.Conn) error {
	a := c.Ctx.(*apiConn)
	cn := h.cn
	var err error
	for err == nil && !a.closeAfter {
		n := c.InboundBuffered()
		if n < codec.LenPrefix {
			break
		}
		head, e := c.Peek(codec.LenPrefix)
		if e != nil {
			return e
		}
		size, e := codec.FrameSize(head, cn.cfg.MaxFrame)
		if e != nil {
			cn.log.Errorf("%s queue_send_to_connector_put : %v", cn.sourceID, e)
			cn.stats.dropTooLarge.Add(1)
			return e
		}
		if n < size {
			break
		}
		fr, e := c.Peek(size)
		if e != nil {
			return e
		}
		err = h.handle(c, a, fr)
		if err == errBackpressure {
			err = nil
			a.retry = true
			a.closeAfter = false // the frame is not taken: its retry decides again (non-preserve)
			a.retryLater(c)
			break
		}
		a.retry = false
		c.Discard(size)
	}
	held := !a.flushPending(cn, c.InboundBuffered() >= backpressureInbound || c.Closing())
	if held {
		a.retryLater(c) // the touched peers drain their queues meanwhile
	}
	a.wakeTouched()
	if a.closeAfter && err == nil && !held {
		c.Close()
	}
	return err
}

func (h *apiHandler) OnClose(c *loop.Conn, err error) {
	h.cn.apiConns.Add(-1)
	h.cn.forgetWaitersOf(connReplier{c})
	if a, ok := c.Ctx.(*apiConn); ok {
		// frames still held when the application left (a full queue, or an error that ended
		// OnTraffic before its flush): pushed, or dropped and counted, and their peers woken
		a.flushPending(h.cn, true)
		a.wakeTouched()
	}
}

// handle applies LOCAL-API §4.2 steps 2–10 to one frame from an application.
func (h *apiHandler) handle(c *loop.Conn, a *apiConn, fr []byte) error {
	return h.cn.route(connReplier{c}, a, fr, c.InboundBuffered(), c.Closing())
}

// route applies LOCAL-API §4.2 steps 2–10 to one frame from an application; r receives the
// reply of an await request, inbound is how much the application has buffered behind this
// frame (for backpressure), closing that the application left (nothing can wait: route pushes,
// or drops and counts). Runs on the application connection's loop, or on an embedded API's
// goroutine (under Local.mu).
func (cn *Connector) route(r replier, a *apiConn, fr []byte, inbound int, closing bool) error {
	if cn.cfg.DebugMsgCounts && !a.retry {
		cn.stats.msgRecvdUDS.Add(1) // counted when read, as Python does (LOCAL §4.2 step 1)
	}
	if closing {
		inbound = backpressureInbound
	}
	// Frames a full queue refused stay held (flushPending); nothing more is taken until they are in.
	if !a.pendStuckSince.IsZero() && !a.flushPending(cn, inbound >= backpressureInbound) {
		return errBackpressure
	}
	var hd codec.Header
	f, err := codec.ParseBodyHeaderMemo(fr[codec.LenPrefix:], &hd, &a.memo)
	if err != nil {
		cn.log.Errorf("%s queue_send_to_connector_put : %v", cn.sourceID, err)
		return err
	}
	json := f.JSON
	nb := 0
	set := func(key string, raw []byte) error {
		out, err := codec.SetKey(a.bufs[nb&1][:0], json, key, raw)
		a.bufs[nb&1] = out
		nb++
		json = out
		return err
	}
	await := hd.AwaitResponse.Truthy()
	preserve := cn.cfg.UDSPathSendPreserveSocket
	if !preserve {
		a.closeAfter = true
	}
	// 3. destination (no allocation: names are compared and looked up as bytes)
	var peerB []byte
	if !cn.cfg.IsServer {
		peerB = append(a.name[:0], cn.serverPeer...)
		if !strEq(hd.DestinationID, cn.serverPeer) {
			if hd.DestinationID.Present() {
				cn.log.Warnf("%s destination_id %s replaced by %s", cn.sourceID, hd.DestinationID.Raw, cn.serverPeer)
			}
			a.scratch = codec.AppendPyString(a.scratch[:0], cn.serverPeer)
			if err := set("destination_id", a.scratch); err != nil {
				return err
			}
		}
	} else {
		peerB, _ = hd.DestinationID.AppendStr(a.name[:0])
	}
	a.name = peerB
	// 4. ignore_peer_traffic
	if cn.ignore.Load().matchBytes(peerB) {
		cn.log.Debugf("%s ignoring message for %s (ignore_peer_traffic)", cn.sourceID, peerB)
		return nil
	}
	// 5. source_id
	if !strEq(hd.SourceID, cn.sourceID) {
		a.scratch = codec.AppendPyString(a.scratch[:0], cn.sourceID)
		if err := set("source_id", a.scratch); err != nil {
			return err
		}
	}
	mtB, _ := hd.MessageType.AppendStr(a.mtype[:0])
	a.mtype = mtB
	// at_least_once: a covered message goes to the peer's log, connected or not, except when the
	// peer is connected and turned out to be a Python peer (alopeer.go)
	p := (*cn.peers.Load())[string(peerB)]
	if cn.alo != nil && cn.alo.covers(mtB, &hd) {
		if p == nil || !p.ident.Load() || p.aloMode.Load() != aloLegacy {
			return cn.routeALO(r, a, peerB, mtB, &hd, json, f, await, closing)
		}
	}
	// 6. peer connected?
	if p == nil || !p.ident.Load() {
		// Persisted (the raw frame, before the checks below) or dropped, as Python does.
		if cn.cfg.DiskPersistenceSend.Has(string(mtB)) {
			cn.persistSend(string(peerB), fr)
		} else {
			cn.log.Debugf("%s peer %s not connected, message of type %s dropped", cn.sourceID, peerB, mtB)
		}
		if await {
			if cn.cfg.DiskPersistenceSend.Any() {
				a.closeAfter = false
				cn.addWaiter(string(mtB), string(peerB), hd.RequestID, r)
			} else {
				a.closeAfter = true
			}
		}
		return nil
	}
	// 7. type check
	prio, ok := cn.prios()[string(mtB)]
	if !ok && !cn.cfg.PubsubCentralBroker {
		cn.log.Warnf("%s queue_send_to_connector_put received a message with invalid type %s. Ignoring...", cn.sourceID, mtB)
		cn.stats.dropTypeNotAllowed.Add(1)
		return nil
	}
	// Backpressure: while the peer's queue is full, stop reading this application for a while
	// (the frame stays in the input buffer); drop only when that does not help.
	held, heldBytes := 0, int64(0) // frames for p not pushed yet count as queued
	if a.pendPeer == p {
		held, heldBytes = len(a.pend), a.pendB
	}
	if p.q.Len()+held >= cn.cfg.MaxQueueSize || p.q.Bytes()+heldBytes+int64(len(fr)) > defaultMaxBytes {
		if a.blockedSince.IsZero() {
			a.blockedSince = time.Now()
		}
		if time.Since(a.blockedSince) < backpressureMax && inbound < backpressureInbound {
			return errBackpressure
		}
	}
	a.blockedSince = time.Time{}
	// 8. await_response
	// Over the waiter limit the request is sent but not awaited: without preserve-socket its
	// connection is then closed like any other frame's (Python's handler ends).
	if await && cn.addWaiter(string(mtB), string(peerB), hd.RequestID, r) {
		a.closeAfter = false
	}
	// 9. queue
	if cn.cfg.DebugMsgCounts {
		cn.stats.sendNoPersist.Add(1)
	}
	b := bytebufferpool.Get()
	b.B = codec.AppendFrame(b.B[:0], json, f.Data, f.Binary, f.HasBinary)
	m := qmsg{b: b, ack: hd.WaitForAck.Truthy(), file: hd.WithFile.Present()}
	if (a.pendPeer != p || a.pendPrio != prio || len(a.pend) >= pushBatch) && !a.flushPending(cn, false) &&
		(a.pendPeer != p || a.pendPrio != prio) {
		// the held frames of another queue (or priority) were refused just now: this one goes
		// to its own queue directly (order only holds within one peer and priority)
		switch {
		case p.q.Push(m, len(b.B), prio):
		case p.q.Closed():
			cn.loseQueued(p, []qmsg{m})
		default:
			m.release()
			cn.dropSendFull(p, 1)
		}
		a.touchPeer(p)
		return nil
	}
	a.pendPeer, a.pendPrio = p, prio
	a.pend = append(a.pend, m)
	a.pendSz = append(a.pendSz, len(b.B))
	a.pendB += int64(len(b.B))
	a.touchPeer(p)
	return nil
}

// wakeTouched wakes the peers listed since the last wake and empties the list, keeping its
// array. Loop-owned (or under Local.mu; Wake never blocks).
func (a *apiConn) wakeTouched() {
	for i, p := range a.touched {
		p.conn.Wake()
		a.touched[i] = nil
	}
	a.touched = a.touched[:0]
}

// touchPeer lists p among the peers to wake after this burst. Loop-owned (or under Local.mu).
func (a *apiConn) touchPeer(p *peer) {
	for _, t := range a.touched {
		if t == p {
			return
		}
	}
	a.touched = append(a.touched, p)
}

// strEq reports whether the JSON string value v equals s, without allocating when v has no escapes.
func strEq(v codec.Value, s string) bool {
	if v.Kind != codec.KindString {
		return false
	}
	raw := v.Raw
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == s
	}
	got, ok := v.Str()
	return ok && got == s
}
