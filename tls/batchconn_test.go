package tls

import (
	"bytes"
	gotls "crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the writes that reach the network connection.
type countConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tlsPair returns a strict client (over a BatchConn over a countConn) and server of one tree,
// handshaken, and closes them at the end of the test.
func tlsPair(tb testing.TB) (cli *gotls.Conn, bc *BatchConn, cc *countConn, srv *gotls.Conn) {
	tb.Helper()
	base := newTree(tb, fastTemplate)
	srvCfg, err := ServerConfig(base, false)
	if err != nil {
		tb.Fatal(err)
	}
	cliCfg, err := ClientConfig(base, "client1", false)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *gotls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := gotls.Server(c, srvCfg)
		if tc.Handshake() != nil {
			c.Close()
			accepted <- nil
			return
		}
		accepted <- tc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	cc = &countConn{Conn: nc}
	bc = NewBatchConn(cc, 0)
	cli = gotls.Client(bc, cliCfg)
	if err := cli.Handshake(); err != nil {
		tb.Fatal(err)
	}
	if srv = <-accepted; srv == nil {
		tb.Fatal("server handshake failed")
	}
	tb.Cleanup(func() { cli.Close(); srv.Close() })
	return cli, bc, cc, srv
}

// A 1 MiB Write inside Batch reaches the peer intact in a handful of network writes (one per
// 256 KiB) instead of one per 16 KiB record; writes outside Batch still go straight through.
func TestBatchConn(t *testing.T) {
	cli, bc, cc, srv := tlsPair(t)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(data)+1)
		n, _ := io.ReadFull(srv, b)
		got <- b[:n]
	}()
	before := cc.writes.Load()
	n, err := bc.Batch(func() (int, error) { return cli.Write(data) })
	if err != nil || n != len(data) {
		t.Fatalf("Batch: %d %v", n, err)
	}
	if w := cc.writes.Load() - before; w > 5 {
		t.Errorf("%d network writes for 1 MiB in a batch, want at most 5", w)
	}
	before = cc.writes.Load()
	if _, err := cli.Write([]byte{42}); err != nil { // unbatched: goes out by itself
		t.Fatal(err)
	}
	if w := cc.writes.Load() - before; w != 1 {
		t.Errorf("unbatched write: %d network writes", w)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b[:len(data)], data) || b[len(data)] != 42 {
			t.Fatal("data garbled")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not receive the data")
	}
	// nested batches flush once, at the outer end
	before = cc.writes.Load()
	bc.Batch(func() (int, error) {
		bc.Batch(func() (int, error) { return cli.Write([]byte("a")) })
		return cli.Write([]byte("b"))
	})
	if w := cc.writes.Load() - before; w != 1 {
		t.Errorf("nested batches: %d network writes", w)
	}
}

// A broken network connection makes Batch fail (and later writes too).
func TestBatchConnError(t *testing.T) {
	cli, bc, cc, _ := tlsPair(t)
	cc.Conn.Close()
	if _, err := bc.Batch(func() (int, error) { return cli.Write(make([]byte, 100)) }); err == nil {
		t.Fatal("Batch on a closed connection succeeded")
	}
	if _, err := bc.Batch(func() (int, error) { return 0, nil }); err != nil {
		t.Errorf("empty batch after an error: %v", err)
	}
	errWrite := errors.New("x")
	if _, err := bc.Batch(func() (int, error) { return 0, errWrite }); err != errWrite {
		t.Errorf("write's own error not returned: %v", err)
	}
}

// Strict TLS 1.3 over loopback, 256 KiB writes of application data (as a peer link's writer
// hands over its batch): one network write per record (direct) or per batch (batched).
// 26 Nov, 2-core EPYC, load average 4-8, 8000 writes (2 GB), process CPU of both ends
// (/usr/bin/time, 3 interleaved runs): direct 1.63-1.77 s (sys 0.85-0.94), batched 1.36-1.52 s
// (sys 0.57-0.74): 15-20 % less; wall-clock MB/s swings too much under that load to compare.
func BenchmarkTLSWrite(b *testing.B) {
	for _, batched := range []bool{false, true} {
		name := "direct"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			cli, bc, _, srv := tlsPair(b)
			go io.Copy(io.Discard, srv)
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if batched {
					_, err = bc.Batch(func() (int, error) { return cli.Write(buf) })
				} else {
					_, err = cli.Write(buf)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
