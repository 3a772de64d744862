package tls

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
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
		hs := &helperServer{keys: map[uint32]*rsa.PrivateKey{7: k}, files: map[string]crypto.Signer{}}
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

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
