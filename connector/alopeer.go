package connector

import (
	gotls "crypto/tls"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// The link side of at_least_once: negotiation, sending from the log, receiving numbered
// messages. Every peer method here is loop-owned (the link's event loop or stream driver).

// existingSender returns the sender of name if it has one (nil otherwise).
func (a *aloState) existingSender(name string) *aloSender {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.senders[name]
}

// alpnChosen reports whether the TLS link agreed on the at_least_once ALPN protocol.
func (p *peer) alpnChosen() bool {
	tc, ok := p.conn.NetConn().(*gotls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == aloALPN
}

// aloStartWait marks the link as negotiating: nothing is sent until the server's `_aioconn`
// arrives or aloHelloWait passes.
func (p *peer) aloStartWait() {
	p.aloMode.Store(aloNegotiating)
	conn := p.conn
	p.aloTimer = time.AfterFunc(aloHelloWait, func() {
		p.aloExpired.Store(true)
		conn.Wake()
	})
}

// aloClientStrict is the strict-TLS client's part: advertise in a `_aioconn` first frame when
// the server chose the ALPN protocol, else the server is a Python peer.
func (p *peer) aloClientStrict() {
	cn := p.cn
	if !cn.linkExt() {
		return
	}
	if !p.alpnChosen() {
		p.aloLegacyMode()
		return
	}
	var stream string
	if cn.alo != nil {
		stream = cn.alo.sender(p.name).streamHex
	}
	p.out = cn.appendALOHello(p.out, stream, -1, cn.zName())
	p.aloStartWait()
}

// aloServerStrict is the strict-TLS server's part for a client identified by its certificate:
// a client that chose the ALPN protocol sends `_aioconn` first.
func (p *peer) aloServerStrict() {
	if !p.cn.linkExt() {
		return
	}
	if p.alpnChosen() {
		p.aloStartWait()
		return
	}
	p.aloLegacyMode()
}

// aloServerHandshake is the plaintext/allow-all server's part: answer a client that advertised
// in its handshake; any other client is a Python peer.
func (p *peer) aloServerHandshake(js []byte) error {
	if !p.cn.linkExt() {
		return nil
	}
	v, err := codec.Lookup(js, aloHelloKey)
	if err != nil || v.Kind != codec.KindObject {
		p.aloLegacyMode()
		return nil
	}
	return p.aloServerHello(v.Raw)
}

// aloServerHello answers a client's advertisement (an object holding v, and stream and z when
// the client has at_least_once or compression): at_least_once when both have it, compression
// when both have it (everything after the answer is compressed).
func (p *peer) aloServerHello(obj []byte) error {
	cn := p.cn
	sv, _ := codec.Lookup(obj, "stream")
	id, _, ok := parseStream(sv)
	if !ok && sv.Present() {
		cn.log.Warnf("%s invalid at_least_once advertisement from %s: %s", cn.sourceID, p.name, obj)
	}
	zk, zn := cn.zAgree(obj)
	if ok && cn.alo != nil {
		t := cn.alo.tracker(p.name)
		committed := t.setStream(id)
		s := cn.alo.sender(p.name)
		p.out = cn.appendALOHello(p.out, s.streamHex, int64(committed), zn)
		p.aloLink(s, t)
		cn.log.Infof("%s at_least_once with %s (its stream %s from %d, ours %s)", cn.sourceID, p.name, t.streamHex, committed+1, s.streamHex)
	} else {
		// answer anyway: the client then knows at once what was not agreed, instead of
		// holding its queue for aloHelloWait
		p.out = cn.appendALOHello(p.out, "", -1, zn)
		p.aloLegacyMode()
	}
	if zk != 0 {
		cn.log.Infof("%s link with %s compressed (%s)", cn.sourceID, p.name, zn)
		return p.zStartOutput(zk)
	}
	return nil
}

// aloLink makes the link carry s and t.
func (p *peer) aloLink(s *aloSender, t *aloTracker) {
	if p.aloTimer != nil {
		p.aloTimer.Stop()
	}
	p.aloOut, p.aloIn, p.aloSent, p.aloSeen = s, t, 0, false
	s.link.Store(p)
	t.link.Store(p)
	p.aloMode.Store(aloOn)
}

// aloLegacyMode treats the peer as a Python peer: messages already in its log are sent once,
// without their number, and trimmed as they are written; new ones take the normal path.
func (p *peer) aloLegacyMode() {
	if p.aloTimer != nil {
		p.aloTimer.Stop()
	}
	p.aloOut = nil
	if p.cn.alo != nil {
		p.aloOut = p.cn.alo.existingSender(p.name)
	}
	p.aloIn = nil
	p.aloSent = 0
	p.aloMode.Store(aloLegacy)
}

// aloGiveUp is the client's timeout: no `_aioconn` answer.
func (p *peer) aloGiveUp() {
	p.cn.log.Infof("%s no at_least_once answer from %s within %v: treated as a Python peer", p.cn.sourceID, p.name, aloHelloWait)
	p.aloLegacyMode()
}

// aloControl handles `_aioconn`, `_aioconn_ack` and `_aioconn_skip`.
func (p *peer) aloControl(mt []byte, f codec.Frame, h *codec.Header) error {
	cn := p.cn
	switch string(mt) {
	case aloHelloType:
		if !p.client { // strict TLS: the client's advertisement
			if p.aloMode.Load() == aloNegotiating {
				return p.aloServerHello(f.JSON)
			}
			return nil
		}
		// The server's answer (also after our timeout: what it writes after it may be numbered
		// or compressed).
		if err := p.zClientAnswer(f.JSON); err != nil {
			return err
		}
		if p.aloMode.Load() == aloOn {
			return nil
		}
		sv, _ := codec.Lookup(f.JSON, "stream")
		id, hexID, ok := parseStream(sv)
		if !ok || cn.alo == nil {
			if sv.Present() || cn.alo != nil {
				cn.log.Infof("%s _aioconn from %s without an at_least_once stream: at_least_once off on this link", cn.sourceID, p.name)
			}
			if p.aloMode.Load() == aloNegotiating {
				p.aloLegacyMode()
			}
			return nil
		}
		s := cn.alo.sender(p.name)
		if av, _ := codec.Lookup(f.JSON, "ack"); av.Present() {
			if n, ok := valueUint(av); ok {
				s.ack(n)
			}
		}
		t := cn.alo.tracker(p.name)
		committed := t.setStream(id)
		d := p.ctrlDst() // a late answer may meet a file frame being written
		*d = cn.appendALOAck(*d, hexID, committed)
		p.aloLink(s, t)
		cn.log.Infof("%s at_least_once with %s (its stream %s from %d, ours %s)", cn.sourceID, p.name, hexID, committed+1, s.streamHex)
	case aloZType:
		return p.zServerStart()
	case aloSkipType:
		if p.aloIn == nil || p.aloMode.Load() != aloOn {
			return nil
		}
		sv, _ := codec.Lookup(f.JSON, "stream")
		fv, _ := codec.Lookup(f.JSON, "from")
		tv, _ := codec.Lookup(f.JSON, "to")
		id, _, ok := parseStream(sv)
		from, ok2 := valueUint(fv)
		to, ok3 := valueUint(tv)
		if !ok || !ok2 || !ok3 || from == 0 || to < from {
			cn.log.Warnf("%s invalid %s from %s dropped: %s", cn.sourceID, aloSkipType, p.name, f.JSON)
			return nil
		}
		first := !p.aloSeen
		p.aloSeen = true
		moved, err := p.aloIn.skip(id, from, to, first)
		if err != nil {
			cn.log.Errorf("%s closing connection with %s: %v", cn.sourceID, p.name, err)
			return err
		}
		cn.log.Infof("%s at_least_once: %s skips %d-%d of stream %s (lost in a machine crash, never sent)", cn.sourceID, p.name, from, to, p.aloIn.streamHex)
		if moved {
			cn.alo.recv.delivered(1)
		}
	case aloAckType:
		if p.aloOut == nil || p.aloMode.Load() != aloOn {
			return nil
		}
		sv, _ := codec.Lookup(f.JSON, "stream")
		qv, _ := codec.Lookup(f.JSON, "seq")
		_, hexID, ok := parseStream(sv)
		n, ok2 := valueUint(qv)
		if ok && ok2 && hexID == p.aloOut.streamHex {
			p.aloOut.ack(n)
		}
	default:
		cn.log.Warnf("%s unknown control frame %s from %s dropped", cn.sourceID, mt, p.name)
	}
	return nil
}

// aloReceive looks for aioconn_seq in a message's JSON. tagged: the message is new and js is its
// JSON without the key; dup: drop it.
func (p *peer) aloReceive(json []byte) (tagged, dup bool, js []byte, err error) {
	v, err := codec.Lookup(json, aloSeqKey)
	if err != nil || !v.Present() {
		return false, false, nil, err
	}
	seq, ok := valueUint(v)
	if !ok || seq == 0 {
		p.cn.log.Warnf("%s invalid %s %s from %s: message dropped", p.cn.sourceID, aloSeqKey, v.Raw, p.name)
		return false, true, nil, nil
	}
	if !p.aloSeen {
		p.aloSeen = true
		p.aloIn.firstOnLink(seq)
	}
	epoch, ok, err := p.aloIn.accept(seq)
	if err != nil {
		p.cn.log.Errorf("%s closing connection with %s: %v", p.cn.sourceID, p.name, err)
		return false, false, nil, err
	}
	if !ok {
		return false, true, nil, nil
	}
	if js, err = codec.DeleteKey(p.aloJS[:0], json, aloSeqKey); err != nil {
		p.aloIn.set(seq, epoch, 0)
		return false, false, nil, err
	}
	p.aloJS = js
	p.aloCur = aloTag{seq: seq, idx: p.aloIn.idx, epoch: epoch}
	p.aloCurSet = true
	return true, false, js, nil
}

// aloFinish settles a numbered message the pipeline did not push to a ring: kept for a retry
// (backpressure) or consumed (ignored, filtered, a response, a publication fanned out).
func (p *peer) aloFinish(err error) {
	if !p.aloCurSet {
		return
	}
	p.aloCurSet = false
	if err == errBackpressure {
		p.aloIn.set(p.aloCur.seq, p.aloCur.epoch, 0)
		return
	}
	p.cn.aloDelivered([]aloTag{p.aloCur})
}

// aloTake appends the next durable messages of the log to the write batch. It reports whether
// it took any.
func (p *peer) aloTake() bool {
	mode := p.aloMode.Load()
	legacy := mode == aloLegacy
	if mode != aloOn && !legacy {
		return false
	}
	out, last := p.aloOut.take(p.out, p.aloSent, sendBatchBytes, legacy)
	p.out = out
	if last <= p.aloSent {
		return false
	}
	p.aloSent = last
	if legacy { // sent once, as Python would, and forgotten
		p.aloOut.ack(last)
	}
	return true
}

// aloWriteAck appends the acknowledgement the receive committer left for this link, if any.
func (p *peer) aloWriteAck() {
	if m := p.aloIn.ackMsg.Swap(nil); m != nil {
		p.out = p.cn.appendALOAck(p.out, m.stream, m.seq)
	}
}

// aloClosed detaches the link from its sender and tracker (the log keeps everything).
func (p *peer) aloClosed() {
	if p.aloTimer != nil {
		p.aloTimer.Stop()
	}
	if p.aloOut != nil {
		p.aloOut.link.CompareAndSwap(p, nil)
	}
	if p.aloIn != nil {
		p.aloIn.link.CompareAndSwap(p, nil)
	}
}

// routeALO is the send path of a covered message (route step 6 on): numbered, appended to the
// peer's log and sent by the link once durable.
func (cn *Connector) routeALO(r replier, a *apiConn, peerB, mtB []byte, hd *codec.Header, json []byte, f codec.Frame, await, closing bool) error {
	if _, ok := cn.prios()[string(mtB)]; !ok && !cn.cfg.PubsubCentralBroker {
		cn.log.Warnf("%s queue_send_to_connector_put received a message with invalid type %s. Ignoring...", cn.sourceID, mtB)
		cn.stats.dropTypeNotAllowed.Add(1)
		return nil
	}
	s := cn.alo.sender(string(peerB))
	seq, err := s.append(json, f.Data, f.Binary, f.HasBinary)
	if err == errALOFull {
		if closing { // the application left with this frame unread: it cannot wait
			cn.stats.dropQueueFull.Add(1)
			cn.log.Errorf("%s queue_send_to_connector_put : at_least_once log for %s full as the application left, 1 message dropped", cn.sourceID, peerB)
			return nil
		}
		return errBackpressure
	}
	if err != nil {
		cn.log.Errorf("%s queue_send_to_connector_put : %v", cn.sourceID, err)
		return nil
	}
	a.aloSender, a.aloSeq = s, seq
	if await && cn.addWaiter(string(mtB), string(peerB), hd.RequestID, r) {
		a.closeAfter = false
	}
	return nil
}
