package connector

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// Client keep-alive of 1.6.3 (PEER-PROTOCOL §6.8): with keep_alive_period set, a client sends
// `_ping` {"await_response": true, "request_id": "keep_alive_client_check", ...} with data
// keep_alive_client_check every period and expects the reply within keep_alive_timeout; after
// max_number_of_unanswered_keep_alive misses in a row it closes the link (and reconnects). The
// server side needs nothing: it answers like any `_ping`. The reply is consumed by the client.

const keepAliveID = "keep_alive_client_check"

type keepAlive struct {
	answered atomic.Int64 // replies received (set on the link's loop)
}

// startKeepAlive runs the client's keep-alive for link p until ctx ends or the link closes.
func (c *Connector) startKeepAlive(ctx context.Context, p *peer) {
	if p.ka != nil || c.cfg.KeepAlivePeriod <= 0 || c.cfg.IsServer {
		return
	}
	ka := &keepAlive{}
	p.ka = ka
	var o codec.Obj
	o.Begin(nil)
	o.Bool("await_response", true)
	o.Str("request_id", keepAliveID)
	o.Str("destination_id", c.serverPeer)
	o.Str("message_type", "_ping")
	o.Str("source_id", c.sourceID)
	frame := codec.AppendFrame(nil, o.End(), []byte(keepAliveID), nil, false)
	conn := p.conn
	go func() {
		t := time.NewTicker(c.cfg.KeepAlivePeriod)
		defer t.Stop()
		missed := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if conn.Closed() {
				return
			}
			before := ka.answered.Load()
			if conn.Closed() {
				return
			}
			p.sendControl(frame)
			wait := time.NewTimer(c.cfg.KeepAliveTimeout)
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
			if ka.answered.Load() > before {
				missed = 0
				continue
			}
			missed++
			c.log.Warnf("%s keep-alive to %s unanswered (%d)", c.sourceID, p.name, missed)
			if missed >= c.cfg.MaxUnansweredKeepAlive {
				c.log.Errorf("%s closing the link to %s: %d keep-alives unanswered", c.sourceID, p.name, missed)
				conn.Close()
				return
			}
		}
	}()
}
