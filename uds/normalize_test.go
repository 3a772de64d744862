package uds

import (
	"os"
	"testing"
)

// Expected values from CPython 3.11.7 os.path.abspath(normpath(expandvars(expanduser(p))))
// with HOME=/home/tester FOO=bar EMPTY= PATHX=/opt/x, nothing else set, cwd /usr.
func TestNormalizeDir(t *testing.T) {
	t.Setenv("HOME", "/home/tester")
	t.Setenv("FOO", "bar")
	t.Setenv("EMPTY", "")
	t.Setenv("PATHX", "/opt/x")
	for _, k := range []string{"NOPE", "NOPE2", "FOO_x", "1"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Chdir("/usr")
	cases := []struct{ in, want string }{
		{"/tmp/aioconnectors", "/tmp/aioconnectors"},
		{"~/aioconnectors_tmp", "/home/tester/aioconnectors_tmp"},
		{"~", "/home/tester"},
		{"~/", "/home/tester"},
		{"~root/x", "/root/x"},
		{"~nosuchuser_zz/x", "/usr/~nosuchuser_zz/x"},
		{"$HOME/a", "/home/tester/a"},
		{"${HOME}/b", "/home/tester/b"},
		{"$FOO/$NOPE/${NOPE2}/c", "/usr/bar/$NOPE/${NOPE2}/c"},
		{"$EMPTY/d", "/d"},
		{"${}/e", "/usr/${}/e"},
		{"${FOO", "/usr/${FOO"},
		{"$/f", "/usr/$/f"},
		{"$$FOO", "/usr/$bar"},
		{"a/$FOO$FOO/b", "/usr/a/barbar/b"},
		{"$FOO_x", "/usr/$FOO_x"},
		{"${FOO}_x", "/usr/bar_x"},
		{"relative/dir", "/usr/relative/dir"},
		{"./x/../y", "/usr/y"},
		{"..", "/"},
		{"", "/usr"},
		{"/", "/"},
		{"//a//b/", "//a/b"},
		{"///a", "/a"},
		{"/a/./b/../../..", "/"},
		{"a/../../b", "/b"},
		{"$PATHX/../y", "/opt/y"},
		{"$1/x", "/usr/$1/x"},
		{"/tmp/$FOO-${FOO}", "/tmp/bar-bar"},
	}
	for _, c := range cases {
		if c.in == "~root/x" {
			if _, err := os.Stat("/root"); err != nil {
				continue // user database without root's home: skip
			}
		}
		if got := NormalizeDir(c.in); got != c.want {
			t.Errorf("NormalizeDir(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// HOME with a trailing slash (Python strips it) and plain normpath cases; expected values from
// CPython 3.11.7, cwd /usr, HOME=/home/u/.
func TestNormalizeDirHomeSlash(t *testing.T) {
	t.Setenv("HOME", "/home/u/")
	t.Chdir("/usr")
	for in, want := range map[string]string{
		"~/d":               "/home/u/d",
		"~":                 "/home/u",
		"/tmp//a/./b/../c/": "/tmp/a/c",
		"/..":               "/",
		"/a/$":              "/a/$",
		"//tmp/x":           "//tmp/x",
	} {
		if got := NormalizeDir(in); got != want {
			t.Errorf("NormalizeDir(%q) = %q, want %q", in, got, want)
		}
	}
}

// Expected values from CPython 3.11.7 os.path.normpath.
func TestNormpath(t *testing.T) {
	for in, want := range map[string]string{
		"": ".", ".": ".", "./": ".", "a/..": ".", "../a/../..": "../..", "a/../../b/..": "..",
		"//a//b/": "//a/b", "///a/./b": "/a/b", "a//b/./c/": "a/b/c", "/a/b/../../..": "/",
	} {
		if got := Normpath(in); got != want {
			t.Errorf("Normpath(%q) = %q, want %q", in, got, want)
		}
	}
}
