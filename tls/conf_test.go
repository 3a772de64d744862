package tls

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

const tmplHead = "\n[req]\nprompt = no\ndefault_bits = 2048\ndefault_md = sha256\ndistinguished_name = dn\n\n[ dn ]\n"

// confCases: templates a user might write; the subject we build must be the DER `openssl req`
// builds from the same file.
var confCases = []struct {
	name, text string
	ok         bool
}{
	{"default", DefaultTemplate + "O = company\n", true},
	{"extra fields", tmplHead + "C = FR\nST = Ile de France\nL = Paris\nOU = R&D\nCN = broker.example\nO = 1234\n", true},
	{"prefixed repeats", tmplHead + "C = US\n0.OU = one\n1.OU = two\nO = x\n", true},
	{"multi-valued", tmplHead + "C = US\nCN = a\n+OU = b\nO = x\n", true},
	{"email and long names", tmplHead + "countryName = DE\norganizationalUnitName = unit\nemailAddress = a@b.c\nO = x\n", true},
	{"latin1 input", tmplHead + "C = US\nL = Zürich\nO = x\n", true},
	{"utf8 = yes", "\n[req]\nprompt = no\nutf8 = yes\ndistinguished_name = dn\n[ dn ]\nC = US\nL = Zürich\nO = x\n", true},
	{"comments and spaces", "# c\n[ req ]\n  prompt=no # inline\ndistinguished_name=my_dn\n[my_dn]\nC=US\nO  =  spaced   value  \n", true},
	{"no trailing newline", DefaultTemplate[:len(DefaultTemplate)-1] + "O = x\n", false}, // "C = USO = x"
	{"prompt yes", "[req]\nprompt = yes\ndistinguished_name = dn\n[dn]\nC = US\n", false},
	{"no dn section", "[req]\nprompt = no\ndistinguished_name = nope\n[dn]\nC = US\n", false},
	{"unknown field", tmplHead + "C = US\nXYZ = 1\n", false},
	{"C too long", tmplHead + "C = USA\n", false},
	{"missing equal", tmplHead + "C = US\ngarbage\n", false},
}

func TestParseConf(t *testing.T) {
	haveSSL := false
	if _, err := exec.LookPath("openssl"); err == nil {
		haveSSL = true
	}
	dir := t.TempDir()
	for _, tc := range confCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConf([]byte(tc.text))
			if !tc.ok {
				if err == nil || !errors.Is(err, ErrConf) {
					t.Fatalf("ParseConf: %v, want ErrConf", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			subj, err := c.MarshalSubject()
			if err != nil {
				t.Fatal(err)
			}
			if !haveSSL {
				return
			}
			cp := filepath.Join(dir, "c.conf")
			os.WriteFile(cp, []byte(tc.text), 0o644)
			out, err := exec.Command("openssl", "req", "-new", "-newkey", "rsa:1024", "-nodes", "-x509", "-days", "1",
				"-keyout", filepath.Join(dir, "k"), "-out", filepath.Join(dir, "c.pem"), "-config", cp).CombinedOutput()
			if err != nil {
				t.Fatalf("openssl req: %v\n%s", err, out)
			}
			data, _ := os.ReadFile(filepath.Join(dir, "c.pem"))
			certs, err := ParseCertsPEM(data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(subj, certs[0].RawSubject) {
				t.Errorf("subject\n ours    %x\n openssl %x", subj, certs[0].RawSubject)
			}
		})
	}
}

func TestBuildConf(t *testing.T) {
	got := BuildConf([]byte(DefaultTemplate), "52901295")
	if string(got) != DefaultTemplate+"O = 52901295\n" {
		t.Errorf("%q", got)
	}
}
