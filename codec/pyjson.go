package codec

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

// This file produces bytes identical to what Python 3 emits: json.dumps with
// default arguments (", " / ": " separators, ensure_ascii=True), and str()/
// repr() of strings and lists of strings for commander replies. All functions
// append to a caller buffer and are safe for concurrent use.

const hexDigits = "0123456789abcdef"

// pySafe marks the ASCII bytes json.dumps(ensure_ascii=True) copies as is.
var pySafe [256]bool

func init() {
	for c := 0x20; c < 0x7f; c++ {
		pySafe[c] = c != '"' && c != '\\'
	}
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// AppendPyString appends s as a quoted JSON string exactly as Python's
// json.dumps (ensure_ascii=True) writes it: \" \\ \n \r \t \b \f, other
// control characters and DEL as \u00XX, every non-ASCII character as \uXXXX
// (lowercase hex; surrogate pairs above U+FFFF); '/', '<', '>', '&' are not
// escaped. Invalid UTF-8 bytes (impossible in a Python str) are written as
// \ufffd. No allocation beyond growing dst.
func AppendPyString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if pySafe[c] {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = appendU4(dst, rune(c))
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r > 0xffff {
				r -= 0x10000
				dst = appendU4(dst, 0xd800+(r>>10))
				dst = appendU4(dst, 0xdc00+(r&0x3ff))
			} else {
				dst = appendU4(dst, r)
			}
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendPyJSONList appends json.dumps(items) for a list of strings:
// `["a", "b"]`, `[]` when empty.
func AppendPyJSONList(dst []byte, items []string) []byte {
	dst = append(dst, '[')
	for i, s := range items {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendPyString(dst, s)
	}
	return append(dst, ']')
}

// Obj builds a JSON object in insertion order with Python's json.dumps
// separators. Usage: var o Obj; o.Begin(buf[:0]); o.Str("k", "v"); ...;
// out := o.End(). B is the buffer being built (it starts with dst). Keys and
// string values are encoded with AppendPyString; Raw values are copied as
// given (the caller guarantees they are valid JSON). An Obj is not safe for
// concurrent use; it can be reused after End by calling Begin again.
type Obj struct {
	B []byte
	n int
}

// NewObj returns an Obj that appends to dst (same as Begin).
func NewObj(dst []byte) Obj {
	var o Obj
	o.Begin(dst)
	return o
}

// Begin starts a new object appended to dst.
func (o *Obj) Begin(dst []byte) {
	o.B = append(dst, '{')
	o.n = 0
}

func (o *Obj) key(k string) {
	if o.n > 0 {
		o.B = append(o.B, ", "...)
	}
	o.n++
	o.B = AppendPyString(o.B, k)
	o.B = append(o.B, ": "...)
}

// Str adds a string member.
func (o *Obj) Str(key, val string) {
	o.key(key)
	o.B = AppendPyString(o.B, val)
}

// Raw adds a member whose value is the raw JSON raw.
func (o *Obj) Raw(key string, raw []byte) {
	o.key(key)
	o.B = append(o.B, raw...)
}

// Int adds an integer member.
func (o *Obj) Int(key string, v int64) {
	o.key(key)
	o.B = strconv.AppendInt(o.B, v, 10)
}

// Bool adds a true/false member.
func (o *Obj) Bool(key string, v bool) {
	o.key(key)
	o.B = strconv.AppendBool(o.B, v)
}

// Null adds a null member.
func (o *Obj) Null(key string) {
	o.key(key)
	o.B = append(o.B, "null"...)
}

// Len returns the number of members added so far.
func (o *Obj) Len() int { return o.n }

// End closes the object and returns the buffer.
func (o *Obj) End() []byte {
	o.B = append(o.B, '}')
	return o.B
}

// AppendPyReprStr appends Python's repr() of the string s: single quotes, or
// double quotes when s contains ' and no "; \\, the chosen quote, \n, \r, \t
// escaped; other ASCII controls and DEL as \xNN; non-ASCII characters kept as
// UTF-8 when printable, else \xNN / \uXXXX / \UXXXXXXXX (Go's unicode tables
// decide printability, matching Python's str.isprintable up to Unicode
// version differences). Invalid UTF-8 bytes are written as U+FFFD.
func AppendPyReprStr(dst []byte, s string) []byte {
	q := byte('\'')
	if containsByte(s, '\'') && !containsByte(s, '"') {
		q = '"'
	}
	dst = append(dst, q)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == q || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		case strconv.IsPrint(r):
			dst = append(dst, s[i-size:i]...)
		case r <= 0xff:
			dst = append(dst, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case r <= 0xffff:
			dst = append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			dst = append(dst, '\\', 'U')
			for sh := 28; sh >= 0; sh -= 4 {
				dst = append(dst, hexDigits[r>>uint(sh)&0xf])
			}
		}
	}
	return append(dst, q)
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// AppendPyListRepr appends Python's str() of a list of strings: ['a', 'b'],
// [] when empty.
func AppendPyListRepr(dst []byte, items []string) []byte {
	dst = append(dst, '[')
	for i, s := range items {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = AppendPyReprStr(dst, s)
	}
	return append(dst, ']')
}

// AppendPeekQueues appends the commander reply of peek_queues, i.e. Python's
// json.dumps({"queue_send": {...}, "queue_recv": N}, indent=4,
// sort_keys=True). A negative queueRecv is written as null (Python's None
// when the connector has no receive queue). Keys of queueSend are sorted by
// code point. Allocates a small slice for sorting the keys.
func AppendPeekQueues(dst []byte, queueRecv int, queueSend map[string]int) []byte {
	dst = append(dst, "{\n    \"queue_recv\": "...)
	if queueRecv < 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, int64(queueRecv), 10)
	}
	dst = append(dst, ",\n    \"queue_send\": "...)
	if len(queueSend) == 0 {
		dst = append(dst, "{}"...)
	} else {
		keys := make([]string, 0, len(queueSend))
		for k := range queueSend {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order of UTF-8 == code point order
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, "\n        "...)
			dst = AppendPyString(dst, k)
			dst = append(dst, ": "...)
			dst = strconv.AppendInt(dst, int64(queueSend[k]), 10)
		}
		dst = append(dst, "\n    }"...)
	}
	return append(dst, "\n}"...)
}
