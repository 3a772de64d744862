package codec

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the JSON type of a Value.
type Kind uint8

// Value kinds. KindAbsent is the zero value (key not present).
const (
	KindAbsent Kind = iota
	KindString
	KindNumber
	KindTrue
	KindFalse
	KindNull
	KindObject
	KindArray
)

var kindNames = [...]string{"absent", "string", "number", "true", "false", "null", "object", "array"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is one raw JSON value found by ScanHeader or Lookup. Raw holds the
// exact bytes of the value as they appear in the scanned JSON (it aliases that
// buffer: valid as long as the caller keeps it unmodified). Raw is nil and
// Kind is KindAbsent when the key is absent. A Value is immutable; methods are
// safe for concurrent use.
type Value struct {
	Raw  []byte
	Kind Kind
}

// Present reports whether the key was present.
func (v Value) Present() bool { return v.Kind != KindAbsent }

// Truthy reports the Python truthiness of the value as json.loads would
// decode it: "" , 0, -0, 0.0, 0e5, numbers that underflow to 0.0 (1e-400),
// false, null, [] and {} are false; everything else (including the string
// "false" and "0") is true. An absent key is false.
func (v Value) Truthy() bool {
	switch v.Kind {
	case KindString:
		return len(v.Raw) > 2
	case KindTrue:
		return true
	case KindNumber:
		return numberTruthy(v.Raw)
	case KindObject, KindArray:
		i := skipWS(v.Raw, 1)
		return i < len(v.Raw)-1
	}
	return false
}

func numberTruthy(raw []byte) bool {
	nonzero := false
	for _, c := range raw {
		switch {
		case c >= '1' && c <= '9':
			nonzero = true
		case c == 'e' || c == 'E':
			if !nonzero {
				return false // 0.0e+999 is 0.0
			}
			// A non-zero mantissa with an exponent may still underflow
			// to 0.0 in Python's float(); rare, so parse for real.
			f, _ := strconv.ParseFloat(string(raw), 64)
			return f != 0
		}
	}
	return nonzero
}

// Str returns the decoded string when the value is a JSON string. It decodes
// exactly as encoding/json does (escapes resolved, surrogate pairs combined,
// lone surrogates and invalid UTF-8 bytes replaced by U+FFFD). It allocates
// the returned string (one allocation) whenever the string is not empty.
func (v Value) Str() (string, bool) {
	if v.Kind != KindString || len(v.Raw) < 2 {
		return "", false
	}
	var tmp [64]byte
	b, _ := v.AppendStr(tmp[:0])
	return string(b), true
}

// AppendStr appends the decoded string (see Str) to dst and returns it. It
// does not allocate beyond growing dst. ok is false (dst unchanged) when the
// value is not a string.
func (v Value) AppendStr(dst []byte) ([]byte, bool) {
	if v.Kind != KindString || len(v.Raw) < 2 {
		return dst, false
	}
	return appendUnquote(dst, v.Raw[1:len(v.Raw)-1]), true
}

// Int returns the value as an int64 when it is a JSON number written as an
// integer that fits (no fraction or exponent).
func (v Value) Int() (int64, bool) {
	if v.Kind != KindNumber {
		return 0, false
	}
	r := v.Raw
	neg := false
	if len(r) > 0 && r[0] == '-' {
		neg, r = true, r[1:]
	}
	if len(r) == 0 || len(r) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range r {
		if !isDigit(c) {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > 1<<63-1 {
		return 0, false
	}
	return int64(u), true
}

// Equal reports whether two values have the same kind and the same raw bytes.
func (v Value) Equal(w Value) bool {
	return v.Kind == w.Kind && string(v.Raw) == string(w.Raw)
}

// appendUnquote decodes the contents of a valid JSON string (without quotes)
// following encoding/json's rules.
func appendUnquote(dst, s []byte) []byte {
	// Fast path: nothing to decode.
	i := 0
	for i < len(s) && s[i] != '\\' && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) {
		return append(dst, s...)
	}
	dst = append(dst, s[:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return dst
			}
			switch s[i+1] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := getu4(s[i:])
				if r < 0 {
					return dst
				}
				i += 6
				if r >= 0xD800 && r < 0xE000 {
					if r < 0xDC00 {
						if r2 := getu4(s[i:]); r2 >= 0xDC00 && r2 < 0xE000 {
							i += 6
							dst = utf8.AppendRune(dst, ((r-0xD800)<<10|(r2-0xDC00))+0x10000)
							continue
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
		}
	}
	return dst
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		h := hexVal[c]
		if h < 0 {
			return -1
		}
		r = r<<4 | rune(h)
	}
	return r
}

// Header holds the routing keys of a transport JSON. Fields are the zero
// Value when the key is absent. The Raw slices alias the scanned buffer.
type Header struct {
	MessageType, SourceID, DestinationID, RequestID, ResponseID, WithBinary, AwaitResponse,
	WaitForAck, TransportID, WithFile, MessageTypePublish Value
}

// Routing key names (as they appear on the wire).
const (
	KeyMessageType        = "message_type"
	KeySourceID           = "source_id"
	KeyDestinationID      = "destination_id"
	KeyRequestID          = "request_id"
	KeyResponseID         = "response_id"
	KeyWithBinary         = "with_binary"
	KeyAwaitResponse      = "await_response"
	KeyWaitForAck         = "wait_for_ack"
	KeyTransportID        = "transport_id"
	KeyWithFile           = "with_file"
	KeyMessageTypePublish = "message_type_publish"
)

func (h *Header) field(name []byte) *Value {
	switch string(name) {
	case KeyMessageType:
		return &h.MessageType
	case KeySourceID:
		return &h.SourceID
	case KeyDestinationID:
		return &h.DestinationID
	case KeyRequestID:
		return &h.RequestID
	case KeyResponseID:
		return &h.ResponseID
	case KeyWithBinary:
		return &h.WithBinary
	case KeyAwaitResponse:
		return &h.AwaitResponse
	case KeyWaitForAck:
		return &h.WaitForAck
	case KeyTransportID:
		return &h.TransportID
	case KeyWithFile:
		return &h.WithFile
	case KeyMessageTypePublish:
		return &h.MessageTypePublish
	}
	return nil
}

// longestKey is the length of the longest routing key name.
const longestKey = len(KeyMessageTypePublish)

// ScanHeader validates json as a JSON object and fills h with the routing
// keys (h is reset first). It accepts exactly the texts encoding/json accepts
// as an object (any whitespace and key order, escapes in keys and values, any
// number form); for duplicate keys the last occurrence wins. Anything else
// (invalid JSON, a non-object, trailing data) returns an error wrapping
// ErrBadJSON and leaves h zeroed. It does not allocate on success; the Raw
// slices in h alias json. Safe for concurrent use on distinct Headers.
func ScanHeader(json []byte, h *Header) error {
	*h = Header{}
	var it iter
	var m member
	if !it.start(json) {
		return badJSON(json, it.pos, it.msg)
	}
	for it.next(&m) {
		var f *Value
		key := json[m.keyStart+1 : m.keyEnd-1]
		if !m.keyEsc {
			if len(key) > longestKey {
				continue
			}
			f = h.field(key)
		} else {
			var tmp [4 * longestKey]byte
			if len(key) > 6*longestKey+8 {
				continue
			}
			f = h.field(appendUnquote(tmp[:0], key))
		}
		if f != nil {
			*f = Value{Raw: json[m.valStart:m.valEnd], Kind: m.kind}
		}
	}
	if it.msg != "" {
		*h = Header{}
		return badJSON(json, it.pos, it.msg)
	}
	return nil
}

// keyMatcher compares raw JSON keys (without quotes) against a decoded key.
type keyMatcher struct {
	key   string
	valid bool // key is valid UTF-8 (decoded JSON keys always are)
	// key contains U+FFFD, which an unescaped raw key decodes to when it
	// holds invalid UTF-8 bytes.
	hasRuneError bool
}

func newKeyMatcher(key string) keyMatcher {
	return keyMatcher{key: key, valid: utf8.ValidString(key), hasRuneError: strings.ContainsRune(key, utf8.RuneError)}
}

func (k *keyMatcher) match(raw []byte, esc bool) bool {
	if !k.valid {
		return false
	}
	if !esc {
		if string(raw) == k.key {
			return true
		}
		if !k.hasRuneError {
			return false
		}
	}
	var tmp [128]byte
	return string(appendUnquote(tmp[:0], raw)) == k.key
}

// Lookup validates json as a JSON object (like ScanHeader) and returns the
// raw value of the last top-level occurrence of key (compared after
// unescaping), or the zero Value when absent. Does not allocate on success
// unless key matching needs to decode an escaped key longer than 128 bytes.
func Lookup(json []byte, key string) (Value, error) {
	km := newKeyMatcher(key)
	var it iter
	var m member
	var v Value
	if !it.start(json) {
		return Value{}, badJSON(json, it.pos, it.msg)
	}
	for it.next(&m) {
		if km.match(json[m.keyStart+1:m.keyEnd-1], m.keyEsc) {
			v = Value{Raw: json[m.valStart:m.valEnd], Kind: m.kind}
		}
	}
	if it.msg != "" {
		return Value{}, badJSON(json, it.pos, it.msg)
	}
	return v, nil
}

// SetKey appends to dst a copy of the JSON object json in which the last
// top-level occurrence of key has its value replaced by raw and every earlier
// occurrence is removed together with its separator. If key is absent it is
// appended as `, "key": raw` after the last member (`"key": raw` when the
// object is empty). Every other byte, the key order and the lexical form of
// other values are preserved. raw must be one valid JSON value without
// surrounding whitespace and key must be valid UTF-8 (else ErrBadJSON). On error dst is returned unchanged. json and dst
// must not overlap. Does not allocate beyond growing dst.
func SetKey(dst, json []byte, key string, raw []byte) ([]byte, error) {
	if end, _, msg := scanValue(raw, 0); msg != "" || end != len(raw) {
		if msg == "" {
			msg = msgTrailing
		}
		return dst, badJSON(raw, end, msg+" (value for key "+strconv.Quote(key)+")")
	}
	km := newKeyMatcher(key)
	if !km.valid {
		return dst, fmt.Errorf("%w: key %q is not valid UTF-8", ErrBadJSON, key)
	}
	var it iter
	var m member
	if !it.start(json) {
		return dst, badJSON(json, it.pos, it.msg)
	}
	count, lastVS, lastVE, lastEnd := 0, 0, 0, -1
	lastIdx := -1
	for it.next(&m) {
		if km.match(json[m.keyStart+1:m.keyEnd-1], m.keyEsc) {
			count++
			lastIdx = it.n - 1
			lastVS, lastVE = m.valStart, m.valEnd
		}
		lastEnd = m.valEnd
	}
	if it.msg != "" {
		return dst, badJSON(json, it.pos, it.msg)
	}
	switch {
	case count == 0:
		at := lastEnd
		if at < 0 {
			at = it.close
		}
		dst = append(dst, json[:at]...)
		if lastEnd >= 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendPyString(dst, key)
		dst = append(dst, ": "...)
		dst = append(dst, raw...)
		return append(dst, json[at:]...), nil
	case count == 1:
		dst = append(dst, json[:lastVS]...)
		dst = append(dst, raw...)
		return append(dst, json[lastVE:]...), nil
	}
	return rewrite(dst, json, &km, raw, lastIdx), nil
}

// DeleteKey appends to dst a copy of the JSON object json without any
// top-level occurrence of key (each removed with its adjoining separator);
// every other byte is preserved. On error dst is returned unchanged. json and
// dst must not overlap. Does not allocate beyond growing dst.
func DeleteKey(dst, json []byte, key string) ([]byte, error) {
	km := newKeyMatcher(key)
	var it iter
	var m member
	if !it.start(json) {
		return dst, badJSON(json, it.pos, it.msg)
	}
	count := 0
	for it.next(&m) {
		if km.match(json[m.keyStart+1:m.keyEnd-1], m.keyEsc) {
			count++
		}
	}
	if it.msg != "" {
		return dst, badJSON(json, it.pos, it.msg)
	}
	if count == 0 {
		return append(dst, json...), nil
	}
	return rewrite(dst, json, &km, nil, -1), nil
}

// rewrite copies the (already validated) object json, dropping members whose
// key matches km, except member number keep whose value becomes raw.
func rewrite(dst, json []byte, km *keyMatcher, raw []byte, keep int) []byte {
	var it iter
	var m member
	it.start(json)
	kept := 0
	prevEnd := -1
	for it.next(&m) {
		idx := it.n - 1
		match := km.match(json[m.keyStart+1:m.keyEnd-1], m.keyEsc)
		if match && idx != keep {
			if prevEnd < 0 {
				// Deleting the first member: keep the text before it.
				dst = append(dst, json[:m.keyStart]...)
			}
			prevEnd = m.valEnd
			continue
		}
		switch {
		case prevEnd < 0:
			dst = append(dst, json[:m.keyStart]...)
		case kept > 0:
			dst = append(dst, json[prevEnd:m.keyStart]...)
		}
		if idx == keep {
			dst = append(dst, json[m.keyStart:m.valStart]...)
			dst = append(dst, raw...)
		} else {
			dst = append(dst, json[m.keyStart:m.valEnd]...)
		}
		kept++
		prevEnd = m.valEnd
	}
	return append(dst, json[prevEnd:]...)
}
