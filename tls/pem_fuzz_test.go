package tls

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pemSeeds returns the certificates and key of the captured 1.0.33 session: the `_ssl`
// set_new_certificate reply a client received (its data section, and crt/key from it) and the
// PEM files of the captured tree. Empty when the vectors are absent.
func pemSeeds(tb testing.TB) (reply []byte, crt, key string, files [][]byte) {
	d := sslDirOrEmpty()
	if d == "" {
		return nil, "", "", nil
	}
	b, err := os.ReadFile(filepath.Join(d, "002_client_connect__tcptls_s2c__ssl.bin"))
	if err == nil && len(b) > 6 {
		// u32 total | u16 len_json | json | u32 len_data | data
		jl := int(binary.LittleEndian.Uint16(b[4:]))
		if 10+jl <= len(b) {
			dl := int(binary.LittleEndian.Uint32(b[6+jl:]))
			if 10+jl+dl <= len(b) {
				reply = b[10+jl : 10+jl+dl]
			}
		}
	}
	var rep struct{ Crt, Key string }
	if reply != nil {
		if err := json.Unmarshal(reply, &rep); err != nil {
			tb.Fatalf("golden _ssl reply: %v", err)
		}
	}
	for _, p := range []string{"server/client-certs/default.pem", "server/client-certs/client1.pem",
		"server/server-cert/server.pem", "client/client-certs/client1.pem"} {
		if b, err := os.ReadFile(filepath.Join(d, "certificates", filepath.FromSlash(p))); err == nil {
			files = append(files, b)
		}
	}
	return reply, rep.Crt, rep.Key, files
}

// FuzzParseCertsPEM feeds arbitrary PEM text to ParseCertsPEM (the reader of every certificate
// file, among them the crt a server sends in its `_ssl` set_new_certificate reply): no panic; a
// failure wraps ErrCert and says what is wrong; a success returns exactly the CERTIFICATE blocks
// of the text, parsed, and they round-trip through PEM.
func FuzzParseCertsPEM(f *testing.F) {
	_, crt, key, files := pemSeeds(f)
	for _, b := range files {
		f.Add(b)
	}
	if crt != "" {
		f.Add([]byte(crt))
		f.Add([]byte(crt + key))                                                               // a PEM holding both
		f.Add([]byte(key))                                                                     // no CERTIFICATE block
		f.Add([]byte(strings.Replace(crt, "\n", "\r\n", -1)))                                  // CRLF line ends
		f.Add([]byte("junk before\n" + crt + "junk after"))                                    // text around the block
		f.Add([]byte(crt[:len(crt)/2]))                                                        // truncated
		f.Add([]byte(strings.Replace(crt, "MII", "MIJ", 1)))                                   // damaged DER
		f.Add([]byte(strings.Replace(crt, "-----\n", "-----\nProc-Type: 4,ENCRYPTED\n\n", 1))) // headers
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE"}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertsPEM(data)
		// the CERTIFICATE blocks of data, as pem.Decode sees them
		var blocks [][]byte
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				blocks = append(blocks, b.Bytes)
			}
		}
		if err != nil {
			if certs != nil {
				t.Fatalf("certificates with the error %v", err)
			}
			msg := err.Error()
			if !errors.Is(err, ErrCert) || len(msg) <= len(ErrCert.Error())+2 {
				t.Fatalf("error %q does not wrap ErrCert with a reason", msg)
			}
			if len(blocks) == 0 && !strings.Contains(msg, "no CERTIFICATE block") {
				t.Fatalf("no block, error %q", msg)
			}
			return
		}
		if len(certs) == 0 || len(certs) != len(blocks) {
			t.Fatalf("%d certificates of %d CERTIFICATE blocks", len(certs), len(blocks))
		}
		var again []byte
		for i, c := range certs {
			if !bytes.Equal(c.Raw, blocks[i]) {
				t.Fatalf("certificate %d is not its block", i)
			}
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		certs2, err := ParseCertsPEM(again)
		if err != nil || len(certs2) != len(certs) {
			t.Fatalf("re-encoded certificates: %d, %v", len(certs2), err)
		}
		for i := range certs2 {
			if !certs2[i].Equal(certs[i]) {
				t.Fatalf("certificate %d differs after a round trip", i)
			}
		}
	})
}

// FuzzSetNewCertificate feeds arbitrary data sections of the `_ssl` set_new_certificate reply
// (what connector.receiveCertificate decodes) to the checks a client applies before it stores
// the pair (StoreClientCertificate: crypto/tls.X509KeyPair) and to ParseCertsPEM, which reads
// the stored file back: no panic, and a crt the client accepts and stores must read back.
func FuzzSetNewCertificate(f *testing.F) {
	reply, crt, key, _ := pemSeeds(f)
	if reply != nil {
		f.Add(reply)
		enc := func(crt, key string) []byte {
			b, _ := json.Marshal(map[string]string{"cmd": "set_new_certificate", "crt": crt, "key": key})
			return b
		}
		f.Add(enc(crt, ""))
		f.Add(enc("", key))
		f.Add(enc(key, crt))
		f.Add(enc(crt+crt, key))
		f.Add(enc(crt+strings.Replace(crt, "MII", "MIJ", 1), key)) // a damaged second certificate
		f.Add(enc(strings.Replace(crt, "MII", "MIJ", 1), key))
		f.Add(enc(crt[:len(crt)-40], key))
	}
	f.Add([]byte(`{"cmd": "set_new_certificate", "crt": 1}`))
	f.Add([]byte(`{"cmd": "get_new_certificate"}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep struct {
			Cmd string `json:"cmd"`
			Crt string `json:"crt"`
			Key string `json:"key"`
		}
		if json.Unmarshal(data, &rep) != nil || rep.Cmd != "set_new_certificate" {
			return
		}
		certs, perr := ParseCertsPEM([]byte(rep.Crt))
		if perr != nil && !errors.Is(perr, ErrCert) {
			t.Fatalf("ParseCertsPEM: %v", perr)
		}
		if err := checkClientPair([]byte(rep.Crt), []byte(rep.Key)); err != nil {
			return // refused by the client: not stored
		}
		if perr != nil {
			t.Fatalf("the client stores a crt that does not read back: %v", perr)
		}
		if len(certs) == 0 {
			t.Fatal("stored crt holds no certificate")
		}
	})
}
