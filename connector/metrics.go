package connector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics (metrics_listen, detailed_stats, show_stats).
//
// Per-message counting is per connection: each peer link owns a *peerMetrics (created at its
// first counted message) whose counts are plain fields of that link's loop (messages received
// in process, messages written in drain), published into atomics of its peer's *peerTraffic
// at the end of every burst; nothing global is touched per message. A scrape (or show_stats)
// sums them by label. Links of the same peer name share one *peerTraffic, so counters stay
// monotonic across reconnections.
//
// Label cardinality is bounded: at most MaxLabelValues distinct peer names and as many distinct
// message types get their own label value; later ones are counted under "other".

// MaxLabelValues is the default cap on distinct peer and message type label values.
const MaxLabelValues = 1000

// otherLabel is the label value of peers and types beyond the cap.
const otherLabel = "other"

// typeTraffic counts one direction of one message type on one peer. Concurrency-safe.
type typeTraffic struct {
	label       string // message type label (capped)
	msgs, bytes atomic.Uint64
}

// peerTraffic is the traffic of every link to one peer name, by message type.
type peerTraffic struct {
	label string     // peer label (capped)
	mu    sync.Mutex // serialises inserts into in/out (copy on write)
	in    atomic.Pointer[map[string]*typeTraffic]
	out   atomic.Pointer[map[string]*typeTraffic]
	// other* count types beyond the label cap
	otherIn, otherOut typeTraffic
}

// peerMetrics is one link's handle on its peer's traffic. Counting is batched: the link's loop
// adds to plain fields for the current message type of each direction and publishes them into
// the shared atomics when the type changes and at the end of each burst (peer.flush), so a
// message costs a comparison and two plain additions.
type peerMetrics struct {
	t       *peerTraffic
	in, out dirCount // loop-owned
	scratch []byte   // loop-owned
}

// dirCount is the loop-owned count of one direction for its current message type.
type dirCount struct {
	c           *typeTraffic
	name        []byte
	plain       bool   // name has no quote or backslash: it can be compared with raw JSON
	msgs, bytes uint64 // not published yet
}

func (d *dirCount) publish() {
	if d.msgs == 0 && d.bytes == 0 {
		return
	}
	d.c.msgs.Add(d.msgs)
	d.c.bytes.Add(d.bytes)
	d.msgs, d.bytes = 0, 0
}

func (d *dirCount) count(tt *trafficTable, pt *peerTraffic, m *atomic.Pointer[map[string]*typeTraffic], other *typeTraffic, mt []byte, n int) {
	if d.c == nil || string(d.name) != string(mt) {
		if d.c != nil {
			d.publish()
		}
		d.c = tt.lookup(pt, m, other, mt)
		d.name = append(d.name[:0], mt...)
	}
	d.msgs++
	d.bytes += uint64(n)
}

// publish makes the link's pending counts visible to scrapes. Loop-owned.
func (m *peerMetrics) publish() {
	m.in.publish()
	m.out.publish()
}

// trafficTable holds every peerTraffic by label, and the label sets used for capping.
type trafficTable struct {
	mu        sync.RWMutex
	peers     map[string]*peerTraffic // by peer label
	typeSet   map[string]struct{}     // type labels in use
	max       int                     // 0: MaxLabelValues
	typesFull atomic.Bool
}

func (tt *trafficTable) limit() int {
	if tt.max > 0 {
		return tt.max
	}
	return MaxLabelValues
}

// peer returns the traffic of peer name (or of "other" beyond the cap), creating it.
func (tt *trafficTable) peer(name string) *peerTraffic {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.peers == nil {
		tt.peers = map[string]*peerTraffic{}
		tt.typeSet = map[string]struct{}{}
	}
	if pt := tt.peers[name]; pt != nil {
		return pt
	}
	label := name
	if len(tt.peers) >= tt.limit() {
		label = otherLabel
		if pt := tt.peers[label]; pt != nil {
			return pt
		}
	}
	pt := &peerTraffic{label: label}
	empty1, empty2 := map[string]*typeTraffic{}, map[string]*typeTraffic{}
	pt.in.Store(&empty1)
	pt.out.Store(&empty2)
	pt.otherIn.label, pt.otherOut.label = otherLabel, otherLabel
	tt.peers[label] = pt
	return pt
}

// typeLabel reports whether message type t may have its own label (registering it).
func (tt *trafficTable) typeLabel(t string) bool {
	if tt.typesFull.Load() {
		tt.mu.RLock()
		_, ok := tt.typeSet[t]
		tt.mu.RUnlock()
		return ok
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.typeSet == nil {
		tt.typeSet = map[string]struct{}{}
		tt.peers = map[string]*peerTraffic{}
	}
	if _, ok := tt.typeSet[t]; ok {
		return true
	}
	if len(tt.typeSet) >= tt.limit() {
		tt.typesFull.Store(true)
		return false
	}
	tt.typeSet[t] = struct{}{}
	return true
}

// lookup returns the counters of type mt in m (in or out), inserting it. The fast path is one
// lock-free map read.
func (tt *trafficTable) lookup(pt *peerTraffic, m *atomic.Pointer[map[string]*typeTraffic], other *typeTraffic, mt []byte) *typeTraffic {
	if c := (*m.Load())[string(mt)]; c != nil {
		return c
	}
	t := string(mt)
	if !tt.typeLabel(t) {
		return other
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	old := *m.Load()
	if c := old[t]; c != nil {
		return c
	}
	n := make(map[string]*typeTraffic, len(old)+1)
	for k, v := range old {
		n[k] = v
	}
	c := &typeTraffic{label: t}
	n[t] = c
	m.Store(&n)
	return c
}

// metricsOf returns the link's metrics handle, creating it under its current name. Call only
// once the peer is identified (its name no longer changes).
func (p *peer) metricsOf() *peerMetrics {
	if m := p.mx.Load(); m != nil {
		return m
	}
	m := &peerMetrics{t: p.cn.stats.traffic.peer(p.name)}
	if p.mx.CompareAndSwap(nil, m) {
		return m
	}
	return p.mx.Load()
}

// countIn counts one received frame of type mt and n bytes. Loop-owned (the peer's loop).
func (p *peer) countIn(mt []byte, n int) {
	m := p.metricsOf()
	m.in.count(&p.cn.stats.traffic, m.t, &m.t.in, &m.t.otherIn, mt, n)
}

// countOut counts one queued frame as it is written to the link. Loop-owned (the peer's loop).
func (p *peer) countOut(q qmsg) {
	m := p.metricsOf()
	n := len(q.b.B)
	if q.body != nil {
		n += len(q.body.b.B)
	}
	// Fast path: the frame's type is the current one (compared in place, no scan).
	if d := &m.out; d.c != nil && d.plain {
		if v := typeValue(q.b.B); len(v) > len(d.name) && v[len(d.name)] == '"' && string(v[:len(d.name)]) == string(d.name) {
			d.msgs++
			d.bytes += uint64(n)
			return
		}
	}
	var mt []byte
	mt, m.scratch = frameType(q.b.B, m.scratch)
	m.out.count(&p.cn.stats.traffic, m.t, &m.t.out, &m.t.otherOut, mt, n)
	m.out.plain = bytes.IndexByte(mt, '\\') < 0 && bytes.IndexByte(mt, '"') < 0
}

// typeValue returns what follows the opening quote of message_type when a frame's JSON starts
// with that key (every API and broker frame), else nil.
func typeValue(frame []byte) []byte {
	const key = `{"message_type":`
	if len(frame) < codec.LenPrefix+2+len(key)+2 {
		return nil
	}
	jl := int(frame[codec.LenPrefix]) | int(frame[codec.LenPrefix+1])<<8
	js := frame[codec.LenPrefix+2:]
	if len(js) < jl || string(js[:len(key)]) != key {
		return nil
	}
	r := js[len(key):jl]
	if len(r) > 0 && r[0] == ' ' {
		r = r[1:]
	}
	if len(r) == 0 || r[0] != '"' {
		return nil
	}
	return r[1:]
}

// frameType returns the message_type of a frame (prefix included; at least its JSON part): read
// in place when the JSON starts with it without escapes, else decoded into scratch.
func frameType(frame, scratch []byte) (mt, scratch2 []byte) {
	if v := typeValue(frame); v != nil {
		if e := bytes.IndexByte(v, '"'); e >= 0 && bytes.IndexByte(v[:e], '\\') < 0 {
			return v[:e], scratch
		}
	}
	if len(frame) >= codec.LenPrefix+2 {
		jl := int(frame[codec.LenPrefix]) | int(frame[codec.LenPrefix+1])<<8
		if js := frame[codec.LenPrefix+2:]; len(js) >= jl {
			return scanType(js[:jl], scratch)
		}
	}
	return append(scratch[:0], "unknown"...), scratch
}

// scanType is frameType's slow path (kept out of line: its header is large).
//
//go:noinline
func scanType(js, scratch []byte) (mt, scratch2 []byte) {
	var h codec.Header
	if codec.ScanHeader(js, &h) == nil {
		if out, ok := h.MessageType.AppendStr(scratch[:0]); ok {
			return out, out
		}
	}
	return append(scratch[:0], "unknown"...), scratch
}

// snapshot sums the traffic by peer label and type label.
func (tt *trafficTable) snapshot() map[string]map[string]TypeTraffic {
	tt.mu.RLock()
	pts := make([]*peerTraffic, 0, len(tt.peers))
	for _, pt := range tt.peers {
		pts = append(pts, pt)
	}
	tt.mu.RUnlock()
	out := map[string]map[string]TypeTraffic{}
	for _, pt := range pts {
		types := out[pt.label]
		if types == nil {
			types = map[string]TypeTraffic{}
			out[pt.label] = types
		}
		add := func(c *typeTraffic, in bool) {
			msgs, bytes := c.msgs.Load(), c.bytes.Load()
			if msgs == 0 && bytes == 0 {
				return
			}
			x := types[c.label]
			if in {
				x.MessagesIn += msgs
				x.BytesIn += bytes
			} else {
				x.MessagesOut += msgs
				x.BytesOut += bytes
			}
			types[c.label] = x
		}
		for _, c := range *pt.in.Load() {
			add(c, true)
		}
		for _, c := range *pt.out.Load() {
			add(c, false)
		}
		add(&pt.otherIn, true)
		add(&pt.otherOut, false)
	}
	return out
}

// SetDetailedStats turns the per-peer, per-type traffic counting on or off (it is also on
// while a metrics server runs). Concurrency-safe.
func (c *Connector) SetDetailedStats(on bool) {
	c.stats.metrics.mu.Lock()
	c.stats.metrics.detailedWanted = on
	c.stats.detailed.Store(on || c.stats.metrics.srv != nil)
	c.stats.metrics.mu.Unlock()
}

// metricsRun is the running /metrics server, if any.
type metricsRun struct {
	mu             sync.Mutex
	srv            *http.Server
	ln             net.Listener
	addr           string // as configured
	done           chan struct{}
	detailedWanted bool // detailed_stats
	regOnce        sync.Once
	reg            *prometheus.Registry
}

// MetricsAddr returns the address the /metrics server listens on, nil when it is off.
func (c *Connector) MetricsAddr() net.Addr {
	c.stats.metrics.mu.Lock()
	defer c.stats.metrics.mu.Unlock()
	if c.stats.metrics.ln == nil {
		return nil
	}
	return c.stats.metrics.ln.Addr()
}

// ErrMetricsListen wraps a failure to serve /metrics on metrics_listen.
var ErrMetricsListen = errors.New("connector: metrics_listen")

// SetMetricsListen serves Prometheus metrics on http://addr/metrics ("" stops the server). The
// same address as the running server is a no-op; another address replaces it. Traffic is
// counted per peer and type while the server runs. The server outlives Stop/Start (like the
// commander): stop it with SetMetricsListen("") before dropping the connector. Concurrency-safe.
func (c *Connector) SetMetricsListen(addr string) error {
	m := &c.stats.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srv != nil && m.addr == addr {
		return nil
	}
	if m.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m.srv.Shutdown(ctx)
		cancel()
		<-m.done
		c.log.Infof("%s metrics server on %s stopped", c.sourceID, m.ln.Addr())
		m.srv, m.ln, m.addr = nil, nil, ""
	}
	if addr == "" {
		c.stats.detailed.Store(m.detailedWanted)
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		c.stats.detailed.Store(m.detailedWanted)
		return fmt.Errorf("%w %s: %w", ErrMetricsListen, addr, err)
	}
	m.regOnce.Do(func() {
		m.reg = prometheus.NewRegistry()
		m.reg.MustRegister(&collector{cn: c}, collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	m.srv, m.ln, m.addr, m.done = srv, ln, addr, done
	c.stats.detailed.Store(true)
	c.log.Infof("%s serving metrics on http://%s/metrics", c.sourceID, ln.Addr())
	return nil
}

// collector exports the connector's counters at scrape time.
type collector struct{ cn *Connector }

var (
	descMsgsIn   = prometheus.NewDesc("aioconn_peer_received_messages_total", "Messages received from a peer, by peer and message type (counted while metrics_listen or detailed_stats is on).", []string{"peer", "message_type"}, nil)
	descBytesIn  = prometheus.NewDesc("aioconn_peer_received_bytes_total", "Frame bytes received from a peer, by peer and message type.", []string{"peer", "message_type"}, nil)
	descMsgsOut  = prometheus.NewDesc("aioconn_peer_sent_messages_total", "Messages written to a peer from its send queue, by peer and message type.", []string{"peer", "message_type"}, nil)
	descBytesOut = prometheus.NewDesc("aioconn_peer_sent_bytes_total", "Frame bytes written to a peer from its send queue, by peer and message type.", []string{"peer", "message_type"}, nil)
	descSendQ    = prometheus.NewDesc("aioconn_send_queue_messages", "Messages waiting in the send ring of a connected peer.", []string{"peer"}, nil)
	descRecvQ    = prometheus.NewDesc("aioconn_receive_queue_messages", "Messages waiting in the receive ring of a message type.", []string{"message_type"}, nil)
	descDrops    = prometheus.NewDesc("aioconn_dropped_messages_total", "Messages dropped, by reason.", []string{"reason"}, nil)
	descPeers    = prometheus.NewDesc("aioconn_connected_peers", "Identified peers connected.", nil, nil)
	descPRec     = prometheus.NewDesc("aioconn_persistence_records_total", "Disk persistence records stored or loaded, by direction (send, recv).", []string{"direction", "operation"}, nil)
	descPBytes   = prometheus.NewDesc("aioconn_persistence_file_bytes", "Bytes held in the persistence files this connector opened, by direction.", []string{"direction"}, nil)
	descRecon    = prometheus.NewDesc("aioconn_reconnects_total", "Client links lost while running, after which the client reconnects.", nil, nil)
	descTLSHS    = prometheus.NewDesc("aioconn_tls_handshakes_total", "TLS handshakes on peer links, by result (ok, error).", []string{"result"}, nil)
	descCerts    = prometheus.NewDesc("aioconn_tls_certificates_issued_total", "Client certificates issued by this strict TLS server (_ssl).", nil, nil)
	descMsgCnt   = prometheus.NewDesc("aioconn_msg_counts_total", "The debug_msg_counts counters of aioconnectors 1.0.33 (zero unless debug_msg_counts).", []string{"counter"}, nil)
	descAwait    = prometheus.NewDesc("aioconn_await_response_seconds", "Round trip of await_response requests, from queueing to the matching response.", nil, nil)
	descAck      = prometheus.NewDesc("aioconn_ack_wait_seconds", "Wait for the _ack of wait_for_ack messages, from writing to the _ack.", nil, nil)
	descZBytes   = prometheus.NewDesc("aioconn_link_compression_bytes_total", "Bytes of compressed peer links (link_compression): direction out or in, form plain (frames) or wire (compressed).", []string{"direction", "form"}, nil)
	descUp       = prometheus.NewDesc("aioconn_info", "Constant 1, labelled with the connector's source_id and role.", []string{"source_id", "role"}, nil)
)

func (col *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMsgsIn, descBytesIn, descMsgsOut, descBytesOut, descSendQ, descRecvQ,
		descDrops, descPeers, descPRec, descPBytes, descRecon, descTLSHS, descCerts, descMsgCnt, descAwait, descAck, descZBytes, descUp} {
		ch <- d
	}
}

func (col *collector) Collect(ch chan<- prometheus.Metric) {
	cn := col.cn
	st := cn.Stats()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	role := "client"
	if cn.cfg.IsServer {
		role = "server"
	}
	gauge(descUp, 1, st.SourceID, role)
	for peer, types := range st.Traffic {
		for t, x := range types {
			counter(descMsgsIn, clampInt(x.MessagesIn), peer, t)
			counter(descBytesIn, clampInt(x.BytesIn), peer, t)
			counter(descMsgsOut, clampInt(x.MessagesOut), peer, t)
			counter(descBytesOut, clampInt(x.BytesOut), peer, t)
		}
	}
	// Queue gauges: capped like the traffic labels (the connected peers are few in practice,
	// the receive types are those of the config file).
	tt := &cn.stats.traffic
	n := 0
	other := 0
	for peer, q := range st.SendQueues {
		if n >= tt.limit() {
			other += q
			continue
		}
		n++
		gauge(descSendQ, float64(q), peer)
	}
	if other > 0 {
		gauge(descSendQ, float64(other), otherLabel)
	}
	for t, q := range st.RecvQueues {
		gauge(descRecvQ, float64(q), t)
	}
	for _, r := range []string{"queue_full", "no_listener", "type_not_allowed", "too_large"} {
		counter(descDrops, float64(st.Drops[r]), r)
	}
	gauge(descPeers, float64(len(st.ConnectedPeers)))
	p := st.Persistence
	counter(descPRec, float64(p.StoredSend), "send", "stored")
	counter(descPRec, float64(p.LoadedSend), "send", "loaded")
	counter(descPRec, float64(p.StoredRecv), "recv", "stored")
	counter(descPRec, float64(p.LoadedRecv), "recv", "loaded")
	gauge(descPBytes, float64(p.SendBytes), "send")
	gauge(descPBytes, float64(p.RecvBytes), "recv")
	counter(descRecon, float64(st.Reconnects))
	counter(descTLSHS, float64(st.TLS.Handshakes), "ok")
	counter(descTLSHS, float64(st.TLS.HandshakeErrors), "error")
	counter(descCerts, float64(st.TLS.CertificatesIssued))
	z := st.Compression
	counter(descZBytes, float64(z.PlainOut), "out", "plain")
	counter(descZBytes, float64(z.WireOut), "out", "wire")
	counter(descZBytes, float64(z.WireIn), "in", "wire")
	counter(descZBytes, float64(z.PlainIn), "in", "plain")
	for k, v := range st.MsgCounts {
		counter(descMsgCnt, float64(v), k)
	}
	for d, h := range map[*prometheus.Desc]HistogramStats{descAwait: st.Latency["await_response"], descAck: st.Latency["ack_wait"]} {
		b := make(map[float64]uint64, len(h.bounds))
		for i, ub := range h.bounds {
			b[ub] = h.cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.SumSeconds, b)
	}
}
