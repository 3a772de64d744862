package tls

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot walks up from the test's working directory to the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("go.mod not found above the test directory; cannot locate golden vectors")
		}
		dir = parent
	}
}

// sslDir is the captured ssl session (testdata/wire/ssl); skips when absent.
func sslDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(repoRoot(t), "..", "shared", "testdata", "wire", "ssl")
	if _, err := os.Stat(filepath.Join(d, "certificates")); err != nil {
		t.Skipf("golden certificates absent (%v)", err)
	}
	return d
}

// opensslHashSerial runs `openssl x509 -hash -serial -noout` (tests only); ok=false if openssl
// is not installed.
func opensslHashSerial(t testing.TB, pemPath string) (hash, serial string, ok bool) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		return "", "", false
	}
	out, err := exec.Command(bin, "x509", "-hash", "-serial", "-noout", "-in", pemPath).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 %s: %v\n%s", pemPath, err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "serial=") {
		t.Fatalf("openssl output %q", out)
	}
	return lines[0], strings.TrimPrefix(lines[1], "serial="), true
}

// fastTemplate is the default template with 1024-bit keys (tests that make many keys).
const fastTemplate = "\n[req]\nprompt = no\ndefault_bits = 1024\ndefault_md = sha256\ndistinguished_name = dn\n\n[ dn ]\nC = US\n"

// newTree creates a certificates tree in a temp dir, optionally with a pre-existing template.
func newTree(t testing.TB, template string) string {
	t.Helper()
	base := t.TempDir()
	if template != "" {
		p := NewPaths(base)
		if err := os.MkdirAll(p.ServerDir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p.TemplateConf, []byte(template), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateCertificates(base, nil); err != nil {
		t.Fatal(err)
	}
	return base
}
