package config

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds small re-implementations of Python behaviours the
// configuration depends on: truthiness, str.isspace, str()/repr() of strings
// and tuples and json.dumps(indent=4, sort_keys=True). str.isalnum (alnum
// file names) and os.path normalisation live in package uds. All functions
// are pure and safe for concurrent use.

// Truthy reports the Python truthiness of a JSON value: false, null, 0 (any
// spelling: 0, -0, 0.0, 0e5), "", [] and {} are false; everything else,
// including the string "false", is true. Invalid or empty input is false.
// raw is only read.
func Truthy(raw json.RawMessage) bool {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return false
	}
	switch b[0] {
	case 'n', 'f':
		return false
	case 't':
		return true
	case '"':
		return len(b) > 2
	case '[', '{':
		if len(b) < 2 {
			return false
		}
		inner := bytes.TrimSpace(b[1 : len(b)-1])
		return len(inner) != 0
	default: // number: zero iff every mantissa digit is 0
		for _, c := range b {
			if c == 'e' || c == 'E' {
				break
			}
			if c >= '1' && c <= '9' {
				return true
			}
		}
		return false
	}
}

// isPySpace is Python's str.isspace for one code point (int() strips these).
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// PyStrRepr returns Python's repr() of a str: single quotes unless the
// text contains a single quote and no double quote; backslash, the quote,
// \t \n \r and non-printable characters escaped as Python does.
func PyStrRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var sb strings.Builder
	sb.Grow(len(s) + 2)
	sb.WriteByte(quote)
	const hex = "0123456789abcdef"
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			sb.WriteString(`\x`)
			sb.WriteByte(hex[r>>4])
			sb.WriteByte(hex[r&15])
		case r < 0x7f || unicode.IsPrint(r):
			sb.WriteRune(r)
		case r < 0x100:
			sb.WriteString(`\x`)
			sb.WriteByte(hex[r>>4])
			sb.WriteByte(hex[r&15])
		case r < 0x10000:
			sb.WriteString(`\u`)
			for sh := 12; sh >= 0; sh -= 4 {
				sb.WriteByte(hex[(r>>uint(sh))&15])
			}
		default:
			sb.WriteString(`\U`)
			for sh := 28; sh >= 0; sh -= 4 {
				sb.WriteByte(hex[(r>>uint(sh))&15])
			}
		}
	}
	sb.WriteByte(quote)
	return sb.String()
}

// PyTupleRepr returns str((host, port)) where portRepr is already the
// Python repr of the port ("10673" or "'10673'").
func PyTupleRepr(host, portRepr string) string {
	return "(" + PyStrRepr(host) + ", " + portRepr + ")"
}

// pyObject is a JSON object dumped with sorted keys.
type pyObject map[string]any

// pyDumps renders v like Python's json.dumps(v, indent=4, sort_keys=True).
// Supported values: pyObject, []any, []string, string, bool, nil, int, int64.
func pyDumps(v any) string {
	var sb strings.Builder
	pyDump(&sb, v, 0)
	return sb.String()
}

func pyDump(sb *strings.Builder, v any, level int) {
	ind := func(l int) {
		sb.WriteByte('\n')
		for i := 0; i < l; i++ {
			sb.WriteString("    ")
		}
	}
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		if x {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case int:
		sb.WriteString(strconv.Itoa(x))
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case string:
		sb.WriteString(pyJSONString(x))
	case []string:
		a := make([]any, len(x))
		for i, s := range x {
			a[i] = s
		}
		pyDump(sb, a, level)
	case []any:
		if len(x) == 0 {
			sb.WriteString("[]")
			return
		}
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteByte(',')
			}
			ind(level + 1)
			pyDump(sb, e, level+1)
		}
		ind(level)
		sb.WriteByte(']')
	case pyObject:
		if len(x) == 0 {
			sb.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			ind(level + 1)
			sb.WriteString(pyJSONString(k))
			sb.WriteString(": ")
			pyDump(sb, x[k], level+1)
		}
		ind(level)
		sb.WriteByte('}')
	default:
		sb.WriteString("null")
	}
}

// pyJSONString is a JSON string literal as Python's json.dumps writes it
// with ensure_ascii=True (every character outside space..~ escaped, lower-case hex).
func pyJSONString(s string) string {
	const hex = "0123456789abcdef"
	var sb strings.Builder
	sb.Grow(len(s) + 2)
	sb.WriteByte('"')
	u := func(r rune) {
		sb.WriteString(`\u`)
		for sh := 12; sh >= 0; sh -= 4 {
			sb.WriteByte(hex[(r>>uint(sh))&15])
		}
	}
	for _, r := range s {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			switch {
			case r >= ' ' && r <= '~':
				sb.WriteRune(r)
			case r >= 0x10000:
				r1, r2 := utf16Surrogates(r)
				u(r1)
				u(r2)
			default:
				u(r)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// runeLen is Python's len() of a str.
func runeLen(s string) int { return utf8.RuneCountInString(s) }
