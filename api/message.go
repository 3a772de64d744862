package api

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"

	"github.com/aioconn/aioconn/codec"
)

// Message is one message frame as the connector delivers it: the transport JSON exactly as
// received (key order and lexical values preserved), the data bytes (possibly empty, never
// decoded) and the binary part. HasBinary mirrors Python's "binary is not None": it is true
// iff the transport JSON's with_binary is truthy.
//
// Ownership: a *Message handed to a Handler aliases the connection's read buffer and is
// valid only until the handler returns (use Clone to keep it). A *Message returned by
// SendMessageAwaitResponse is owned by the caller (its slices share one buffer nobody else
// uses).
type Message struct {
	Header    []byte // raw transport JSON
	Data      []byte
	Binary    []byte
	HasBinary bool
}

// Get returns the raw value of the top-level key of the transport JSON (Kind KindAbsent when
// the key is absent); see codec.Lookup. The Value aliases m.Header.
func (m *Message) Get(key string) (codec.Value, error) {
	return codec.Lookup(m.Header, key)
}

// Clone returns a deep copy of m (one allocation) that stays valid after a handler returns.
func (m *Message) Clone() *Message {
	buf := make([]byte, 0, len(m.Header)+len(m.Data)+len(m.Binary))
	buf = append(buf, m.Header...)
	buf = append(buf, m.Data...)
	buf = append(buf, m.Binary...)
	c := &Message{HasBinary: m.HasBinary}
	h, d := len(m.Header), len(m.Data)
	c.Header = buf[:h:h]
	c.Data = buf[h : h+d : h+d]
	if m.Binary != nil {
		c.Binary = buf[h+d:]
	}
	return c
}

// SendOptions are the arguments of ConnectorAPI.send_message. Zero values mean "not given".
//
//   - MessageType: empty means send_message_types[0] (ErrNoMessageType if there is none).
//   - DestinationID: empty means, for a client API, str(server_sockaddr); a server API omits
//     the key (the connector then has no peer for the message).
//   - RequestID, ResponseID: nil (key omitted), a Go integer (int, int8..int64,
//     uint8..uint64) or a string. Python compares ids by type: 7 and "7" differ.
//   - Data: sent as is. Python's default data_is_json=True json.dumps the data first: pass
//     the JSON text yourself (Python sends `null` for data=None; nil Data sends nothing).
//   - Binary: appended, with "with_binary": true, iff non-empty.
//   - AwaitResponse: SendMessage with AwaitResponse set behaves as SendMessageAwaitResponse
//     and discards the reply.
//   - WithFile: adds the with_file object (the connector reads and sends the file).
//   - MessageTypePublish: set by PublishMessage; key omitted when empty.
//
// The API reads the slices during the call only; it never retains or modifies them.
type SendOptions struct {
	MessageType, DestinationID string
	RequestID, ResponseID      any
	Data                       []byte
	Binary                     []byte
	AwaitResponse, WaitForAck  bool
	WithFile                   *WithFile
	MessageTypePublish         string
}

// WithFile is the with_file object of a message, written as
// {"src_path", "dst_type", "dst_name"[, "delete"][, "owner"]} in that order (the order of the
// Python examples and vectors). SrcPath must be readable by the connector's user; the
// connector deletes it after sending unless Delete points to false. DstType selects the
// receiver's file_recv_config entry. Owner ("user:group") is written only when non-empty.
type WithFile struct {
	SrcPath, DstType, DstName string
	Delete                    *bool
	Owner                     string
	// Chunked is with_file.chunked ([basename, index, total]) of one chunk of a large file;
	// SendMessage fills it when it splits a file (chunk.go). Leave it nil.
	Chunked *Chunked
}

// Chunked is with_file.chunked: the chunk's basename (<dst_name>__aioconnectors_chunk), its
// 1-based index and the number of chunks.
type Chunked struct {
	Basename     string
	Index, Total int
}

// Keys of the transport JSON written by the API, in pack_message order.
const (
	keyMessageType        = "message_type"
	keySourceID           = "source_id"
	keyDestinationID      = "destination_id"
	keyRequestID          = "request_id"
	keyResponseID         = "response_id"
	keyWithBinary         = "with_binary"
	keyAwaitResponse      = "await_response"
	keyWithFile           = "with_file"
	keyWaitForAck         = "wait_for_ack"
	keyMessageTypePublish = "message_type_publish"
)

// header fields that do not come from SendOptions.
type ident struct {
	memo        *memoSlot // the last header encoded (appendHeader; nil: none kept)
	sourceID    string
	defaultDest string // client: str(server_sockaddr); server: ""
	defaultType string // send_message_types[0] or ""
	hasDefType  bool
}

func appendID(o *codec.Obj, key string, v any) error {
	switch x := v.(type) {
	case nil:
	case string:
		o.Str(key, x)
	case int:
		o.Int(key, int64(x))
	case int64:
		o.Int(key, x)
	case int32:
		o.Int(key, int64(x))
	case int16:
		o.Int(key, int64(x))
	case int8:
		o.Int(key, int64(x))
	case uint:
		o.Raw(key, strconv.AppendUint(nil, uint64(x), 10))
	case uint64:
		o.Raw(key, strconv.AppendUint(nil, x, 10))
	case uint32:
		o.Int(key, int64(x))
	case uint16:
		o.Int(key, int64(x))
	case uint8:
		o.Int(key, int64(x))
	default:
		return fmt.Errorf("%w: %s of type %T", ErrBadID, key, v)
	}
	return nil
}

// appendHeader appends to dst the start of the frame of o, exactly as Python's pack_message
// builds it: u32 total length, u16 json length, the transport JSON, u32 data length. The
// data itself and the optional u32 binary length + binary are NOT appended: the caller writes
// them (appendTail or a vectored write). On error dst is returned unchanged.
func appendHeader(dst []byte, id *ident, o *SendOptions) ([]byte, error) {
	mt := o.MessageType
	if mt == "" {
		if !id.hasDefType {
			return dst, ErrNoMessageType
		}
		mt = id.defaultType
	}
	dest := o.DestinationID
	if dest == "" {
		dest = id.defaultDest
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0)
	jstart := len(dst)
	// Most applications send one kind of message over and over: the same header is then
	// copied from the memo instead of encoded again (Python string escaping per key and value).
	memoable := id.memo != nil && o.RequestID == nil && o.ResponseID == nil && o.WithFile == nil
	if memoable {
		if m := id.memo.p.Load(); m != nil && m.matches(mt, dest, o) {
			dst = append(dst, m.json...)
			return finishHeader(dst, start, jstart, mt, o)
		}
	}
	ob := codec.NewObj(dst)
	ob.Str(keyMessageType, mt)
	ob.Str(keySourceID, id.sourceID)
	if dest != "" {
		ob.Str(keyDestinationID, dest)
	}
	if err := appendID(&ob, keyRequestID, o.RequestID); err != nil {
		return dst[:start], err
	}
	if err := appendID(&ob, keyResponseID, o.ResponseID); err != nil {
		return dst[:start], err
	}
	if len(o.Binary) > 0 {
		ob.Bool(keyWithBinary, true)
	}
	if o.AwaitResponse {
		ob.Bool(keyAwaitResponse, true)
	}
	if wf := o.WithFile; wf != nil {
		ob.Raw(keyWithFile, nil)
		w := codec.NewObj(ob.B)
		w.Str("src_path", wf.SrcPath)
		w.Str("dst_type", wf.DstType)
		w.Str("dst_name", wf.DstName)
		if wf.Delete != nil {
			w.Bool("delete", *wf.Delete)
		}
		if wf.Owner != "" {
			w.Str("owner", wf.Owner)
		}
		if c := wf.Chunked; c != nil {
			w.Raw("chunked", nil)
			l := append(w.B, '[')
			l = codec.AppendPyString(l, c.Basename)
			l = append(l, ", "...)
			l = strconv.AppendInt(l, int64(c.Index), 10)
			l = append(l, ", "...)
			l = strconv.AppendInt(l, int64(c.Total), 10)
			w.B = append(l, ']')
		}
		ob.B = w.End()
	}
	if o.WaitForAck {
		ob.Bool(keyWaitForAck, true)
	}
	if o.MessageTypePublish != "" {
		ob.Str(keyMessageTypePublish, o.MessageTypePublish)
	}
	dst = ob.End()
	if memoable && len(dst)-jstart <= codec.MaxMemoJSON && id.memo.storeNow() {
		id.memo.p.Store(&headerMemo{mt: mt, dest: dest, pub: o.MessageTypePublish, bin: len(o.Binary) > 0,
			await: o.AwaitResponse, ack: o.WaitForAck, json: bytes.Clone(dst[jstart:])})
	}
	return finishHeader(dst, start, jstart, mt, o)
}

// headerMemo is the last header appendHeader encoded without request, response or file keys,
// with what it was encoded from. Immutable once stored (shared by concurrent senders).
type headerMemo struct {
	mt, dest, pub   string
	bin, await, ack bool
	json            []byte
}

// memoSlot holds an API's header memo; concurrent senders share it.
type memoSlot struct {
	p      atomic.Pointer[headerMemo]
	misses atomic.Uint32
}

// storeNow reports whether a header that missed the memo should replace it (codec.MemoStoreNow:
// a sender alternating between kinds of message allocates a memo once per eight messages).
func (s *memoSlot) storeNow() bool { return codec.MemoStoreNow(s.misses.Add(1)) }

// matches reports whether o (with mt and dest resolved) encodes to m.json.
func (m *headerMemo) matches(mt, dest string, o *SendOptions) bool {
	return m.mt == mt && m.dest == dest && m.pub == o.MessageTypePublish && m.bin == (len(o.Binary) > 0) &&
		m.await == o.AwaitResponse && m.ack == o.WaitForAck
}

// finishHeader checks the sizes of the header appended at dst[start:] (JSON from jstart) and
// writes its length prefixes; on error dst is returned as it was before the header.
func finishHeader(dst []byte, start, jstart int, mt string, o *SendOptions) ([]byte, error) {
	jl := len(dst) - jstart
	if jl > codec.MaxJSON {
		return dst[:start], fmt.Errorf("%w: transport JSON of %d bytes (max %d) for type %q", ErrTooLarge, jl, codec.MaxJSON, mt)
	}
	total := uint64(2+jl+4) + uint64(len(o.Data))
	if len(o.Binary) > 0 {
		total += 4 + uint64(len(o.Binary))
	}
	if total > math.MaxUint32 {
		return dst[:start], fmt.Errorf("%w: frame of %d bytes for type %q", ErrTooLarge, total, mt)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(total))
	binary.LittleEndian.PutUint16(dst[start+4:], uint16(jl))
	return binary.LittleEndian.AppendUint32(dst, uint32(len(o.Data))), nil
}

// appendTail appends the data and, when non-empty, the binary section of o.
func appendTail(dst []byte, o *SendOptions) []byte {
	dst = append(dst, o.Data...)
	if len(o.Binary) > 0 {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(o.Binary)))
		dst = append(dst, o.Binary...)
	}
	return dst
}
