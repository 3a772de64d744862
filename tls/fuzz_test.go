package tls

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseSourceIDMap(f *testing.F) {
	if d := sslDirOrEmpty(); d != "" {
		if b, err := os.ReadFile(filepath.Join(d, "certificates", "server", "client-certs", "source_id_2_cert.json")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"source_id_2_cert": {}, "cert_2_source_id": {}}`))
	f.Add([]byte(`{"source_id_2_cert": {"\u00e9\ud83d\ude00": "0A"}, "cert_2_source_id": {"0A": "x"}, "z": [1]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseSourceIDMap(data)
		if err != nil {
			return
		}
		enc := m.AppendJSON(nil)
		m2, err := ParseSourceIDMap(enc)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", enc, err)
		}
		if enc2 := m2.AppendJSON(nil); !bytes.Equal(enc, enc2) {
			t.Fatalf("not stable:\n%s\n%s", enc, enc2)
		}
		for _, n := range m.Names() {
			m.Remove(n)
		}
	})
}

func FuzzParseConf(f *testing.F) {
	for _, tc := range confCases {
		f.Add([]byte(tc.text))
	}
	if d := sslDirOrEmpty(); d != "" {
		if b, err := os.ReadFile(filepath.Join(d, "certificates", "server", "csr_details.conf")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConf(data)
		if err != nil {
			return
		}
		subj, err := c.MarshalSubject()
		if err != nil {
			return
		}
		if _, err := CanonicalName(subj); err != nil {
			t.Fatalf("our own subject %x does not canonicalise: %v", subj, err)
		}
	})
}

func FuzzCanonicalName(f *testing.F) {
	for _, tc := range nameCases {
		f.Add(rawName(f, tc.rdns...))
	}
	f.Add([]byte{0x30, 0x02, 0x31, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := CanonicalName(data)
		if err != nil {
			return
		}
		// canonicalisation is idempotent once re-wrapped in a SEQUENCE
		again, err := CanonicalName(append(appendTLV(nil, 0x30, len(c)), c...))
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not idempotent: %x -> %x -> %x (%v)", data, c, again, err)
		}
	})
}
