package api

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoDurable: SendMessageDurable on an API whose transport cannot report durable acceptance
// (the unix-socket API, or a Transport without SendDurable).
var ErrNoDurable = errors.New("api: transport has no durable send")

// DurableTransport is implemented by transports that can report durable acceptance
// (connector.(*Connector).Local() does): SendDurable is Send that returns nil only once the
// connector has stored the message in its at_least_once log (fsynced), from where it is
// delivered at least once to its peer.
type DurableTransport interface {
	Transport
	SendDurable(ctx context.Context, frame []byte) error
}

// SendMessageDurable sends like SendMessage and returns once the connector accepted the
// message durably (embedded mode with a DurableTransport and the connector's at_least_once
// covering the message's type). It returns the transport's error otherwise (for
// connector.Local: one wrapping connector.ErrNotDurable when the message was routed without the
// guarantee), ErrNoDurable when the transport has no durable send (nothing is sent), and
// ctx's error if ctx ends first (the message may still be delivered). Await-response and file
// messages are not supported (ErrNoDurable). Concurrency-safe; concurrent calls share fsyncs.
func (a *API) SendMessageDurable(ctx context.Context, o SendOptions) error {
	if a.closed.Load() {
		return ErrClosed
	}
	dt, ok := a.tr.(DurableTransport)
	if !ok {
		return ErrNoDurable
	}
	if o.AwaitResponse || o.WithFile != nil {
		return fmt.Errorf("%w: await_response and with_file messages have no durable send", ErrNoDurable)
	}
	p := a.getBuf()
	defer a.putBuf(p)
	fr, err := a.trFrame(p, &o)
	if err != nil {
		return err
	}
	return dt.SendDurable(ctx, fr)
}
