package tls

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"sync"
	"sync/atomic"
	"testing"
)

// countingSigner records how many Sign calls run at once.
type countingSigner struct {
	k        crypto.Signer
	now, max atomic.Int32
}

func (c *countingSigner) Public() crypto.PublicKey { return c.k.Public() }
func (c *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	n := c.now.Add(1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	defer c.now.Add(-1)
	return c.k.Sign(r, d, o)
}

// TestSerialSigner: server signatures never run concurrently (a certificate storm takes at most
// one CPU for them), and the signatures stay valid.
func TestSerialSigner(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	inner := &countingSigner{k: k}
	s := &serialSigner{k: inner}
	digest := make([]byte, 32)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 4; j++ {
				sig, err := s.Sign(rand.Reader, digest, crypto.SHA256)
				if err != nil {
					t.Error(err)
					return
				}
				if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, digest, sig); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if m := inner.max.Load(); m != 1 {
		t.Fatalf("%d signatures ran at once", m)
	}
	if _, ok := s.Public().(*rsa.PublicKey); !ok {
		t.Fatal("public key type hidden by the wrapper")
	}
}
