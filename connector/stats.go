package connector

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// counters are the original's msg_counts plus aioconn's drop counters. Concurrency-safe.
type counters struct {
	storePersistenceSend, loadPersistenceSend, sendNoPersist, queueSent, queueRecv, msgRecvdUDS,
	storePersistenceRecv, loadPersistenceRecv atomic.Int64
	dropQueueFull, dropNoListener atomic.Int64
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
	c.mu.Lock()
	for _, rt := range c.recv {
		recv += rt.q.Len()
	}
	c.mu.Unlock()
	send := map[string]int{}
	for name, p := range *c.peers.Load() {
		send[name] = p.q.Len() + int(p.pendingN.Load())
	}
	return recv, send
}
