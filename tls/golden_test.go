package tls

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

type certInfo struct{ serial, hash string }

// parseCertInfo reads cert_info.txt: "===== <path>" sections, each with "serial=<S>" followed
// by the subject-hash line.
func parseCertInfo(t *testing.T, path string) map[string]certInfo {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]certInfo{}
	cur := ""
	sc := bufio.NewScanner(f)
	var lastSerial string
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "===== "):
			cur = strings.TrimPrefix(l, "===== ")
		case strings.HasPrefix(l, "serial="):
			lastSerial = strings.TrimPrefix(l, "serial=")
		case lastSerial != "":
			out[cur] = certInfo{lastSerial, l}
			lastSerial = ""
		}
	}
	return out
}

func TestGoldenCertInfo(t *testing.T) {
	d := sslDir(t)
	info := parseCertInfo(t, filepath.Join(d, "cert_info.txt"))
	if len(info) != 6 {
		t.Fatalf("cert_info.txt: %d certificates, want 6", len(info))
	}
	for rel, want := range info {
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(d, "certificates", rel))
			if err != nil {
				t.Fatal(err)
			}
			certs, err := ParseCertsPEM(data)
			if err != nil {
				t.Fatal(err)
			}
			c := certs[0]
			if c.Version != 1 {
				t.Errorf("version %d, want 1 (X.509 v1)", c.Version)
			}
			if got := SerialString(c.SerialNumber); got != want.serial {
				t.Errorf("SerialString = %s, want %s", got, want.serial)
			}
			h, err := SubjectHash(c)
			if err != nil || h != want.hash {
				t.Errorf("SubjectHash = %s, %v; want %s", h, err, want.hash)
			}
		})
	}
}

// Every captured symlink is named after the subject hash of its target. (The capture stores
// each link as a small file holding its target; the test rebuilds real links in a temp dir and
// checks that VerifyClientCert reaches the certificates through them.)
func TestGoldenSymlinkNames(t *testing.T) {
	cc := filepath.Join(sslDir(t), "certificates", "server", "client-certs")
	d := filepath.Join(cc, "symlinks")
	ents, err := os.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Fatalf("%d links", len(ents))
	}
	tmp := t.TempDir()
	links := filepath.Join(tmp, "symlinks")
	if err := os.Mkdir(links, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(d, e.Name()))
		if err != nil { // stored as a file holding the target
			b, rerr := os.ReadFile(filepath.Join(d, e.Name()))
			if rerr != nil {
				t.Fatal(rerr)
			}
			target = strings.TrimSpace(string(b))
		}
		if !strings.HasPrefix(target, "../") {
			t.Fatalf("link %s -> %q", e.Name(), target)
		}
		data, err := os.ReadFile(filepath.Join(cc, target[3:]))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := ParseCertsPEM(data)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := SubjectHash(certs[0])
		if h+".0" != e.Name() {
			t.Errorf("link %s -> %s: subject hash %s", e.Name(), target, h)
		}
		if err := os.WriteFile(filepath.Join(tmp, target[3:]), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(links, e.Name())); err != nil {
			t.Fatal(err)
		}
		if err := VerifyClientCert(links, [][]byte{certs[0].Raw}, certs[0].NotBefore); err != nil {
			t.Errorf("VerifyClientCert(%s): %v", e.Name(), err)
		}
	}
}

func TestGoldenSourceIDMapBytes(t *testing.T) {
	path := filepath.Join(sslDir(t), "certificates", "server", "client-certs", "source_id_2_cert.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseSourceIDMap(data)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := m.Serial("client1"); s != "47AE5E40784ABD1765B0C845C91269B8E3C73EE5" {
		t.Errorf("client1 serial %q", s)
	}
	if n, _ := m.Name("47AE5E40784ABD1765B0C845C91269B8E3C73EE5"); n != "client1" {
		t.Errorf("name %q", n)
	}
	if got := m.AppendJSON(nil); !bytes.Equal(got, data) {
		t.Errorf("re-encoded\n%s\nwant\n%s", got, data)
	}
	// and a fresh map built the way the server builds it encodes to the same bytes
	var fresh SourceIDMap
	fresh.Set("client1", "47AE5E40784ABD1765B0C845C91269B8E3C73EE5")
	if got := fresh.AppendJSON(nil); !bytes.Equal(got, data) {
		t.Errorf("fresh map\n%s\nwant\n%s", got, data)
	}
}

// The captured template is DefaultTemplate byte for byte, and the captured csr_details.conf
// (template + O line) gives exactly the subject DER OpenSSL wrote into client1.pem.
func TestGoldenConfSubject(t *testing.T) {
	d := filepath.Join(sslDir(t), "certificates")
	tmpl, err := os.ReadFile(filepath.Join(d, "server", "csr_details_template.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if string(tmpl) != DefaultTemplate {
		t.Errorf("template %q, want %q", tmpl, DefaultTemplate)
	}
	conf, err := os.ReadFile(filepath.Join(d, "server", "csr_details.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if want := BuildConf(tmpl, "2f43248458f04fe3948b16bae2012636"); !bytes.Equal(conf, want) {
		t.Errorf("csr_details.conf %q, BuildConf %q", conf, want)
	}
	c, err := ParseConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := c.MarshalSubject()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(d, "server", "client-certs", "client1.pem"))
	certs, err := ParseCertsPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(subj, certs[0].RawSubject) {
		t.Errorf("subject DER %x, OpenSSL wrote %x", subj, certs[0].RawSubject)
	}
	if c.Bits != 2048 || c.MD != "sha256" {
		t.Errorf("conf %+v", c)
	}
}

// The captured tree before enrolment, as listed by cert_tree_before.txt, is what
// CreateCertificates makes: same paths, kinds and permission bits (sizes differ with serials).
func TestGoldenTreeLayout(t *testing.T) {
	d := sslDir(t)
	want := readTreeListing(t, filepath.Join(d, "cert_tree_before.txt"))
	base := newTree(t, "")
	got := listTree(t, base)
	if m := syscall.Umask(0o022); m != 0o022 { // modes of non-key files follow the umask
		syscall.Umask(m)
		t.Skipf("umask %03o: the capture was made with 022", m)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// readTreeListing keeps "<mode> <path> [-> target]" of each line, minus symlink hash names.
func readTreeListing(t *testing.T, path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		entry := f[0] + " " + hideHash(f[2])
		if len(f) == 5 {
			entry += " -> " + f[4]
		}
		out = append(out, entry)
	}
	return out
}

func hideHash(p string) string {
	if i := strings.Index(p, "/symlinks/"); i >= 0 {
		return p[:i] + "/symlinks/<hash>" + filepath.Ext(p)
	}
	return p
}

func listTree(t *testing.T, base string) []string {
	var out []string
	err := filepath.Walk(base, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, path)
		rel = "./" + rel
		if rel == "./." {
			rel = "."
		}
		entry := fi.Mode().String()
		if fi.Mode()&os.ModeSymlink != 0 {
			entry = "lrwxrwxrwx"
		}
		entry = strings.Replace(entry, "d", "d", 1) + " " + hideHash(rel)
		if fi.Mode()&os.ModeSymlink != 0 {
			dst, _ := os.Readlink(path)
			entry += " -> " + dst
		}
		out = append(out, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
