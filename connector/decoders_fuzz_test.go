package connector

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aioconn/aioconn/codec"
)

// FuzzChunkInfo feeds arbitrary with_file objects (and arbitrary with_file.chunked values) to
// ChunkInfo: it must never panic; an accepted chunk has 1 <= Index <= Total and a Basename ending
// in ChunkIndicator; every error wraps ErrBadChunk.
func FuzzChunkInfo(f *testing.F) {
	for _, s := range []string{
		// TestChunkInfo cases (whole with_file objects).
		`{"dst_name": "a__aioconnectors_chunk_2_13", "chunked": ["a__aioconnectors_chunk", 2, 13]}`,
		`{"chunked": ["d/x.bin__aioconnectors_chunk", 1, 1]}`,
		`{}`, `{"chunked": null}`, `{"chunked": []}`, `{"chunked": false}`, `{"chunked": ""}`,
		`{"chunked": ["a__aioconnectors_chunk", 2]}`, `{"chunked": ["a__aioconnectors_chunk", "2", 3]}`,
		`{"chunked": ["a", 1, 3]}`, `{"chunked": [1, 1, 3]}`, `{"chunked": ["a__aioconnectors_chunk", 4, 3]}`,
		`{"chunked": ["a__aioconnectors_chunk", 0, 3]}`, `{"chunked": ["a__aioconnectors_chunk", 1.0, 3]}`,
		`{"chunked": "x"}`, `{"chunked": ["__aioconnectors_chunk", 1, 1]}`, `not json`,
		// Bare chunked values (also tried wrapped as {"chunked": <value>}).
		`[1,2]`, `["x__aioconnectors_chunk", 1e0, 2]`,
		`["x__aioconnectors_chunk", 9223372036854775808, 9223372036854775808]`,
		`["x__aioconnectors_chunk", 1, 9223372036854775808]`,
		`["x__aioconnectors_chunk", 9223372036854775807, 9223372036854775807]`,
		`["x__aioconnectors_chunk", -1, 2]`, `["x\u005f_aioconnectors_chunk", 1, 2]`,
		`["x__aioconnectors_chunk", 1, 2, 3]`, `["x__aioconnectors_chunk", 01, 2]`, `["x__aioconnectors_chunk", +1, 2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(wf []byte) {
			c, ok, err := ChunkInfo(wf)
			if ok {
				if err != nil {
					t.Fatalf("%q: ok with error %v", wf, err)
				}
				if c.Index < 1 || c.Index > c.Total {
					t.Fatalf("%q: accepted index %d total %d", wf, c.Index, c.Total)
				}
				if !strings.HasSuffix(c.Basename, ChunkIndicator) || c.Basename == ChunkIndicator {
					t.Fatalf("%q: accepted basename %q", wf, c.Basename)
				}
				if fn := c.FileName(); !strings.HasPrefix(fn, c.Basename+"_") ||
					c.DstName()+ChunkIndicator != c.Basename {
					t.Fatalf("%q: names %q %q", wf, fn, c.DstName())
				}
				return
			}
			if c != (Chunk{}) {
				t.Fatalf("%q: not ok but chunk %+v", wf, c)
			}
			if err != nil && !errors.Is(err, ErrBadChunk) {
				t.Fatalf("%q: error %v does not wrap ErrBadChunk", wf, err)
			}
		}
		check(b)
		w := append([]byte(`{"chunked": `), b...)
		check(append(w, '}'))
	})
}

// pyKeyOracle is the Python dict-key identity of the value json.loads makes of raw: numbers
// (bool included) as exact big.Float values (ints exact, floats rounded to float64 as Python's
// float() does, overflowing to ±inf), strings decoded, None. ok is false for unhashable values
// (list, dict); skip is true when Python and encoding/json decode a string differently (lone
// surrogate escapes and invalid UTF-8, documented in codec.Value.Str).
func pyKeyOracle(v codec.Value) (kind byte, num *big.Float, str string, ok, skip bool) {
	switch v.Kind {
	case codec.KindTrue:
		return 'n', big.NewFloat(1), "", true, false
	case codec.KindFalse:
		return 'n', big.NewFloat(0), "", true, false
	case codec.KindNull:
		return 'z', nil, "", true, false
	case codec.KindString:
		raw := string(v.Raw)
		if !utf8.ValidString(raw) {
			return 0, nil, "", false, true
		}
		for i := 0; i+5 < len(raw); i++ {
			if raw[i] == '\\' {
				if raw[i+1] == 'u' && (raw[i+2] == 'd' || raw[i+2] == 'D') && strings.ContainsRune("89abcdefABCDEF", rune(raw[i+3])) {
					return 0, nil, "", false, true
				}
				i++ // skip the escaped character (so `\\u` is not an escape)
			}
		}
		s, err := strconv.Unquote(raw)
		if err != nil { // JSON escapes Go's Unquote lacks (\/): use the codec's decoding
			s, _ = v.Str()
		}
		return 's', nil, s, true, false
	case codec.KindNumber:
		raw := string(v.Raw)
		if !strings.ContainsAny(raw, ".eE") {
			i, good := new(big.Int).SetString(raw, 10)
			if !good {
				return 0, nil, "", false, true
			}
			return 'n', new(big.Float).SetInt(i), "", true, false
		}
		fl, err := strconv.ParseFloat(raw, 64)
		if err != nil && !math.IsInf(fl, 0) {
			return 0, nil, "", false, true
		}
		return 'n', new(big.Float).SetFloat64(fl), "", true, false
	}
	return 0, nil, "", false, false
}

// FuzzPyKey: two JSON values get the same pyKey exactly when Python treats the objects
// json.loads makes of them as the same dict key (1 == 1.0 == 1e0 == true, 1e20 ==
// 100000000000000000000, "1" != 1); every hashable value gets a key, lists and dicts none.
func FuzzPyKey(f *testing.F) {
	for _, p := range [][2]string{
		{`1`, `1.0`}, {`1`, `true`}, {`1e0`, `1`}, {`0`, `false`}, {`"1"`, `1`}, {`null`, `0`},
		{`1e20`, `100000000000000000000`},
		{`9223372036854775808`, `9.223372036854775808e18`},
		{`9223372036854775807`, `9.223372036854775807e18`},
		{`-9223372036854775808`, `-9.223372036854775808e18`},
		{`-0`, `0.0`}, {`-0.0`, `0`}, {`0e5`, `-0`},
		{`1e400`, `1e500`}, {`-1e400`, `1e400`}, {`1e-400`, `0`},
		{`100000000000000000001`, `1e20`}, {`0.5`, `5e-1`}, {`1.0000000000000000001`, `1`},
		{`"a"`, `"\u0061"`}, {`"\/"`, `"/"`}, {`[]`, `{}`}, {`[1]`, `[1]`},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, err := codec.Lookup([]byte(`{"k": `+a+`}`), "k")
		if err != nil || !va.Present() {
			return
		}
		vb, err := codec.Lookup([]byte(`{"k": `+b+`}`), "k")
		if err != nil || !vb.Present() {
			return
		}
		ka, oka := pyKey(va)
		kb, okb := pyKey(vb)
		kindA, numA, strA, hashA, skipA := pyKeyOracle(va)
		kindB, numB, strB, hashB, skipB := pyKeyOracle(vb)
		if skipA || skipB {
			return
		}
		if oka != hashA {
			t.Fatalf("pyKey(%s) ok=%v, Python hashable=%v", va.Raw, oka, hashA)
		}
		if okb != hashB {
			t.Fatalf("pyKey(%s) ok=%v, Python hashable=%v", vb.Raw, okb, hashB)
		}
		if !oka || !okb {
			return
		}
		pyEq := kindA == kindB
		if pyEq {
			switch kindA {
			case 'n':
				pyEq = numA.Cmp(numB) == 0
			case 's':
				pyEq = strA == strB
			}
		}
		if (ka == kb) != pyEq {
			t.Fatalf("pyKey(%s)=%q, pyKey(%s)=%q; Python equal keys: %v", va.Raw, ka, vb.Raw, kb, pyEq)
		}
	})
}
