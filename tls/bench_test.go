package tls

import (
	"math/big"
	"os"
	"testing"
	"time"
)

func BenchmarkSubjectHash(b *testing.B) {
	conf, _ := ParseConf(BuildConf([]byte(DefaultTemplate), "2f43248458f04fe3948b16bae2012636"))
	raw, _ := conf.MarshalSubject()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := NameHash(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSerialString(b *testing.B) {
	n, _ := new(big.Int).SetString("47AE5E40784ABD1765B0C845C91269B8E3C73EE5", 16)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = SerialString(n)
	}
}

func BenchmarkVerifyClientCert(b *testing.B) {
	base := newTree(b, fastTemplate)
	p := NewPaths(base)
	data, _ := os.ReadFile(p.ClientDefaultPEM)
	c, _ := ParseCertsPEM(data)
	raw := [][]byte{c[0].Raw}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := VerifyClientCert(p.SymlinksDir, raw, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSourceIDMapAppendJSON(b *testing.B) {
	var m SourceIDMap
	for i := 0; i < 100; i++ {
		m.Set("client"+itoa(i), "47AE5E40784ABD1765B0C845C91269B8E3C73E"+itoa(10+i%90))
	}
	buf := make([]byte, 0, 16384)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = m.AppendJSON(buf[:0])
	}
}

func BenchmarkGenerateRSA2048(b *testing.B) {
	conf, _ := ParseConf(BuildConf([]byte(DefaultTemplate), "2f43248458f04fe3948b16bae2012636"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := GenerateSelfSigned(conf, time.Now(), nil); err != nil {
			b.Fatal(err)
		}
	}
}
