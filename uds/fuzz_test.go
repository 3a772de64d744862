package uds

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Names and directory normalisation must never panic, keep only alnum characters and be
// idempotent where Python's are.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"('127.0.0.1', 10673)", "my client-2", "x\u2082y", "a\x1cb", "", "$FOO/${X}/~/..", "\xff\xfe", "~nouser/$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := Alnum(s)
		if Alnum(a) != a || !utf8.ValidString(a) {
			t.Fatalf("Alnum(%q) = %q not a fixed point", s, a)
		}
		for _, r := range a {
			if !isAlnum(r) {
				t.Fatalf("Alnum(%q) kept %q", s, r)
			}
		}
		srv := AlnumSourceID(true, s)
		if strings.ReplaceAll(srv, "_", "") != a {
			t.Fatalf("server %q vs alnum %q", srv, a)
		}
		d := NormalizeDir(s)
		if !strings.HasPrefix(d, "/") || Normpath(d) != d {
			t.Fatalf("NormalizeDir(%q) = %q", s, d)
		}
		p, err := NewPaths("/tmp/aioconnectors", true, s, []string{s})
		if err == nil && (CheckLen(p.Commander) != nil || CheckLen(p.Receive[s]) != nil) {
			t.Fatalf("NewPaths accepted a long path for %q", s)
		}
	})
}
