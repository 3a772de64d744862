package connector

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/persist"
	"github.com/aioconn/aioconn/ring"
	"github.com/valyala/bytebufferpool"
)

// Disk persistence (LOCAL-API §9): send files per peer (messages for an absent peer, and a
// lost link's queue) replayed first when the peer is back; receive files per message type
// (messages no listener took) replayed when the listener is back. File names are the Python
// connector's. New files are written in aioconn's own format (package persist: checksummed,
// length-prefixed records) unless AIOCONN_PERSISTENCE_FORMAT=python; files in either format
// are read (a file left by a Python connector is replayed), and an existing file keeps its
// format. See docs/persistence.md.
//
// Disk work and the event loops: appends are buffered by persist.Store (a memcpy on the loop)
// and committed by a background flusher every persistFlushEvery; a lost link's queue is stored
// in one AppendBatch on its loop (rare); loading runs on goroutines.

const persistFlushEvery = 20 * time.Millisecond

// PersistFormatEnv selects the format of new persistence files: "aioconn" (default) or
// "python" (aioconnectors 1.0.33's separator format, for users who may go back to the Python
// connector). Read once, at the first persisted message.
const PersistFormatEnv = "AIOCONN_PERSISTENCE_FORMAT"

// replaySuffix names the file a send replay loads from: the peer's file is renamed to it
// (persist.Store.MoveTo) so that appends racing with the replay start a new file.
const replaySuffix = ".replay"

type stores struct {
	mu        sync.Mutex
	m         map[string]*persist.Store // path -> store
	dirty     bool
	kick      chan struct{} // signalled when a store turns dirty (cap 1; made by New)
	format    persist.Format
	formatSet bool
	replays   map[string]*replayRun // peer name -> its running send replay
}

// replayRun is one send replay: a goroutine loading the peer's file into its replay ring.
type replayRun struct {
	p      *peer
	mu     sync.Mutex // held around each push, and to set closed
	closed bool       // the link is gone: the loader pushes nothing more
	done   chan struct{}
}

// store returns the Store of path, creating it.
func (c *Connector) store(path string) *persist.Store {
	c.pstores.mu.Lock()
	defer c.pstores.mu.Unlock()
	if c.pstores.m == nil {
		c.pstores.m = map[string]*persist.Store{}
	}
	if !c.pstores.formatSet {
		c.pstores.formatSet = true
		v := os.Getenv(PersistFormatEnv)
		f, ok := persist.ParseFormat(v)
		if !ok {
			c.log.Warnf("%s %s=%q is neither aioconn nor python: using aioconn", c.sourceID, PersistFormatEnv, v)
		}
		c.pstores.format = f
	}
	s := c.pstores.m[path]
	if s == nil {
		s = persist.OpenFormat(path, c.cfg.MaxSizePersistencePath, c.pstores.format)
		c.pstores.m[path] = s
	}
	c.pstores.dirty = true
	select {
	case c.pstores.kick <- struct{}{}:
	default:
	}
	return s
}

// flushStores commits buffered records (background, persistFlushEvery after the first new one) until ctx ends,
// then once more.
func (c *Connector) flushStores(ctx context.Context) {
	// Woken by the first record after a flush, never by a ticker: an idle connector does not
	// wake up 50 times a second (which 100 connectors on 2 cores pay for in latency).
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.flushAll(true)
			return
		case <-c.pstores.kick:
		}
		t.Reset(persistFlushEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			c.flushAll(true)
			return
		case <-t.C:
		}
		c.flushAll(false)
	}
}

func (c *Connector) flushAll(closeAll bool) {
	c.pstores.mu.Lock()
	dirty := c.pstores.dirty || closeAll
	c.pstores.dirty = false
	list := make([]*persist.Store, 0, len(c.pstores.m))
	for _, s := range c.pstores.m {
		list = append(list, s)
	}
	c.pstores.mu.Unlock()
	if !dirty {
		return
	}
	for _, s := range list {
		if err := s.Flush(); err != nil {
			c.log.Errorf("%s persistence: %v", c.sourceID, err)
		}
		if closeAll {
			s.Close()
		}
	}
}

// persistSend appends a frame for an absent peer (the raw frame, as Python stores it).
func (c *Connector) persistSend(peerName string, frame []byte) bool {
	s := c.store(persist.SendPath(c.cfg.ConnectorFilesDirpath, c.alnumID, peerName))
	if err := s.Append(frame); err != nil {
		c.log.Warnf("%s %v", c.sourceID, err)
		return false
	}
	c.stats.storePersistenceSend.Add(1)
	return true
}

// persistLostQueue stores the messages a lost link still held, in queue order, keeping only the
// persisted types. Runs on the link's loop (rare: once per lost connection). It takes ownership
// of the messages (returns their buffers to the pools) and returns how many it stored.
//
// If the link's file was still being loaded, the loader is stopped first (the rest of the file
// stays in the replay file, replayed first next time) and the frames it pushed after the link's
// queues were drained are stored too, after the others (the one place where a replay can
// reorder: a link lost while its file is being loaded).
func (p *peer) persistLostQueue(msgs []qmsg) int {
	cn := p.cn
	cn.pstores.mu.Lock()
	r := cn.pstores.replays[p.name]
	cn.pstores.mu.Unlock()
	if r != nil && r.p == p {
		r.mu.Lock()
		r.closed = true // from here on the loader pushes nothing
		r.mu.Unlock()
	}
	if p.replay != nil { // we are the ring's consumer (the loop)
		for {
			n := len(msgs)
			if msgs = p.replay.PopBatch(msgs, sendBatchMsgs); len(msgs) == n {
				break
			}
		}
	}
	return cn.persistQueued(p.name, msgs)
}

// persistQueued stores, in order, the messages of msgs whose type is one of
// disk_persistence_send in peerName's send-persistence file, and returns how many. It takes
// ownership of the messages (returns their buffers to the pools). Concurrency-safe.
func (cn *Connector) persistQueued(peerName string, msgs []qmsg) int {
	var frames [][]byte
	for _, m := range msgs {
		b := m.b.B
		if m.body != nil {
			b = append(append([]byte(nil), b...), m.body.b.B...)
		}
		f, err := codec.ParseBody(b[codec.LenPrefix:])
		if err == nil {
			if v, err := codec.Lookup(f.JSON, "message_type"); err == nil {
				if mt, ok := v.Str(); ok && cn.cfg.DiskPersistenceSend.Has(mt) {
					frames = append(frames, append([]byte(nil), b...))
				}
			}
		}
		m.release()
	}
	if len(frames) == 0 {
		return 0
	}
	s := cn.store(persist.SendPath(cn.cfg.ConnectorFilesDirpath, cn.alnumID, peerName))
	if err := s.AppendBatch(frames); err != nil {
		cn.log.Warnf("%s %v", cn.sourceID, err)
	}
	cn.stats.storePersistenceSend.Add(int64(len(frames)))
	return len(frames)
}

// startReplay is called when a peer is identified: if it has a send-persistence file (or the
// replay file an interrupted replay left), the file is loaded on a goroutine into the peer's
// replay ring, which the peer sends before its queue. Loop-owned (the peer's loop).
func (p *peer) startReplay() {
	cn := p.cn
	if !cn.cfg.DiskPersistenceSend.Any() {
		return
	}
	path := persist.SendPath(cn.cfg.ConnectorFilesDirpath, cn.alnumID, p.name)
	work := path + replaySuffix
	cn.pstores.mu.Lock()
	prev := cn.pstores.replays[p.name]
	if prev == nil && !persist.Exists(path) && !persist.Exists(work) {
		cn.pstores.mu.Unlock()
		return
	}
	r := &replayRun{p: p, done: make(chan struct{})}
	if cn.pstores.replays == nil {
		cn.pstores.replays = map[string]*replayRun{}
	}
	cn.pstores.replays[p.name] = r
	cn.pstores.mu.Unlock()
	p.replay = ring.NewMPSC[qmsg](cn.cfg.MaxQueueSize, defaultMaxBytes)
	p.replaying.Store(true)
	conn := p.conn
	go func() {
		defer func() {
			cn.pstores.mu.Lock()
			if cn.pstores.replays[p.name] == r {
				delete(cn.pstores.replays, p.name)
			}
			cn.pstores.mu.Unlock()
			close(r.done)
			p.replaying.Store(false)
			conn.Wake()
		}()
		if prev != nil {
			<-prev.done // the previous link's loader stops as soon as its link is gone
		}
		n := r.run(path, work, conn)
		cn.stats.loadPersistenceSend.Add(int64(n))
		cn.log.Infof("%s replayed %d persisted messages to %s", cn.sourceID, n, p.name)
	}()
}

var (
	errReplayFull = errors.New("connector: replay queue full")
	errPeerGone   = errors.New("connector: peer connection lost during replay")
)

// wakeEvery is how many pushed frames the loader lets the link send before it has finished.
const wakeEvery = 4096

// run loads the replay file (then the peer's file, renamed, and again for appends that raced
// with the identification, at most replayTakes times) into the replay ring. It returns the
// number of frames pushed.
func (r *replayRun) run(path, work string, conn interface{ Wake() error }) (total int) {
	const replayTakes = 3
	p, cn := r.p, r.p.cn
	s := cn.store(path)
	var fixer headerFixer
	push := func(frame []byte) error {
		b, ack, err := fixer.fix(cn, p.name, frame)
		if err != nil {
			cn.log.Warnf("%s dropping an invalid persisted record for %s: %v", cn.sourceID, p.name, err)
			return nil
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.closed {
			bytebufferpool.Put(b)
			return errPeerGone
		}
		if !p.replay.Push(qmsg{b: b, ack: ack}, len(b.B)) {
			bytebufferpool.Put(b)
			return errReplayFull
		}
		if total++; total%wakeEvery == 0 {
			conn.Wake()
		}
		return nil
	}
	for takes := 0; ; {
		if !persist.Exists(work) {
			if takes == replayTakes {
				return total
			}
			takes++
			moved, err := s.MoveTo(work)
			if err != nil {
				cn.log.Warnf("%s persistence replay for %s: %v", cn.sourceID, p.name, err)
				return total
			}
			if !moved {
				return total
			}
		}
		_, err := persist.LoadAndRemove(work, 0, push)
		var de *persist.DamageError
		if errors.As(err, &de) {
			// The intact records were replayed; the damaged bytes are in de.Aside, named
			// after the peer's file (the replay file is that file renamed).
			if rest, ok := strings.CutPrefix(de.Aside, work); ok && !persist.Exists(path+rest) {
				if os.Rename(de.Aside, path+rest) == nil {
					de.Aside = path + rest
				}
			}
			de.Path = path
			cn.log.Errorf("%s persistence replay for %s: %v", cn.sourceID, p.name, de)
		}
		switch {
		case errors.Is(err, errPeerGone):
			return total // the rest stays in the replay file, first next time
		case errors.Is(err, errReplayFull):
			conn.Wake()
			if !r.waitRoom() {
				return total
			}
		case err != nil && de == nil:
			cn.log.Warnf("%s persistence replay for %s: %v", cn.sourceID, p.name, err)
			return total
		}
	}
}

// waitRoom waits until the replay ring is at most half full (the link sends it) or the link is
// gone (false).
func (r *replayRun) waitRoom() bool {
	p := r.p
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed || p.conn.Closed() {
			return false
		}
		if p.replay.Len() <= p.replay.Cap()/2 && p.replay.Bytes() <= defaultMaxBytes/2 {
			return true
		}
		<-t.C
	}
}

// headerFixer applies to a persisted API frame what the connector applies when it sends: a
// client's destination_id is its server, source_id is the connector's own.
type headerFixer struct{ bufs [2][]byte }

func (x *headerFixer) fix(cn *Connector, peerName string, frame []byte) (*bytebufferpool.ByteBuffer, bool, error) {
	var h codec.Header
	f, err := codec.ParseBodyHeader(frame[codec.LenPrefix:], &h)
	if err != nil {
		return nil, false, err
	}
	js := f.JSON
	nb := 0
	set := func(key, val string) error {
		out, err := codec.SetKey(x.bufs[nb&1][:0], js, key, codec.AppendPyString(nil, val))
		x.bufs[nb&1] = out
		nb++
		js = out
		return err
	}
	if !cn.cfg.IsServer && !strEq(h.DestinationID, cn.serverPeer) {
		if err := set("destination_id", cn.serverPeer); err != nil {
			return nil, false, err
		}
	}
	if !strEq(h.SourceID, cn.sourceID) {
		if err := set("source_id", cn.sourceID); err != nil {
			return nil, false, err
		}
	}
	b := bytebufferpool.Get()
	b.B = codec.AppendFrame(b.B[:0], js, f.Data, f.Binary, f.HasBinary)
	return b, h.WaitForAck.Truthy(), nil
}

// --- receive side ---

// persistRecv appends a message for an absent listener to the type's receive file. Called with
// rt.mu held.
func (rt *recvType) persistRecv(json, data, binary []byte, withBinary bool) {
	cn := rt.cn
	frame := codec.AppendFrame(nil, json, data, binary, withBinary)
	if err := cn.store(rt.persistPath()).Append(frame); err != nil {
		cn.log.Warnf("%s %v", cn.sourceID, err)
		return
	}
	cn.stats.storePersistenceRecv.Add(1)
}

func (rt *recvType) persistPath() string {
	return persist.RecvPath(rt.cn.cfg.ConnectorFilesDirpath, rt.cn.alnumID, rt.mtype)
}

// deliverOrPersist is the delivery decision for one message when receive persistence is
// configured for its type: while the type is "disconnected" every message goes to its file, in
// order, until the probe finds the listener again. It returns false when the caller should
// deliver normally.
func (rt *recvType) deliverOrPersist(json, data, binary []byte, withBinary bool, listenerOK func() bool) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if !rt.persisting {
		if listenerOK() {
			return false
		}
		rt.persisting = true
		rt.cn.log.Warnf("%s could not connect to non existing %s : persisting messages of type %s", rt.cn.sourceID, rt.path, rt.mtype)
		go rt.probe()
	}
	rt.persistRecv(json, data, binary, withBinary)
	return true
}

// probe waits for the listener to come back (socket file present and a connection accepted, like
// Python's probe), then replays the file into the ring and resumes normal delivery.
func (rt *recvType) probe() {
	cn := rt.cn
	cn.mu.Lock()
	ctx := cn.runCtx
	cn.mu.Unlock()
	t := time.NewTicker(cn.cfg.ReconnectInterval / 10)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nc, err := net.DialTimeout("unix", rt.path, cn.cfg.IOTimeout)
		if err != nil {
			continue
		}
		nc.Close()
		rt.mu.Lock()
		s := cn.store(rt.persistPath())
		s.Flush()
		s.Close()
		n, err := persist.LoadAndRemove(rt.persistPath(), cn.cfg.MaxQueueSize, func(frame []byte) error {
			b := bytebufferpool.Get()
			b.B = append(b.B[:0], frame...)
			if !rt.q.Push(b, len(b.B)) {
				bytebufferpool.Put(b)
				return errReplayFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errReplayFull) {
			cn.log.Warnf("%s receive persistence replay for %s: %v", cn.sourceID, rt.mtype, err)
		}
		cn.stats.loadPersistenceRecv.Add(int64(n))
		if errors.Is(err, errReplayFull) { // keep persisting; the rest is replayed next round
			rt.mu.Unlock()
			rt.kick()
			continue
		}
		rt.persisting = false
		rt.mu.Unlock()
		rt.kick()
		return
	}
}
