package cli

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/aioconn/aioconn/codec"
)

// pyReprJSON renders a JSON value the way Python prints the object json.loads makes of it
// (dict/list repr, True/False/None, ints exact, floats in Python's repr form), keeping key
// order. Invalid JSON is returned as a quoted string repr.
func pyReprJSON(raw []byte) string {
	if !json.Valid(raw) { // the decoder below reads one value and would ignore what follows it
		return string(codec.AppendPyReprStr(nil, string(raw)))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b []byte
	var err error
	b, err = appendReprValue(b, dec)
	if err != nil {
		return string(codec.AppendPyReprStr(nil, string(raw)))
	}
	return string(b)
}

func appendReprValue(b []byte, dec *json.Decoder) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return b, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			b = append(b, '{')
			first := true
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return b, err
				}
				if !first {
					b = append(b, ", "...)
				}
				first = false
				b = codec.AppendPyReprStr(b, k.(string))
				b = append(b, ": "...)
				if b, err = appendReprValue(b, dec); err != nil {
					return b, err
				}
			}
			dec.Token()
			return append(b, '}'), nil
		case '[':
			b = append(b, '[')
			first := true
			for dec.More() {
				if !first {
					b = append(b, ", "...)
				}
				first = false
				if b, err = appendReprValue(b, dec); err != nil {
					return b, err
				}
			}
			dec.Token()
			return append(b, ']'), nil
		}
	case string:
		return codec.AppendPyReprStr(b, t), nil
	case json.Number:
		return append(b, pyNumber(string(t))...), nil
	case bool:
		if t {
			return append(b, "True"...), nil
		}
		return append(b, "False"...), nil
	case nil:
		return append(b, "None"...), nil
	}
	return b, nil
}

// pyNumber renders a JSON number as Python prints int(...) or float(...).
func pyNumber(s string) string {
	if !strings.ContainsAny(s, ".eE") {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if math.IsInf(f, 0) {
			if f > 0 {
				return "inf"
			}
			return "-inf"
		}
		return s
	}
	return pyFloat(f)
}

// pyFloat is Python's float repr: shortest round-trip digits, scientific below 1e-4 or from 1e16.
func pyFloat(f float64) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	abs := math.Abs(f)
	if abs >= 1e16 || abs < 1e-4 {
		s := strconv.FormatFloat(f, 'e', -1, 64) // 1e+16, 1.5e-05
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[0]
		exp = strings.TrimLeft(exp[1:], "0")
		if len(exp) < 2 {
			exp = strings.Repeat("0", 2-len(exp)) + exp
		}
		return mant + "e" + string(sign) + exp
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// pyBytesRepr is Python's repr of a bytes object: b'...'.
func pyBytesRepr(p []byte) string {
	q := byte('\'')
	if bytes.IndexByte(p, '\'') >= 0 && bytes.IndexByte(p, '"') < 0 {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte('b')
	b.WriteByte(q)
	const hexd = "0123456789abcdef"
	for _, c := range p {
		switch {
		case c == q || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c >= 0x7f:
			b.WriteString(`\x`)
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte(q)
	return b.String()
}
