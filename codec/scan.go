package codec

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// This file holds the validating JSON scanner shared by ScanHeader, Lookup,
// SetKey, DeleteKey and ParseBody. It accepts exactly what encoding/json
// accepts as a JSON text (RFC 8259 grammar, whitespace = space/tab/CR/LF,
// control characters rejected inside strings, any other byte accepted inside
// strings even when it is not valid UTF-8, nesting depth <= 10000) and it
// never allocates on success. Errors are reported as (offset, message) with
// constant messages and turned into a wrapped ErrBadJSON only by the exported
// functions.

// maxDepth mirrors encoding/json's maxNestingDepth.
const maxDepth = 10000

const (
	msgEOF       = "unexpected end of JSON input"
	msgChar      = "invalid character"
	msgStrChar   = "invalid character in string literal"
	msgEscape    = "invalid escape in string literal"
	msgNotObject = "top-level value is not an object"
	msgTrailing  = "invalid character after top-level value"
	msgDepth     = "exceeded max depth"
	msgKey       = "object key is not a string"
	msgColon     = "missing ':' after object key"
	msgSep       = "missing ',' or closing bracket"
	msgNumber    = "invalid number literal"
	msgLiteral   = "invalid literal"
)

var (
	wsTab   [256]bool // JSON whitespace
	strSafe [256]bool // bytes that need no attention inside a string
	hexVal  [256]int8 // -1 when not a hex digit
)

func init() {
	for _, c := range []byte{' ', '\t', '\n', '\r'} {
		wsTab[c] = true
	}
	for c := 0; c < 256; c++ {
		strSafe[c] = c >= 0x20 && c != '"' && c != '\\'
		hexVal[c] = -1
	}
	for c := '0'; c <= '9'; c++ {
		hexVal[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		hexVal[c] = int8(c - 'a' + 10)
		hexVal[c-'a'+'A'] = int8(c - 'a' + 10)
	}
}

func badJSON(b []byte, pos int, msg string) error {
	lo, hi := pos-8, pos+8
	if lo < 0 {
		lo = 0
	}
	if hi > len(b) {
		hi = len(b)
	}
	if pos > len(b) {
		pos = len(b)
	}
	if lo > hi {
		lo = hi
	}
	return fmt.Errorf("%w: %s at offset %d near %q", ErrBadJSON, msg, pos, string(b[lo:hi]))
}

func skipWS(b []byte, i int) int {
	for i < len(b) && wsTab[b[i]] {
		i++
	}
	return i
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scanString scans the string starting at b[i] == '"'. It returns the index
// just after the closing quote and whether a backslash escape was seen.
func scanString(b []byte, i int) (end int, esc bool, msg string) {
	i++
	for {
		// 8 bytes at a time: stop at the first '"', '\\' or control byte.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			q := x ^ (lsb * '"')
			s := x ^ (lsb * '\\')
			t := ((x - lsb*0x20) &^ x) | ((q - lsb) &^ q) | ((s - lsb) &^ s)
			t &= msb
			if t != 0 {
				i += bits.TrailingZeros64(t) >> 3
				break
			}
			i += 8
		}
		for i < len(b) && strSafe[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, esc, msgEOF
		}
		switch b[i] {
		case '"':
			return i + 1, esc, ""
		case '\\':
			esc = true
			if i+1 >= len(b) {
				return i + 1, esc, msgEOF
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					for j := i + 2; j < len(b); j++ {
						if hexVal[b[j]] < 0 {
							return j, esc, msgEscape
						}
					}
					return len(b), esc, msgEOF
				}
				for j := i + 2; j < i+6; j++ {
					if hexVal[b[j]] < 0 {
						return j, esc, msgEscape
					}
				}
				i += 6
			default:
				return i + 1, esc, msgEscape
			}
		default:
			return i, esc, msgStrChar
		}
	}
}

func isDigit(c byte) bool { return c-'0' < 10 }

// scanNumber scans a JSON number starting at b[i] ('-' or a digit).
func scanNumber(b []byte, i int) (int, string) {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return i, msgEOF
		}
	}
	switch c := b[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, msgNumber
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) {
			return i, msgEOF
		}
		if !isDigit(b[i]) {
			return i, msgNumber
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return i, msgEOF
		}
		if !isDigit(b[i]) {
			return i, msgNumber
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, ""
}

func scanLiteral(b []byte, i int, lit string) (int, string) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) {
			return i + k, msgEOF
		}
		if b[i+k] != lit[k] {
			return i + k, msgLiteral
		}
	}
	return i + len(lit), ""
}

// scanValue scans one JSON value starting at b[i] (no leading whitespace).
// The value is assumed to sit directly inside the top-level object (depth 1).
func scanValue(b []byte, i int) (end int, kind Kind, msg string) {
	if i >= len(b) {
		return i, KindAbsent, msgEOF
	}
	switch c := b[i]; c {
	case '"':
		end, _, msg = scanString(b, i)
		return end, KindString, msg
	case '{':
		end, msg = skipNested(b, i)
		return end, KindObject, msg
	case '[':
		end, msg = skipNested(b, i)
		return end, KindArray, msg
	case 't':
		end, msg = scanLiteral(b, i, "true")
		return end, KindTrue, msg
	case 'f':
		end, msg = scanLiteral(b, i, "false")
		return end, KindFalse, msg
	case 'n':
		end, msg = scanLiteral(b, i, "null")
		return end, KindNull, msg
	default:
		if c == '-' || isDigit(c) {
			end, msg = scanNumber(b, i)
			return end, KindNumber, msg
		}
		return i, KindAbsent, msgChar
	}
}

// scanScalar scans a value that is not an object or array.
func scanScalar(b []byte, i int) (int, string) {
	switch c := b[i]; c {
	case '"':
		end, _, msg := scanString(b, i)
		return end, msg
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	default:
		if c == '-' || isDigit(c) {
			return scanNumber(b, i)
		}
		return i, msgChar
	}
}

// skipNested validates and skips the object or array starting at b[i]. The
// enclosing top-level object counts as depth 1 (as in encoding/json).
func skipNested(b []byte, i int) (int, string) {
	var small [2]uint64
	stack := small[:] // bit set = object, clear = array
	d := 0            // open nested containers
	var msg string
	var obj bool
	for {
		// b[i] is '{' or '['.
		if d+2 > maxDepth {
			return i, msgDepth
		}
		if d>>6 >= len(stack) {
			stack = append(stack, 0)
		}
		obj = b[i] == '{'
		if obj {
			stack[d>>6] |= 1 << (d & 63)
		} else {
			stack[d>>6] &^= 1 << (d & 63)
		}
		d++
		i = skipWS(b, i+1)
		if i >= len(b) {
			return i, msgEOF
		}
		if (obj && b[i] == '}') || (!obj && b[i] == ']') {
			i++
			d--
			if d == 0 {
				return i, ""
			}
			goto after
		}
	member:
		if obj {
			if b[i] != '"' {
				return i, msgKey
			}
			if i, _, msg = scanString(b, i); msg != "" {
				return i, msg
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, msgEOF
			}
			if b[i] != ':' {
				return i, msgColon
			}
			i = skipWS(b, i+1)
			if i >= len(b) {
				return i, msgEOF
			}
		}
		if c := b[i]; c == '{' || c == '[' {
			continue
		}
		if i, msg = scanScalar(b, i); msg != "" {
			return i, msg
		}
	after:
		i = skipWS(b, i)
		if i >= len(b) {
			return i, msgEOF
		}
		obj = stack[(d-1)>>6]&(1<<((d-1)&63)) != 0
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
			if i >= len(b) {
				return i, msgEOF
			}
			goto member
		case '}':
			if !obj {
				return i, msgSep
			}
		case ']':
			if obj {
				return i, msgSep
			}
		default:
			return i, msgSep
		}
		i++
		d--
		if d == 0 {
			return i, ""
		}
		goto after
	}
}

// member describes one top-level key/value pair; all offsets index the
// scanned buffer.
type member struct {
	keyStart, keyEnd int // raw key including its quotes
	valStart, valEnd int // raw value
	kind             Kind
	keyEsc           bool // the key contains a backslash escape
}

// iter walks the members of a top-level JSON object while validating it.
// After next returns false, msg is "" on success (and close is the index of
// the closing brace) or the error message at offset pos.
type iter struct {
	b     []byte
	i     int
	n     int
	close int
	pos   int
	msg   string
}

func (it *iter) fail(pos int, msg string) bool {
	it.pos, it.msg = pos, msg
	return false
}

// start positions the iterator after the opening brace.
func (it *iter) start(b []byte) bool {
	it.b, it.n, it.close, it.msg = b, 0, -1, ""
	i := skipWS(b, 0)
	if i >= len(b) {
		return it.fail(i, msgEOF)
	}
	if b[i] != '{' {
		// encoding/json reports syntax errors before type errors: validate
		// the value first so that the message matches the real problem.
		end, _, msg := scanValue(b, i)
		if msg != "" {
			return it.fail(end, msg)
		}
		if j := skipWS(b, end); j != len(b) {
			return it.fail(j, msgTrailing)
		}
		return it.fail(i, msgNotObject)
	}
	it.i = i + 1
	return true
}

// next fills m with the next member. It returns false at the end of the
// object or on error (see iter).
func (it *iter) next(m *member) bool {
	b := it.b
	i := skipWS(b, it.i)
	if i >= len(b) {
		return it.fail(i, msgEOF)
	}
	if b[i] == '}' {
		it.close = i
		if j := skipWS(b, i+1); j != len(b) {
			return it.fail(j, msgTrailing)
		}
		return false
	}
	if it.n > 0 {
		if b[i] != ',' {
			return it.fail(i, msgSep)
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return it.fail(i, msgEOF)
		}
	}
	if b[i] != '"' {
		return it.fail(i, msgKey)
	}
	m.keyStart = i
	end, esc, msg := scanString(b, i)
	if msg != "" {
		return it.fail(end, msg)
	}
	m.keyEnd, m.keyEsc = end, esc
	i = skipWS(b, end)
	if i >= len(b) {
		return it.fail(i, msgEOF)
	}
	if b[i] != ':' {
		return it.fail(i, msgColon)
	}
	i = skipWS(b, i+1)
	m.valStart = i
	end, kind, msg := scanValue(b, i)
	if msg != "" {
		return it.fail(end, msg)
	}
	m.valEnd, m.kind = end, kind
	it.i = end
	it.n++
	return true
}
