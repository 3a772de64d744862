package connector

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// zFuzzLink is a raw client link to a compression-enabled server, past the switch: the
// server's `_aioconn` answer was read (plain), `_aioconn_z` was written; what the server writes
// afterwards (compressed) is drained until the link closes (done).
type zFuzzLink struct {
	c    net.Conn
	done chan struct{}
}

func zFuzzDial(t testing.TB, addr, name string) *zFuzzLink {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	hs := fr(`{"message_type": "_handshake_no_ssl", "source_id": "`+name+`", "aioconn": {"v": 1, "z": "s2"}}`, "hello")
	if _, err := c.Write(hs); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	ans, _, err := codec.ReadFrame(c, nil, 1<<20)
	if err != nil {
		t.Fatalf("answer: %v", err)
	}
	if v, _ := codec.Lookup(ans.JSON, "z"); string(v.Raw) != `"s2"` {
		t.Fatalf("server answer %s", ans.JSON)
	}
	if _, err := c.Write(fr(`{"message_type": "_aioconn_z", "source_id": "`+name+`", "z": "s2"}`, "")); err != nil {
		t.Fatalf("marker: %v", err)
	}
	l := &zFuzzLink{c: c, done: make(chan struct{})}
	go func() { io.Copy(io.Discard, c); close(l.done) }()
	return l
}

// FuzzCompressedLinkServer drives a server link after the switch to compression: the fuzz bytes
// are sent either as they are (a corrupt or truncated compressed stream) or compressed properly
// (frames of any shape behind the decompressor), in two writes, then the client half-closes.
// The server must not panic, must close the link, and must still serve a fresh compressed link.
func FuzzCompressedLinkServer(f *testing.F) {
	dir := shortDir(f)
	srv := newConnector(f, dir, serverConf(dir, 0, opts{"link_compression": "zstd"}), func(o *config.Options) {
		o.MaxFrame = 64 << 10
	})
	delivered := listenChan(f, srv, "any")
	addr := srv.TCPAddr().String()
	var execs atomic.Uint64
	msg := fr(`{"message_type": "any", "source_id": "fz", "destination_id": "server"}`, "payload")
	f.Add(msg, uint16(10), true)
	f.Add(append(msg, msg[:9]...), uint16(3), true)
	f.Add([]byte{1, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 1, 2, 3, 4}, uint16(5), false)
	f.Add([]byte{0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 0, 'a', 'b', 'c'}, uint16(0), false)
	f.Add([]byte{}, uint16(0), true)
	f.Fuzz(func(t *testing.T, b []byte, split uint16, compress bool) {
		execs.Add(1)
		l := zFuzzDial(t, addr, "fz")
		defer l.c.Close()
		out := b
		if compress {
			z, err := codec.NewCompressor(codec.ZS2)
			if err != nil {
				t.Fatal(err)
			}
			k := min(int(split), len(b))
			out = z.Encode(z.Encode(nil, b[:k]), b[k:])
			z.Close()
		}
		k := min(int(split), len(out))
		if _, err := l.c.Write(out[:k]); err == nil && k < len(out) {
			l.c.Write(out[k:]) // the server may close at a bad chunk
		}
		l.c.(*net.TCPConn).CloseWrite()
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
			t.Fatal("link still open 5 s after EOF")
		}

		// a fresh compressed link is still served
		l2 := zFuzzDial(t, addr, "fz")
		defer l2.c.Close()
		tok := "chk" + strconv.FormatUint(execs.Load(), 10)
		z, _ := codec.NewCompressor(codec.ZS2)
		defer z.Close()
		if _, err := l2.c.Write(z.Encode(nil, fr(`{"message_type": "any", "source_id": "fz", "destination_id": "server"}`, tok))); err != nil {
			t.Fatalf("write check: %v", err)
		}
		for {
			select {
			case fb := <-delivered:
				fr, err := codec.ParseBody(fb[codec.LenPrefix:])
				if err == nil && !strings.HasPrefix(string(fr.Data), "chk") {
					continue // from the fuzz bytes
				}
				if err == nil && string(fr.Data) == tok {
					return
				}
			case <-time.After(5 * time.Second):
				t.Fatal("check message not delivered")
			}
		}
	})
}
