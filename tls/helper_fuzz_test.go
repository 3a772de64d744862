package tls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"testing"
)

// FuzzHelperSignRequest: any signature request payload (the helper's decoder: signature head,
// key file path or key id, digest) gives a signature or an error, never a panic. Paths other
// than the test key's are not read (a fuzzed path could name any file).
func FuzzHelperSignRequest(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	path := writeKeyPEM(f, k)
	d := make([]byte, 32)
	head := appendSigHead(nil, pssHash)
	file := binary.BigEndian.AppendUint16(append([]byte(nil), head...), uint16(len(path)))
	file = append(append(file, path...), d...)
	f.Add(byte(reqSignFile), file)
	f.Add(byte(reqSignKey), append(binary.BigEndian.AppendUint32(append([]byte(nil), head...), 7), d...))
	f.Add(byte(reqSignKey), []byte{5, 9, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		if typ != reqSignFile {
			typ = reqSignKey
		} else if len(payload) >= 8 {
			n := int(binary.BigEndian.Uint16(payload[6:]))
			if len(payload) >= 8+n && string(payload[8:8+n]) != path {
				return
			}
		}
		hs := &helperServer{keys: map[uint32]*rsa.PrivateKey{7: k}, files: map[string]*rsa.PrivateKey{}}
		sig, err := hs.signErr(helperReq{typ: typ, id: 1, payload: payload})
		if err == nil && len(sig) == 0 {
			t.Fatal("no signature and no error")
		}
	})
}

// FuzzHelperReplies: any byte stream from the helper (the server's reply decoder: id, status,
// length, body) is read without a panic and without holding more than one frame's bound; a
// waiting request gets at most one reply, and the stream's end marks the helper gone.
func FuzzHelperReplies(f *testing.F) {
	f.Add(binary.BigEndian.AppendUint32(append(binary.BigEndian.AppendUint32(nil, 1), 0), 3))
	f.Add([]byte{0, 0, 0, 1, 1, 0, 0, 0, 4, 'b', 'u', 's', 'y'})
	f.Add([]byte{0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		old := logf
		logf = func(string, ...any) {}
		defer func() { logf = old }()
		h := &helperProc{w: nopCloser{io.Discard}, waiting: map[uint32]chan helperReply{}, dead: make(chan struct{})}
		ch := make(chan helperReply, 1)
		h.waiting[1] = ch
		h.read(bytes.NewReader(data))
		<-h.dead
		select {
		case r := <-ch:
			if len(r.body) > maxHelperFrame {
				t.Fatalf("reply of %d bytes", len(r.body))
			}
		default:
		}
	})
}

// FuzzHelperFrame: the pipe protocol's frame reader (both directions) never panics, never
// returns a body over maxHelperFrame, and what it reads encodes back to the bytes it consumed.
func FuzzHelperFrame(f *testing.F) {
	f.Add(appendHelperFrame(nil, 1, reqKey, nil))
	f.Add(appendHelperFrame(appendHelperFrame(nil, 7, reqSignKey, []byte("abc")), 8, 1, []byte("busy")))
	f.Add([]byte{0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 9, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var hdr [9]byte
		for {
			at := len(data) - r.Len()
			id, kind, body, err := readHelperFrame(r, &hdr)
			if err != nil {
				if errors.Is(err, errHelperFrame) && binary.BigEndian.Uint32(data[at+5:]) <= maxHelperFrame {
					t.Fatalf("refused a length within the bound: %v", err)
				}
				return
			}
			if len(body) > maxHelperFrame {
				t.Fatalf("body of %d bytes", len(body))
			}
			end := len(data) - r.Len()
			if got := appendHelperFrame(nil, id, kind, body); !bytes.Equal(got, data[at:end]) {
				t.Fatalf("re-encoded %x, read from %x", got, data[at:end])
			}
		}
	})
}

// FuzzParsePrivateKeyPEM: the helper's key file decoder returns an RSA key or an error for any
// text, never a panic; seeded with PKCS#1 and PKCS#8 RSA keys, an EC key, and a certificate
// block before a key.
func FuzzParsePrivateKeyPEM(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec8, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	f.Add(block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k)))
	f.Add(block("PRIVATE KEY", p8))
	f.Add(block("PRIVATE KEY", ec8))
	f.Add(block("EC PRIVATE KEY", ecDER))
	f.Add(append(block("CERTIFICATE", []byte{1, 2, 3}), block("PRIVATE KEY", p8)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		rk, err := parsePrivateKeyPEM(data)
		if (rk == nil) == (err == nil) {
			t.Fatalf("key %v with error %v", rk != nil, err)
		}
	})
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
