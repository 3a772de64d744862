package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// maxReply bounds a commander reply (peek_queues of many peers is the largest in practice).
const maxReply = 64 << 20

// RemoteTool is the Go ConnectorRemoteTool: it sends management commands to a connector's
// commander socket, one command per connection (LOCAL-API §7), and returns the raw reply
// bytes: UTF-8 of Python's str(result), "{}" for a falsy result (e.g. `["client1"]`,
// `INFO`, `True`, `{}`). Safe for concurrent use; it holds no connection between calls.
//
// Errors: where Python's tool returns str(exception) as the reply, the Go methods return a
// nil reply and the error (wrapping ErrConnect, ErrNoResponse or a net/context error). A
// connector that does not know the command, or fails in it, closes the connection without
// replying (Go connector) or never replies (Python connector: bound the call with ctx).
//
// The Python methods' delay arguments are left to the caller (sleep before calling).
type RemoteTool struct {
	path     string
	isServer bool
	sourceID string
}

// NewRemoteTool returns a tool for the connector described by cfg (commander path
// uds_path_commander_<alnum source id> under connector_files_dirpath). It reads cfg once.
func NewRemoteTool(cfg *config.APIOptions) *RemoteTool {
	return &RemoteTool{path: cfg.CommanderPath(), isServer: cfg.IsServer, sourceID: cfg.SourceID()}
}

// Path is the commander socket path the tool connects to.
func (t *RemoteTool) Path() string { return t.path }

// kv is one kwarg; slices of kv keep Python's dict insertion order.
type kv struct {
	k string
	v any
}

// SendCommand sends {"cmd": cmd, "kwargs": kwargs} (json.dumps separators and escaping; a
// Go map has no order, so kwargs keys are written sorted — the methods below keep Python's
// order) and returns the reply payload. Values: nil, bool, string, Go integers and floats
// (written as Python's repr), []string, []any, map[string]any, json.RawMessage (copied as
// is); anything else fails with ErrBadKwarg.
func (t *RemoteTool) SendCommand(ctx context.Context, cmd string, kwargs map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(kwargs))
	for k := range kwargs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	kvs := make([]kv, len(keys))
	for i, k := range keys {
		kvs[i] = kv{k, kwargs[k]}
	}
	return t.send(ctx, cmd, kvs...)
}

// appendCommandRequest appends the commander request frame for cmd and kwargs in the given
// order (u32 LE length + json.dumps({"cmd": ..., "kwargs": {...}})).
func appendCommandRequest(dst []byte, cmd string, kwargs []kv) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	o := codec.NewObj(dst)
	o.Str("cmd", cmd)
	o.Raw("kwargs", nil)
	kw := codec.NewObj(o.B)
	for _, p := range kwargs {
		kw.Raw(p.k, nil)
		b, err := appendPyValue(kw.B, p.v)
		if err != nil {
			return dst[:start], fmt.Errorf("%w: kwarg %q of command %q", err, p.k, cmd)
		}
		kw.B = b
	}
	o.B = kw.End()
	dst = o.End()
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start-codec.LenPrefix))
	return dst, nil
}

func (t *RemoteTool) send(ctx context.Context, cmd string, kwargs ...kv) ([]byte, error) {
	req, err := appendCommandRequest(make([]byte, 0, 128), cmd, kwargs)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: asyncTimeout}
	c, err := d.DialContext(ctx, "unix", t.path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("api: connect to %s: %w", t.path, ctx.Err())
		}
		return nil, fmt.Errorf("%w %s: %w", ErrConnect, t.path, err)
	}
	defer c.Close()
	stop := withCancel(ctx, c)
	defer stop()
	c.SetWriteDeadline(time.Now().Add(asyncTimeout))
	if _, err := c.Write(req); err != nil {
		return nil, t.fail(ctx, cmd, err)
	}
	var hdr [codec.LenPrefix]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			if ctx.Err() == nil {
				return nil, fmt.Errorf("%w: command %q on %s", ErrNoResponse, cmd, t.path)
			}
		}
		return nil, t.fail(ctx, cmd, err)
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > maxReply {
		return nil, fmt.Errorf("%w: command %q reply of %d bytes", codec.ErrFrameTooLarge, cmd, n)
	}
	reply := make([]byte, n)
	c.SetReadDeadline(time.Now().Add(bodyTimeout))
	if _, err := io.ReadFull(c, reply); err != nil {
		return nil, t.fail(ctx, cmd, err)
	}
	return reply, nil
}

func (t *RemoteTool) fail(ctx context.Context, cmd string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("api: command %q on %s: %w", cmd, t.path, err)
}

// appendPyValue appends json.dumps(v) for the value types SendCommand accepts.
func appendPyValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return codec.AppendPyString(dst, x), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float32:
		return appendPyFloat(dst, float64(x), 32), nil
	case float64:
		return appendPyFloat(dst, x, 64), nil
	case json.RawMessage:
		if !json.Valid(x) {
			return dst, fmt.Errorf("%w: invalid json.RawMessage", ErrBadKwarg)
		}
		return append(dst, x...), nil
	case []string:
		return codec.AppendPyJSONList(dst, x), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			var err error
			if dst, err = appendPyValue(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = codec.AppendPyString(dst, k)
			dst = append(dst, ": "...)
			var err error
			if dst, err = appendPyValue(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, fmt.Errorf("%w: %T", ErrBadKwarg, v)
}

// appendPyFloat appends Python's json.dumps of a float (float.__repr__): shortest
// round-trip digits, exponent form when the decimal exponent is < -4 or >= 16, a ".0" on
// integral values, NaN / Infinity / -Infinity.
func appendPyFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	exp := int(math.Floor(math.Log10(math.Abs(f))))
	// Log10 can be off by one near powers of ten: take the exponent from the 'e' form.
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, bits)
	if i := slices.Index(e, 'e'); i >= 0 {
		if n, err := strconv.Atoi(string(e[i+1:])); err == nil {
			exp = n
		}
	}
	if exp < -4 || exp >= 16 {
		return append(dst, e...)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, bits)
	if !slices.Contains(dst[start:], '.') {
		dst = append(dst, ".0"...)
	}
	return dst
}

func secondsValue(d time.Duration) any {
	if d%time.Second == 0 {
		return int64(d / time.Second)
	}
	return d.Seconds()
}

// StartConnector sends start {} (reply `{}`; a running connector only logs a warning).
func (t *RemoteTool) StartConnector(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "start")
}

// StopConnector sends stop {"hard", "shutdown", "enable_delete_files",
// "client_wait_for_reconnect"}. Python's defaults are false, false, true, false. With
// shutdown the connector also closes its commander socket after replying; the process does
// not exit.
func (t *RemoteTool) StopConnector(ctx context.Context, hard, shutdown, enableDeleteFiles, clientWaitForReconnect bool) ([]byte, error) {
	return t.send(ctx, "stop", kv{"hard", hard}, kv{"shutdown", shutdown},
		kv{"enable_delete_files", enableDeleteFiles}, kv{"client_wait_for_reconnect", clientWaitForReconnect})
}

// RestartConnector sends restart {"hard", "sleep_between"}; sleepBetween is written in
// seconds, as an integer when whole (Python's default 0 is written 0), else as a float.
func (t *RemoteTool) RestartConnector(ctx context.Context, hard bool, sleepBetween time.Duration) ([]byte, error) {
	return t.send(ctx, "restart", kv{"hard", hard}, kv{"sleep_between", secondsValue(sleepBetween)})
}

// DeleteClientCertificate sends, from a server tool, delete_client_certificate_on_server
// {"client_id", "remove_only_symlink"}; from a client tool,
// delete_client_certificate_on_client {"restart_client"} (clientID and removeOnlySymlink are
// then unused). Python's defaults: removeOnlySymlink false, restartClient true. Reply: JSON
// {"status": ..., "msg": ...}.
func (t *RemoteTool) DeleteClientCertificate(ctx context.Context, clientID string, removeOnlySymlink, restartClient bool) ([]byte, error) {
	if t.isServer {
		return t.send(ctx, "delete_client_certificate_on_server", kv{"client_id", clientID}, kv{"remove_only_symlink", removeOnlySymlink})
	}
	return t.send(ctx, "delete_client_certificate_on_client", kv{"restart_client", restartClient})
}

// DisconnectClient sends disconnect_client {"client_id"} from a server tool (reply `True`
// or `Non existing client <id>`). A client tool sends nothing and returns ErrNotServer
// (Python returns False).
func (t *RemoteTool) DisconnectClient(ctx context.Context, clientID string) ([]byte, error) {
	if !t.isServer {
		return nil, fmt.Errorf("%w: disconnect_client", ErrNotServer)
	}
	return t.send(ctx, "disconnect_client", kv{"client_id", clientID})
}

// DeletePreviousPersistenceRemains sends delete_previous_persistence_remains__sync {}.
func (t *RemoteTool) DeletePreviousPersistenceRemains(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "delete_previous_persistence_remains__sync")
}

// ShowSubscribeMessageTypes sends show_subscribe_message_types__sync {} (reply: Python
// list repr such as `['type1']`, or `{}` when empty).
func (t *RemoteTool) ShowSubscribeMessageTypes(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "show_subscribe_message_types__sync")
}

// SetSubscribeMessageTypes sends set_subscribe_message_types {"message_types": [...]}
// (Python sends its *args tuple, i.e. a JSON list; none gives []).
func (t *RemoteTool) SetSubscribeMessageTypes(ctx context.Context, types ...string) ([]byte, error) {
	if types == nil {
		types = []string{}
	}
	return t.send(ctx, "set_subscribe_message_types", kv{"message_types", types})
}

// ShowConnectedPeers sends show_connected_peers__sync {} (reply: JSON list of peer names,
// e.g. `["client1"]`).
func (t *RemoteTool) ShowConnectedPeers(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "show_connected_peers__sync")
}

// PeekQueues sends peek_queues__sync {"dump_result": true} (reply: indented JSON with
// queue_recv and queue_send sizes).
func (t *RemoteTool) PeekQueues(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "peek_queues__sync", kv{"dump_result", true})
}

// IgnorePeerTrafficShow sends manage_ignore_peer_traffic__sync {"show": true}.
func (t *RemoteTool) IgnorePeerTrafficShow(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "manage_ignore_peer_traffic__sync", kv{"show", true})
}

// IgnorePeerTrafficEnable sends manage_ignore_peer_traffic__sync {"enable": true}.
func (t *RemoteTool) IgnorePeerTrafficEnable(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "manage_ignore_peer_traffic__sync", kv{"enable", true})
}

// IgnorePeerTrafficEnableUnique sends manage_ignore_peer_traffic__sync {"unique_peer": peer}.
func (t *RemoteTool) IgnorePeerTrafficEnableUnique(ctx context.Context, peer string) ([]byte, error) {
	return t.send(ctx, "manage_ignore_peer_traffic__sync", kv{"unique_peer", peer})
}

// IgnorePeerTrafficDisable sends manage_ignore_peer_traffic__sync {"disable": true}.
func (t *RemoteTool) IgnorePeerTrafficDisable(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "manage_ignore_peer_traffic__sync", kv{"disable", true})
}

// ShowLogLevel sends show_log_level__sync {} (reply e.g. `INFO`).
func (t *RemoteTool) ShowLogLevel(ctx context.Context) ([]byte, error) {
	return t.send(ctx, "show_log_level__sync")
}

// SetLogLevel sends set_log_level__sync {"level": level} (reply: the level; an invalid
// name gets no reply).
func (t *RemoteTool) SetLogLevel(ctx context.Context, level string) ([]byte, error) {
	return t.send(ctx, "set_log_level__sync", kv{"level", level})
}
