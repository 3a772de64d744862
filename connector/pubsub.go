package connector

import (
	"encoding/json"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/aioconn/aioconn/codec"
	"github.com/valyala/bytebufferpool"
)

// Publish/subscribe (PEER-PROTOCOL §7.4, LOCAL-API §6). The broker is a server with
// pubsub_central_broker: `_pubsub` frames without message_type_publish update the subscription
// table, those with it are fanned out to the subscribers of that topic. Python does this in an
// internal API on a unix socket; aioconn does it in-process on the receiving loop, with the same
// bytes on the wire.

// shared is a reference-counted frame body (data and the optional binary section) fanned out to
// many subscribers: each subscriber's queued message holds its own small header and a reference.
type shared struct {
	b    *bytebufferpool.ByteBuffer
	refs atomic.Int32
}

func (s *shared) release() {
	if s.refs.Add(-1) == 0 {
		bytebufferpool.Put(s.b)
	}
}

// release returns the buffers of a dequeued message to their pools.
func (m qmsg) release() {
	bytebufferpool.Put(m.b)
	if m.body != nil {
		m.body.release()
	}
}

// subs is the broker's subscription table: topic -> set of client ids. Writes are rare (under mu);
// the fan-out path reads an immutable snapshot.
type subs struct {
	mu    sync.Mutex
	table map[string]map[string]struct{}
	snap  atomic.Pointer[map[string][]string]
}

func (s *subs) update(client string, add, remove []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.table == nil {
		s.table = map[string]map[string]struct{}{}
	}
	for _, t := range remove {
		delete(s.table[t], client)
	}
	for _, t := range add {
		if s.table[t] == nil {
			s.table[t] = map[string]struct{}{}
		}
		s.table[t][client] = struct{}{} // a set: re-subscribing after a reconnect adds no duplicate
	}
	snap := make(map[string][]string, len(s.table))
	for t, set := range s.table {
		if len(set) == 0 {
			continue
		}
		l := make([]string, 0, len(set))
		for c := range set {
			l = append(l, c)
		}
		sort.Strings(l)
		snap[t] = l
	}
	s.snap.Store(&snap)
}

func (s *subs) of(topic string) []string {
	p := s.snap.Load()
	if p == nil {
		return nil
	}
	return (*p)[topic]
}

// brokerKeys are the transport keys a broker forwards (the keyword arguments Python's broker API
// accepts, plus 1.6's tag, which 1.6 brokers forward); message_type, source_id, destination_id,
// with_binary and message_type_publish are rebuilt.
var brokerKeys = [...]string{"request_id", "response_id", "await_response", "with_file", "wait_for_ack", "tag"}

// brokerHandle processes a `_pubsub` frame received by a broker. Loop-owned (the peer's loop).
func (p *peer) brokerHandle(h *codec.Header, f codec.Frame) {
	cn := p.cn
	src, _ := h.SourceID.Str()
	if !h.MessageTypePublish.Present() {
		var ctl struct {
			Sub   []string `json:"subscribe_message_types"`
			Unsub []string `json:"unsubscribe_message_types"`
		}
		if err := json.Unmarshal(f.Data, &ctl); err != nil {
			cn.log.Warnf("%s invalid _pubsub subscription from %s: %v", cn.sourceID, p.name, err)
			return
		}
		cn.subs.update(src, ctl.Sub, ctl.Unsub)
		cn.log.Infof("%s client %s subscribes %v unsubscribes %v", cn.sourceID, src, ctl.Sub, ctl.Unsub)
		return
	}
	topic, ok := h.MessageTypePublish.Str()
	if !ok {
		cn.log.Warnf("%s publication from %s with invalid message_type_publish %s", cn.sourceID, p.name, h.MessageTypePublish.Raw)
		return
	}

	// Python's broker drops a publication carrying a key its send_message does not accept.
	if bad, found := unknownPublicationKey(f.JSON); found {
		cn.log.Warnf("%s publication of %s from %s dropped: unexpected key %q", cn.sourceID, topic, p.name, bad)
		return
	}
	subscribers := cn.subs.of(topic)
	if len(subscribers) == 0 {
		return
	}
	// The shared body: data and, when the publication has a binary, its section.
	body := &shared{b: bytebufferpool.Get()}
	body.b.B = append(body.b.B[:0], f.Data...)
	withBinary := f.HasBinary && len(f.Binary) > 0
	if withBinary {
		var l [4]byte
		putU32(l[:], uint32(len(f.Binary)))
		body.b.B = append(append(body.b.B, l[:]...), f.Binary...)
	}
	body.refs.Store(1) // held by this loop until the fan-out is done
	var extra [len(brokerKeys)]codec.Value
	for i, k := range brokerKeys {
		switch k {
		case "request_id":
			extra[i] = h.RequestID
		case "response_id":
			extra[i] = h.ResponseID
		case "await_response":
			extra[i] = h.AwaitResponse
		case "wait_for_ack":
			extra[i] = h.WaitForAck
		default:
			extra[i], _ = codec.Lookup(f.JSON, k)
		}
	}
	ack := h.WaitForAck.Truthy()
	// at_least_once: a covered publication goes to each subscriber's log (connected or not),
	// except for a connected subscriber that is a Python peer (alo.go)
	aloTopic := cn.alo != nil && cn.alo.coversTopic(topic) && !h.WithFile.Present()
	for _, sub := range subscribers {
		sp := cn.peerByName(sub)
		viaLog := aloTopic && (sp == nil || !sp.ident.Load() || sp.aloMode.Load() != aloLegacy)
		if !viaLog && (sp == nil || !sp.ident.Load()) {
			cn.log.Debugf("%s subscriber %s not connected, publication of %s dropped", cn.sourceID, sub, topic)
			continue
		}
		// API key order: message_type, source_id, destination_id, request_id, response_id,
		// with_binary, await_response, with_file, wait_for_ack (+ tag).
		var o codec.Obj
		o.Begin(p.jsonBuf[:0])
		o.Str("message_type", topic)
		o.Str("source_id", cn.sourceID)
		o.Str("destination_id", sub)
		for i, k := range brokerKeys[:2] {
			if extra[i].Present() && extra[i].Kind != codec.KindNull {
				o.Raw(k, extra[i].Raw)
			}
		}
		if withBinary {
			o.Bool("with_binary", true)
		}
		for i, k := range brokerKeys[2:] {
			v := extra[i+2]
			if !v.Present() || v.Kind == codec.KindNull || (k != "tag" && k != "with_file" && !v.Truthy()) {
				continue
			}
			o.Raw(k, v.Raw)
		}
		p.jsonBuf = o.End()
		if viaLog {
			if _, err := cn.alo.sender(sub).append(p.jsonBuf, f.Data, f.Binary, withBinary); err != nil {
				cn.stats.dropQueueFull.Add(1)
				cn.log.Warnf("%s at_least_once log of subscriber %s: publication of %s dropped: %v", cn.sourceID, sub, topic, err)
			} else if h.AwaitResponse.Truthy() {
				cn.addWaiter(topic, sub, h.RequestID, nil)
			}
			continue
		}
		hb := bytebufferpool.Get()
		hb.B = appendFrameHead(hb.B[:0], p.jsonBuf, len(f.Data), len(body.b.B)-len(f.Data))
		file := h.WithFile.Present()
		m := qmsg{b: hb, body: body, ack: ack, file: file}
		if ack || file { // rewritten per subscriber (transport_id, file bytes): its own copy
			hb.B = append(hb.B, body.b.B...)
			m.body = nil
		} else {
			body.refs.Add(1)
		}
		if h.AwaitResponse.Truthy() {
			cn.addWaiter(topic, sub, h.RequestID, nil) // the broker swallows the answer, as Python's does
		}
		if !sp.q.Push(m, len(hb.B)+len(f.Data), cn.prios()[topic]) {
			// A subscriber that does not keep up never slows the others: its publication is
			// spilled to its send-persistence file when persistence covers the topic (replayed
			// at its next connection), else dropped and counted.
			if cn.cfg.DiskPersistenceSend.Has(topic) {
				full := append([]byte(nil), m.b.B...)
				if m.body != nil {
					full = append(full, m.body.b.B...)
				}
				if cn.persistSend(sub, full) {
					sp.spills.Add(1)
					m.release()
					continue
				}
			}
			m.release()
			sp.drops.Add(1)
			cn.stats.dropQueueFull.Add(1)
			cn.log.Warnf("%s queue full for subscriber %s: publication of %s dropped", cn.sourceID, sub, topic)
			continue
		}
		p.touchPeer(sp)
	}
	body.release()
}

// unknownPublicationKey returns the first top-level key of a publication's JSON (already
// validated by the header scan) that Python's broker would reject, and whether there is one. It
// scans the bytes once without allocating (the hot path of every publication); only a key
// written with escapes sends it to the slower decoding path.
func unknownPublicationKey(js []byte) (string, bool) {
	depth, expectKey := 0, false
	for i := 0; i < len(js); i++ {
		switch c := js[i]; c {
		case '{', '[':
			depth++
			expectKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			j, esc := i+1, false
			for j < len(js) && js[j] != '"' {
				if js[j] == '\\' {
					esc = true
					j++
				}
				j++
			}
			if expectKey {
				if esc {
					return unknownPublicationKeyDecoded(js)
				}
				if k := js[i+1 : min(j, len(js))]; !publicationKey(string(k)) {
					return string(k), true
				}
				expectKey = false
			}
			i = j
		}
	}
	return "", false
}

// publicationKey reports whether Python's broker API accepts key on a publication.
func publicationKey(k string) bool {
	switch k {
	case "message_type", "source_id", "destination_id", "with_binary", "message_type_publish",
		"request_id", "response_id", "await_response", "with_file", "wait_for_ack", "tag":
		return true
	}
	return false
}

// unknownPublicationKeyDecoded is unknownPublicationKey for JSON whose keys carry escapes.
func unknownPublicationKeyDecoded(js []byte) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(js, &m) != nil {
		return "", false
	}
	for k := range m {
		if !publicationKey(k) {
			return k, true
		}
	}
	return "", false
}

// appendFrameHead appends the frame prefix, JSON and data length; data and the binary section
// (tailLen bytes, length field included) follow from the shared body.
func appendFrameHead(dst, json []byte, dataLen, tailLen int) []byte {
	var b [6]byte
	putU32(b[:4], uint32(2+len(json)+4+dataLen+tailLen))
	b[4], b[5] = byte(len(json)), byte(len(json)>>8)
	dst = append(dst, b[:]...)
	dst = append(dst, json...)
	putU32(b[:4], uint32(dataLen))
	return append(dst, b[:4]...)
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// subscriptionFrame builds the client's `_pubsub` control frame
// ({"subscribe_message_types": [...]} or {"unsubscribe_message_types": [...]}).
func (c *Connector) subscriptionFrame(dst []byte, key string, types []string) []byte {
	var o codec.Obj
	o.Begin(nil)
	o.Str("message_type", "_pubsub")
	o.Str("source_id", c.sourceID)
	js := o.End()
	data := append([]byte(`{"`+key+`": `), codec.AppendPyJSONList(nil, types)...)
	data = append(data, '}')
	return codec.AppendFrame(dst, js, data, nil, false)
}

// subscriptions returns the client's current subscribe_message_types.
func (c *Connector) subscriptions() []string {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	return append([]string(nil), c.subTypes...)
}

// setSubscriptions implements set_subscribe_message_types on a client: types not in
// recv_message_types are discarded, removed types are unsubscribed and added ones subscribed,
// directly on the connection. It reports false, leaving the list unchanged, when the client is
// not connected.
func (c *Connector) setSubscriptions(types []string) ([]string, bool) {
	var keep []string
	for _, t := range types {
		if _, ok := c.recvTypes[t]; ok && !contains(keep, t) {
			keep = append(keep, t)
		} else if !ok {
			c.log.Warnf("%s cannot subscribe to %s: not in recv_message_types", c.sourceID, t)
		}
	}
	p := c.peerByName(c.serverPeer)
	if p == nil || !p.ident.Load() {
		c.log.Errorf("%s set_subscribe_message_types : not connected", c.sourceID)
		return nil, false
	}
	c.subMu.Lock()
	var removed, added []string
	for _, t := range c.subTypes {
		if !contains(keep, t) {
			removed = append(removed, t)
		}
	}
	for _, t := range keep {
		if !contains(c.subTypes, t) {
			added = append(added, t)
		}
	}
	c.subTypes = keep
	c.subMu.Unlock()
	var out []byte
	if len(removed) > 0 {
		out = c.subscriptionFrame(out, "unsubscribe_message_types", removed)
	}
	if len(added) > 0 {
		out = c.subscriptionFrame(out, "subscribe_message_types", added)
	}
	if len(out) > 0 {
		p.sendControl(out)
	}
	return keep, true
}
