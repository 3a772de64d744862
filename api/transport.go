package api

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// Transport carries frames between an API and a connector running in the same process
// (embedded mode): no unix socket and no re-encoding between the application and the
// connector; the link between connectors is unchanged. connector.(*Connector).Local() returns
// one (package connector is not imported here: the interface is satisfied structurally).
//
// Frames are complete frames (4-byte length prefix included). Implementations copy what they
// keep from frame arguments, and pass handler frames that are valid only during the call.
type Transport interface {
	// Send hands one frame to the connector, like writing it on send_to_connector.
	Send(frame []byte) error
	// SendAwait hands an await_response frame and blocks until the reply (owned by the
	// caller) or ctx; (nil, nil) when the connector ended the request without a reply.
	SendAwait(ctx context.Context, frame []byte) ([]byte, error)
	// Listen delivers messages of messageType to h (sequentially per type).
	Listen(messageType string, h func(frame []byte)) error
	// Unlisten stops Listen for messageType.
	Unlisten(messageType string) error
}

// NewWithTransport returns an API bound to an in-process connector through t (embedded mode).
// Semantics are those of the socket API (types, filters, await_response, acks, persistence
// are the connector's); Handler memory rules are the same.
func NewWithTransport(cfg *config.APIOptions, t Transport) (*API, error) {
	if t == nil {
		return nil, errors.New("api: nil transport")
	}
	a, err := New(cfg)
	if err != nil {
		return nil, err
	}
	a.tr = t
	return a, nil
}

// trFrame assembles o into one contiguous frame in *p.
func (a *API) trFrame(p *[]byte, o *SendOptions) ([]byte, error) {
	b, err := appendHeader((*p)[:0], &a.id, o)
	if err != nil {
		return nil, err
	}
	b = appendTail(b, o)
	*p = b
	return b, nil
}

func (a *API) trSend(o *SendOptions) error {
	p := a.getBuf()
	defer a.putBuf(p)
	fr, err := a.trFrame(p, o)
	if err != nil {
		return err
	}
	return a.tr.Send(fr)
}

func (a *API) trAwait(ctx context.Context, o *SendOptions) (*Message, error) {
	p := a.getBuf()
	fr, err := a.trFrame(p, o)
	if err != nil {
		a.putBuf(p)
		return nil, err
	}
	reply, err := a.tr.SendAwait(ctx, fr)
	a.putBuf(p)
	if err != nil {
		return nil, err
	}
	if reply == nil {
		return nil, fmt.Errorf("%w (embedded connector)", ErrNoResponse)
	}
	f, err := codec.ParseBody(reply[codec.LenPrefix:])
	if err != nil {
		return nil, fmt.Errorf("api: await_response reply: %w", err)
	}
	m := frameMessage(f)
	return &m, nil
}

func (a *API) trListen(messageType string, h Handler) error {
	if !slices.Contains(a.cfg.RecvMessageTypes, messageType) {
		return fmt.Errorf("%w: %q (recv_message_types %q)", ErrNotRecvType, messageType, a.cfg.RecvMessageTypes)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return ErrClosed
	}
	if _, ok := a.waiters[messageType]; ok {
		return fmt.Errorf("%w: Already waiting for messages of type %s", ErrAlreadyWaiting, messageType)
	}
	m := new(Message)
	err := a.tr.Listen(messageType, func(frame []byte) {
		f, err := codec.ParseBody(frame[codec.LenPrefix:])
		if err != nil {
			return
		}
		*m = frameMessage(f)
		func() {
			defer func() {
				if r := recover(); r != nil {
					a.log.Load().Error("api: handler panicked", "type", messageType, "panic", r)
				}
			}()
			h(m)
		}()
	})
	if err != nil {
		return err
	}
	a.waiters[messageType] = &waiter{msgType: messageType, h: h}
	return nil
}
