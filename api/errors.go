package api

import "errors"

// Sentinel errors. Every error returned by this package wraps one of them, or an error of
// the net, os, context, config or codec packages (test with errors.Is); the wrapping message
// names the socket path, message type or command at fault.
var (
	// ErrClosed: the API was closed (Close) before or during the call.
	ErrClosed = errors.New("api: closed")
	// ErrConnect: the connector's socket could not be reached (Python: "send_message could
	// not connect to <path>", return False). Wraps the dial error too.
	ErrConnect = errors.New("api: could not connect to the connector")
	// ErrNoResponse: the connector closed an await-response (or commander) connection
	// without replying (Python: (None, None, None)).
	ErrNoResponse = errors.New("api: connector closed the connection without a response")
	// ErrNoMessageType: SendOptions.MessageType is empty and send_message_types is empty
	// (Python: IndexError inside pack_message, return False).
	ErrNoMessageType = errors.New("api: no message type given and send_message_types is empty")
	// ErrBadID: a request_id / response_id is neither nil, an integer nor a string.
	ErrBadID = errors.New("api: request_id and response_id must be an integer or a string")
	// ErrTooLarge: the transport JSON exceeds 65535 bytes or the frame exceeds 4 GiB.
	ErrTooLarge = errors.New("api: message too large")
	// ErrNotRecvType: StartWaitingForMessages for a type that is not in recv_message_types
	// (Python fails on a None path).
	ErrNotRecvType = errors.New("api: message type is not in recv_message_types")
	// ErrInUse: the receive socket path exists and reuse was false (Python: "<path> already
	// in use. Cannot start_waiting_for_messages").
	ErrInUse = errors.New("api: receive socket already in use")
	// ErrAlreadyWaiting: this API already waits for that message type (Python: "Already
	// waiting for messages of type ...").
	ErrAlreadyWaiting = errors.New("api: already waiting for messages of this type")
	// ErrNotWaiting: StopWaitingForMessages for a type nobody waits on (Python only logs a
	// warning).
	ErrNotWaiting = errors.New("api: not waiting for messages of this type")
	// ErrNilHandler: StartWaitingForMessages without a handler.
	ErrNilHandler = errors.New("api: nil handler")
	// ErrBadKwarg: a SendCommand kwarg value has a type that cannot be encoded as JSON here.
	ErrBadKwarg = errors.New("api: unsupported kwarg value")
	// ErrNotServer: RemoteTool.DisconnectClient on a client tool (Python returns False and
	// sends nothing).
	ErrNotServer = errors.New("api: command only valid for a server connector")
)
