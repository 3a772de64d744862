package connector

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// Benchmarks of the broker's fan-out (issue 6).
//
// BenchmarkFanout isolates the broker's CPU cost per publication: one op is one publication frame
// received from a publisher (100-byte data) going through the broker's whole per-frame work — header
// parse, the unknown-key check, the shared body, one small header per subscriber, the push into
// every subscriber's queue — and then the subscribers' send side taking it out again (pop, copy of
// header and shared body into the write batch, release of the buffers), exactly what peer.drain
// does minus the socket write. Subscribers are peers without sockets, so the figure is free of
// kernel and scheduling noise: ns/op is the broker's cost for one publication to N subscribers,
// ns/delivery the cost per subscriber, allocs/op the garbage per publication.
//
// BenchmarkFanoutSockets is the same fan-out through a running broker and real loopback TCP: one
// raw publisher, N raw subscribers reading and counting whole frames. The publisher keeps at most
// a window of publications in flight ahead of the slowest subscriber (subscribers keep up: no
// loss), and the benchmark fails if anything was dropped. msgs/s/sub is the rate at which every
// subscriber receives publications.

// benchBroker builds a broker connector (not started: no loops, no sockets but its commander)
// with n subscriber peers without connections, all subscribed to "t", and a publisher peer.
func benchBroker(b *testing.B, n int) (cn *Connector, pub *peer, subs []*peer) {
	b.Helper()
	dir := shortDir(b)
	cfg, err := config.Parse([]byte(serverConf(dir, 0, opts{"pubsub_central_broker": true,
		"send_message_types": []string{"t"}, "recv_message_types": []string{"t"}})), "bench.json")
	if err != nil {
		b.Fatal(err)
	}
	cn, err = New(cfg, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cn.Close)
	for i := 0; i < n; i++ {
		p := newPeer(cn, false)
		p.name = "sub" + strconv.Itoa(i)
		p.ident.Store(true)
		cn.setPeer(p.name, p)
		cn.subs.update(p.name, []string{"t"}, nil)
		subs = append(subs, p)
	}
	pub = newPeer(cn, false)
	pub.name = "pub1"
	pub.ident.Store(true)
	return cn, pub, subs
}

func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		for _, withBin := range []bool{false, true} {
			name := "subs=" + strconv.Itoa(n)
			if withBin {
				name += "/binary"
			}
			b.Run(name, func(b *testing.B) {
				_, pub, subs := benchBroker(b, n)
				data := strings.Repeat("d", 100)
				frame := pubFrame("pub1", "('127.0.0.1', 10673)", "t", "", data)
				if withBin {
					frame = codec.AppendFrame(nil, []byte(`{"message_type": "_pubsub", "source_id": "pub1", "destination_id": "('127.0.0.1', 10673)", "with_binary": true, "message_type_publish": "t"}`),
						[]byte(data[:50]), []byte(data[:50]), true)
				}
				var out []byte
				batch := make([]qmsg, 0, sendBatchMsgs)
				b.ReportAllocs()
				b.SetBytes(int64(len(frame)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					var h codec.Header
					f, err := codec.ParseBodyHeader(frame[codec.LenPrefix:], &h)
					if err != nil {
						b.Fatal(err)
					}
					pub.brokerHandle(&h, f)
					for _, sp := range subs {
						batch = sp.q.PopBatch(batch[:0], sendBatchMsgs, sendBatchBytes)
						if len(batch) != 1 {
							b.Fatalf("%s: %d queued", sp.name, len(batch))
						}
						for _, m := range batch {
							out = append(out, m.b.B...)
							if m.body != nil {
								out = append(out, m.body.b.B...)
							}
							m.release()
						}
					}
					out = out[:0]
					pub.wakePeers = pub.wakePeers[:0]
				}
				b.StopTimer()
				el := b.Elapsed()
				b.ReportMetric(float64(el.Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
				for _, sp := range subs {
					if d := sp.drops.Load(); d != 0 {
						b.Fatalf("%s: %d drops", sp.name, d)
					}
				}
			})
		}
	}
}

func BenchmarkFanoutSockets(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run("subs="+strconv.Itoa(n), func(b *testing.B) { benchFanoutSockets(b, n) })
	}
}

func benchFanoutSockets(b *testing.B, n int) {
	const window = 20000 // publications in flight ahead of the slowest subscriber
	dir := shortDir(b)
	brk := newConnector(b, dir, serverConf(dir, 0, opts{"pubsub_central_broker": true,
		"send_message_types": []string{"t"}, "recv_message_types": []string{"t"}}), nil)
	subs := make([]net.Conn, n)
	counts := make([]atomic.Int64, n)
	progress := make(chan struct{}, 1)
	for i := range subs {
		name := "sub" + strconv.Itoa(i)
		subs[i] = fakeClient(b, brk, name)
		write(b, subs[i], fr(`{"message_type": "_pubsub", "source_id": `+pyStr(name)+`}`, `{"subscribe_message_types": ["t"]}`))
		write(b, subs[i], pingFrame(name, 1))
		readRaw(b, subs[i])
	}
	pub := fakeClient(b, brk, "pub1")
	frame := pubFrame("pub1", "x", "t", "", strings.Repeat("d", 100))
	var wg sync.WaitGroup
	total := int64(b.N)
	for i, c := range subs {
		wg.Add(1)
		go func(i int, c net.Conn) {
			defer wg.Done()
			r := bufio.NewReaderSize(c, 256<<10)
			var hdr [4]byte
			for got := int64(0); got < total; {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					return
				}
				if _, err := r.Discard(int(binary.LittleEndian.Uint32(hdr[:]))); err != nil {
					return
				}
				got++
				if got%1024 == 0 || got == total {
					counts[i].Store(got)
					select {
					case progress <- struct{}{}:
					default:
					}
				}
			}
		}(i, c)
	}
	minCount := func() int64 {
		m := total
		for i := range counts {
			m = min(m, counts[i].Load())
		}
		return m
	}
	const chunk = 256
	buf := make([]byte, 0, chunk*len(frame))
	b.ReportAllocs()
	b.ResetTimer()
	for sent := int64(0); sent < total; {
		for sent-minCount() > window {
			select {
			case <-progress:
			case <-time.After(10 * time.Second):
				b.Fatalf("subscribers stalled at %d of %d sent", minCount(), sent)
			}
		}
		k := min(int64(chunk), total-sent)
		buf = buf[:0]
		for j := int64(0); j < k; j++ {
			buf = append(buf, frame...)
		}
		write(b, pub, buf)
		sent += k
	}
	wg.Wait()
	b.StopTimer()
	if m := minCount(); m != total {
		b.Fatalf("a subscriber received %d of %d", m, total)
	}
	for i := range subs {
		if d := brk.peerByName("sub" + strconv.Itoa(i)).drops.Load(); d != 0 {
			b.Fatalf("sub%d: %d drops", i, d)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s/sub")
}
