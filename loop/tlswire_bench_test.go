package loop

import (
	gotls "crypto/tls"
	"io"
	"testing"
)

// BenchmarkTLSWireEcho: 16 KiB writes echoed by a Handler over TLS 1.3 on the loop (records
// opened and sealed on the loop, one flush per wake-up), read back by a crypto/tls client.
// Bytes/s is the echoed payload.
func BenchmarkTLSWireEcho(b *testing.B) {
	e := startEngine(b)
	cli, _ := enrollPair(b, e, gotls.VersionTLS13, &echo{closeErr: make(chan error, 1)})
	msg := make([]byte, 16<<10)
	got := make([]byte, len(msg))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := cli.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(cli, got); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cli.Close()
}
