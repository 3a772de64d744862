package connector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// counters are the original's msg_counts plus aioconn's own counters (drops by reason,
// reconnects, TLS, latency histograms) and the per-peer traffic table. Concurrency-safe.
//
// The msg_counts fields are only counted when debug_msg_counts is true (as in 1.0.33); the
// per-peer, per-type traffic is only counted while detailed is set (metrics_listen or
// detailed_stats): with both off, the hot path pays one plain load of detailed per message.
type counters struct {
	storePersistenceSend, loadPersistenceSend, sendNoPersist, queueSent, queueRecv, msgRecvdUDS,
	storePersistenceRecv, loadPersistenceRecv atomic.Int64
	dropQueueFull, dropNoListener atomic.Int64
	// aioconn counters (rare events: global atomics)
	dropTypeNotAllowed, dropTooLarge atomic.Int64
	reconnects                       atomic.Int64 // client links lost while running, redial started
	// link compression bytes of links already closed (live links are read from their Conn)
	zPlainOut, zWireOut, zWireIn, zPlainIn         atomic.Int64
	tlsHandshakes, tlsHandshakeErrors, certsIssued atomic.Int64
	awaitRTT, ackWait                              latencyHist

	detailed atomic.Bool // count traffic per peer and type (traffic.go tables in metrics.go)
	traffic  trafficTable
	metrics  metricsRun // the /metrics server (metrics.go)

	reloadMu  sync.Mutex
	reloadCfg *config.Options // last applied by Reload (nil: the one the connector was built with)
}

// msgCounts renders the Python dict repr of LOCAL-API §10, in the original key order.
func (s *counters) msgCounts() string {
	return fmt.Sprintf("{'store_persistence_send': %d, 'load_persistence_send': %d, 'send_no_persist': %d, 'queue_sent': %d, 'queue_recv': %d, 'msg_recvd_uds': %d, 'store_persistence_recv': %d, 'load_persistence_recv': %d}",
		s.storePersistenceSend.Load(), s.loadPersistenceSend.Load(), s.sendNoPersist.Load(), s.queueSent.Load(),
		s.queueRecv.Load(), s.msgRecvdUDS.Load(), s.storePersistenceRecv.Load(), s.loadPersistenceRecv.Load())
}

// logCounts logs msg_counts every 2 s when they changed (debug_msg_counts), and peek_queues when
// a queue is non-empty.
func (c *Connector) logCounts(ctx context.Context) {
	defer c.statsWG.Done()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := c.stats.msgCounts()
		if s != last {
			last = s
			c.log.Infof("msg_counts : %s", s)
		}
		recv, send := c.queueSizes()
		nonEmpty := map[string]int{}
		for k, v := range send {
			if v > 0 {
				nonEmpty[k] = v
			}
		}
		if recv > 0 || len(nonEmpty) > 0 {
			c.log.Infof("peek_queues : %s", codec.AppendPeekQueues(nil, recv, nonEmpty))
		}
	}
}

// queueSizes returns the receive backlog and the send backlog per connected peer.
func (c *Connector) queueSizes() (int, map[string]int) {
	recv := 0
	for _, n := range c.recvQueueSizes() {
		recv += n
	}
	send := map[string]int{}
	for name, p := range *c.peers.Load() {
		send[name] = p.q.Len() + int(p.pendingN.Load())
	}
	return recv, send
}

// recvQueueSizes returns the receive ring length of every receive message type.
func (c *Connector) recvQueueSizes() map[string]int {
	out := map[string]int{}
	c.mu.Lock()
	for t, rt := range c.recv {
		out[t] = rt.q.Len()
	}
	c.mu.Unlock()
	return out
}

// latencyBounds are the upper bounds (seconds) of the latency histograms' buckets.
var latencyBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// latencyHist is a fixed-bucket latency histogram (cumulative on export). Concurrency-safe; an
// observation costs a few atomic adds (used on await_response and wait_for_ack paths only).
type latencyHist struct {
	counts   [20]atomic.Uint64 // per bucket (non-cumulative); the last one is +Inf
	count    atomic.Uint64
	sumNanos atomic.Int64
}

// observe records d (negative durations count as 0).
func (h *latencyHist) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s := d.Seconds()
	i := sort.SearchFloat64s(latencyBounds, s) // first bound >= s
	h.counts[i].Add(1)
	h.count.Add(1)
	h.sumNanos.Add(int64(d))
}

// HistogramStats is a latency histogram snapshot: Buckets maps each upper bound in seconds
// (as text, "+Inf" last) to the cumulative count of observations at or below it.
type HistogramStats struct {
	Count      uint64            `json:"count"`
	SumSeconds float64           `json:"sum_seconds"`
	Buckets    map[string]uint64 `json:"buckets"`
	bounds     []float64
	cumulative []uint64
}

func (h *latencyHist) snapshot() HistogramStats {
	out := HistogramStats{Buckets: map[string]uint64{}, bounds: latencyBounds}
	var cum uint64
	for i := range latencyBounds {
		cum += h.counts[i].Load()
		out.cumulative = append(out.cumulative, cum)
		out.Buckets[fmt.Sprint(latencyBounds[i])] = cum
	}
	cum += h.counts[len(latencyBounds)].Load()
	out.Buckets["+Inf"] = cum
	out.Count = cum // consistent with the buckets even while observations race the snapshot
	out.SumSeconds = float64(h.sumNanos.Load()) / 1e9
	return out
}

// TypeTraffic is what went through one peer link for one message type.
type TypeTraffic struct {
	MessagesIn  uint64 `json:"messages_in"`
	BytesIn     uint64 `json:"bytes_in"`
	MessagesOut uint64 `json:"messages_out"`
	BytesOut    uint64 `json:"bytes_out"`
}

// Stats is a snapshot of the connector's counters (show_stats, /metrics). Values are read one
// by one while traffic goes on: each is exact, together they are not a single instant.
type Stats struct {
	SourceID       string           `json:"source_id"`
	MsgCounts      map[string]int64 `json:"msg_counts"` // the debug_msg_counts counters (zero unless debug_msg_counts)
	DebugMsgCounts bool             `json:"debug_msg_counts"`
	Drops          map[string]int64 `json:"drops"` // by reason: queue_full, no_listener, type_not_allowed, too_large
	// SendQueues: messages waiting per connected peer; RecvQueues: per receive message type.
	SendQueues     map[string]int   `json:"send_queues"`
	RecvQueues     map[string]int   `json:"recv_queues"`
	ConnectedPeers []string         `json:"connected_peers"`
	Persistence    PersistenceStats `json:"persistence"`
	Reconnects     int64            `json:"reconnects"`
	TLS            TLSStats         `json:"tls"`
	// Compression: bytes through link_compression, all links since start (closed and live).
	Compression CompressionStats          `json:"link_compression"`
	Latency     map[string]HistogramStats `json:"latency_seconds"` // await_response, ack_wait
	Detailed    bool                      `json:"detailed"`        // per-peer traffic is being counted
	// Traffic by peer label then message type label (labels capped, see MaxLabelValues). Empty
	// unless Detailed was on at some point.
	Traffic map[string]map[string]TypeTraffic `json:"traffic"`
}

// PersistenceStats are disk persistence records (stored/loaded, both directions) and the bytes
// currently held by the persistence files this connector opened.
type PersistenceStats struct {
	StoredSend int64 `json:"stored_send_records"`
	LoadedSend int64 `json:"loaded_send_records"`
	StoredRecv int64 `json:"stored_recv_records"`
	LoadedRecv int64 `json:"loaded_recv_records"`
	SendBytes  int64 `json:"send_file_bytes"`
	RecvBytes  int64 `json:"recv_file_bytes"`
}

// CompressionStats are the bytes of compressed links: frames written (plain_out) and the bytes
// sent for them (wire_out); bytes read (wire_in) and the frames decoded from them (plain_in).
type CompressionStats struct {
	Links    int   `json:"compressed_links"` // live links compressed in at least one direction
	PlainOut int64 `json:"plain_out_bytes"`
	WireOut  int64 `json:"wire_out_bytes"`
	WireIn   int64 `json:"wire_in_bytes"`
	PlainIn  int64 `json:"plain_in_bytes"`
}

// TLSStats counts TLS handshakes (both sides) and certificates issued by a strict server.
type TLSStats struct {
	Handshakes         int64 `json:"handshakes"`
	HandshakeErrors    int64 `json:"handshake_errors"`
	CertificatesIssued int64 `json:"certificates_issued"`
}

// Stats returns a snapshot of the counters. Concurrency-safe.
func (c *Connector) Stats() Stats {
	s := &c.stats
	st := Stats{
		SourceID: c.sourceID,
		MsgCounts: map[string]int64{
			"store_persistence_send": s.storePersistenceSend.Load(), "load_persistence_send": s.loadPersistenceSend.Load(),
			"send_no_persist": s.sendNoPersist.Load(), "queue_sent": s.queueSent.Load(), "queue_recv": s.queueRecv.Load(),
			"msg_recvd_uds": s.msgRecvdUDS.Load(), "store_persistence_recv": s.storePersistenceRecv.Load(),
			"load_persistence_recv": s.loadPersistenceRecv.Load(),
		},
		DebugMsgCounts: c.cfg.DebugMsgCounts,
		Drops: map[string]int64{
			"queue_full": s.dropQueueFull.Load(), "no_listener": s.dropNoListener.Load(),
			"type_not_allowed": s.dropTypeNotAllowed.Load(), "too_large": s.dropTooLarge.Load(),
		},
		SendQueues:     map[string]int{},
		RecvQueues:     c.recvQueueSizes(),
		ConnectedPeers: c.ConnectedPeers(),
		Reconnects:     s.reconnects.Load(),
		TLS: TLSStats{Handshakes: s.tlsHandshakes.Load(), HandshakeErrors: s.tlsHandshakeErrors.Load(),
			CertificatesIssued: s.certsIssued.Load()},
		Latency:  map[string]HistogramStats{"await_response": s.awaitRTT.snapshot(), "ack_wait": s.ackWait.snapshot()},
		Detailed: s.detailed.Load(),
		Traffic:  s.traffic.snapshot(),
	}
	if st.ConnectedPeers == nil {
		st.ConnectedPeers = []string{}
	}
	st.Compression = CompressionStats{PlainOut: s.zPlainOut.Load(), WireOut: s.zWireOut.Load(),
		WireIn: s.zWireIn.Load(), PlainIn: s.zPlainIn.Load()}
	for name, p := range *c.peers.Load() {
		if p.ident.Load() {
			st.SendQueues[name] = p.q.Len() + int(p.pendingN.Load())
			if p.zOn.Load() > 0 {
				po, wo, wi, pi := p.conn.TransformCounts()
				z := &st.Compression
				z.Links++
				z.PlainOut, z.WireOut, z.WireIn, z.PlainIn = z.PlainOut+po, z.WireOut+wo, z.WireIn+wi, z.PlainIn+pi
			}
		}
	}
	st.Persistence = PersistenceStats{StoredSend: s.storePersistenceSend.Load(), LoadedSend: s.loadPersistenceSend.Load(),
		StoredRecv: s.storePersistenceRecv.Load(), LoadedRecv: s.loadPersistenceRecv.Load()}
	st.Persistence.SendBytes, st.Persistence.RecvBytes = c.persistenceBytes()
	return st
}

// persistenceBytes sums the sizes of the persistence files this connector has open (send
// files, receive files).
func (c *Connector) persistenceBytes() (send, recv int64) {
	c.pstores.mu.Lock()
	paths := make([]string, 0, len(c.pstores.m))
	stores := make([]interface{ Size() int64 }, 0, len(c.pstores.m))
	for p, s := range c.pstores.m {
		paths = append(paths, p)
		stores = append(stores, s)
	}
	c.pstores.mu.Unlock()
	for i, s := range stores {
		n := s.Size()
		if strings.HasPrefix(filepath.Base(paths[i]), "connector_disk_persistence_send_") {
			send += n
		} else {
			recv += n
		}
	}
	return send, recv
}

// frameLen is the size on the wire of a frame made of these sections (prefix included).
func frameLen(json []byte, f codec.Frame) int {
	n := codec.LenPrefix + 2 + len(json) + 4 + len(f.Data)
	if f.HasBinary {
		n += 4 + len(f.Binary)
	}
	return n
}

// clampInt converts a counter for export.
func clampInt(v uint64) float64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return float64(v)
}

// showStats is the show_stats commander reply: Stats as JSON.
func (c *Connector) showStats() string {
	b, err := json.Marshal(c.Stats())
	if err != nil {
		return "{}"
	}
	return string(b)
}

// ReloadResult tells what a config reload did.
type ReloadResult struct {
	Applied     []string // one description per applied change ("key: old -> new")
	NeedRestart []string // keys whose new value takes effect only after a restart (sorted)
}

// ReloadFile re-reads the config file at path and applies it (Reload). A file that does not
// load or validate changes nothing; the error is logged and returned.
func (c *Connector) ReloadFile(path string) (ReloadResult, error) {
	cfg, err := config.Load(path)
	if err != nil {
		c.log.Errorf("%s config reload from %s failed, nothing changed: %v", c.sourceID, path, strings.ReplaceAll(err.Error(), "\n", "; "))
		return ReloadResult{}, err
	}
	return c.Reload(cfg), nil
}

// Reload applies what can change without a restart: default_logger_log_level,
// subscribe_message_types (a client sends the _pubsub unsubscribe/subscribe frames at once, or
// subscribes at its next connection), ignore_peer_traffic, send_message_types_priorities (for
// messages queued from then on; the send types themselves need a restart), metrics_listen and
// detailed_stats.
// A reloadable key is applied when its value differs from the one applied last; every other key
// whose value differs from the running configuration is reported (and logged) as needing a
// restart. Concurrency-safe (reloads are serialised).
func (c *Connector) Reload(cfg *config.Options) ReloadResult {
	s := &c.stats
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.reloadCfg
	if prev == nil {
		prev = c.cfg
	}
	var res ReloadResult
	changed := func(key string) bool { return !rawEqual(prev.Raw[key], cfg.Raw[key]) }
	applied := func(key string, from, to any) {
		d := fmt.Sprintf("%s: %v -> %v", key, from, to)
		res.Applied = append(res.Applied, d)
		c.log.Infof("%s config reload: %s", c.sourceID, d)
	}
	if changed("default_logger_log_level") {
		if lv, ok := ParseLevel(cfg.DefaultLoggerLogLevel); ok {
			old := c.log.Level()
			c.log.SetLevel(lv)
			applied("default_logger_log_level", old, lv)
		}
	}
	if changed("subscribe_message_types") && !c.cfg.IsServer {
		old := c.subscriptions()
		now := c.reloadSubscriptions(cfg.SubscribeMessageTypes)
		applied("subscribe_message_types", pyList(old), pyList(now))
	}
	if changed("ignore_peer_traffic") {
		old := c.ignore.Load()
		n := &ignoreState{all: cfg.IgnorePeerTraffic.All, peers: slices.Clone(cfg.IgnorePeerTraffic.Peers)}
		c.ignore.Store(n)
		applied("ignore_peer_traffic", old.describe(), n.describe())
	}
	if changed("send_message_types_priorities") {
		old := c.prios()
		np := sendPriorities(c.cfg.SendMessageTypes, cfg.SendMessageTypesPriorities)
		c.sendPrio.Store(&np)
		applied("send_message_types_priorities", pyPrios(old), pyPrios(np))
	}
	if changed("detailed_stats") {
		c.SetDetailedStats(cfg.DetailedStats)
		applied("detailed_stats", prev.DetailedStats, cfg.DetailedStats)
	}
	if changed("metrics_listen") {
		if err := c.SetMetricsListen(cfg.MetricsListen); err != nil {
			c.log.Errorf("%s config reload: %v", c.sourceID, err)
			cfg.MetricsListen = prev.MetricsListen // not applied: retried at the next reload
			cfg.Raw = cloneWith(cfg.Raw, "metrics_listen", prev.Raw["metrics_listen"])
		} else {
			applied("metrics_listen", quoteOrOff(prev.MetricsListen), quoteOrOff(cfg.MetricsListen))
		}
	}
	keys := map[string]struct{}{}
	for k := range c.cfg.Raw {
		keys[k] = struct{}{}
	}
	for k := range cfg.Raw {
		keys[k] = struct{}{}
	}
	for k := range keys {
		if !slices.Contains(config.ReloadableKeys, k) && !rawEqual(c.cfg.Raw[k], cfg.Raw[k]) {
			res.NeedRestart = append(res.NeedRestart, k)
		}
	}
	sort.Strings(res.NeedRestart)
	for _, k := range res.NeedRestart {
		c.log.Warnf("%s config reload: %s changed, needs a restart to take effect", c.sourceID, k)
	}
	if len(res.Applied) == 0 && len(res.NeedRestart) == 0 {
		c.log.Infof("%s config reload: no change", c.sourceID)
	}
	s.reloadCfg = cfg
	return res
}

// reloadSubscriptions sets the client's subscribe_message_types like set_subscribe_message_types
// when connected; otherwise the list is kept for the next connection's subscribe frame.
func (c *Connector) reloadSubscriptions(types []string) []string {
	if p := c.peerByName(c.serverPeer); p != nil && p.ident.Load() {
		if keep, ok := c.setSubscriptions(types); ok {
			return keep
		}
	}
	var keep []string
	for _, t := range types {
		if _, ok := c.recvTypes[t]; ok && !slices.Contains(keep, t) {
			keep = append(keep, t)
		}
	}
	c.subMu.Lock()
	c.subTypes = keep
	c.subMu.Unlock()
	return keep
}

func (s *ignoreState) describe() string {
	switch {
	case s == nil:
		return "False"
	case s.all:
		return "True"
	case len(s.peers) > 0:
		return pyList(s.peers)
	}
	return "False"
}

func pyList(l []string) string { return string(codec.AppendPyListRepr(nil, l)) }

func quoteOrOff(s string) string {
	if s == "" {
		return "off"
	}
	return strconv.Quote(s)
}

// cloneWith returns a copy of m with key set to v (deleted when v is nil).
func cloneWith(m map[string]json.RawMessage, key string, v json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, x := range m {
		out[k] = x
	}
	if v == nil {
		delete(out, key)
	} else {
		out[key] = v
	}
	return out
}

// rawEqual compares two JSON values ignoring insignificant whitespace (absent equals absent).
func rawEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// pyPrios renders a priority map sorted by type, for the reload log line.
func pyPrios(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "'%s': %d", k, m[k])
	}
	b.WriteString("}")
	return b.String()
}
