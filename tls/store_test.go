package tls

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestCreateCertificates(t *testing.T) {
	base := t.TempDir()
	var log bytes.Buffer
	if err := CreateCertificates(base, &log); err != nil {
		t.Fatal(err)
	}
	p := NewPaths(base)
	if got, want := log.String(), "Certificates will be created under directory : "+p.Base+"\nFinished create_certificates\n"; got != want {
		t.Errorf("log %q want %q", got, want)
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if string(read(p.TemplateConf)) != DefaultTemplate {
		t.Error("template")
	}
	if !bytes.Equal(read(p.ServerPEM), read(p.ClientServerCRT)) || !bytes.Equal(read(p.ClientDefaultPEM), read(p.ServerDefaultPEM)) {
		t.Error("copies differ")
	}
	srv, _ := ParseCertsPEM(read(p.ServerPEM))
	def, _ := ParseCertsPEM(read(p.ClientDefaultPEM))
	if srv[0].Subject.String() != "O=company,C=US" {
		t.Errorf("server subject %s", srv[0].Subject)
	}
	org := def[0].Subject.Organization
	if len(org) != 1 || len(org[0]) > 8 || strings.Trim(org[0], "0123456789") != "" {
		t.Errorf("default subject %s", def[0].Subject)
	}
	if string(read(p.Conf)) != DefaultTemplate+"O = "+org[0]+"\n" {
		t.Errorf("csr_details.conf %q", read(p.Conf))
	}
	for _, k := range []string{p.ServerKey, p.ClientDefaultKey} {
		fi, err := os.Stat(k)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", k, fi.Mode(), err)
		}
		if !bytes.HasPrefix(read(k), []byte("-----BEGIN PRIVATE KEY-----\n")) {
			t.Errorf("%s not PKCS#8", k)
		}
	}
	h, _ := SubjectHash(def[0])
	link := filepath.Join(p.SymlinksDir, h+".0")
	if dst, err := os.Readlink(link); err != nil || dst != "../default.pem" {
		t.Errorf("link %s -> %q %v", link, dst, err)
	}
	if ents, _ := os.ReadDir(p.SymlinksDir); len(ents) != 1 {
		t.Errorf("symlinks: %v", ents)
	}
	if s, err := DefaultSerial(base); err != nil || s != SerialString(def[0].SerialNumber) || !IsDefaultCert(base, s) {
		t.Errorf("DefaultSerial %s %v", s, err)
	}

	// refusal: the tree is not empty now; the message is 1.0.33's, nothing is touched
	before := read(p.ServerPEM)
	log.Reset()
	err := CreateCertificates(base, &log)
	var ne *NotEmptyError
	if !errors.As(err, &ne) || !errors.Is(err, ErrNotEmpty) || ne.Dir != p.ServerCertDir {
		t.Fatalf("second run: %v", err)
	}
	if want := p.ServerCertDir + " should be empty before starting this process"; err.Error() != want || !strings.HasSuffix(log.String(), want+"\n") {
		t.Errorf("refusal %q, log %q", err, log.String())
	}
	if !bytes.Equal(before, read(p.ServerPEM)) {
		t.Error("server.pem overwritten")
	}
	// each of the three directories triggers the refusal on its own
	for _, dir := range []string{p.ServerClientDir, p.ClientDir} {
		b2 := t.TempDir()
		target := filepath.Join(b2, strings.TrimPrefix(dir, base))
		os.MkdirAll(target, 0o755)
		os.WriteFile(filepath.Join(target, "x"), nil, 0o644)
		err := CreateCertificates(b2, nil)
		if !errors.As(err, &ne) || ne.Dir != target {
			t.Errorf("%s: %v", target, err)
		}
	}
}

// A pre-existing template is honoured: its fields feed every subject, its bits the keys.
func TestCreateCertificatesTemplate(t *testing.T) {
	tmpl := "\n[req]\nprompt = no\ndefault_bits = 1024\ndefault_md = sha384\ndistinguished_name = dn\n\n[ dn ]\nC = FR\nST = Paris\n"
	base := t.TempDir()
	p := NewPaths(base)
	os.MkdirAll(p.ServerDir, 0o755)
	os.WriteFile(p.TemplateConf, []byte(tmpl), 0o644)
	var log bytes.Buffer
	if err := CreateCertificates(base, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "\nUsing preexisting "+p.TemplateConf+"\n") {
		t.Errorf("log %q", log.String())
	}
	b, _ := os.ReadFile(p.ServerPEM)
	c, _ := ParseCertsPEM(b)
	if c[0].Subject.String() != "O=company,ST=Paris,C=FR" || c[0].SignatureAlgorithm.String() != "SHA384-RSA" {
		t.Errorf("subject %s alg %s", c[0].Subject, c[0].SignatureAlgorithm)
	}
	if b, _ := os.ReadFile(p.TemplateConf); string(b) != tmpl {
		t.Error("template rewritten")
	}
	// a broken template is an error, not a panic
	base2 := t.TempDir()
	p2 := NewPaths(base2)
	os.MkdirAll(p2.ServerDir, 0o755)
	os.WriteFile(p2.TemplateConf, []byte("[req]\n"), 0o644)
	if err := CreateCertificates(base2, nil); !errors.Is(err, ErrConf) {
		t.Errorf("broken template: %v", err)
	}
}

// checkTree verifies the invariants of a server tree against the map: every mapped name has a
// .pem whose serial is the mapped one, exactly one symlink reaching it (named after its hash,
// indexes contiguous from 0), and VerifyClientCert accepts it.
func checkTree(t *testing.T, s *ServerStore) {
	t.Helper()
	p := s.Paths()
	disk, err := ReadSourceIDMap(p.SourceIDMap)
	if err != nil {
		t.Fatal(err)
	}
	mem := s.Map()
	if !bytes.Equal(disk.AppendJSON(nil), mem.AppendJSON(nil)) {
		t.Fatalf("file and memory differ:\n%s\n%s", disk.AppendJSON(nil), mem.AppendJSON(nil))
	}
	links := map[string]string{} // target -> link name
	ents, _ := os.ReadDir(p.SymlinksDir)
	for _, e := range ents {
		dst, err := os.Readlink(filepath.Join(p.SymlinksDir, e.Name()))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if prev, dup := links[dst]; dup {
			t.Fatalf("two links to %s: %s %s", dst, prev, e.Name())
		}
		links[dst] = e.Name()
		h, i, ok := splitLink(e.Name())
		if !ok {
			t.Fatalf("bad link name %s", e.Name())
		}
		if i > 0 {
			if _, err := os.Lstat(filepath.Join(p.SymlinksDir, fmt.Sprintf("%s.%d", h, i-1))); err != nil {
				t.Fatalf("gap below %s", e.Name())
			}
		}
	}
	if len(links) != mem.Len()+1 {
		t.Fatalf("%d links for %d names + default", len(links), mem.Len())
	}
	for _, name := range mem.Names() {
		serial, _ := mem.Serial(name)
		if n, _ := mem.Name(serial); n != name {
			t.Fatalf("maps disagree on %s", name)
		}
		pemPath, keyPath := p.ServerClientCert(name)
		b, err := os.ReadFile(pemPath)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := ParseCertsPEM(b)
		if SerialString(c[0].SerialNumber) != serial {
			t.Fatalf("%s: serial %s, map %s", name, SerialString(c[0].SerialNumber), serial)
		}
		h, _ := SubjectHash(c[0])
		l := links["../"+name+".pem"]
		if !strings.HasPrefix(l, h+".") {
			t.Fatalf("%s: link %q, hash %s", name, l, h)
		}
		if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: key %v", name, err)
		}
		if err := VerifyClientCert(p.SymlinksDir, [][]byte{c[0].Raw}, c[0].NotBefore); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestIssue(t *testing.T) {
	base := newTree(t, fastTemplate)
	s, err := OpenServerStore(base)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := s.Issue("client1")
	if err != nil {
		t.Fatal(err)
	}
	p := s.Paths()
	if n, _ := s.NameOf(iss.Serial); n != "client1" {
		t.Errorf("NameOf %q", n)
	}
	if sr, _ := s.SerialOf("client1"); sr != iss.Serial || s.IsDefault(iss.Serial) || !s.IsDefault(s.DefaultSerial()) {
		t.Errorf("SerialOf %q", sr)
	}
	b, _ := os.ReadFile(p.Conf)
	c, _ := ParseCertsPEM(iss.CertPEM)
	org := c[0].Subject.Organization[0]
	if len(org) != 32 || org[12] != '4' || string(b) != fastTemplate+"O = "+org+"\n" {
		t.Errorf("O %q conf %q", org, b)
	}
	if filepath.Base(iss.Link) != iss.Hash+".0" {
		t.Errorf("link %s", iss.Link)
	}
	checkTree(t, s)
	// the same name again: refused with 1.0.33's text, nothing changes
	_, err = s.Issue("client1")
	if !errors.Is(err, ErrCertExists) || err.Error() != "A certificate already exists for client client1. Use delete_client_certificate to delete it" {
		t.Errorf("second issue: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "../server-cert/server", "x\x00"} {
		if _, err := s.Issue(bad); !errors.Is(err, ErrBadSourceID) {
			t.Errorf("Issue(%q): %v", bad, err)
		}
	}
	checkTree(t, s)
	// the store is shared per tree and reloads from disk on open
	s2, err := OpenServerStore(base)
	if err != nil || s2 != s {
		t.Errorf("OpenServerStore: %p %p %v", s2, s, err)
	}
}

// 50 first-time clients at once: all get distinct certificates, symlinks and map entries.
func TestIssuerConcurrent(t *testing.T) {
	base := newTree(t, fastTemplate)
	s, err := OpenServerStore(base)
	if err != nil {
		t.Fatal(err)
	}
	is := NewIssuer(s, 4, 64)
	defer is.Close()
	const n = 50
	var wg sync.WaitGroup
	serials := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			certPEM, keyPEM, err := is.Issue(fmt.Sprintf("client%02d", i))
			if err != nil {
				errs[i] = err
				return
			}
			c, err := ParseCertsPEM(certPEM)
			if err != nil || !bytes.HasPrefix(keyPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
				errs[i] = fmt.Errorf("bad PEM: %v", err)
				return
			}
			serials[i] = SerialString(c[0].SerialNumber)
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("client%02d: %v", i, errs[i])
		}
		if seen[serials[i]] {
			t.Fatalf("duplicate serial %s", serials[i])
		}
		seen[serials[i]] = true
	}
	m := s.Map()
	if m.Len() != n {
		t.Fatalf("map has %d names", m.Len())
	}
	checkTree(t, s)
	// concurrent requests for one name: exactly one wins
	var wins, exists int
	var mu sync.Mutex
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := is.Issue("same")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrCertExists):
				exists++
			default:
				t.Errorf("same: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || exists != 5 {
		t.Errorf("wins %d exists %d", wins, exists)
	}
	checkTree(t, s)
}

func TestIssuerQueueFullAndClose(t *testing.T) {
	base := newTree(t, fastTemplate)
	s := openStore(t, base)
	is := NewIssuer(s, 1, 1)
	started, release := make(chan struct{}), make(chan struct{})
	results := make(chan error, 3)
	if err := is.Submit("a", func(_ *Issued, err error) { close(started); <-release; results <- err }); err != nil {
		t.Fatal(err)
	}
	<-started // the only worker is busy in a's callback, the queue is empty
	if err := is.Submit("b", func(_ *Issued, err error) { results <- err }); err != nil {
		t.Fatal(err)
	}
	if err := is.Submit("c", func(*Issued, error) { t.Error("c ran") }); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third submit: %v", err)
	}
	close(release)
	if err := <-results; err != nil {
		t.Error(err)
	}
	if err := <-results; err != nil {
		t.Error(err)
	}
	is.Close()
	is.Close()
	if err := is.Submit("d", func(*Issued, error) {}); !errors.Is(err, ErrIssuerClosed) {
		t.Errorf("after close: %v", err)
	}
	if _, _, err := is.Issue("d"); !errors.Is(err, ErrIssuerClosed) {
		t.Errorf("Issue after close: %v", err)
	}
	// queued jobs fail with ErrIssuerClosed on Close
	is2 := NewIssuer(s, 1, 4)
	started2, release2 := make(chan struct{}), make(chan struct{})
	is2.Submit("e", func(*Issued, error) { close(started2); <-release2 })
	<-started2
	got := make(chan error, 1)
	is2.Submit("f", func(_ *Issued, err error) { got <- err })
	go func() { is2.Close() }()
	for !is2.closed.Load() { // Close has flagged the issuer before the worker gets to "f"
		runtime.Gosched()
	}
	close(release2)
	if err := <-got; !errors.Is(err, ErrIssuerClosed) {
		t.Errorf("queued job at close: %v", err)
	}
}

func TestDeleteOnServer(t *testing.T) {
	base := newTree(t, fastTemplate)
	s := openStore(t, base)
	p := s.Paths()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.Issue(n); err != nil {
			t.Fatal(err)
		}
	}
	ok, msg := DeleteClientCertificateOnServer(base, "b", false)
	if !ok || msg != "" {
		t.Fatalf("delete b: %v %q", ok, msg)
	}
	pemPath, keyPath := p.ServerClientCert("b")
	if _, err := os.Stat(pemPath); !errors.Is(err, fs.ErrNotExist) {
		t.Error("b.pem kept")
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, fs.ErrNotExist) {
		t.Error("b.key kept")
	}
	checkTree(t, s)
	// remove_only_symlink keeps the files
	if ok, msg := s.Delete("c", true); !ok || msg != "" {
		t.Fatalf("delete c: %v %q", ok, msg)
	}
	if pemPath, _ := p.ServerClientCert("c"); !fileExists(pemPath) {
		t.Error("c.pem removed")
	}
	checkTree(t, s)
	// unknown name: 1.0.33's message
	ok, msg = s.Delete("zz", false)
	if ok || msg != "remove_client_cert non existing client in source_id_2_cert : zz" {
		t.Errorf("unknown: %v %q", ok, msg)
	}
	// no symlinks dir: Python-style OS error text
	os.RemoveAll(p.SymlinksDir)
	ok, msg = s.Delete("a", false)
	if ok || msg != "[Errno 2] No such file or directory: '"+p.SymlinksDir+"'" {
		t.Errorf("no dir: %v %q", ok, msg)
	}
}

// Links sharing one hash are renamed down so OpenSSL's <hash>.0, .1, ... walk has no gap.
func TestDeleteRenamesDown(t *testing.T) {
	for _, tc := range []struct {
		del  string
		want map[string]string
	}{
		{"y", map[string]string{"abcd0123.0": "../x.pem", "abcd0123.1": "../z.pem", "ffff0000.0": "../w.pem"}},
		{"x", map[string]string{"abcd0123.0": "../y.pem", "abcd0123.1": "../z.pem", "ffff0000.0": "../w.pem"}},
		{"z", map[string]string{"abcd0123.0": "../x.pem", "abcd0123.1": "../y.pem", "ffff0000.0": "../w.pem"}},
	} {
		base := t.TempDir()
		p := NewPaths(base)
		os.MkdirAll(p.SymlinksDir, 0o755)
		var m SourceIDMap
		for i, n := range []string{"x", "y", "z"} {
			os.Symlink("../"+n+".pem", filepath.Join(p.SymlinksDir, fmt.Sprintf("abcd0123.%d", i)))
			m.Set(n, fmt.Sprintf("0%d", i+1))
		}
		os.Symlink("../w.pem", filepath.Join(p.SymlinksDir, "ffff0000.0"))
		os.WriteFile(filepath.Join(p.SymlinksDir, "README"), nil, 0o644) // not a link: skipped
		WriteSourceIDMap(p.SourceIDMap, &m)
		s, err := OpenServerStore(base)
		if err != nil {
			t.Fatal(err)
		}
		if ok, msg := s.Delete(tc.del, false); !ok {
			t.Fatalf("delete %s: %s", tc.del, msg)
		}
		got := map[string]string{}
		ents, _ := os.ReadDir(p.SymlinksDir)
		for _, e := range ents {
			if dst, err := os.Readlink(filepath.Join(p.SymlinksDir, e.Name())); err == nil {
				got[e.Name()] = dst
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("delete %s: links %v want %v", tc.del, got, tc.want)
		}
		b, _ := os.ReadFile(p.SourceIDMap)
		if strings.Contains(string(b), `"`+tc.del+`"`) {
			t.Errorf("map still has %s: %s", tc.del, b)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
