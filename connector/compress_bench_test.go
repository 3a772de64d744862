package connector

import (
	"math/rand"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"golang.org/x/sys/unix"
)

// telemetryRecords returns n frames of telemetry-like JSON metric records (~300 bytes of data:
// a few hundred hosts, a dozen metrics, varying values and timestamps), back to back.
func telemetryRecords(n int, seed int64) [][]byte {
	r := rand.New(rand.NewSource(seed))
	metrics := []string{"cpu.utilization", "mem.used_bytes", "disk.io_time", "net.rx_bytes", "net.tx_bytes",
		"load.1m", "temp.cpu_celsius", "fs.free_bytes", "proc.count", "tcp.retransmits", "gc.pause_ms", "req.latency_ms"}
	ts := int64(1764187200000)
	out := make([][]byte, n)
	for i := range out {
		ts += int64(r.Intn(50))
		data := `{"host": "node-` + strconv.Itoa(r.Intn(400)) + `.dc` + strconv.Itoa(1+r.Intn(3)) + `.example.net", "metric": "` +
			metrics[r.Intn(len(metrics))] + `", "ts": ` + strconv.FormatInt(ts, 10) + `, "value": ` +
			strconv.FormatFloat(r.Float64()*1000, 'f', 3, 64) + `, "tags": {"region": "eu-west-` + strconv.Itoa(1+r.Intn(3)) +
			`", "rack": "r` + strconv.Itoa(r.Intn(40)) + `", "env": "production", "service": "ingest-` + strconv.Itoa(r.Intn(8)) +
			`"}, "unit": "count", "interval_s": 10, "seq": ` + strconv.Itoa(i) + `}`
		out[i] = codec.AppendFrame(nil, []byte(`{"message_type": "any"}`), []byte(data), nil, false)
	}
	return out
}

// BenchmarkCompressedLink: telemetry records from an embedded client application to an embedded
// server application across the TCP link of two connectors in this process, lossless (at most
// window messages in flight), with link_compression off, s2 and zstd. Reports msg/s and the bytes
// the link carried per message on the wire (wireB/msg) against the frames' own size (plainB/msg).
func BenchmarkCompressedLink(b *testing.B) {
	recs := telemetryRecords(4096, 1)
	for _, z := range []string{"off", "s2", "zstd"} {
		b.Run(z, func(b *testing.B) {
			o := opts{"link_compression": z, "max_size_send_queue": 200000}
			dir := shortDir(b)
			srv := newConnector(b, dir, serverConf(dir, 0, o), nil)
			cli := newConnector(b, dir, clientConf(dir, srv.TCPAddr().Port, "client1", o), nil)
			waitLinked(b, srv, cli, "client1")
			if z != "off" {
				eventually(b, "compressed", func() bool {
					p := cli.peerByName(cli.serverPeer)
					return p != nil && p.zOn.Load() == 3
				})
			}
			var got atomic.Int64
			wake := make(chan struct{}, 1)
			srv.Local().Listen("any", func([]byte) {
				got.Add(1)
				select {
				case wake <- struct{}{}:
				default:
				}
			})
			const window = 20000
			p := cli.peerByName(cli.serverPeer)
			po, _, _, _ := p.conn.TransformCounts()
			w0 := tcpBytesAcked(b, p)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			stall := time.NewTimer(time.Hour)
			for i := 0; i < b.N; i++ {
				for int64(i)-got.Load() >= window {
					stall.Reset(20 * time.Second)
					select {
					case <-wake:
					case <-stall.C:
						b.Logf("aioconnectors.log:\n%s", logTail(srv))
						b.Fatalf("stalled: delivered %d of %d sent", got.Load(), i)
					}
				}
				if err := cli.Local().Send(recs[i%len(recs)]); err != nil {
					b.Fatal(err)
				}
			}
			deadline := time.After(60 * time.Second)
			for got.Load() < int64(b.N) {
				select {
				case <-wake:
				case <-deadline:
					b.Fatalf("delivered %d of %d", got.Load(), b.N)
				}
			}
			el := time.Since(start)
			b.StopTimer()
			po2, _, _, _ := p.conn.TransformCounts()
			wirePer := float64(tcpBytesAcked(b, p)-w0) / float64(b.N)
			plainPer := wirePer
			if z != "off" {
				plainPer = float64(po2-po) / float64(b.N)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "msg/s")
			b.ReportMetric(wirePer, "wireB/msg")
			b.ReportMetric(plainPer, "plainB/msg")
		})
	}
}

// tcpBytesAcked is the kernel's count of bytes the peer acknowledged on p's TCP socket (the link's
// payload bytes on the wire, whatever the connector did to them).
func tcpBytesAcked(tb testing.TB, p *peer) uint64 {
	ti, err := unix.GetsockoptTCPInfo(p.conn.Fd(), unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		tb.Fatal(err)
	}
	return ti.Bytes_acked
}
