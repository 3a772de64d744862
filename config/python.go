package config

import (
	"bytes"
	"encoding/json"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file holds small re-implementations of Python behaviours the
// configuration depends on: truthiness, str()/repr() of strings and
// tuples, str.isalnum, os.path.expanduser/expandvars/normpath/abspath and
// json.dumps(indent=4, sort_keys=True). All functions are pure (apart from
// reading the environment, the user database and the working directory)
// and safe for concurrent use.

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

// isPySpace is Python's str.isspace for one code point (str.split() separators).
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// isPyAlnum approximates Python's str.isalnum for one code point
// (identical on ASCII).
func isPyAlnum(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// Alnum keeps only the characters of s for which Python's str.isalnum is
// true (LOCAL §1.2): "chat_client" -> "chatclient".
func Alnum(s string) string {
	var sb strings.Builder
	sb.Grow(len(s))
	for _, r := range s {
		if isPyAlnum(r) {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// AlnumSourceID computes alnum_source_id (LOCAL §1.2): for a server the
// source_id is split on whitespace, each piece reduced with Alnum, and the
// pieces joined with "_"; for a client it is Alnum(sourceID).
func AlnumSourceID(sourceID string, isServer bool) string {
	if !isServer {
		return Alnum(sourceID)
	}
	fields := strings.FieldsFunc(sourceID, isPySpace)
	for i, f := range fields {
		fields[i] = Alnum(f)
	}
	return strings.Join(fields, "_")
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

// FullPath is aioconnectors' helpers.full_path: expanduser, expandvars
// (unknown variables left untouched), normpath, abspath.
func FullPath(p string) string {
	return pyAbsPath(pyNormPath(pyExpandVars(pyExpandUser(p))))
}

func pyExpandUser(p string) string {
	if !strings.HasPrefix(p, "~") {
		return p
	}
	i := strings.IndexByte(p[1:], '/')
	if i < 0 {
		i = len(p)
	} else {
		i++
	}
	var home string
	if i == 1 {
		if h, ok := os.LookupEnv("HOME"); ok {
			home = h
		} else {
			u, err := user.Current()
			if err != nil {
				return p
			}
			home = u.HomeDir
		}
	} else {
		u, err := user.Lookup(p[1:i])
		if err != nil {
			return p
		}
		home = u.HomeDir
	}
	home = strings.TrimRight(home, "/")
	if r := home + p[i:]; r != "" {
		return r
	}
	return "/"
}

func isASCIIWord(c byte) bool {
	return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// pyExpandVars follows posixpath.expandvars: $name ([A-Za-z0-9_]+) and
// ${anything-but-brace}; unknown names are kept as written.
func pyExpandVars(p string) string {
	if strings.IndexByte(p, '$') < 0 {
		return p
	}
	i := 0
	for {
		k := strings.IndexByte(p[i:], '$')
		if k < 0 {
			return p
		}
		start := i + k
		j := start + 1
		var name string
		switch {
		case j < len(p) && p[j] == '{':
			end := strings.IndexByte(p[j+1:], '}')
			if end < 0 {
				i = start + 1
				continue
			}
			name = p[j+1 : j+1+end]
			j = j + 1 + end + 1
		case j < len(p) && isASCIIWord(p[j]):
			for j < len(p) && isASCIIWord(p[j]) {
				j++
			}
			name = p[start+1 : j]
		default:
			i = start + 1
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			tail := p[j:]
			p = p[:start] + v
			i = len(p)
			p += tail
		} else {
			i = j
		}
	}
}

// pyNormPath is posixpath.normpath (keeps exactly two leading slashes).
func pyNormPath(p string) string {
	if p == "" {
		return "."
	}
	initial := 0
	if strings.HasPrefix(p, "/") {
		initial = 1
		if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
			initial = 2
		}
	}
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if c != ".." || (initial == 0 && len(comps) == 0) || (len(comps) > 0 && comps[len(comps)-1] == "..") {
			comps = append(comps, c)
		} else if len(comps) > 0 {
			comps = comps[:len(comps)-1]
		}
	}
	r := strings.Repeat("/", initial) + strings.Join(comps, "/")
	if r == "" {
		return "."
	}
	return r
}

func pyAbsPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		cwd, err := os.Getwd()
		if err != nil {
			cwd = "/"
		}
		p = pyJoin(cwd, p)
	}
	return pyNormPath(p)
}

// pyJoin is os.path.join for two components (b relative).
func pyJoin(a, b string) string {
	if strings.HasPrefix(b, "/") {
		return b
	}
	if a == "" || strings.HasSuffix(a, "/") {
		return a + b
	}
	return a + "/" + b
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
