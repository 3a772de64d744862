package tls

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// niceOf returns the nice value + 100 × the scheduling policy of every thread of process pid.
func niceOf(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var out []int
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, e.Name()))
		if err != nil {
			continue
		}
		// fields after the ")" of the command: state is field 3, nice field 19
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 38 {
			n, _ := strconv.Atoi(f[16])
			pol, _ := strconv.Atoi(f[38]) // field 41, policy
			out = append(out, n+100*pol)
		}
	}
	return out
}

// The pool runs this executable as a helper at nice 19, hands out distinct keys of its size
// (each once), refills, and stops the helper on close.
func TestKeyPoolHelperProcess(t *testing.T) {
	p := startKeyPool(1024, 3, 1)
	if p == nil {
		t.Fatal("helper did not start")
	}
	pid := p.h.cmd.Process.Pid
	seen := map[string]bool{}
	// the helper keeps every key not signed with yet: the pool's 3, the one feed holds, and one
	// per worker (an eviction would send an issuance's self-signature back to the server)
	if !slices.Contains(p.h.cmd.Env, keygenEnv+"="+helperProtocol+":1024:5") {
		t.Fatalf("helper environment %q, want it to keep 3+1+1 keys", p.h.cmd.Env)
	}
	for i := 0; i < 8; i++ { // more than the pool holds: the helper keeps making keys
		k, _ := p.take()
		if k == nil {
			t.Fatalf("take %d: no key", i)
		}
		if k.N.BitLen() != 1024 || k.Validate() != nil {
			t.Fatalf("take %d: bad key", i)
		}
		if seen[k.N.String()] {
			t.Fatal("a key was handed out twice")
		}
		seen[k.N.String()] = true
	}
	nices := niceOf(t, pid)
	if len(nices) == 0 {
		t.Fatal("no threads seen")
	}
	for _, n := range nices {
		if n != 19+100*unix.SCHED_IDLE {
			t.Errorf("helper thread at nice+100×policy %d, want 19 and SCHED_IDLE (all: %v)", n, nices)
			break
		}
	}
	p.close()
	p.close()
	if p.h.cmd.ProcessState == nil {
		t.Fatal("helper not reaped")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Error("helper still running after close")
	}
	if k, _ := p.take(); k != nil {
		t.Error("closed pool handed out a key")
	}
}

// If the helper dies, issuance goes on with keys made in-process.
func TestIssuerHelperDies(t *testing.T) {
	base := newTree(t, fastTemplate)
	s := openStore(t, base)
	is := NewIssuerWith(s, IssuerOptions{Workers: 1, Queue: 4, KeyPool: 1})
	defer is.Close()
	if is.keys == nil {
		t.Fatal("no key pool")
	}
	if _, _, err := is.Issue("before"); err != nil {
		t.Fatal(err)
	}
	is.keys.h.cmd.Process.Kill()
	<-is.keys.fed // the feeder saw the helper go
	for i := 0; i < 3; i++ {
		if _, _, err := is.Issue(fmt.Sprintf("after%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	checkTree(t, s)
}

// Issued keys (pooled, or in-process when the template asks for another size than the pool's)
// are all distinct, of the template's size, and stored 0600 with their certificate.
func TestIssuerKeysDistinct(t *testing.T) {
	base := newTree(t, fastTemplate)
	s := openStore(t, base)
	is := NewIssuerWith(s, IssuerOptions{Workers: 3, Queue: 64, KeyPool: 2})
	defer is.Close()
	const n = 12
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, errs[i] = is.Issue(fmt.Sprintf("c%02d", i))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("c%02d: %v", i, err)
		}
	}
	// the template changes size: the pool's keys no longer fit, keys are made in-process
	tmpl2048 := strings.Replace(fastTemplate, "1024", "2048", 1)
	if err := os.WriteFile(s.Paths().TemplateConf, []byte(tmpl2048), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := is.Issue("big"); err != nil {
		t.Fatal(err)
	}
	moduli := map[string]string{}
	for i := 0; i <= n; i++ {
		name, bits := fmt.Sprintf("c%02d", i), 1024
		if i == n {
			name, bits = "big", 2048
		}
		pemPath, keyPath := s.Paths().ServerClientCert(name)
		fi, err := os.Stat(keyPath)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", keyPath, err)
		}
		kb, _ := os.ReadFile(keyPath)
		blk, _ := pem.Decode(kb)
		if blk == nil {
			t.Fatalf("%s: no PEM", keyPath)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		rk := k.(*rsa.PrivateKey)
		if rk.N.BitLen() != bits {
			t.Fatalf("%s: %d bits, want %d", name, rk.N.BitLen(), bits)
		}
		cb, _ := os.ReadFile(pemPath)
		certs, err := ParseCertsPEM(cb)
		if err != nil || certs[0].PublicKey.(*rsa.PublicKey).N.Cmp(rk.N) != 0 {
			t.Fatalf("%s: certificate does not match its key", name)
		}
		if other, dup := moduli[rk.N.String()]; dup {
			t.Fatalf("%s and %s got the same key", other, name)
		}
		moduli[rk.N.String()] = name
	}
	checkTree(t, s)
}

// KeyPool < 0: no helper; issuance still works (in-process keys).
func TestIssuerNoPool(t *testing.T) {
	base := newTree(t, fastTemplate)
	s := openStore(t, base)
	is := NewIssuerWith(s, IssuerOptions{Workers: 1, Queue: 1, KeyPool: -1})
	defer is.Close()
	if is.keys != nil || is.pooled() != -1 {
		t.Fatal("pool started")
	}
	if _, _, err := is.Issue("x"); err != nil {
		t.Fatal(err)
	}
}
