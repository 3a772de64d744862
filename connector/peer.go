package connector

import (
	"bytes"
	"context"
	gotls "crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	"github.com/aioconn/aioconn/ring"
	"github.com/valyala/bytebufferpool"
)

// Tuning of the peer send path.
const (
	sendBatchMsgs   = 512       // messages taken from a ring per pop
	sendBatchBytes  = 256 << 10 // flush the write batch when it reaches this size
	outboundLimit   = 4 << 20   // stop draining while gnet holds this much unsent output
	rewakeDelay     = time.Millisecond
	defaultMaxBytes = 256 << 20 // byte cap of one peer ring
)

// qmsg is one queued outgoing frame: a pooled buffer holding the complete frame (prefix included).
// The queue owns the buffer until it is popped; the popper returns it to the pool once written.
type qmsg struct {
	b    *bytebufferpool.ByteBuffer // the frame, or its head when body is set
	body *shared                    // pub/sub fan-out: data and binary shared by all subscribers
	ack  bool                       // wait_for_ack: stamp transport_id and stop-and-wait (never with body)
	file bool                       // with_file: streamed by a reader goroutine (filetransfer.go)
}

// peer is one TCP connection to another connector. Fields marked loop-owned are touched only on
// the connection's event loop.
type peer struct {
	cn       *Connector
	conn     *loop.Conn
	client   bool   // we are the client side
	name     string // routing name (loop-owned until identified, then immutable)
	showName string // what show_connected_peers prints
	q        *ring.Prio[qmsg]
	ident    atomic.Bool

	// loop-owned
	memo         codec.HeaderMemo // the peer's last header (handleFrame)
	out          []byte
	pending      []qmsg
	scratch      []byte
	jsonBuf      []byte
	touched      []*recvType
	transport    uint32 // last transport_id used
	ackWait      uint32 // transport_id awaited, 0 = none
	ackTimer     *time.Timer
	ackExpired   atomic.Bool
	rewake       atomic.Bool
	pendingN     atomic.Int32 // len(pending), readable from any goroutine
	drops        atomic.Int64 // messages dropped because this peer's queue was full
	spills       atomic.Int64 // publications spilled to its persistence file (queue full)
	wakePeers    []*peer      // loop-owned: other peers to wake at the end of this read burst
	rtPend       *recvType    // loop-owned: receive type of the frames held in rtBufs
	rtBufs       []*bytebufferpool.ByteBuffer
	rtSizes      []int
	blockedSince time.Time // loop-owned: when receive backpressure began
	rtStuckSince time.Time // loop-owned: since when a full ring refuses the frames left in rtBufs (zero: none refused)

	// metrics (metrics.go)
	mx      atomic.Pointer[peerMetrics] // traffic counters, set at the first counted message
	ackSent time.Time                   // loop-owned: when the frame awaiting ackWait was written

	// TLS (tlslink.go)
	defaultCert bool        // strict mode: the connection uses the default client certificate
	certName    string      // strict server: the client name its certificate maps to
	sslDone     bool        // `_ssl` handled (strict server) or its reply being stored (client): nothing more is read
	certStored  atomic.Bool // client: new certificate stored, reconnect at once
	authPending atomic.Bool // plaintext server: AuthClient has not answered yet
	ka          *keepAlive  // client keep-alive (keepalive.go)
	authDenied  atomic.Bool // plaintext server: AuthClient refused the connection

	// send persistence (persistence.go): persisted messages are sent before the queue
	replay    *ring.MPSC[qmsg] // set on the loop before replaying turns true
	replaying atomic.Bool      // the file is still being loaded: send nothing from q yet

	// at_least_once (alo.go)
	aloMode    atomic.Int32 // aloOff, aloNegotiating, aloOn, aloLegacy
	aloOut     *aloSender   // loop-owned: this peer's sender once negotiated (aloOn or aloLegacy)
	aloIn      *aloTracker  // loop-owned: receive tracker (aloOn)
	aloSent    uint64       // loop-owned: last sequence number written on this link
	aloSeen    bool         // loop-owned: a numbered message arrived on this link
	aloCur     aloTag       // loop-owned: tag of the frame in the pipeline
	aloCurSet  bool         // loop-owned: aloCur is set and not yet pushed
	aloJS      []byte       // loop-owned: JSON without aioconn_seq
	aloTimer   *time.Timer
	aloExpired atomic.Bool

	// link compression (compress.go), loop-owned
	zOut *codec.Compressor   // set once this side compresses its output
	zDec *codec.Decompressor // set once this side decodes its input
	zIn  bool                // switch the input to decoding after the frame being handled
	// client: the server agreed while a file frame was being written; switch after it
	zOutAfterFile bool
	zOn           atomic.Int32 // readable anywhere: 1 output compressed, 2 input decoded, 3 both

	// file transfer (filetransfer.go), loop-owned
	fsend *fileSend // outgoing file frame in flight
	ctrl  []byte    // control frames (replies, acks) waiting for the file frame in flight to end

	ctrlMu sync.Mutex
	ctrlQ  []byte  // control frames from other goroutines (sendControl), guarded by ctrlMu
	rx     *fileRx // incoming file frame in flight
	gone   bool
}

func newPeer(cn *Connector, client bool) *peer {
	return &peer{cn: cn, client: client, q: ring.NewPrio[qmsg](cn.cfg.MaxQueueSize, defaultMaxBytes)}
}

// pyAddr is Python's str() of a socket address tuple: ('127.0.0.1', 53124).
func pyAddr(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return "('" + t.IP.String() + "', " + strconv.Itoa(t.Port) + ")"
	}
	return "('" + a.String() + "', 0)"
}

// peerHandler handles every TCP connection of the connector (accepted or dialed).
type peerHandler struct{ cn *Connector }

func (h *peerHandler) OnOpen(c *loop.Conn) {
	cn := h.cn
	p, ok := c.Ctx.(*peer)
	if !ok || !p.client { // accepted by the server (plaintext here, or TLS after its handshake)
		if !ok {
			p = newPeer(cn, false)
			c.Ctx = p
			p.name = pyAddr(c.RemoteAddr())
		}
		p.conn = c
		p.showName = p.name
		if prev := cn.setPeer(p.name, p); prev != nil && prev != p && p.ident.Load() {
			cn.log.Warnf("%s client %s already connected : Disconnecting the older connection", cn.sourceID, p.name)
			prev.conn.Close()
		}
		cn.log.Infof("%s Accepted connection from %s as %s", cn.sourceID, c.RemoteAddr(), p.name)
		if !ok && cn.AuthClient != nil { // plaintext: ask off the loop; input waits meanwhile
			p.authPending.Store(true)
			go func(name string) {
				if !cn.AuthClient(name) {
					cn.log.Infof("%s blocking client %s", cn.sourceID, name)
					p.authDenied.Store(true)
				} else {
					cn.log.Infof("%s accepting client %s", cn.sourceID, name)
				}
				p.authPending.Store(false)
				c.Wake()
			}(p.name)
		}
		if p.ident.Load() { // identified by its certificate
			p.aloServerStrict()
			p.startReplay()
		}
		return
	}
	p.conn = c
	p.showName = pyAddr(c.RemoteAddr())
	// Client: the first frame(s) of its security mode; no answer is expected except to `_ssl`.
	if !p.firstFrames() {
		cn.log.Infof("%s asking the server %s for a certificate", cn.sourceID, p.showName)
		p.flush()
		return
	}
	if subs := cn.subscriptions(); len(subs) > 0 {
		p.out = cn.subscriptionFrame(p.out, "subscribe_message_types", subs)
	}
	cn.mu.Lock()
	runCtx := cn.runCtx
	cn.mu.Unlock()
	cn.startKeepAlive(runCtx, p)
	p.ident.Store(true)
	if prev := cn.setPeer(p.name, p); prev != nil && prev != p {
		prev.conn.Close()
	}
	p.startReplay()
	cn.registerActive()
	cn.log.Infof("%s Connected to server %s", cn.sourceID, p.showName)
	p.flush()
}

func (h *peerHandler) OnTraffic(c *loop.Conn) error {
	p := c.Ctx.(*peer)
	p.takeControl()
	if p.authPending.Load() {
		return nil // hook_server_auth_client has not answered yet
	}
	if p.authDenied.Load() {
		return fmt.Errorf("connector: client %s refused by hook_server_auth_client", p.name)
	}
	if p.ackExpired.Swap(false) && p.ackWait != 0 {
		p.cn.log.Warnf("%s no _ack received for transport_id %d from %s", p.cn.sourceID, p.ackWait, p.name)
		p.ackWait = 0
	}
	if p.aloExpired.Swap(false) && p.aloMode.Load() == aloNegotiating {
		p.aloGiveUp()
	}
	p.rewake.Store(false)
	max := p.cn.cfg.MaxFrame
	for {
		if p.rx != nil { // a file frame is being received
			done, err := p.advanceRx(c)
			if err != nil {
				return err
			}
			if !done {
				break
			}
			continue
		}
		n := c.InboundBuffered()
		if n < codec.LenPrefix {
			break
		}
		head, err := c.Peek(codec.LenPrefix)
		if err != nil {
			return err
		}
		size, err := codec.FrameSize(head, maxFileFrame)
		if err != nil {
			return err
		}
		if size > rxStreamMin && n < size {
			started, err := p.tryStream(c, size)
			if err == errBackpressure {
				p.scheduleRewake()
				break
			}
			if err != nil {
				return err
			}
			if started {
				continue
			}
		}
		if size-codec.LenPrefix > int(max) {
			// Only a file frame may be larger (streamed): wait for its header when this
			// connector receives files, otherwise refuse at once. One that is already whole
			// (it arrived faster than it was read) goes through the normal path below.
			if len(p.cn.cfg.FileRecvConfig) > 0 && n >= size {
				goto whole
			}
			if len(p.cn.cfg.FileRecvConfig) > 0 && n < rxHeaderMax+codec.LenPrefix+10 && n < size {
				break
			}
			err := fmt.Errorf("connector: frame of %d bytes from %s is over the limit of %d", size-codec.LenPrefix, p.name, max)
			p.cn.stats.dropTooLarge.Add(1)
			p.cn.log.Errorf("%s closing connection with %s: %v", p.cn.sourceID, p.name, err)
			return err
		}
	whole:
		if n < size {
			break
		}
		fr, err := c.Peek(size)
		if err != nil {
			return err
		}
		if err := p.handleFrame(fr); err != nil {
			if err == errBackpressure {
				p.scheduleRewake()
				break
			}
			if err == errFileWait { // the file is being written; the frame is consumed
				c.Discard(size)
				continue
			}
			return err
		}
		c.Discard(size)
		if p.zIn {
			if err := p.zStartInput(); err != nil {
				return err
			}
		}
	}
	if !p.flushRT() {
		p.scheduleRewake() // the ring's consumer is kicked below; retry once it made room
	}
	for i, rt := range p.touched {
		rt.kick()
		p.touched[i] = nil
	}
	p.touched = p.touched[:0]
	for i, sp := range p.wakePeers {
		if sp != p {
			sp.conn.Wake()
		}
		p.wakePeers[i] = nil
	}
	p.wakePeers = p.wakePeers[:0]
	if c.Closing() { // the peer left: what is queued stays for OnClose (persisted or dropped)
		return nil
	}
	p.drain()
	p.flush()
	return nil
}

func (h *peerHandler) OnClose(c *loop.Conn, err error) {
	p, ok := c.Ctx.(*peer)
	if !ok {
		return
	}
	cn := p.cn
	if p.rx != nil && p.rx.waiting && c.Closing() {
		// the whole file came right before the peer's close, with nothing behind it (else the
		// last OnTraffic did this): wait (bounded) for its writer and deliver its message
		if _, err := p.advanceRx(c); err != nil {
			cn.log.Errorf("%s %v", cn.sourceID, err)
		}
	}
	p.gone = true
	if p.ackTimer != nil {
		p.ackTimer.Stop()
	}
	p.flushRT() // frames read before the close are delivered
	for _, rt := range p.touched {
		rt.kick()
	}
	p.aloClosed()
	p.zClosed()
	if p.fsend != nil {
		close(p.fsend.quit)
		p.fsend = nil
	}
	if p.rx != nil {
		p.rx.cancel()
		p.rx = nil
	}
	cn.removePeer(p.name, p)
	// What the link still held: persisted (types of disk_persistence_send) or dropped. The queue
	// is closed first: a producer's later push is refused and the frames are its to persist or
	// drop (loseQueued), after these.
	p.q.Close()
	lost := append([]qmsg(nil), p.pending...)
	p.pending = nil
	if p.replay != nil {
		for {
			n := len(lost)
			if lost = p.replay.PopBatch(lost, sendBatchMsgs); len(lost) == n {
				break
			}
		}
	}
	for {
		n := len(lost)
		if lost = p.q.PopBatch(lost, sendBatchMsgs, 1<<30); len(lost) == n {
			break
		}
	}
	dropped := len(lost)
	if cn.cfg.DiskPersistenceSend.Any() && p.ident.Load() {
		dropped -= p.persistLostQueue(lost)
	} else {
		for _, m := range lost {
			m.release()
		}
	}
	if err != nil {
		cn.log.Infof("%s connection with %s closed: %v", cn.sourceID, p.name, err)
	} else {
		cn.log.Infof("%s connection with %s closed", cn.sourceID, p.name)
	}
	if dropped > 0 {
		cn.log.Warnf("%s dropped %d queued messages for %s (connection lost)", cn.sourceID, dropped, p.name)
	}
	if p.client {
		cn.unregisterActive()
		cn.mu.Lock()
		ctx, running := cn.runCtx, cn.running
		cn.mu.Unlock()
		if running && ctx.Err() == nil && (p.certStored.Load() || cn.cfg.EnableClientTryReconnect) {
			cn.stats.reconnects.Add(1)
		}
		switch {
		case running && ctx.Err() == nil && p.certStored.Load():
			go cn.dialLoop(ctx, true) // reconnect at once with the new certificate
		case running && ctx.Err() == nil && cn.cfg.EnableClientTryReconnect:
			go cn.dialLoop(ctx, false)
		}
	}
}

// handleFrame runs the receive pipeline of PEER-PROTOCOL §5 on one complete frame (prefix
// included). fr is only valid during the call.
func (p *peer) handleFrame(fr []byte) error {
	var h codec.Header
	f, err := codec.ParseBodyHeaderMemo(fr[codec.LenPrefix:], &h, &p.memo)
	if err != nil {
		p.cn.log.Warnf("%s dropping malformed frame from %s: %v", p.cn.sourceID, p.name, err)
		return nil
	}
	return p.process(f, h, -1)
}

// tryStream starts receiving a frame too large to buffer whole: once its JSON, data and binary
// length are buffered, and if it carries a file, the header goes through the pipeline and the
// binary is streamed (advanceRx). It reports whether it started; errBackpressure: the header
// was not taken (its receive ring is full), the frame stays buffered. Loop-owned.
func (p *peer) tryStream(c *loop.Conn, size int) (bool, error) {
	n := c.InboundBuffered()
	if n < codec.LenPrefix+2 {
		return false, nil
	}
	b, _ := c.Peek(codec.LenPrefix + 2)
	jlen := int(b[4]) | int(b[5])<<8
	need := codec.LenPrefix + 2 + jlen + 4
	if n < need {
		return false, nil
	}
	b, _ = c.Peek(need)
	dlen := int(binary.LittleEndian.Uint32(b[need-4:]))
	if dlen > rxHeaderMax {
		return false, nil
	}
	need += dlen + 4
	if n < need || need > size {
		return false, nil
	}
	hdr, _ := c.Peek(need)
	js := hdr[codec.LenPrefix+2 : codec.LenPrefix+2+jlen]
	var h codec.Header
	if codec.ScanHeader(js, &h) != nil || !h.WithFile.Present() || !h.WithBinary.Truthy() {
		return false, nil
	}
	blen := int64(binary.LittleEndian.Uint32(hdr[need-4:]))
	if int64(need)+blen > int64(size) {
		return false, nil
	}
	f := codec.Frame{JSON: js, Data: hdr[codec.LenPrefix+2+jlen+4 : need-4], HasBinary: true}
	err := p.process(f, h, blen)
	if err == errBackpressure && p.rx == nil { // not taken: the whole frame stays buffered
		return false, err
	}
	c.Discard(need)
	if p.rx == nil && err == nil { // filtered before the file step: skip the binary
		p.rx = &fileRx{fileNeed: blen, discard: true}
	}
	if err == errBackpressure {
		err = nil
	}
	return true, err
}

// process runs the receive pipeline of PEER-PROTOCOL §5 on one frame. stream < 0: the frame is
// whole (f.Binary holds the binary section); otherwise stream bytes of binary still follow on the
// link (a streamed file frame). Loop-owned.
func (p *peer) process(f codec.Frame, h codec.Header, stream int64) error {
	cn := p.cn
	mt, _ := h.MessageType.AppendStr(p.scratch[:0])
	p.scratch = mt
	// Backpressure: while the receive ring of this type is full, stop reading this peer for a
	// while (the frame stays buffered); drop only when that does not help. The frames this link
	// holds for the ring (pushRT) count: the ring refuses what does not fit when they go in.
	rt := cn.recv[string(mt)]
	// Held frames go into their ring before anything else of this link may reach a ring: before
	// a frame of another type, once a batch is whole, and before a frame of a persisted type
	// (pushed or persisted directly; a numbered at_least_once frame flushes in deliverRest, where
	// backpressure un-accepts its number). Frames a full ring refused (another loop's link, or
	// the broker, filled it meanwhile) stay held and this link takes nothing more until they are
	// in: the frame stays buffered.
	if len(p.rtBufs) > 0 && (p.rtPend != rt || len(p.rtBufs) >= rtBatch || !p.rtStuckSince.IsZero() ||
		p.rtPend.persist) {
		if !p.flushRT() {
			return errBackpressure
		}
	}
	if rt != nil && rt.q.Len()+p.heldFor(rt) >= cn.cfg.MaxQueueSize {
		if p.blockedSince.IsZero() {
			p.blockedSince = time.Now()
		}
		if time.Since(p.blockedSince) < backpressureMax && p.conn.Held() < backpressureInbound && !p.conn.Closing() {
			return errBackpressure
		}
	}
	p.blockedSince = time.Time{}
	if cn.cfg.DebugMsgCounts {
		cn.stats.queueRecv.Add(1)
	}
	if cn.stats.detailed.Load() && p.ident.Load() {
		p.countIn(mt, frameLen(f.JSON, f)+int(max(stream, 0)))
	}
	// 1-2. TLS control frames and the strict server's impersonation check
	if cn.cfg.UseSSL {
		if done, err := p.tlsControl(mt, f, &h); done {
			return err
		}
	}
	// 1. server control interception
	if !p.client && !cn.cfg.UseSSL && string(mt) == "_handshake_no_ssl" {
		if cn.cfg.DebugMsgCounts {
			cn.stats.queueRecv.Add(-1)
		}
		return p.handshake(f, h)
	}
	// at_least_once control frames (only on links where it was negotiated)
	if p.aloMode.Load() != aloOff && len(mt) >= 8 && string(mt[:8]) == "_aioconn" {
		return p.aloControl(mt, f, &h)
	}
	// 3. _ack
	if string(mt) == "_ack" {
		if cn.cfg.DebugMsgCounts {
			cn.stats.queueRecv.Add(-1)
		}
		id, _ := strconv.ParseUint(string(h.TransportID.Raw), 10, 32)
		if p.ackWait != 0 && uint32(id) == p.ackWait {
			p.ackWait = 0
			cn.stats.ackWait.observe(time.Since(p.ackSent))
			if p.ackTimer != nil {
				p.ackTimer.Stop()
			}
		} else {
			cn.log.Warnf("%s received _ack for unknown transport_id %s from %s", cn.sourceID, h.TransportID.Raw, p.name)
		}
		return nil
	}
	isPing := string(mt) == "_ping"
	// [1.6] the client's keep-alive reply is consumed here
	if isPing && p.ka != nil && strEq(h.ResponseID, keepAliveID) {
		p.ka.answered.Add(1)
		return nil
	}
	// 4. _ping request: answered here, never delivered, never acked
	if isPing && h.AwaitResponse.Truthy() {
		if !h.RequestID.Present() {
			cn.log.Warnf("%s dropping _ping request without request_id from %s", cn.sourceID, p.name)
			return nil
		}
		var o codec.Obj
		o.Begin(p.jsonBuf[:0])
		o.Str("message_type", "_ping")
		o.Raw("response_id", h.RequestID.Raw)
		o.Str("source_id", cn.sourceID)
		p.jsonBuf = o.End()
		// Like Python, the request's binary section is echoed without with_binary (ignored by readers).
		d := p.ctrlDst()
		*d = codec.AppendFrame(*d, p.jsonBuf, f.Data, f.Binary, f.HasBinary)
		return nil
	}
	json := f.JSON
	// 5. transport_id: acked if truthy, never delivered
	if h.TransportID.Present() {
		if h.TransportID.Truthy() {
			var o codec.Obj
			o.Begin(p.jsonBuf[:0])
			o.Raw("transport_id", h.TransportID.Raw)
			o.Str("message_type", "_ack")
			o.Str("source_id", cn.sourceID)
			p.jsonBuf = o.End()
			d := p.ctrlDst()
			*d = codec.AppendFrame(*d, p.jsonBuf, nil, nil, false)
		}
		var err error
		p.jsonBuf, err = codec.DeleteKey(p.jsonBuf[:0], json, "transport_id")
		if err != nil {
			return nil
		}
		json = p.jsonBuf
	}
	// at_least_once: a numbered message is de-duplicated and its number removed
	if p.aloIn != nil {
		tagged, dup, js, err := p.aloReceive(json)
		if err != nil && errors.Is(err, errALOProtocol) {
			return err // closes the link
		}
		if err != nil || dup {
			return nil
		}
		if tagged {
			f.JSON = js
			err := p.processRest(mt, h, f, js, stream, isPing)
			p.aloFinish(err)
			return err
		}
	}
	return p.processRest(mt, h, f, json, stream, isPing)
}

// processRest runs steps 6-10 of the receive pipeline. Loop-owned.
func (p *peer) processRest(mt []byte, h codec.Header, f codec.Frame, json []byte, stream int64, isPing bool) error {
	cn := p.cn
	// 6. ignore_peer_traffic
	if cn.ignore.Load().match(p.name) {
		return nil
	}
	// 7. type filter (cn.recv holds exactly the recv_message_types)
	rt := cn.recv[string(mt)]
	if rt == nil && !isPing {
		cn.log.Warnf("%s received a message with invalid type %s from %s. Ignoring...", cn.sourceID, mt, p.name)
		cn.stats.dropTypeNotAllowed.Add(1)
		return nil
	}
	// 8. files (filetransfer.go): written before the message is delivered
	if h.WithFile.Present() && !isPing {
		return p.startFile(mt, &h, json, f, stream)
	}
	if stream >= 0 { // a streamed frame that carries no file: not accepted (bounded by MaxFrame)
		return fmt.Errorf("connector: oversized frame without a file from %s", p.name)
	}
	return p.deliverRest(mt, rt, &h, f, json)
}

// deliverRest runs steps 9-10 of the receive pipeline: response matching, then delivery (or the
// broker's routing). rt is cn.recv[mt] (nil for a type without a receive queue). Loop-owned.
func (p *peer) deliverRest(mt []byte, rt *recvType, hp *codec.Header, f codec.Frame, json []byte) error {
	cn := p.cn
	h := *hp
	isPing := string(mt) == "_ping"
	// 9. response matching
	if h.ResponseID.Present() && h.ResponseID.Kind != codec.KindNull {
		if cn.completeWaiter(p.conn, string(mt), p.name, h.ResponseID, json, f.Data, f.Binary, f.HasBinary) {
			return nil
		}
		if isPing {
			cn.log.Errorf("Invalid message type received by queue_recv_from_connector _ping")
			return nil
		}
	}
	// 10. deliver: a broker routes `_pubsub` itself; anything else goes to the application
	if cn.cfg.PubsubCentralBroker && string(mt) == "_pubsub" {
		p.brokerHandle(&h, f)
		return nil
	}
	if rt == nil {
		return nil
	}
	if p.aloCurSet { // numbered: never dropped nor persisted; waits for its listener and ring room
		if !p.touchedHas(rt) {
			if !rt.listenerPresent() {
				return errBackpressure
			}
			p.touched = append(p.touched, rt)
		}
		if !p.flushRT() || !rt.pushTagged(json, f.Data, f.Binary, f.HasBinary, p.aloCur) {
			return errBackpressure
		}
		p.aloCurSet = false
		return nil
	}
	if rt.persist {
		// The listener check (a stat of its socket) runs once per read burst, as below.
		listenerOK := func() bool { return p.touchedHas(rt) || rt.listenerPresent() }
		if !p.flushRT() {
			return errBackpressure
		}
		if rt.deliverOrPersist(json, f.Data, f.Binary, f.HasBinary, listenerOK) {
			return nil
		}
		if !p.touchedHas(rt) {
			p.touched = append(p.touched, rt)
		}
	} else if !p.touchedHas(rt) {
		if !rt.listenerPresent() {
			rt.dropNoListener()
			return nil
		}
		p.touched = append(p.touched, rt)
	}
	p.pushRT(rt, json, f.Data, f.Binary, f.HasBinary)
	return nil
}

// rtBatch is the most frames a link holds for one receive type before pushing them.
const rtBatch = 64

// pushRT re-packs one message for rt and holds it; held frames go to rt's ring together
// (flushRT: one reservation per batch, where a push per frame contends with the consumer's
// thread on every message). Loop-owned.
func (p *peer) pushRT(rt *recvType, json, data, binary []byte, withBinary bool) {
	if (p.rtPend != rt || len(p.rtBufs) >= rtBatch) && !p.flushRT() && p.rtPend != rt {
		// Frames of another type are held, refused by their ring. process lets no frame through
		// while that lasts, and a file's completion finds no frame of another type held, so
		// this is not expected; should it happen, this frame goes to its own ring, never into
		// the batch of another type.
		b := bytebufferpool.Get()
		b.B = codec.AppendFrame(b.B[:0], json, data, binary, withBinary)
		if !rt.q.Push(b, len(b.B)) {
			bytebufferpool.Put(b)
			rt.dropFull(1)
		}
		return
	}
	b := bytebufferpool.Get()
	b.B = codec.AppendFrame(b.B[:0], json, data, binary, withBinary)
	p.rtPend = rt
	p.rtBufs = append(p.rtBufs, b)
	p.rtSizes = append(p.rtSizes, len(b.B))
}

// flushRT pushes the held frames to their type's ring and reports whether none is left. A ring
// that another producer filled since this link's check (process) refuses some: they stay held,
// in order, and the link takes no frame until they are in (process returns errBackpressure,
// OnTraffic retries after rewakeDelay). They are dropped (and logged, as a push per frame
// would) only when the ring took none of them for backpressureMax, when the link's held input
// reaches backpressureInbound, or when the link is closing or gone. What it pushes lists rt
// among the rings to kick. Call it before the consumer is kicked and before anything else
// enters a ring from this link. Loop-owned.
func (p *peer) flushRT() bool {
	if len(p.rtBufs) == 0 {
		return true
	}
	rt := p.rtPend
	n := rt.q.PushBatch(p.rtBufs, p.rtSizes)
	if n > 0 && !p.touchedHas(rt) { // a retry: no new frame of rt may come to list it
		p.touched = append(p.touched, rt)
	}
	if n == len(p.rtBufs) {
		p.clearRT()
		return true
	}
	p.rtBufs, p.rtSizes, p.rtStuckSince = heldRest(p.rtBufs, p.rtSizes, n, p.rtStuckSince)
	m := len(p.rtBufs)
	if !p.gone && time.Since(p.rtStuckSince) < backpressureMax && (p.conn == nil || p.conn.Held() < backpressureInbound && !p.conn.Closing()) {
		return false
	}
	for _, b := range p.rtBufs {
		bytebufferpool.Put(b)
	}
	rt.dropFull(m)
	p.clearRT()
	return true
}

// clearRT empties the held batch, keeping its arrays (their buffers were pushed or released).
// Loop-owned.
func (p *peer) clearRT() {
	clear(p.rtBufs)
	p.rtBufs, p.rtSizes, p.rtPend = p.rtBufs[:0], p.rtSizes[:0], nil
	p.rtStuckSince = time.Time{}
}

// heldFor is how many frames the link holds for rt (pushRT), not yet in its ring. Loop-owned.
func (p *peer) heldFor(rt *recvType) int {
	if p.rtPend != rt {
		return 0
	}
	return len(p.rtBufs)
}

func (p *peer) touchedHas(rt *recvType) bool {
	for _, t := range p.touched {
		if t == rt {
			return true
		}
	}
	return false
}

// handshake identifies an accepted client by the source_id of its _handshake_no_ssl frame.
func (p *peer) handshake(f codec.Frame, h codec.Header) error {
	cn := p.cn
	if !bytes.Equal(f.Data, []byte("hello")) {
		cn.log.Warnf("%s invalid handshake data from %s, closing", cn.sourceID, p.name)
		return fmt.Errorf("connector: invalid handshake from %s", p.name)
	}
	name, ok := h.SourceID.Str()
	if !ok || name == "" {
		return fmt.Errorf("connector: handshake without source_id from %s", p.name)
	}
	if p.ident.Load() {
		cn.log.Warnf("%s second handshake from %s ignored", cn.sourceID, p.name)
		return nil
	}
	cn.removePeer(p.name, p)
	p.name = name
	p.showName = name
	p.ident.Store(true)
	if prev := cn.setPeer(name, p); prev != nil && prev != p {
		cn.log.Warnf("%s client %s already connected : Disconnecting the older connection", cn.sourceID, name)
		prev.conn.Close()
	}
	cn.log.Infof("%s Client %s identified (handshake)", cn.sourceID, name)
	err := p.aloServerHandshake(f.JSON)
	p.startReplay()
	return err
}

// drain moves queued frames into the write batch, honouring stop-and-wait acks and the
// outbound limit. Loop-owned.
func (p *peer) drain() {
	if p.aloIn != nil && p.fsend == nil {
		p.aloWriteAck()
	}
	if p.aloMode.Load() == aloNegotiating {
		return // the queue waits for the at_least_once answer (or its timeout)
	}
	for !p.gone && p.ackWait == 0 {
		if p.fsend != nil { // a file frame is in flight: nothing else may interleave
			done, err := p.pumpFile()
			if err != nil {
				p.cn.log.Errorf("%s %v", p.cn.sourceID, err)
				p.conn.Close()
				return
			}
			if !done {
				return
			}
			continue
		}
		if len(p.out) >= sendBatchBytes {
			p.flush()
		}
		if p.conn.OutboundBuffered() > outboundLimit {
			p.scheduleRewake()
			return
		}
		took := false
		if p.aloOut != nil && len(p.pending) == 0 {
			took = p.aloTake()
		}
		if len(p.pending) == 0 {
			if p.replay != nil {
				p.pending = p.replay.PopBatch(p.pending[:0], sendBatchMsgs)
				if len(p.pending) == 0 && p.replaying.Load() {
					return // the loader wakes us when it has more or is done
				}
			}
			if len(p.pending) == 0 {
				p.pending = p.q.PopBatch(p.pending[:0], sendBatchMsgs, sendBatchBytes)
			}
			if len(p.pending) == 0 {
				if took {
					continue
				}
				return
			}
		}
		i := 0
		for ; i < len(p.pending); i++ {
			m := p.pending[i]
			if p.cn.stats.detailed.Load() {
				p.countOut(m)
			}
			if m.file {
				p.startFileSend(m)
				i++
				break
			}
			if m.ack {
				p.sendWithAck(m)
				i++
				break
			}
			p.out = append(p.out, m.b.B...)
			if m.body != nil {
				p.out = append(p.out, m.body.b.B...)
			}
			m.release()
		}
		if p.cn.cfg.DebugMsgCounts {
			p.cn.stats.queueSent.Add(int64(i))
		}
		n := copy(p.pending, p.pending[i:])
		p.pending = p.pending[:n]
		p.pendingN.Store(int32(n))
	}
}

// sendWithAck stamps the next transport_id (1..100000, never 0) and waits for its _ack.
func (p *peer) sendWithAck(m qmsg) {
	defer bytebufferpool.Put(m.b)
	f, err := codec.ParseBody(m.b.B[codec.LenPrefix:])
	if err != nil {
		return
	}
	p.transport++
	if p.transport > 100000 {
		p.transport = 1
	}
	p.jsonBuf, err = codec.SetKey(p.jsonBuf[:0], f.JSON, "transport_id", strconv.AppendUint(p.scratch[:0], uint64(p.transport), 10))
	if err != nil {
		return
	}
	p.out = codec.AppendFrame(p.out, p.jsonBuf, f.Data, f.Binary, f.HasBinary)
	p.ackWait = p.transport
	p.ackSent = time.Now()
	p.armAckTimer()
}

// armAckTimer starts the wait for the _ack of p.ackWait (I/O timeout). Loop-owned.
func (p *peer) armAckTimer() {
	conn := p.conn
	if p.ackTimer == nil {
		p.ackTimer = time.AfterFunc(p.ackTimeout(), func() {
			p.ackExpired.Store(true)
			conn.Wake()
		})
	} else {
		p.ackTimer.Reset(p.ackTimeout())
	}
}

// touchPeer remembers to wake sp once at the end of the current read burst. Loop-owned.
func (p *peer) touchPeer(sp *peer) {
	for _, x := range p.wakePeers {
		if x == sp {
			return
		}
	}
	p.wakePeers = append(p.wakePeers, sp)
}

func (p *peer) scheduleRewake() {
	if p.rewake.Swap(true) {
		return
	}
	conn := p.conn
	time.AfterFunc(rewakeDelay, func() { conn.Wake() })
}

// flush writes the batch with one syscall. Loop-owned.
func (p *peer) flush() {
	if m := p.mx.Load(); m != nil {
		m.publish()
	}
	if len(p.out) == 0 {
		return
	}
	p.conn.Write(p.out)
	if cap(p.out) > 4*sendBatchBytes {
		p.out = nil
	} else {
		p.out = p.out[:0]
	}
}

// dialLoop connects a client to its server, retrying every ReconnectInterval while
// enable_client_try_reconnect holds. It returns once a connection is enrolled (OnClose starts the
// next dialLoop) or the run ends.
func (c *Connector) dialLoop(ctx context.Context, first bool) {
	for {
		if !first {
			t := time.NewTimer(c.cfg.ReconnectInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		first = false
		c.mu.Lock()
		eng := c.eng
		c.mu.Unlock()
		if eng == nil || ctx.Err() != nil {
			return
		}
		nc, err := c.dialServer(ctx)
		if err == nil {
			p := newPeer(c, true)
			p.name = c.serverPeer
			if c.cfg.UseSSL {
				var tc *gotls.Conn
				var hc *loop.HandshakeConn
				if tc, hc, p.defaultCert, err = c.handshakeClient(nc); err == nil {
					if _, err = eng.EnrollTLS(tc, hc, &peerHandler{cn: c}, p); err == nil {
						return
					}
				}
			} else if _, err = eng.Enroll(nc, &peerHandler{cn: c}, p); err == nil {
				return
			}
		}
		c.log.Warnf("%s could not connect to server %s : %v", c.sourceID, c.serverPeer, err)
		if !c.cfg.EnableClientTryReconnect {
			return
		}
	}
}

var proxyOK = regexp.MustCompile(`^HTTP/\d.\d 200`)

// dialServer opens the TCP connection to the server, through the HTTP CONNECT proxy if configured.
// It blocks (run it off the loop).
func (c *Connector) dialServer(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.cfg.ConnectTimeout}
	if c.cfg.ClientBindIP != "" {
		ip := c.cfg.ClientBindIP
		if r := resolveInterface(ip); r != "" {
			ip = r
		}
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	host := c.cfg.ServerHost
	if r := resolveInterface(host); r != "" {
		host = r
	}
	target := net.JoinHostPort(host, strconv.Itoa(c.cfg.ServerPort))
	px := c.cfg.Proxy
	if !px.Enabled {
		return d.DialContext(ctx, "tcp4", target)
	}
	if px.SSLServer {
		return nil, fmt.Errorf("connector: proxy ssl_server is not supported yet")
	}
	nc, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(px.Address, strconv.Itoa(px.Port)))
	if err != nil {
		return nil, err
	}
	req := "CONNECT " + target + " HTTP/1.1\r\n"
	if px.HasAuth {
		req += "Proxy-Authorization: basic " + base64.StdEncoding.EncodeToString([]byte(px.Username+":"+px.Password)) + "\r\n"
	}
	req += "\r\n"
	nc.SetDeadline(time.Now().Add(c.cfg.IOTimeout))
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		return nil, err
	}
	buf := make([]byte, 2048)
	n, err := nc.Read(buf)
	if err != nil {
		nc.Close()
		return nil, err
	}
	head := buf[:n]
	if len(head) > 12 {
		head = head[:12]
	}
	if !proxyOK.Match(head) {
		nc.Close()
		return nil, fmt.Errorf("connector: proxy refused CONNECT: %q", head)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// ackTimeout is how long a wait_for_ack message waits for its _ack: 1.6.3's send_timeout when
// configured, else 1.0.33's 10 s (the I/O timeout).
func (p *peer) ackTimeout() time.Duration {
	if t := p.cn.cfg.SendTimeout; t > 0 {
		return t
	}
	return p.cn.cfg.IOTimeout
}

// ctrlDst is where a control frame written by the link itself goes: the write batch, or, while a
// file frame is being streamed out, the holding buffer sent after it (a frame must never land in
// the middle of another). Loop-owned.
func (p *peer) ctrlDst() *[]byte {
	if p.fsend != nil {
		return &p.ctrl
	}
	return &p.out
}

// sendControl queues a complete control frame from any goroutine (subscriptions, keep-alive) and
// wakes the link, which writes it between frames. Concurrency-safe.
func (p *peer) sendControl(frame []byte) {
	p.ctrlMu.Lock()
	p.ctrlQ = append(p.ctrlQ, frame...)
	p.ctrlMu.Unlock()
	p.conn.Wake()
}

// takeControl moves frames queued by sendControl into the link's output. Loop-owned.
func (p *peer) takeControl() {
	p.ctrlMu.Lock()
	q := p.ctrlQ
	p.ctrlQ = nil
	p.ctrlMu.Unlock()
	if len(q) > 0 {
		d := p.ctrlDst()
		*d = append(*d, q...)
	}
}
