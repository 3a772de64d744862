package connector

// Pure helpers for file transfer (PEER-PROTOCOL.md §9, CONFIG-AND-CLI.md §2.1): rendering a
// file_recv_config target_directory, resolving and checking a received file's destination,
// chunk metadata and reassembly, owner parsing. None of them touches connector state; all
// are safe for concurrent use. TargetPath, ReassembleChunks and ParseOwner make blocking
// file-system or user-database calls: run them off the event loops.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/uds"
)

// Errors of the file-transfer helpers (test with errors.Is; messages name the template,
// key, file or directory at fault).
var (
	// ErrFormat: a target_directory template cannot be rendered (Python's str.format would
	// raise: unknown key, bad index, syntax error, unsupported feature).
	ErrFormat = errors.New("connector: cannot format target_directory")
	// ErrTraversal: the destination of a received file is not inside its target directory
	// (Python logs "Illegal traversal file path ...").
	ErrTraversal = errors.New("connector: Illegal traversal file path")
	// ErrNoTargetDir: the formatted target_directory is empty (Python warns and writes
	// nothing).
	ErrNoTargetDir = errors.New("connector: empty target directory")
	// ErrBadChunk: with_file.chunked is not [basename, index, total] as the sending API
	// writes it.
	ErrBadChunk = errors.New("connector: invalid with_file.chunked")
	// ErrFileExists: the destination exists and override_existing is false.
	ErrFileExists = errors.New("connector: file exists and override_existing is false")
)

// ChunkIndicator is what the sending API appends to dst_name to name chunks
// (<dst_name>__aioconnectors_chunk_<i>_<n>).
const ChunkIndicator = "__aioconnectors_chunk"

// ---------------------------------------------------------------------------------------
// PyFormat

// pyValue is a decoded JSON value kept with the information Python's str() needs.
type pyValue struct {
	kind byte // 's' string, 'n' number, 't' true, 'f' false, 'z' null, 'o' object, 'a' array
	s    string
	keys []string // object keys in first-insertion order (json.loads: last value wins)
	vals []pyValue
}

func decodePy(dec *json.Decoder) (pyValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return pyValue{}, err
	}
	switch t := tok.(type) {
	case string:
		return pyValue{kind: 's', s: t}, nil
	case json.Number:
		return pyValue{kind: 'n', s: string(t)}, nil
	case bool:
		if t {
			return pyValue{kind: 't'}, nil
		}
		return pyValue{kind: 'f'}, nil
	case nil:
		return pyValue{kind: 'z'}, nil
	case json.Delim:
		if t == '[' {
			v := pyValue{kind: 'a'}
			for dec.More() {
				e, err := decodePy(dec)
				if err != nil {
					return pyValue{}, err
				}
				v.vals = append(v.vals, e)
			}
			_, err := dec.Token()
			return v, err
		}
		v := pyValue{kind: 'o'}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return pyValue{}, err
			}
			k, _ := kt.(string)
			e, err := decodePy(dec)
			if err != nil {
				return pyValue{}, err
			}
			if i := v.index(k); i >= 0 {
				v.vals[i] = e
			} else {
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, e)
			}
		}
		_, err := dec.Token()
		return v, err
	}
	return pyValue{}, fmt.Errorf("unexpected token %v", tok)
}

func (v *pyValue) index(k string) int {
	for i, kk := range v.keys {
		if kk == k {
			return i
		}
	}
	return -1
}

// isPyFloat reports whether json.loads makes a float of the number literal.
func isPyFloat(num string) bool { return strings.ContainsAny(num, ".eE") }

// appendPyFloatRepr appends Python's repr() of a float: shortest round-trip digits, fixed
// notation for decimal exponents -4..15 (".0" added to integral values), otherwise
// d[.ddd]e±XX; inf, -inf, nan.
func appendPyFloatRepr(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	case math.IsNaN(f):
		return append(dst, "nan"...)
	}
	var tmp [32]byte
	e := strconv.AppendFloat(tmp[:0], f, 'e', -1, 64) // -d.ddde±XX
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	ei := bytes.IndexByte(e, 'e')
	digits := make([]byte, 0, 20)
	for _, c := range e[:ei] {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	exp, _ := strconv.Atoi(string(e[ei+1:]))
	if neg {
		dst = append(dst, '-')
	}
	if exp < -4 || exp >= 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		if exp < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(exp), 10)
	}
	if exp < 0 {
		dst = append(dst, "0."...)
		for i := 0; i < -exp-1; i++ {
			dst = append(dst, '0')
		}
		return append(dst, digits...)
	}
	point := exp + 1
	if len(digits) <= point {
		dst = append(dst, digits...)
		for i := len(digits); i < point; i++ {
			dst = append(dst, '0')
		}
		return append(dst, ".0"...)
	}
	dst = append(dst, digits[:point]...)
	dst = append(dst, '.')
	return append(dst, digits[point:]...)
}

// appendPyNumber appends str() of the Python value json.loads makes of a number literal.
func appendPyNumber(dst []byte, num string) []byte {
	if !isPyFloat(num) {
		if num == "-0" {
			return append(dst, '0')
		}
		return append(dst, num...) // Python ints are exact, JSON forbids leading zeros
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return append(dst, num...)
	}
	return appendPyFloatRepr(dst, f) // overflow gives ±inf like Python's float()
}

// appendPyRepr appends Python's repr() of v.
func appendPyRepr(dst []byte, v *pyValue) []byte {
	switch v.kind {
	case 's':
		return codec.AppendPyReprStr(dst, v.s)
	case 'o':
		dst = append(dst, '{')
		for i := range v.keys {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = codec.AppendPyReprStr(dst, v.keys[i])
			dst = append(dst, ": "...)
			dst = appendPyRepr(dst, &v.vals[i])
		}
		return append(dst, '}')
	case 'a':
		dst = append(dst, '[')
		for i := range v.vals {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendPyRepr(dst, &v.vals[i])
		}
		return append(dst, ']')
	}
	return appendPyStr(dst, v)
}

// appendPyStr appends Python's str() of v.
func appendPyStr(dst []byte, v *pyValue) []byte {
	switch v.kind {
	case 's':
		return append(dst, v.s...)
	case 'n':
		return appendPyNumber(dst, v.s)
	case 't':
		return append(dst, "True"...)
	case 'f':
		return append(dst, "False"...)
	case 'z':
		return append(dst, "None"...)
	}
	return appendPyRepr(dst, v)
}

// appendPyASCII appends Python's ascii() of v: repr() with every non-ASCII character
// escaped (\xNN, \uXXXX, \UXXXXXXXX).
func appendPyASCII(dst []byte, v *pyValue) []byte {
	r := appendPyRepr(nil, v)
	for _, c := range string(r) {
		switch {
		case c < utf8.RuneSelf:
			dst = append(dst, byte(c))
		case c <= 0xff:
			dst = fmt.Appendf(dst, `\x%02x`, c)
		case c <= 0xffff:
			dst = fmt.Appendf(dst, `\u%04x`, c)
		default:
			dst = fmt.Appendf(dst, `\U%08x`, c)
		}
	}
	return dst
}

func typeName(v *pyValue) string {
	switch v.kind {
	case 's':
		return "str"
	case 'n':
		if isPyFloat(v.s) {
			return "float"
		}
		return "int"
	case 't', 'f':
		return "bool"
	case 'z':
		return "NoneType"
	case 'o':
		return "dict"
	}
	return "list"
}

// pyDecimal parses a str.format index the way CPython does: all decimal digits gives an
// int, anything else a string key.
func pyDecimal(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (math.MaxInt-9)/10 {
			n = math.MaxInt // too big for any list anyway
			continue
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func formatErr(tmpl, msg string) error {
	return fmt.Errorf("%w %q: %s", ErrFormat, tmpl, msg)
}

// resolveField evaluates a str.format field name (arg_name followed by [key] / .attr parts)
// against the top-level object.
func resolveField(tmpl, name string, top *pyValue) (*pyValue, error) {
	i := strings.IndexAny(name, ".[")
	first := name
	if i >= 0 {
		first = name[:i]
	} else {
		i = len(name)
	}
	if _, isInt := pyDecimal(first); first == "" || isInt {
		// Positional argument: str.format(**transport_json) has none.
		return nil, formatErr(tmpl, "Replacement index "+first+" out of range for positional args tuple (positional fields are not supported)")
	}
	k := top.index(first)
	if k < 0 {
		return nil, fmt.Errorf("%w %q: unknown key %q (KeyError)", ErrFormat, tmpl, first)
	}
	v := &top.vals[k]
	rest := name[i:]
	for rest != "" {
		switch rest[0] {
		case '.':
			return nil, formatErr(tmpl, "attribute access ("+rest+") is not supported")
		case '[':
			j := strings.IndexByte(rest, ']')
			if j < 0 {
				return nil, formatErr(tmpl, "Missing ']' in format string")
			}
			key := rest[1:j]
			rest = rest[j+1:]
			if key == "" {
				return nil, formatErr(tmpl, "Empty attribute in format string")
			}
			if rest != "" && rest[0] != '.' && rest[0] != '[' {
				return nil, formatErr(tmpl, "Only '.' or '[' may follow ']' in format field specifier")
			}
			idx, isInt := pyDecimal(key)
			switch v.kind {
			case 'o':
				if isInt {
					return nil, fmt.Errorf("%w %q: unknown key %s (KeyError: JSON object keys are strings)", ErrFormat, tmpl, key)
				}
				k := v.index(key)
				if k < 0 {
					return nil, fmt.Errorf("%w %q: unknown key %q (KeyError)", ErrFormat, tmpl, key)
				}
				v = &v.vals[k]
			case 'a':
				if !isInt {
					return nil, formatErr(tmpl, "list indices must be integers or slices, not str")
				}
				if idx >= len(v.vals) {
					return nil, formatErr(tmpl, "list index out of range")
				}
				v = &v.vals[idx]
			case 's':
				if !isInt {
					return nil, formatErr(tmpl, "string indices must be integers, not 'str'")
				}
				rs := []rune(v.s)
				if idx >= len(rs) {
					return nil, formatErr(tmpl, "string index out of range")
				}
				v = &pyValue{kind: 's', s: string(rs[idx])}
			default:
				return nil, formatErr(tmpl, "'"+typeName(v)+"' object is not subscriptable")
			}
		}
	}
	return v, nil
}

// PyFormat renders a Python str.format template the way
// file_recv_config[...]["target_directory"].format(**transport_json) does, transportJSON
// being the transport JSON (a JSON object) as received, transport_id already removed.
//
// Supported (CPython 3.11 parsing rules and error texts): literal text, "{{" and "}}";
// fields {key}, {key[sub]}, {key[0]} (digits index lists and strings; anything else is a
// dict key), chained; conversions !s, !r, !a; an empty format spec ("{key:}"). Values render
// as Python str(): strings raw, integers exactly as written (big ones too; -0 as 0), floats
// as Python repr (1.0, 1e+16, 1e-05, inf), true/false/null as True/False/None, objects and
// lists as Python repr ({'k': 'v', 'n': [1, None]}, keys in first-occurrence order, the last
// duplicate's value). Not supported, and reported with ErrFormat (Python would render them):
// non-empty format specs ("{key:>10}"), attribute access ("{key.attr}"). Errors Python also
// raises wrap ErrFormat too: an unknown key (the message names it), positional fields ("{}",
// "{0}"), a single "}" or unclosed "{", bad indexes, invalid JSON.
//
// Allocates; not for hot paths (once per received file).
func PyFormat(tmpl string, transportJSON []byte) (string, error) {
	var top *pyValue
	load := func() error {
		if top != nil {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader(transportJSON))
		dec.UseNumber()
		v, err := decodePy(dec)
		if err == nil && v.kind != 'o' {
			err = errors.New("not a JSON object")
		}
		if err == nil {
			if _, e := dec.Token(); e != io.EOF {
				err = errors.New("trailing data after the object")
			}
		}
		if err != nil {
			return fmt.Errorf("%w %q: transport JSON: %v", ErrFormat, tmpl, err)
		}
		top = &v
		return nil
	}
	out := make([]byte, 0, len(tmpl)+32)
	s := tmpl
	for len(s) > 0 {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			out = append(out, s...)
			break
		}
		out = append(out, s[:i]...)
		c := s[i]
		s = s[i+1:]
		if c == '}' {
			if len(s) > 0 && s[0] == '}' {
				out = append(out, '}')
				s = s[1:]
				continue
			}
			return "", formatErr(tmpl, "Single '}' encountered in format string")
		}
		if len(s) > 0 && s[0] == '{' {
			out = append(out, '{')
			s = s[1:]
			continue
		}
		// A field: name up to '}', ':' or '!' ("[...]" is skipped whole).
		j, term := 0, byte(0)
	name:
		for j < len(s) {
			switch s[j] {
			case '{':
				return "", formatErr(tmpl, "unexpected '{' in field name")
			case '[':
				k := strings.IndexByte(s[j:], ']')
				if k < 0 {
					j = len(s)
					break name
				}
				j += k + 1
				continue
			case '}', ':', '!':
				term = s[j]
				break name
			}
			j++
		}
		if term == 0 {
			return "", formatErr(tmpl, "expected '}' before end of string")
		}
		fname := s[:j]
		s = s[j+1:]
		conv := byte(0)
		if term == '!' || term == ':' {
			if term == '!' {
				if len(s) == 0 {
					return "", formatErr(tmpl, "end of string while looking for conversion specifier")
				}
				r, size := utf8.DecodeRuneInString(s)
				s = s[size:]
				if r >= utf8.RuneSelf {
					return "", formatErr(tmpl, "Unknown conversion specifier "+string(r))
				}
				conv = byte(r)
				if len(s) > 0 {
					c := s[0]
					s = s[1:]
					if c != '}' && c != ':' {
						return "", formatErr(tmpl, "expected ':' after conversion specifier")
					}
					if c == '}' {
						term = '}'
					}
				}
			}
			if term != '}' {
				// Format spec up to the matching '}'.
				depth, k := 1, 0
				for ; k < len(s); k++ {
					if s[k] == '{' {
						depth++
					} else if s[k] == '}' {
						depth--
						if depth == 0 {
							break
						}
					}
				}
				if depth != 0 {
					return "", formatErr(tmpl, "unmatched '{' in format spec")
				}
				if spec := s[:k]; spec != "" {
					return "", formatErr(tmpl, "format spec ':"+spec+"' is not supported")
				}
				s = s[k+1:]
			}
		}
		if err := load(); err != nil {
			return "", err
		}
		v, err := resolveField(tmpl, fname, top)
		if err != nil {
			return "", err
		}
		switch conv {
		case 0, 's':
			out = appendPyStr(out, v)
		case 'r':
			out = appendPyRepr(out, v)
		case 'a':
			out = appendPyASCII(out, v)
		default:
			return "", formatErr(tmpl, "Unknown conversion specifier "+string(rune(conv)))
		}
	}
	return string(out), nil
}

// ---------------------------------------------------------------------------------------
// TargetPath

// pyJoin is posixpath.join(a, b).
func pyJoin(a, b string) string {
	if strings.HasPrefix(b, "/") {
		return b
	}
	if a == "" || strings.HasSuffix(a, "/") {
		return a + b
	}
	return a + "/" + b
}

// inside reports whether p is strictly below dir (both cleaned and absolute).
func inside(p, dir string) bool {
	if dir == "/" {
		return p != "/" && strings.HasPrefix(p, "/")
	}
	return len(p) > len(dir) && strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}

// TargetPath resolves where a received file goes: dstDir is the formatted target_directory,
// dstName the sender's with_file.dst_name. The result is Python's
// abspath(normpath(expandvars(expanduser(join(dstDir, dstName))))) (so the file lands where
// a Python receiver would put it, "$VAR" in dst_name included) after a proper containment
// check, replacing Python's raw string-prefix test:
//   - the result must be strictly inside the directory dstDir resolves to (same
//     normalisation); "a/../b" is fine, "../x" and "a/../../x" are refused;
//   - an absolute dstName is refused (Python joins it as is and then compares prefixes);
//   - every component below the directory that already exists is resolved: a symlink that
//     leads outside the directory (or dangles, or loops) is refused; missing components are
//     fine (the caller creates them);
//   - empty dstName, "." and NUL bytes are refused; an empty dstDir gives ErrNoTargetDir.
//
// Unlike Python, a relative or non-normalised target_directory works (Python refuses every
// file then) and "/a/b" does not admit "/a/bc". Refusals wrap ErrTraversal and name dstName
// and the directory. The check is made at call time: a concurrent change of the tree
// (symlink swapped in afterwards) is not covered; create files without following a final
// symlink where that matters.
func TargetPath(dstDir, dstName string) (string, error) {
	if dstDir == "" {
		return "", ErrNoTargetDir
	}
	refuse := func(why string) (string, error) {
		return "", fmt.Errorf("%w: dst_name %q in %q %s", ErrTraversal, dstName, dstDir, why)
	}
	if dstName == "" {
		return refuse("is empty")
	}
	if strings.IndexByte(dstName, 0) >= 0 || strings.IndexByte(dstDir, 0) >= 0 {
		return refuse("contains a NUL byte")
	}
	if strings.HasPrefix(dstName, "/") {
		return refuse("is absolute")
	}
	base := uds.NormalizeDir(dstDir)
	full := uds.NormalizeDir(pyJoin(dstDir, dstName))
	if !inside(full, base) {
		return refuse("resolves to " + full + ", outside " + base)
	}
	// Existing components must not lead outside through symlinks.
	realBase := base
	if r, err := filepath.EvalSymlinks(base); err == nil {
		realBase = r
	}
	rel := full[len(base):]
	if base == "/" {
		rel = full
	}
	p := base
	for _, c := range strings.Split(strings.TrimPrefix(rel, "/"), "/") {
		p = pyJoin(p, c)
		st, err := os.Lstat(p)
		if err != nil {
			break // missing: created by the caller; nothing below exists either
		}
		if st.Mode()&os.ModeSymlink == 0 {
			continue
		}
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			return refuse("goes through the unresolvable symlink " + p)
		}
		if !inside(r, realBase) {
			return refuse("goes through the symlink " + p + " to " + r + ", outside " + realBase)
		}
	}
	return full, nil
}

// ---------------------------------------------------------------------------------------
// Chunks

// Chunk is with_file.chunked: [Basename, Index, Total], Basename being
// "<original dst_name>__aioconnectors_chunk", Index 1-based.
type Chunk struct {
	Basename     string
	Index, Total int
}

// FileName is the chunk's file name: <Basename>_<Index>_<Total> (its dst_name).
func (c Chunk) FileName() string {
	return c.Basename + "_" + strconv.Itoa(c.Index) + "_" + strconv.Itoa(c.Total)
}

// DstName is the name of the reassembled file: Basename without the trailing indicator.
func (c Chunk) DstName() string { return strings.TrimSuffix(c.Basename, ChunkIndicator) }

// ChunkInfo reads with_file.chunked from the raw with_file object. ok is false (err nil)
// when chunked is absent or falsy (Python: `if chunked:`). Anything but
// [string ending in "__aioconnectors_chunk", int index, int total] with
// 1 <= index <= total gives an error wrapping ErrBadChunk (Python would raise in its
// chunk handling, log "chunked exception" and deliver the message anyway).
func ChunkInfo(withFile []byte) (c Chunk, ok bool, err error) {
	v, err := codec.Lookup(withFile, "chunked")
	if err != nil {
		return Chunk{}, false, fmt.Errorf("%w: %v", ErrBadChunk, err)
	}
	if !v.Truthy() {
		return Chunk{}, false, nil
	}
	bad := func(why string) (Chunk, bool, error) {
		return Chunk{}, false, fmt.Errorf("%w: %s: %s", ErrBadChunk, v.Raw, why)
	}
	if v.Kind != codec.KindArray {
		return bad("not a list")
	}
	dec := json.NewDecoder(bytes.NewReader(v.Raw))
	dec.UseNumber()
	var items []json.RawMessage
	if err := dec.Decode(&items); err != nil || len(items) != 3 {
		return bad("not a list of 3 items")
	}
	if err := json.Unmarshal(items[0], &c.Basename); err != nil {
		return bad("basename is not a string")
	}
	if !strings.HasSuffix(c.Basename, ChunkIndicator) || c.Basename == ChunkIndicator {
		return bad("basename does not end with " + ChunkIndicator)
	}
	idx, e1 := strconv.Atoi(string(items[1]))
	tot, e2 := strconv.Atoi(string(items[2]))
	if e1 != nil || e2 != nil || idx < 1 || tot < 1 || idx > tot {
		return bad("index and total must be integers with 1 <= index <= total")
	}
	c.Index, c.Total = idx, tot
	return c, true, nil
}

// ReassembleChunks joins the chunk files <basename>_<i>_<n> (i = 1..n) of dir into
// dir/<basename without "__aioconnectors_chunk"> once all n are present, and removes them.
// basename must be a bare file name (the caller splits a dst_name with directories, e.g.
// dir = filepath.Dir(TargetPath(dstDir, c.Basename))). Returns:
//   - done false, err nil: not all n chunks are there yet (nothing touched);
//   - done true, err nil: dst written (atomically: a temporary file in dir renamed into
//     place, mode 0666 minus umask) and chunks removed;
//   - done true, err wrapping ErrFileExists: dst exists and override is false; like Python
//     the chunks are removed and dst is left alone;
//   - done false, other err: I/O failure; the chunks are kept.
//
// Chunks are concatenated in NUMERIC index order with io.Copy (bounded memory). This is a
// deliberate divergence: 1.0.33 sorts the names lexicographically, which scrambles files of
// 10 chunks or more (observed); both agree whenever Python's result is correct. Only names
// with exactly this n count (Python counts every name starting with basename, so a stale
// chunk of another transfer blocks or spoils it).
func ReassembleChunks(dir, basename string, n int, override bool) (dst string, done bool, err error) {
	if basename == "" || strings.ContainsAny(basename, "/\x00") || basename == "." || basename == ".." ||
		!strings.HasSuffix(basename, ChunkIndicator) || basename == ChunkIndicator || n < 1 {
		return "", false, fmt.Errorf("%w: basename %q, %d chunks", ErrBadChunk, basename, n)
	}
	dst = filepath.Join(dir, strings.TrimSuffix(basename, ChunkIndicator))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return dst, false, fmt.Errorf("connector: reassemble %s: %w", dst, err)
	}
	suffix := "_" + strconv.Itoa(n)
	chunks := make([]string, n+1)
	found := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, basename+"_") || !strings.HasSuffix(name, suffix) {
			continue
		}
		mid := name[len(basename)+1 : len(name)-len(suffix)]
		i, err := strconv.Atoi(mid)
		if err != nil || i < 1 || i > n || strconv.Itoa(i) != mid || chunks[i] != "" {
			continue
		}
		chunks[i] = filepath.Join(dir, name)
		found++
	}
	if found != n {
		return dst, false, nil
	}
	removeChunks := func() error {
		var errs []error
		for _, p := range chunks[1:] {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if _, err := os.Lstat(dst); err == nil && !override {
		return dst, true, errors.Join(fmt.Errorf("%w: %s", ErrFileExists, dst), removeChunks())
	}
	tmp, tmpPath, err := createTemp(dir, filepath.Base(dst))
	if err != nil {
		return dst, false, fmt.Errorf("connector: reassemble %s: %w", dst, err)
	}
	fail := func(err error) (string, bool, error) {
		tmp.Close()
		os.Remove(tmpPath)
		return dst, false, fmt.Errorf("connector: reassemble %s: %w", dst, err)
	}
	for _, p := range chunks[1:] {
		f, err := os.Open(p)
		if err != nil {
			return fail(err)
		}
		_, err = io.Copy(tmp, f)
		f.Close()
		if err != nil {
			return fail(err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if override {
		err = os.Rename(tmpPath, dst)
	} else {
		err = os.Link(tmpPath, dst) // fails if dst appeared meanwhile
		os.Remove(tmpPath)
		if errors.Is(err, os.ErrExist) {
			return dst, true, errors.Join(fmt.Errorf("%w: %s", ErrFileExists, dst), removeChunks())
		}
	}
	if err != nil {
		os.Remove(tmpPath)
		return dst, false, fmt.Errorf("connector: reassemble %s: %w", dst, err)
	}
	return dst, true, removeChunks()
}

// createTemp creates a new file in dir with mode 0666 (minus umask), as Python's open(, 'wb')
// would, under a name no one else uses.
func createTemp(dir, name string) (*os.File, string, error) {
	for try := 0; ; try++ {
		p := filepath.Join(dir, "."+name+".aioconn-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil || !errors.Is(err, os.ErrExist) || try == 10 {
			return f, p, err
		}
	}
}

// ---------------------------------------------------------------------------------------
// Owner

// ParseOwner parses an owner text "user:group" (with_file.owner, or file_recv_config's
// owner) and looks both names up: user name and group name, as Python's
// pwd.getpwnam/grp.getgrnam (numeric ids are names too, so "1000:1000" only works if such
// names exist). ok is false when the text has no ':' (Python: "Invalid file owner", ignored)
// or a name is unknown (Python: chown_file logs the exception and goes on); the caller then
// skips the chown. Python chowns without following symlinks: use os.Lchown.
func ParseOwner(owner string) (uid, gid int, ok bool) {
	u, g, found := strings.Cut(owner, ":")
	if !found {
		return 0, 0, false
	}
	pu, err := user.Lookup(u)
	if err != nil {
		return 0, 0, false
	}
	pg, err := user.LookupGroup(g)
	if err != nil {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(pu.Uid)
	gid, err2 := strconv.Atoi(pg.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uid, gid, true
}
