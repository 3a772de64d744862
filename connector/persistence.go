package connector

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/persist"
	"github.com/aioconn/aioconn/ring"
	"github.com/valyala/bytebufferpool"
)

// Disk persistence (LOCAL-API §9): send files per peer (messages for an absent peer, and a
// lost link's queue) replayed first when the peer is back; receive files per message type
// (messages no listener took) replayed when the listener is back. Files are byte-compatible with
// the Python connector's (package persist).
//
// Disk work and the event loops: appends are buffered by persist.Store (a memcpy on the loop)
// and committed by a background flusher every persistFlushEvery; a lost link's queue is stored
// in one AppendBatch on its loop (rare); loading runs on goroutines.

const persistFlushEvery = 20 * time.Millisecond

type stores struct {
	mu    sync.Mutex
	m     map[string]*persist.Store // path -> store
	dirty bool
}

// store returns the Store of path, creating it.
func (c *Connector) store(path string) *persist.Store {
	c.pstores.mu.Lock()
	defer c.pstores.mu.Unlock()
	if c.pstores.m == nil {
		c.pstores.m = map[string]*persist.Store{}
	}
	s := c.pstores.m[path]
	if s == nil {
		s = persist.Open(path, c.cfg.MaxSizePersistencePath)
		c.pstores.m[path] = s
	}
	c.pstores.dirty = true
	return s
}

// flushStores commits buffered records (background, every persistFlushEvery) until ctx ends,
// then once more.
func (c *Connector) flushStores(ctx context.Context) {
	t := time.NewTicker(persistFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.flushAll(true)
			return
		case <-t.C:
			c.flushAll(false)
		}
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
func (p *peer) persistLostQueue(msgs []qmsg) int {
	cn := p.cn
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
	s := cn.store(persist.SendPath(cn.cfg.ConnectorFilesDirpath, cn.alnumID, p.name))
	if err := s.AppendBatch(frames); err != nil {
		cn.log.Warnf("%s %v", cn.sourceID, err)
	}
	cn.stats.storePersistenceSend.Add(int64(len(frames)))
	return len(frames)
}

// startReplay is called when a peer is identified: if it has a send-persistence file, the file is
// loaded on a goroutine into the peer's replay ring, which the peer sends before its queue.
// Loop-owned (the peer's loop).
func (p *peer) startReplay() {
	cn := p.cn
	if !cn.cfg.DiskPersistenceSend.Any() {
		return
	}
	path := persist.SendPath(cn.cfg.ConnectorFilesDirpath, cn.alnumID, p.name)
	if _, err := os.Stat(path); err != nil {
		return
	}
	p.replay = ring.NewMPSC[qmsg](cn.cfg.MaxQueueSize, defaultMaxBytes)
	p.replaying.Store(true)
	conn := p.conn
	go func() {
		defer func() {
			p.replaying.Store(false)
			conn.Wake()
		}()
		s := cn.store(path)
		s.Flush()
		s.Close()
		var fixer headerFixer
		n, err := persist.LoadAndRemove(path, cn.cfg.MaxQueueSize, func(frame []byte) error {
			b, ack, err := fixer.fix(cn, p.name, frame)
			if err != nil {
				cn.log.Warnf("%s dropping an invalid persisted record for %s: %v", cn.sourceID, p.name, err)
				return nil
			}
			if !p.replay.Push(qmsg{b: b, ack: ack}, len(b.B)) {
				bytebufferpool.Put(b)
				return errReplayFull
			}
			return nil
		})
		if err != nil && !errors.Is(err, errReplayFull) {
			cn.log.Warnf("%s persistence replay for %s: %v", cn.sourceID, p.name, err)
		}
		cn.stats.loadPersistenceSend.Add(int64(n))
		cn.log.Infof("%s replayed %d persisted messages to %s", cn.sourceID, n, p.name)
	}()
}

var errReplayFull = errors.New("connector: replay queue full")

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
