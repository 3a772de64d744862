package connector

import (
	"context"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	"github.com/valyala/bytebufferpool"
)

// waitKey identifies an await_response request: (message_type, peer, request_id) where the id is
// canonicalised with Python dict-key equality (1 == 1.0 == true, 1 != "1").
type waitKey struct{ mtype, peer, id string }
type waitGroupKey struct{ mtype, peer string }

type waiter struct {
	api      replier
	deadline time.Time
}

// pyKey canonicalises a JSON value as a Python dict key.
func pyKey(v codec.Value) (string, bool) {
	switch v.Kind {
	case codec.KindString:
		s, ok := v.Str()
		return "s" + s, ok
	case codec.KindTrue:
		return "n1", true
	case codec.KindFalse:
		return "n0", true
	case codec.KindNumber:
		raw := string(v.Raw)
		if !strings.ContainsAny(raw, ".eE") {
			if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
				return "n" + strconv.FormatInt(i, 10), true
			}
			return "n" + strings.TrimPrefix(raw, "-0"), true // huge integers: exact text
		}
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil && !math.IsInf(f, 0) { // out of range is ±inf, a valid key in Python
			return "", false
		}
		if !math.IsInf(f, 0) && f == math.Trunc(f) { // an integral float equals that int in Python
			if math.Abs(f) < 1<<63 {
				return "n" + strconv.FormatInt(int64(f), 10), true
			}
			i, _ := new(big.Float).SetFloat64(f).Int(nil)
			return "n" + i.String(), true
		}
		return "f" + strconv.FormatFloat(f, 'g', -1, 64), true
	case codec.KindNull:
		return "z", true
	}
	return "", false
}

// addWaiter registers an await request before the message is queued (LOCAL-API §4.3). It reports
// false when the waiter limit of (mtype, peer) is reached (the request is then not awaited).
func (c *Connector) addWaiter(mtype, peer string, reqID codec.Value, api replier) bool {
	var id string
	ok := false
	if reqID.Present() {
		id, ok = pyKey(reqID)
	}
	if !ok { // 1.0.33: a generated id that is not put in the frame: the request cannot be answered
		c.log.Warnf("%s await_response without request_id for type %s: no response can match", c.sourceID, mtype)
		id = "u" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := waitGroupKey{mtype, peer}
	k := waitKey{mtype, peer, id}
	if _, dup := c.waiters[k]; dup {
		c.log.Warnf("%s request_id %s already awaited for %s, overwritten", c.sourceID, reqID.Raw, peer)
	} else {
		if c.waitCount[g] >= c.cfg.MaxAwaitingRequests {
			c.log.Errorf("%s too many requests awaiting a response for type %s and peer %s", c.sourceID, mtype, peer)
			return false
		}
		c.waitCount[g]++
	}
	c.waiters[k] = &waiter{api: api, deadline: time.Now().Add(c.cfg.AwaitResponseTimeout)}
	return true
}

// completeWaiter hands a matching response to its requester's API connection and reports whether
// one matched. Called on the peer's loop; the reply is written on the API connection's loop.
func (c *Connector) completeWaiter(from *loop.Conn, mtype, peer string, respID codec.Value, json, data, binary []byte, withBinary bool) bool {
	id, ok := pyKey(respID)
	if !ok {
		return false
	}
	k := waitKey{mtype, peer, id}
	c.mu.Lock()
	w := c.waiters[k]
	if w != nil {
		delete(c.waiters, k)
		c.waitCount[waitGroupKey{mtype, peer}]--
	}
	c.mu.Unlock()
	if w != nil {
		c.stats.awaitRTT.observe(time.Since(w.deadline.Add(-c.cfg.AwaitResponseTimeout)))
	}
	if w == nil {
		c.log.Warnf("%s response_id %s from %s matches no request. Forwarding to queue_recv anyway", c.sourceID, respID.Raw, peer)
		return false
	}
	if w.api == nil { // a broker-forwarded await: the answer is consumed, as in Python
		return true
	}
	b := bytebufferpool.Get()
	b.B = codec.AppendFrame(b.B[:0], json, data, binary, withBinary)
	w.api.reply(b, !c.cfg.UDSPathSendPreserveSocket, from)
	return true
}

// replier is where an await_response reply goes: the requester's socket connection, or an
// embedded API's waiting call. Implementations must be comparable (map/equality use).
type replier interface {
	// reply takes ownership of b (returns it to the pool when done); closeAfter closes the
	// requester's connection after the reply (non-preserve mode).
	// from is the connection whose handler is running (nil if none): a reply to a connection
	// of the same event loop is written at once.
	reply(b *bytebufferpool.ByteBuffer, closeAfter bool, from *loop.Conn)
	// drop ends the request without a reply (Python closes the connection).
	drop()
	// expire: the connector stopped waiting (await_response_timeout). Python writes nothing and
	// leaves the application's connection as it is; an in-process requester is told (drop).
	expire()
}

// connReplier replies on an application's send_to_connector connection.
type connReplier struct{ c *loop.Conn }

func (r connReplier) reply(b *bytebufferpool.ByteBuffer, closeAfter bool, from *loop.Conn) {
	c := r.c
	if c.WriteFrom(from, b.B) {
		bytebufferpool.Put(b)
		if closeAfter {
			c.Close()
		}
		return
	}
	if err := c.AsyncWrite(b.B, func(error) {
		bytebufferpool.Put(b)
		if closeAfter {
			c.Close()
		}
	}); err != nil {
		bytebufferpool.Put(b)
	}
}

func (r connReplier) drop()   { r.c.Close() }
func (r connReplier) expire() {}

// forgetWaitersOf drops the waiters of a closed API connection.
func (c *Connector) forgetWaitersOf(api replier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, w := range c.waiters {
		if w.api == api {
			delete(c.waiters, k)
			c.waitCount[waitGroupKey{k.mtype, k.peer}]--
		}
	}
}

// sweepWaiters expires waiters after AwaitResponseTimeout (nothing is written, as in Python).
func (c *Connector) sweepWaiters(ctx context.Context) {
	period := c.cfg.AwaitResponseTimeout / 4
	if period > time.Second {
		period = time.Second
	}
	if period <= 0 {
		period = time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var expired []replier
			c.mu.Lock()
			for k, w := range c.waiters {
				if now.After(w.deadline) {
					c.log.Warnf("%s timeout waiting for response %s from %s", c.sourceID, k.id[1:], k.peer)
					delete(c.waiters, k)
					c.waitCount[waitGroupKey{k.mtype, k.peer}]--
					expired = append(expired, w.api)
				}
			}
			c.mu.Unlock()
			for _, r := range expired {
				r.expire()
			}
		}
	}
}
