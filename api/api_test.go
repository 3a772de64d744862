package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
)

func TestSendDefaultsAndErrors(t *testing.T) {
	dir := shortDir(t)
	ctx := context.Background()
	// No connector listening.
	a := newAPI(t, clientCfg(t, dir, ""))
	if err := a.SendMessage(ctx, SendOptions{Data: []byte("x")}); !errors.Is(err, ErrConnect) {
		t.Errorf("no connector: %v", err)
	}
	if _, err := a.SendMessageAwaitResponse(ctx, SendOptions{RequestID: 1}); !errors.Is(err, ErrConnect) {
		t.Errorf("await, no connector: %v", err)
	}
	if err := a.SendMessage(ctx, SendOptions{RequestID: 1.5}); !errors.Is(err, ErrBadID) {
		t.Errorf("float id: %v", err)
	}
	if err := a.SendMessage(ctx, SendOptions{MessageType: string(make([]byte, 70000))}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge JSON: %v", err)
	}
	none := newAPI(t, apiConfig(t, dir, `"is_server": true, "send_message_types": [], `+golden10673))
	if err := none.SendMessage(ctx, SendOptions{}); !errors.Is(err, ErrNoMessageType) {
		t.Errorf("no type: %v", err)
	}
}

func TestHeaderEncoding(t *testing.T) {
	srv := ident{sourceID: "('127.0.0.1', 10673)", defaultType: "any", hasDefType: true}
	cli := ident{sourceID: "client1", defaultDest: "('127.0.0.1', 10673)"}
	for _, tc := range []struct {
		name string
		id   ident
		o    SendOptions
		want string
	}{
		{"server default type, no destination", srv, SendOptions{},
			`{"message_type": "any", "source_id": "('127.0.0.1', 10673)"}`},
		{"all keys", cli, SendOptions{MessageType: "t", DestinationID: "d", RequestID: "r\u00e9", ResponseID: uint64(1 << 63),
			Binary: []byte{1}, AwaitResponse: true, WithFile: &WithFile{SrcPath: "/a", DstType: "t", DstName: "n", Delete: boolp(true), Owner: "u:g"},
			WaitForAck: true, MessageTypePublish: "p"},
			`{"message_type": "t", "source_id": "client1", "destination_id": "d", "request_id": "r\u00e9", "response_id": 9223372036854775808, "with_binary": true, "await_response": true, "with_file": {"src_path": "/a", "dst_type": "t", "dst_name": "n", "delete": true, "owner": "u:g"}, "wait_for_ack": true, "message_type_publish": "p"}`},
		{"zero ids are sent", cli, SendOptions{MessageType: "t", RequestID: 0, ResponseID: ""},
			`{"message_type": "t", "source_id": "client1", "destination_id": "('127.0.0.1', 10673)", "request_id": 0, "response_id": ""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := codec.AppendFrame(nil, []byte(tc.want), tc.o.Data, tc.o.Binary, len(tc.o.Binary) > 0)
			// without a memo, then with one: encoded, remembered, copied from the memo
			for _, memo := range []*memoSlot{nil, new(memoSlot)} {
				tc.id.memo = memo
				for range 2 {
					b, err := appendHeader(nil, &tc.id, &tc.o)
					if err != nil {
						t.Fatal(err)
					}
					b = appendTail(b, &tc.o)
					mustEqualBytes(t, "frame", b, want)
				}
			}
		})
	}
}

// TestHeaderMemoSwitches: a sender alternating between options gets each one's own header from
// the memo, never the previous one's.
func TestHeaderMemoSwitches(t *testing.T) {
	opts := []SendOptions{
		{MessageType: "t"},
		{MessageType: "t", DestinationID: "d"},
		{MessageType: "u"},
		{MessageType: "t", Binary: []byte{1}},
		{MessageType: "t", AwaitResponse: true},
		{MessageType: "t", WaitForAck: true},
		{MessageType: "t", MessageTypePublish: "p"},
		{MessageType: "t", RequestID: 1},
		{MessageType: "t", ResponseID: "r"},
		{MessageType: "t", WithFile: &WithFile{SrcPath: "/a"}},
		{},
	}
	plain := ident{sourceID: "client1", defaultDest: "srv", defaultType: "any", hasDefType: true}
	memo := plain
	memo.memo = new(memoSlot)
	for i := range 3 * len(opts) {
		o := &opts[(i*7)%len(opts)]
		want, err := appendHeader(nil, &plain, o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendHeader([]byte("prefix"), &memo, o)
		if err != nil {
			t.Fatal(err)
		}
		mustEqualBytes(t, fmt.Sprintf("header %d (options %+v)", i, *o), got[len("prefix"):], want)
	}
}

// TestHeaderMemoAlternating: a sender alternating between two kinds of message replaces the
// memo on one miss in eight, not on every message (each replacement allocates).
func TestHeaderMemoAlternating(t *testing.T) {
	id := ident{sourceID: "client1", defaultType: "any", hasDefType: true, memo: new(memoSlot)}
	opts := [2]SendOptions{{DestinationID: "a"}, {DestinationID: "b"}}
	buf := make([]byte, 0, 256)
	i := 0
	allocs := testing.AllocsPerRun(800, func() {
		buf, _ = appendHeader(buf[:0], &id, &opts[i&1])
		i++
	})
	if allocs > 0.5 { // a replacement is 2 allocations: 2/8 per message (AllocsPerRun reports whole allocations)
		t.Errorf("%.2f allocations per alternating send, want at most 0.5", allocs)
	}
}

func TestAwaitNoResponseAndCancel(t *testing.T) {
	dir := shortDir(t)
	cfg := clientCfg(t, dir, "")
	var mu sync.Mutex
	hold := false
	release := make(chan struct{})
	got := make(chan []byte, 4)
	listenFake(t, cfg.SendToConnectorPath(), func(c *net.UnixConn) error {
		b, err := readRecord(c)
		got <- b
		mu.Lock()
		h := hold
		mu.Unlock()
		if h {
			<-release
		}
		return err
	})
	a := newAPI(t, cfg)
	if _, err := a.SendMessageAwaitResponse(context.Background(), SendOptions{RequestID: 3}); !errors.Is(err, ErrNoResponse) {
		t.Errorf("closed without reply: %v", err)
	}
	recv(t, got)
	mu.Lock()
	hold = true
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.SendMessageAwaitResponse(ctx, SendOptions{RequestID: 4})
		done <- err
	}()
	recv(t, got)
	cancel()
	if err := recv(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// Close interrupts a pending await.
	go func() {
		_, err := a.SendMessageAwaitResponse(context.Background(), SendOptions{RequestID: 5})
		done <- err
	}()
	recv(t, got)
	a.Close()
	if err := recv(t, done); !errors.Is(err, ErrClosed) {
		t.Errorf("closed: %v", err)
	}
	close(release)
	if err := a.SendMessage(context.Background(), SendOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// A connector configured without preserve closes after each frame: the API notices on the
// next write and sends that message on a new connection.
func TestPreservedReconnect(t *testing.T) {
	dir := shortDir(t)
	cfg := clientCfg(t, dir, "")
	got := make(chan []byte, 4)
	listenFake(t, cfg.SendToConnectorPath(), func(c *net.UnixConn) error {
		b, err := readRecord(c)
		c.Close()
		got <- b
		return err
	})
	a := newAPI(t, cfg)
	ctx := context.Background()
	for i, s := range clientSends[:3] {
		if err := a.SendMessage(ctx, s.o); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		mustEqualBytes(t, s.vec, recv(t, got), vec(t, "nossl_p2p", s.vec))
	}
}

func TestPreservedConcurrent(t *testing.T) {
	dir := shortDir(t)
	cfg := serverCfg(t, dir, "")
	got := make(chan []byte, 1)
	listenFake(t, cfg.SendToConnectorPath(), recordAll(got))
	a := newAPI(t, cfg)
	const G, N = 8, 200
	var wg sync.WaitGroup
	big := bytes.Repeat([]byte("z"), inlineMax+1) // also exercises the writev path
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < N; i++ {
				o := SendOptions{DestinationID: "client1", RequestID: g*N + i, Data: []byte("d")}
				if i%50 == 0 {
					o.Data, o.Binary = big, []byte("bin")
				}
				if err := a.SendMessage(context.Background(), o); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	a.Close()
	stream := recv(t, got)
	frames := splitFrames(t, stream)
	if len(frames) != G*N {
		t.Fatalf("%d frames, want %d", len(frames), G*N)
	}
	seen := map[int64]bool{}
	for _, fb := range frames {
		f := parseVec(t, fb)
		v, _ := codec.Lookup(f.JSON, "request_id")
		id, ok := v.Int()
		if !ok || seen[id] {
			t.Fatalf("bad or duplicate id %q", v.Raw)
		}
		seen[id] = true
		if id%N%50 == 0 && (!bytes.Equal(f.Data, big) || string(f.Binary) != "bin") {
			t.Fatalf("big frame %d corrupted", id)
		}
	}
}

func TestWaitingRules(t *testing.T) {
	dir := shortDir(t)
	cfg := serverCfg(t, dir, "")
	a := newAPI(t, cfg)
	h := func(*Message) {}
	path := cfg.ReceiveFromConnectorPath("any")
	if err := a.StartWaitingForMessages("other", h, false); !errors.Is(err, ErrNotRecvType) {
		t.Errorf("unknown type: %v", err)
	}
	if err := a.StartWaitingForMessages("any", nil, false); !errors.Is(err, ErrNilHandler) {
		t.Errorf("nil handler: %v", err)
	}
	if err := a.StopWaitingForMessages("any"); !errors.Is(err, ErrNotWaiting) {
		t.Errorf("stop without start: %v", err)
	}
	// A stale socket file: refused without reuse, replaced with reuse.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if err := a.StartWaitingForMessages("any", h, false); !errors.Is(err, ErrInUse) {
		t.Errorf("existing file: %v", err)
	}
	if err := a.StartWaitingForMessages("any", h, true); err != nil {
		t.Fatalf("reuse: %v", err)
	}
	if err := a.StartWaitingForMessages("any", h, true); !errors.Is(err, ErrAlreadyWaiting) {
		t.Errorf("second waiter: %v", err)
	}
	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o777 != 0o770 || st.Uid == 0 {
			t.Errorf("receive_from_any_connector_owner: mode %o uid %d", st.Mode&0o777, st.Uid)
		}
	}
	if err := a.StopWaitingForMessages("any"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file left: %v", err)
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Error("still accepting")
	}
	a.Close()
	if err := a.StartWaitingForMessages("any", h, true); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

// sendFrames dials the receive socket as a connector would and writes frames.
func dialRecv(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReceivePanicAndNonPreserve(t *testing.T) {
	frame := func(js, data string) []byte { return codec.AppendFrame(nil, []byte(js), []byte(data), nil, false) }
	for _, tc := range []struct {
		name  string
		extra string
		panic bool
	}{
		{"panic closes the connection", "", true},
		{"non-preserve reads one message per connection", `"uds_path_receive_preserve_socket": false`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientCfg(t, shortDir(t), tc.extra)
			a := newAPI(t, cfg)
			got := make(chan string, 4)
			err := a.StartWaitingForMessages("any", func(m *Message) {
				got <- string(m.Data)
				if tc.panic {
					panic("boom")
				}
			}, false)
			if err != nil {
				t.Fatal(err)
			}
			c := dialRecv(t, cfg.ReceiveFromConnectorPath("any"))
			c.Write(append(frame(`{"message_type": "any"}`, "one"), frame(`{"message_type": "any"}`, "two")...))
			if s := recv(t, got); s != "one" {
				t.Fatalf("got %q", s)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("connection not closed by the API: %v", err)
			}
			select {
			case s := <-got:
				t.Errorf("second message %q delivered", s)
			default:
			}
		})
	}
}

func TestReceiveLargeAndBad(t *testing.T) {
	cfg := serverCfg(t, shortDir(t), "")
	a := newAPI(t, cfg)
	got := make(chan *Message, 4)
	if err := a.StartWaitingForMessages("any", func(m *Message) { got <- m.Clone() }, false); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("d"), 3*recvBufSize)
	bin := bytes.Repeat([]byte("b"), recvBufSize)
	c := dialRecv(t, cfg.ReceiveFromConnectorPath("any"))
	js := `{"message_type": "any", "with_binary": true}`
	go c.Write(append(codec.AppendFrame(nil, []byte(js), data, bin, true),
		codec.AppendFrame(nil, []byte(`{"message_type": "any"}`), []byte("small"), []byte("ignored"), true)...))
	m := recv(t, got)
	if string(m.Header) != js || !bytes.Equal(m.Data, data) || !bytes.Equal(m.Binary, bin) || !m.HasBinary {
		t.Errorf("large frame corrupted")
	}
	m = recv(t, got)
	if string(m.Data) != "small" || m.HasBinary || m.Binary != nil {
		t.Errorf("binary without with_binary must be ignored: %+v", m)
	}
	// A frame whose JSON is not an object ends the connection.
	c.Write(codec.AppendFrame(nil, []byte(`[1]`), nil, nil, false))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("bad frame: connection not closed: %v", err)
	}
}

// TestAwaitReusesConnection: in preserve mode sequential await requests share one connection
// (the connector keeps reading it after a reply, Python's and ours); a connection the
// connector closes (a request without a reply) is not reused; without preserve, one
// connection per request as before.
func TestAwaitReusesConnection(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		t.Run("preserve="+strconv.FormatBool(preserve), func(t *testing.T) {
			dir := shortDir(t)
			cfg := clientCfg(t, dir, `"uds_path_send_preserve_socket": `+strconv.FormatBool(preserve))
			var conns atomic.Int32
			listenFake(t, cfg.SendToConnectorPath(), func(c *net.UnixConn) error {
				conns.Add(1)
				for {
					b, err := readRecord(c)
					if err != nil {
						return nil // the API closed it
					}
					f, err := codec.ParseBody(b[codec.LenPrefix:])
					if err != nil {
						return err
					}
					if string(f.Data) == "noreply" {
						return nil // ends the request without a reply: closes
					}
					var h codec.Header
					codec.ScanHeader(f.JSON, &h)
					js := `{"message_type": "any", "response_id": ` + string(h.RequestID.Raw) + `}`
					if _, err := c.Write(codec.AppendFrame(nil, []byte(js), f.Data, nil, false)); err != nil {
						return err
					}
				}
			})
			a := newAPI(t, cfg)
			ctx := context.Background()
			var first *Message
			ask := func(i int, data string) error {
				m, err := a.SendMessageAwaitResponse(ctx, SendOptions{MessageType: "any", Data: []byte(data), RequestID: i})
				if err == nil && string(m.Data) != data {
					t.Fatalf("request %d: reply %q", i, m.Data)
				}
				if first == nil {
					first = m
				}
				return err
			}
			for i := 0; i < 4; i++ {
				if err := ask(i, "q"+strconv.Itoa(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := ask(9, "noreply"); !errors.Is(err, ErrNoResponse) {
				t.Fatalf("noreply: %v", err)
			}
			for i := 4; i < 6; i++ {
				if err := ask(i, "q"+strconv.Itoa(i)); err != nil {
					t.Fatal(err)
				}
			}
			if string(first.Data) != "q0" || !bytes.Contains(first.Header, []byte(`"response_id": 0`)) {
				t.Fatalf("the first reply changed under the caller: %s %q", first.Header, first.Data)
			}
			want := int32(7) // one per request
			if preserve {
				want = 2 // the first, and one after the connection the connector closed
			}
			if got := conns.Load(); got != want {
				t.Fatalf("%d connections for 7 requests, want %d", got, want)
			}
			// a reply larger than the reader's buffer: the idle connection does not keep it
			if err := ask(10, strings.Repeat("x", 64<<10)); err != nil {
				t.Fatal(err)
			}
			a.mu.Lock()
			for _, ic := range a.idle {
				if ic.fr.big != nil {
					t.Errorf("an idle connection keeps a %d-byte reply buffer", cap(ic.fr.big))
				}
			}
			a.mu.Unlock()
		})
	}
}
