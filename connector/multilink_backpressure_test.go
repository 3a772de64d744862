package connector

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
)

// TestMultiLinkReceiveBackpressure: two clients send to one receive type of a server whose
// links run on two event loops, while the server's application reads nothing for a moment and
// then everything. The two links fill the same ring concurrently; a frame may be dropped only
// after a link was held back for backpressureMax (500 ms), so with the application reading as
// soon as the ring is full, every message arrives, each client's in order. (Before held frames
// were kept when a full ring refused them, 4 runs in 10 dropped 2 – 19 messages here.)
func TestMultiLinkReceiveBackpressure(t *testing.T) {
	t.Setenv("AIOCONN_LOOPS", "2")
	const perClient = 1500
	dir := shortDir(t)
	srv := newConnector(t, dir, serverConf(dir, 0, nil), func(o *config.Options) { o.MaxQueueSize = 64 })
	names := []string{"client1", "client2"}
	var clis []*Connector
	for _, n := range names {
		c := newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, n, nil), nil)
		waitLinked(t, srv, c, n)
		clis = append(clis, c)
	}
	dumpLogs(t, append([]*Connector{srv}, clis...)...)
	rt := srv.recv["any"]
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var wg sync.WaitGroup
	errs := make(chan error, len(clis))
	for k, c := range clis {
		send := dialUnix(t, c.Paths().SendToConnector)
		js := []byte(`{"message_type": "any", "source_id": "` + names[k] + `", "destination_id": ` + pyStr(c.serverPeer) + `}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			send.SetWriteDeadline(time.Now().Add(20 * time.Second))
			var batch []byte
			for i := 0; i < perClient; i++ {
				batch = append(batch, bpFrame(js, k*perClient+i)...)
				if len(batch) >= 256<<10 || i == perClient-1 {
					if _, err := send.Write(batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
		}()
	}
	conn := app.accept(t)
	eventually(t, "the receive ring full", func() bool { return rt.q.Len() >= rt.q.Cap() })
	start := time.Now()
	r := &frameReader{c: conn}
	next := []int{0, perClient}
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got+int(srv.stats.dropQueueFull.Load()) < 2*perClient {
		if time.Now().After(deadline) {
			t.Fatalf("read %d messages in 30 s, %d dropped", got, srv.stats.dropQueueFull.Load())
		}
		f, body, ok := r.body(t, 50*time.Millisecond, got)
		if !ok {
			continue
		}
		if len(body.Data) != bpPayload {
			t.Fatalf("message %d: %.100q", got, f)
		}
		n, err := strconv.Atoi(string(body.Data[:8]))
		if err != nil {
			t.Fatalf("message %d: %.100q", got, f)
		}
		k := n / perClient
		if n < next[k] {
			t.Fatalf("message %d from client %d came after %d (duplicated or reordered)", n, k+1, next[k]-1)
		}
		next[k] = n + 1
		got++
	}
	readAll := time.Since(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("client send socket: %v", err)
	}
	dropped := srv.stats.dropQueueFull.Load()
	t.Logf("%d delivered, %d dropped, read in %v", got, dropped, readAll.Round(time.Millisecond))
	if dropped != 0 && readAll < backpressureMax {
		t.Fatalf("%d messages dropped although no link can have waited %v (all read %v after the ring was full)",
			dropped, backpressureMax, readAll.Round(time.Millisecond))
	}
}

// TestMultiConnSendBackpressure: two applications on two event loops send to the same peer while
// its queue is full (the server reads nothing for a moment, then everything). A frame may be
// dropped only after an application was held back for backpressureMax; here the server reads as
// soon as the queue is full, so every message arrives, each application's in order.
func TestMultiConnSendBackpressure(t *testing.T) {
	t.Setenv("AIOCONN_LOOPS", "2")
	const perApp = 1500
	dir := shortDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	cli := newConnector(t, dir, clientConf(dir, port, "client1", nil), func(o *config.Options) { o.MaxQueueSize = 64 })
	dumpLogs(t, cli)
	tcp, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	r := &frameReader{c: tcp}
	if f, err := r.next(5 * time.Second); err != nil || f == nil {
		t.Fatalf("no handshake: %v", err)
	}
	waitPeers(t, cli, "connected", func(p []string) bool { return len(p) == 1 })
	p := cli.peerByName(cli.serverPeer)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for k := range 2 {
		send := dialUnix(t, cli.Paths().SendToConnector)
		js := []byte(`{"message_type": "any", "source_id": "client1", "destination_id": ` + pyStr(cli.serverPeer) + `}`)
		wg.Add(1)
		go func() {
			defer wg.Done()
			send.SetWriteDeadline(time.Now().Add(20 * time.Second))
			var batch []byte
			for i := 0; i < perApp; i++ {
				batch = append(batch, bpFrame(js, k*perApp+i)...)
				if len(batch) >= 256<<10 || i == perApp-1 {
					if _, err := send.Write(batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
		}()
	}
	eventually(t, "the peer's queue full", func() bool { return p.q.Len() >= cli.cfg.MaxQueueSize })
	start := time.Now()
	next := []int{0, perApp}
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got+int(cli.stats.dropQueueFull.Load()) < 2*perApp {
		if time.Now().After(deadline) {
			t.Fatalf("read %d messages in 30 s, %d dropped", got, cli.stats.dropQueueFull.Load())
		}
		f, body, ok := r.body(t, 50*time.Millisecond, got)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(string(body.Data[:min(8, len(body.Data))]))
		if err != nil || len(body.Data) != bpPayload {
			t.Fatalf("message %d: %.100q", got, f)
		}
		k := n / perApp
		if n < next[k] {
			t.Fatalf("message %d from application %d came after %d (duplicated or reordered)", n, k+1, next[k]-1)
		}
		next[k] = n + 1
		got++
	}
	readAll := time.Since(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("application send socket: %v", err)
	}
	dropped := cli.stats.dropQueueFull.Load()
	t.Logf("%d delivered, %d dropped, read in %v", got, dropped, readAll.Round(time.Millisecond))
	if dropped != 0 && readAll < backpressureMax {
		t.Fatalf("%d messages dropped although no application can have waited %v (all read %v after the queue was full)",
			dropped, backpressureMax, readAll.Round(time.Millisecond))
	}
}
