package connector

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// aloCounter counts numbered test messages delivered to a Local listener.
type aloCounter struct {
	mu      sync.Mutex
	seen    map[int]int
	leaked  int // frames that still carried aioconn_seq
	changed chan struct{}
}

func newALOCounter() *aloCounter {
	return &aloCounter{seen: map[int]int{}, changed: make(chan struct{}, 1)}
}

func (c *aloCounter) handle(frame []byte) {
	f, err := codec.ParseBody(frame[codec.LenPrefix:])
	if err != nil {
		return
	}
	n, err := strconv.Atoi(string(f.Data))
	c.mu.Lock()
	if bytes.Contains(f.JSON, []byte(aloSeqKey)) {
		c.leaked++
	}
	if err == nil {
		c.seen[n]++
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// waitAll waits until 0..n-1 have all been seen (bounded).
func (c *aloCounter) waitAll(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.seen)
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("delivered %d of %d", got, n)
		}
	}
}

func (c *aloCounter) dups() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := 0
	for _, k := range c.seen {
		d += k - 1
	}
	return d
}

func aloFrame(i int) []byte {
	return fr(`{"message_type": "any"}`, strconv.Itoa(i))
}

func TestALOPointToPoint(t *testing.T) {
	srv, cli := startPair(t, opts{"at_least_once": true}, opts{"at_least_once": []string{"any"}}, nil, nil)
	got := newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	back := newALOCounter()
	if err := cli.Local().Listen("any", back.handle); err != nil {
		t.Fatal(err)
	}
	dumpLogs(t, srv, cli)
	eventually(t, "at_least_once negotiated", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloOn
	})
	const n = 2000
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if err := cli.Local().SendDurable(ctx, aloFrame(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	// and the other way (server → client)
	for i := 0; i < 100; i++ {
		if err := srv.Local().SendDurable(ctx, codec.AppendFrame(nil, []byte(`{"message_type": "any", "destination_id": "client1"}`), []byte(strconv.Itoa(i)), nil, false)); err != nil {
			t.Fatal(err)
		}
	}
	got.waitAll(t, n)
	back.waitAll(t, 100)
	if got.dups() != 0 || got.leaked != 0 || back.leaked != 0 {
		t.Fatalf("dups %d, frames with %s: %d/%d", got.dups(), aloSeqKey, got.leaked, back.leaked)
	}
	s := cli.alo.existingSender(cli.serverPeer)
	eventually(t, "client log acknowledged", func() bool { return s.unacked() == 0 })
	// a type not covered is sent, but not durably
	if err := cli.Local().SendDurable(ctx, fr(`{"message_type": "_ping"}`, "x")); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("SendDurable of an uncovered type: %v", err)
	}
}

// A client with at_least_once and a server without it: the client's advertisement is ignored
// (as a Python server does), the client gives up waiting and sends plain messages.
func TestALOLegacyServer(t *testing.T) {
	aloHelloWait = 100 * time.Millisecond
	defer func() { aloHelloWait = aloHelloWaitDefault }()
	srv, cli := startPair(t, nil, opts{"at_least_once": true}, nil, nil)
	got := newALOCounter()
	if err := srv.Local().Listen("any", got.handle); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ { // logged while negotiating, then sent without their number
		cli.Local().Send(aloFrame(i))
	}
	got.waitAll(t, 50)
	eventually(t, "legacy mode", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloLegacy
	})
	for i := 50; i < 100; i++ {
		err := cli.Local().SendDurable(context.Background(), aloFrame(i))
		if !errors.Is(err, ErrNotDurable) {
			t.Fatalf("SendDurable to a legacy peer: %v", err)
		}
	}
	got.waitAll(t, 100)
	if got.dups() != 0 || got.leaked != 0 {
		t.Fatalf("dups %d, frames with %s: %d", got.dups(), aloSeqKey, got.leaked)
	}
}

// dumpLogs prints the connectors' log files when the test failed.
func dumpLogs(t *testing.T, cs ...*Connector) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range cs {
			ents, _ := os.ReadDir(c.cfg.DefaultLoggerDirpath)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".log") {
					b, _ := os.ReadFile(filepath.Join(c.cfg.DefaultLoggerDirpath, e.Name()))
					if len(b) > 8000 {
						b = b[len(b)-8000:]
					}
					t.Logf("%s:\n%s", e.Name(), b)
				}
			}
			break
		}
	})
}
