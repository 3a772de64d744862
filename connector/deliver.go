package connector

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	"github.com/aioconn/aioconn/ring"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// recvType delivers the messages of one message type to the application listening on its
// receive_from_connector socket (LOCAL-API §5). Producers are the peer loops; the consumer is the
// loop of the cached connection to the application (preserve mode) or a dialing goroutine.
type recvType struct {
	cn      *Connector
	mtype   string
	path    string
	q       *ring.MPSC[*bytebufferpool.ByteBuffer]
	conn    atomic.Pointer[loop.Conn]
	dialing atomic.Bool
	rewake  atomic.Bool
	sink    atomic.Pointer[localSink] // embedded mode: an in-process listener (embedded.go)
	stopped chan struct{}             // closed when the run that owns this ring stops
	persist bool                      // a disk_persistence_recv type (immutable)
	// receive persistence (persistence.go)
	mu         sync.Mutex
	persisting bool // guarded by mu: the type is "disconnected", messages go to its file
	// loop-owned by conn's loop
	out   []byte
	batch []*bytebufferpool.ByteBuffer
	tags  []aloTag // at_least_once: written to the connection, not yet out of gnet's buffer
}

// recvRingBytes is the byte cap of a receive ring (a variable for tests that need a ring full by
// bytes before it is full by count; set it before the connector is made, in a non-parallel test).
var recvRingBytes int64 = defaultMaxBytes

func newRecvType(cn *Connector, t string) *recvType {
	return &recvType{cn: cn, mtype: t, path: cn.paths.ReceivePath(t), stopped: make(chan struct{}), persist: cn.cfg.DiskPersistenceRecv.Has(t),
		q: ring.NewMPSC[*bytebufferpool.ByteBuffer](cn.cfg.MaxQueueSize, recvRingBytes)}
}

// listenerPresent is the original's rule: a listener exists iff its socket file exists. Callers
// check it once per read burst, not per message.
func (rt *recvType) listenerPresent() bool {
	if rt.sink.Load() != nil {
		return true
	}
	_, err := os.Lstat(rt.path)
	return err == nil
}

// dropFull counts and logs n messages dropped because rt's ring stayed full.
func (rt *recvType) dropFull(n int) {
	rt.cn.stats.dropQueueFull.Add(int64(n))
	rt.cn.log.Errorf("%s queue_recv full for type %s: %d messages dropped", rt.cn.sourceID, rt.mtype, n)
}

func (rt *recvType) dropNoListener() {
	rt.cn.stats.dropNoListener.Add(1)
	rt.cn.log.Warnf("%s could not connect to non existing %s", rt.cn.sourceID, rt.path)
}

// pushTagged is push for a numbered at_least_once message: its tag follows the frame in the
// buffer, and the consumer reports the delivery. false: the ring is full (nothing pushed).
func (rt *recvType) pushTagged(json, data, binary []byte, withBinary bool, tag aloTag) bool {
	b := bytebufferpool.Get()
	b.B = codec.AppendFrame(b.B[:0], json, data, binary, withBinary)
	b.B = tag.appendTo(b.B)
	if !rt.q.Push(b, len(b.B)) {
		bytebufferpool.Put(b)
		return false
	}
	return true
}

// kick makes the consumer run: wakes the cached connection, or starts a dial. Concurrency-safe.
func (rt *recvType) kick() {
	if s := rt.sink.Load(); s != nil {
		s.kick()
		return
	}
	if c := rt.conn.Load(); c != nil {
		if c.Wake() == nil {
			return
		}
		rt.conn.CompareAndSwap(c, nil)
	}
	if rt.dialing.Swap(true) {
		return
	}
	go rt.dial()
}

// dial connects to the application's listener socket (off the loop) and enrolls the connection;
// in non-preserve mode it writes each queued frame on its own connection instead.
func (rt *recvType) dial() {
	cn := rt.cn
	defer rt.dialing.Store(false)
	cn.mu.Lock()
	eng := cn.eng
	cn.mu.Unlock()
	if eng == nil {
		return
	}
	if !cn.cfg.UDSPathReceivePreserveSocket {
		rt.writeEach()
		return
	}
	nc, err := net.DialTimeout("unix", rt.path, cn.cfg.IOTimeout)
	if err != nil {
		rt.dropQueued(err)
		return
	}
	c, err := eng.Enroll(nc, &recvHandler{}, rt)
	if err != nil {
		rt.dropQueued(err)
		return
	}
	rt.conn.Store(c)
	c.Wake()
}

func (rt *recvType) writeEach() {
	cn := rt.cn
	for {
		b, ok := rt.q.Pop()
		if !ok {
			return
		}
		frame, tag, tagged := splitALOTag(b.B)
		nc, err := net.DialTimeout("unix", rt.path, cn.cfg.IOTimeout)
		if err == nil {
			nc.SetWriteDeadline(time.Now().Add(cn.cfg.IOTimeout))
			_, err = nc.Write(frame)
			nc.Close()
		}
		bytebufferpool.Put(b)
		if tagged {
			if err == nil {
				cn.aloDelivered([]aloTag{tag})
			} else {
				cn.aloFailed([]aloTag{tag})
			}
		}
		if err != nil {
			cn.stats.dropNoListener.Add(1)
			cn.log.Warnf("%s could not deliver to %s : %v", cn.sourceID, rt.path, err)
		}
	}
}

func (rt *recvType) dropQueued(err error) {
	n := 0
	var tags []aloTag
	for {
		b, ok := rt.q.Pop()
		if !ok {
			break
		}
		if _, tag, tagged := splitALOTag(b.B); tagged {
			tags = append(tags, tag)
		}
		bytebufferpool.Put(b)
		n++
	}
	if len(tags) > 0 {
		rt.cn.aloFailed(tags)
	}
	rt.cn.stats.dropNoListener.Add(int64(n))
	rt.cn.log.Warnf("%s could not connect to %s : %v (%d messages dropped)", rt.cn.sourceID, rt.path, err, n)
}

// recvHandler drains a recvType ring into its application connection.
type recvHandler struct{}

// recvSockBuf is the send buffer asked for on application connections: with a large kernel
// buffer, batches rarely spill into gnet's outbound buffer (whose copies churn memory).
const recvSockBuf = 4 << 20

func (recvHandler) OnOpen(c *loop.Conn) {
	if fd := c.Fd(); fd >= 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, recvSockBuf)
	}
}

func (recvHandler) OnTraffic(c *loop.Conn) error {
	rt := c.Ctx.(*recvType)
	if n := c.InboundBuffered(); n > 0 { // applications never write here
		c.Discard(n)
	}
	rt.rewake.Store(false)
	if len(rt.tags) > 0 && c.OutboundBuffered() == 0 { // at_least_once: now in the kernel
		rt.cn.aloDelivered(rt.tags)
		rt.tags = rt.tags[:0]
	}
	for {
		if c.OutboundBuffered() > 0 { // the application is behind: let the kernel buffer drain first
			if !rt.rewake.Swap(true) {
				time.AfterFunc(rewakeDelay, func() { c.Wake() })
			}
			break
		}
		rt.batch = rt.q.PopBatch(rt.batch[:0], sendBatchMsgs)
		if len(rt.batch) == 0 {
			break
		}
		for i, b := range rt.batch {
			frame, tag, tagged := splitALOTag(b.B)
			if tagged {
				rt.tags = append(rt.tags, tag)
			}
			rt.out = append(rt.out, frame...)
			bytebufferpool.Put(b)
			rt.batch[i] = nil
		}
		if _, err := c.Write(rt.out); err != nil {
			rt.out = rt.out[:0]
			return err
		}
		if len(rt.tags) > 0 && c.OutboundBuffered() == 0 {
			rt.cn.aloDelivered(rt.tags)
			rt.tags = rt.tags[:0]
		}
		if cap(rt.out) > 4*sendBatchBytes {
			rt.out = nil
		} else {
			rt.out = rt.out[:0]
		}
	}
	return nil
}

func (recvHandler) OnClose(c *loop.Conn, err error) {
	rt, ok := c.Ctx.(*recvType)
	if !ok {
		return
	}
	rt.conn.CompareAndSwap(c, nil)
	if len(rt.tags) > 0 { // written to gnet but not sent: never reached the application
		rt.cn.aloFailed(rt.tags)
		rt.tags = rt.tags[:0]
	}
	if rt.q.Len() > 0 && rt.listenerPresent() {
		rt.kick()
	}
}
