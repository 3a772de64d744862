package tls

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSerialString(t *testing.T) {
	for _, tc := range []struct {
		hex  string // big-endian magnitude; "" = zero
		neg  bool
		want string
	}{
		{"", false, "00"},
		{"01", false, "01"},
		{"0f3a", false, "0F3A"},
		{"80", false, "80"},
		{"ff", false, "FF"},
		{"0100", false, "0100"},
		{"0611ecf2844a68a36bd4665be77ff8b87cf902", false, "0611ECF2844A68A36BD4665BE77FF8B87CF902"},
		{"47ae5e40784abd1765b0c845c91269b8e3c73ee5", false, "47AE5E40784ABD1765B0C845C91269B8E3C73EE5"},
		{"05", true, "-05"},
	} {
		n, _ := new(big.Int).SetString(tc.hex, 16)
		if n == nil {
			n = new(big.Int)
		}
		if tc.neg {
			n.Neg(n)
		}
		if got := SerialString(n); got != tc.want {
			t.Errorf("SerialString(%s) = %s, want %s", tc.hex, got, tc.want)
		}
	}
	if SerialString(nil) != "00" {
		t.Error("nil")
	}
}

// Generated certificates: X.509 v1, no extensions, the right subject/validity/serial shape,
// a valid self-signature, PKCS#8 key; and OpenSSL agrees on hash and serial text.
func TestGenerateSelfSigned(t *testing.T) {
	conf, err := ParseConf(BuildConf([]byte(DefaultTemplate), "company"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 16, 6, 53, 123, time.UTC)
	g, err := GenerateSelfSigned(conf, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := g.Cert
	if c.Version != 1 || len(c.Extensions) != 0 {
		t.Errorf("version %d, %d extensions", c.Version, len(c.Extensions))
	}
	if c.Subject.String() != "O=company,C=US" || !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Errorf("subject %s issuer %s", c.Subject, c.Issuer)
	}
	if !c.NotBefore.Equal(now.Truncate(time.Second)) || c.NotAfter.Sub(c.NotBefore) != 3650*24*time.Hour {
		t.Errorf("validity %s .. %s", c.NotBefore, c.NotAfter)
	}
	if c.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("sig alg %s", c.SignatureAlgorithm)
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("self-signature: %v", err)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 159 {
		t.Errorf("serial %x", c.SerialNumber)
	}
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Errorf("public key %T", c.PublicKey)
	}
	b, _ := pem.Decode(g.KeyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM %q", g.KeyPEM[:30])
	}
	if _, err := x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
		t.Error(err)
	}
	// same DER layout as the captured OpenSSL certificate of the same subject
	if d := sslDirOrEmpty(); d != "" {
		data, _ := os.ReadFile(filepath.Join(d, "certificates", "server", "server-cert", "server.pem"))
		if certs, err := ParseCertsPEM(data); err == nil {
			if !bytes.Equal(certs[0].RawSubject, c.RawSubject) {
				t.Errorf("subject DER %x, OpenSSL %x", c.RawSubject, certs[0].RawSubject)
			}
			if certs[0].SerialNumber.BitLen() > 152 && c.SerialNumber.BitLen() > 152 && len(certs[0].Raw) != len(c.Raw) {
				t.Errorf("DER length %d, OpenSSL %d", len(c.Raw), len(certs[0].Raw))
			}
		}
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed: no cross-check")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "c.pem")
	os.WriteFile(p, g.CertPEM, 0o644)
	hash, serial, _ := opensslHashSerial(t, p)
	if hash != g.Hash || serial != g.Serial {
		t.Errorf("openssl: hash %s serial %s; ours %s %s", hash, serial, g.Hash, g.Serial)
	}
	out, err := exec.Command("openssl", "x509", "-text", "-noout", "-in", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Version: 1 (0x0)") || strings.Contains(string(out), "X509v3") {
		t.Errorf("openssl x509 -text: %v\n%s", err, out)
	}
	// OpenSSL accepts it as a trust anchor for itself (CAfile and capath)
	os.WriteFile(filepath.Join(dir, g.Hash+".0"), g.CertPEM, 0o644)
	for _, args := range [][]string{{"-CAfile", p}, {"-CApath", dir}} {
		a := append([]string{"verify"}, args...)
		a = append(a, p)
		if out, err := exec.Command("openssl", a...).CombinedOutput(); err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("openssl %v: %v\n%s", a, err, out)
		}
	}
}

func sslDirOrEmpty() string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "testdata", "wire", "ssl")
			if _, err := os.Stat(d); err == nil {
				return d
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// rawName builds a DER Name from RDNs of (oid, tag, value) attributes.
type attr struct {
	oid asn1.ObjectIdentifier
	tag int
	val []byte
}

func rawName(t testing.TB, rdns ...[]attr) []byte {
	type atv struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	var seq []asn1.RawValue
	for _, r := range rdns {
		var set []atv
		for _, a := range r {
			set = append(set, atv{a.oid, asn1.RawValue{Class: asn1.ClassUniversal, Tag: a.tag, Bytes: a.val}})
		}
		b, err := asn1.MarshalWithParams(set, "set")
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, asn1.RawValue{FullBytes: b})
	}
	b, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	oC  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oCN = asn1.ObjectIdentifier{2, 5, 4, 3}
	oOU = asn1.ObjectIdentifier{2, 5, 4, 11}
	oE  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oSN = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// nameCases are subjects exercising every canonicalisation rule.
var nameCases = []struct {
	name string
	rdns [][]attr
}{
	{"C=US,O=company", [][]attr{{{oC, tagPrintable, []byte("US")}}, {{oO, tagUTF8, []byte("company")}}}},
	{"printable O", [][]attr{{{oC, tagPrintable, []byte("US")}}, {{oO, tagPrintable, []byte("company")}}}},
	{"case and spaces", [][]attr{{{oO, tagUTF8, []byte("  Big \t\n  Company   Inc ")}}}},
	{"all spaces", [][]attr{{{oO, tagUTF8, []byte("   ")}}}},
	{"utf8 non-ascii", [][]attr{{{oO, tagUTF8, []byte("Société  ÉLAN")}}}},
	{"t61 latin1", [][]attr{{{oO, tagT61, []byte{'C', 0xe9, 'A'}}}}},
	{"ia5 email", [][]attr{{{oE, tagIA5, []byte("Bob@Example.COM")}}}},
	{"bmp", [][]attr{{{oCN, tagBMP, []byte{0, 'A', 0, ' ', 0, ' ', 0x00, 0xe9, 0x4e, 0x2d}}}}},
	{"universal", [][]attr{{{oCN, tagUniversal, []byte{0, 0, 0, 'X', 0, 1, 0xf6, 0x00}}}}},
	{"numeric kept", [][]attr{{{oSN, 18, []byte("0012 34")}}}},
	{"multi-valued", [][]attr{{{oOU, tagUTF8, []byte("Zed")}, {oCN, tagUTF8, []byte("alpha")}, {oO, tagPrintable, []byte("B")}}}},
	{"many rdns", [][]attr{{{oC, tagPrintable, []byte("FR")}}, {{oO, tagUTF8, []byte("x")}}, {{oOU, tagUTF8, []byte("Y  y")}}, {{oCN, tagUTF8, []byte("Z")}}}},
	{"empty", nil},
}

// Subject hashes of crafted names agree with `openssl x509 -hash`.
func TestNameHashVsOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawName(t, tc.rdns...)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), RawSubject: raw,
				NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "n.pem")
			os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
			want, serial, _ := opensslHashSerial(t, p)
			h, err := NameHash(raw)
			if got := fmt.Sprintf("%08x", h); err != nil || got != want {
				t.Errorf("NameHash = %s, %v; openssl %s", got, err, want)
			}
			if s := SerialString(tmpl.SerialNumber); s != serial {
				t.Errorf("serial %s, openssl %s", s, serial)
			}
		})
	}
}

// Many generated certificates: hash and serial text agree with OpenSSL (covers serials with a
// leading zero nibble and 19-byte serials over enough samples).
func TestGeneratedHashesVsOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	conf, err := ParseConf([]byte(fastTemplate + "O = x\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := 24
	if testing.Short() {
		n = 4
	}
	for i := 0; i < n; i++ {
		org, _ := uuid4Hex()
		conf.Subject[len(conf.Subject)-1].Value = org
		g, err := GenerateSelfSigned(conf, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "g.pem")
		os.WriteFile(p, g.CertPEM, 0o644)
		h, s, _ := opensslHashSerial(t, p)
		if h != g.Hash || s != g.Serial {
			t.Fatalf("cert %d: openssl %s %s, ours %s %s", i, h, s, g.Hash, g.Serial)
		}
	}
}

func TestCanonicalNameErrors(t *testing.T) {
	for _, in := range [][]byte{
		nil, {0x30}, {0x31, 0x00}, {0x30, 0x02, 0x30, 0x00},
		{0x30, 0x04, 0x31, 0x02, 0x31, 0x00},
		rawName(t, []attr{{oO, tagUTF8, []byte{0xff, 0xfe}}}),
		rawName(t, []attr{{oO, tagBMP, []byte{0, 'a', 0}}}),
		rawName(t, []attr{{oO, tagBMP, []byte{0xd8, 0x00}}}),
		rawName(t, []attr{{oO, tagUniversal, []byte{0x7f, 0, 0, 0}}}),
	} {
		if _, err := CanonicalName(in); err == nil {
			t.Errorf("CanonicalName(%x): no error", in)
		}
	}
	// an empty RDN vanishes
	if c, err := CanonicalName([]byte{0x30, 0x02, 0x31, 0x00}); err != nil || len(c) != 0 {
		t.Errorf("empty RDN: %x %v", c, err)
	}
}
