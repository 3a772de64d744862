package api

import (
	"context"
	"errors"
	"fmt"
)

// ErrBatch is wrapped by SendMessages for a message a batch cannot carry.
var ErrBatch = errors.New("api: SendMessages")

// batchMax bounds the bytes SendMessages hands over at once (a longer batch goes in several
// hand-overs of about this size, in order).
const batchMax = 256 << 10

// BatchTransport is the optional batch side of a Transport: SendBatch hands frames (complete
// frames, back to back) to the connector in order, as Send would one at a time, and returns how
// many it handed over before an error. connector.Local implements it.
type BatchTransport interface {
	SendBatch(frames []byte) (int, error)
}

// SendMessages sends msgs in order, as SendMessage would one after the other, with one
// hand-over per batch instead of one per message: one write on the cached socket connection
// (preserve mode), one routing lock and one wake of the link in embedded mode. Messages with
// AwaitResponse or WithFile are refused (ErrBatch, nothing of the batch is sent): send those
// with SendMessage. Without preserve mode (one connection per frame), the messages go one by
// one. It returns how many messages were handed to the connector; on an error some messages
// after that count may have been handed over too (a socket write that failed midway; the cached
// connection's one retry then writes the whole hand-over again, so a prefix may arrive twice).
// Concurrency-safe like SendMessage; msgs is not retained.
func (a *API) SendMessages(ctx context.Context, msgs []SendOptions) (int, error) {
	if a.closed.Load() {
		return 0, ErrClosed
	}
	for i := range msgs {
		if msgs[i].AwaitResponse || msgs[i].WithFile != nil {
			return 0, fmt.Errorf("%w: message %d has await_response or with_file (use SendMessage)", ErrBatch, i)
		}
	}
	bt, batchTr := a.tr.(BatchTransport)
	if (a.tr != nil && !batchTr) || (a.tr == nil && !a.preserve) {
		for i := range msgs {
			if err := a.SendMessage(ctx, msgs[i]); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	p := a.getBuf()
	defer a.putBuf(p)
	done := 0
	for done < len(msgs) {
		b := (*p)[:0]
		n := 0
		for done+n < len(msgs) && (n == 0 || len(b) < batchMax) {
			var err error
			if b, err = appendHeader(b, &a.id, &msgs[done+n]); err != nil {
				*p = b
				return done, fmt.Errorf("%w: message %d: %w", ErrBatch, done+n, err)
			}
			b = appendTail(b, &msgs[done+n])
			n++
		}
		*p = b
		if batchTr {
			k, err := bt.SendBatch(b)
			done += k
			if err != nil {
				return done, err
			}
			continue
		}
		if err := a.sendPreserved(ctx, frame{head: b, inline: true}); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}
