package connector

import (
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// Fuzz targets of the at_least_once control frames as a peer sends them (`_aioconn`,
// `_aioconn_ack`, and the aioconn_seq key of numbered messages): the parse helpers directly,
// then the whole receive path of a server link and of a client link.

// aloCtlJSON is the transport JSON of a control frame, as the Go peer writes it.
func aloCtlJSON(mt, stream string, extra string) string {
	return `{"message_type": "` + mt + `", "source_id": "fz", "stream": "` + stream + `"` + extra + `}`
}

// FuzzALOControl feeds arbitrary transport JSON to the parse helpers of the control frames
// (parseStream, valueUint): they must not panic; a stream they accept is 16 hex digits that
// decode to its id, a number they accept is a plain decimal uint64; and what they accept
// round-trips through the acknowledgement this side writes (appendALOAck).
func FuzzALOControl(f *testing.F) {
	for _, s := range []string{
		aloCtlJSON(aloHelloType, "0123456789abcdef", `, "v": 1, "ack": 42`),
		aloCtlJSON(aloHelloType, "0123456789abcdef", `, "v": 1`),
		aloCtlJSON(aloAckType, "fedcba9876543210", `, "seq": 7`),
		aloCtlJSON(aloSkipType, "fedcba9876543210", `, "from": 7, "to": 131079`),
		aloCtlJSON(aloAckType, "FEDCBA9876543210", `, "seq": 18446744073709551615`),
		aloCtlJSON(aloAckType, "fedcba9876543210", `, "seq": 18446744073709551616`),
		aloCtlJSON(aloAckType, "fedcba987654321", `, "seq": -1`),
		aloCtlJSON(aloAckType, "fedcba98765432100", `, "seq": 1.5`),
		aloCtlJSON(aloAckType, "zzzzzzzzzzzzzzzz", `, "seq": 1e3`),
		aloCtlJSON(aloAckType, `\u0030123456789abcdef`, `, "seq": "7"`),
		`{"message_type": "_aioconn_ack", "stream": 12, "seq": null}`,
		`{"message_type": "_aioconn", "stream": ["0123456789abcdef"], "ack": {"a": 1}}`,
		`{"message_type": "any", "aioconn_seq": 3}`,
		`{"stream": "0123456789abcdef", "seq": 0`, // truncated
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	cn := &Connector{sourceID: "fz"}
	f.Fuzz(func(t *testing.T, js []byte) {
		sv, serr := codec.Lookup(js, "stream")
		id, hx, ok := parseStream(sv)
		if ok {
			if serr != nil || !sv.Present() {
				t.Fatalf("stream accepted from %v (lookup %v)", sv, serr)
			}
			s, _ := sv.Str()
			if hx != s || len(hx) != 16 || hex.EncodeToString(id[:]) != strings.ToLower(hx) {
				t.Fatalf("stream %q parsed as %x / %q", s, id, hx)
			}
		} else if s, isStr := sv.Str(); isStr && len(s) == 16 && strings.Trim(s, "0123456789abcdef") == "" {
			t.Fatalf("own stream format %q refused", s)
		}
		for _, key := range []string{"seq", "ack", aloSeqKey} {
			v, _ := codec.Lookup(js, key)
			n, nok := valueUint(v)
			if !nok {
				continue
			}
			if v.Kind != codec.KindNumber || strconv.FormatUint(n, 10) != strings.TrimLeft(string(v.Raw), "0")+zeroIf(n) {
				t.Fatalf("%s %q accepted as %d", key, v.Raw, n)
			}
			if !ok {
				continue
			}
			// what was accepted round-trips through the frames this side writes
			ack := cn.appendALOAck(nil, hx, n)
			fr, err := codec.ParseBody(ack[codec.LenPrefix:])
			if err != nil {
				t.Fatalf("own frame %q: %v", ack, err)
			}
			sv2, _ := codec.Lookup(fr.JSON, "stream")
			if id2, hx2, ok2 := parseStream(sv2); !ok2 || id2 != id || hx2 != hx {
				t.Fatalf("own frame %s: stream %x %q, want %x %q", fr.JSON, id2, hx2, id, hx)
			}
			qv, _ := codec.Lookup(fr.JSON, "seq")
			if n2, ok2 := valueUint(qv); !ok2 || n2 != n {
				t.Fatalf("own ack %s: seq %d %v, want %d", fr.JSON, n2, ok2, n)
			}
		}
	})
}

// zeroIf is "0" for n == 0 (TrimLeft leaves "" of "0").
func zeroIf(n uint64) string {
	if n == 0 {
		return "0"
	}
	return ""
}

// aloFuzzConn reads the frames a connector writes on a raw link in the background, so that its
// writes never block; got carries each frame's message type and JSON.
type aloFuzzConn struct {
	c    net.Conn
	got  chan codec.Frame
	done chan error // the read error that ended the link (io.EOF: closed by the connector)
}

func newALOFuzzConn(c net.Conn) *aloFuzzConn {
	a := &aloFuzzConn{c: c, got: make(chan codec.Frame, 64), done: make(chan error, 1)}
	go func() {
		var buf []byte
		for {
			fr, b, err := codec.ReadFrame(c, buf, 1<<20)
			buf = b
			if err != nil {
				close(a.got)
				a.done <- err
				return
			}
			fr.JSON = append([]byte(nil), fr.JSON...)
			select {
			case a.got <- fr:
			default: // not waited for: dropped
			}
		}
	}()
	return a
}

// next returns the next frame of type mt (bounded wait).
func (a *aloFuzzConn) next(t testing.TB, mt string) codec.Frame {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case fr, ok := <-a.got:
			if !ok {
				t.Fatalf("link closed while waiting for %s", mt)
			}
			v, _ := codec.Lookup(fr.JSON, "message_type")
			if s, _ := v.Str(); s == mt {
				return fr
			}
		case <-deadline:
			t.Fatalf("no %s within 5 s", mt)
		}
	}
}

// closed waits until the connector closed the link (bounded).
func (a *aloFuzzConn) closed(t testing.TB) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		t.Fatal("link still open 5 s after EOF")
	}
}

// aloSeqFrame is a numbered message of the type "any" as the Go sender writes it.
func aloSeqFrame(seq string, data string) []byte {
	return fr(`{"message_type": "any", "source_id": "fz", "destination_id": "server", "aioconn_seq": `+seq+`}`, data)
}

// aloLinkSeeds are the fuzz bytes common to both sides: numbered messages (in order, repeated,
// out of order, invalid numbers, numbers near and past the uint64 and int64 limits), control
// frames (valid, for another stream, invalid) and plain messages. peerStream is the stream
// the receiving connector sends on (for acknowledgements of it).
func aloLinkSeeds(peerStream string) [][]byte {
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	ack := func(stream, seq string) []byte {
		return fr(`{"message_type": "_aioconn_ack", "source_id": "fz", "stream": "`+stream+`", "seq": `+seq+`}`, "")
	}
	return [][]byte{
		cat(aloSeqFrame("1", "a"), aloSeqFrame("2", "b"), aloSeqFrame("2", "b"), aloSeqFrame("3", "c")),
		cat(aloSeqFrame("5", "e"), aloSeqFrame("4", "d"), aloSeqFrame("1", "a")),
		cat(aloSeqFrame("0", "z"), aloSeqFrame("-1", "m"), aloSeqFrame("1.5", "f"), aloSeqFrame(`"7"`, "s"), aloSeqFrame("null", "n")),
		cat(aloSeqFrame("1", "a"), aloSeqFrame("4096", "w"), aloSeqFrame("70000", "far")),
		cat(aloSeqFrame("18446744073709551615", "max")),
		cat(aloSeqFrame("1", "a"), aloSeqFrame("9223372036854775810", "neg")),
		cat(aloSeqFrame("1", "a"), aloSeqFrame("1099511627776", "huge")),
		cat(ack(peerStream, "0"), ack(peerStream, "1"), ack(peerStream, "18446744073709551615"), ack("0000000000000000", "3")),
		cat(fr(aloCtlJSON(aloHelloType, "0123456789abcdef", `, "v": 1, "ack": 3`), ""), aloSeqFrame("1", "a")),
		cat(fr(`{"message_type": "_aioconn", "source_id": "fz", "stream": "nothex!!nothex!!", "ack": -4}`, ""), ack("x", "1")),
		cat(fr(`{"message_type": "_aioconn_other", "source_id": "fz"}`, ""), fr(`{"message_type": "_aioconn"}`, "")),
		cat(fr(`{"message_type": "any", "source_id": "fz", "destination_id": "server"}`, "plain"), aloSeqFrame("1", "a")),
		cat(aloSeqFrame("1", "a"), []byte{9, 0, 0}), // truncated frame after one message
		cat(fr(aloCtlJSON(aloSkipType, "0123456789abcdef", `, "from": 2, "to": 1099511627776`), ""), aloSeqFrame("1", "a")),
		cat(fr(aloCtlJSON(aloSkipType, "0123456789abcdef", `, "from": 9, "to": 3`), ""), fr(aloCtlJSON(aloSkipType, "x", `, "from": 0`), "")),
	}
}

// FuzzALOLinkServer drives the whole receive path of a server link on which at_least_once was
// negotiated (peer.process, aloControl, aloReceive, the tracker and the receive committer): a
// raw client "fz" advertises a fresh stream in its handshake, gets the server's `_aioconn`
// answer, then sends the fuzz bytes in two writes split at a fuzzed offset and half-closes.
// The server must not panic, must close the link after the EOF, and must then still negotiate
// with and deliver the numbered messages of a fresh link (exactly once, the key removed).
func FuzzALOLinkServer(f *testing.F) {
	dir := shortDir(f)
	srv := newConnector(f, dir, serverConf(dir, 0, opts{"at_least_once": true}), func(o *config.Options) {
		o.MaxFrame = 64 << 10
	})
	delivered := listenChan(f, srv, "any")
	var execs atomic.Uint64
	// link dials the server as fz with a fresh stream and returns the link and the server's stream.
	link := func(t testing.TB) (*aloFuzzConn, string) {
		c, err := net.DialTimeout("tcp", srv.TCPAddr().String(), 2*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		stream := fmt.Sprintf("%016x", execs.Add(1)|1<<62)
		hs := fr(`{"message_type": "_handshake_no_ssl", "source_id": "fz", "aioconn": {"v": 1, "stream": "`+stream+`"}}`, "hello")
		if _, err := c.Write(hs); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		a := newALOFuzzConn(c)
		hello := a.next(t, aloHelloType)
		sv, _ := codec.Lookup(hello.JSON, "stream")
		_, theirs, ok := parseStream(sv)
		if !ok {
			t.Fatalf("server answer %s", hello.JSON)
		}
		if av, _ := codec.Lookup(hello.JSON, "ack"); string(av.Raw) != "0" {
			t.Fatalf("server acknowledges %s of a fresh stream: %s", av.Raw, hello.JSON)
		}
		return a, theirs
	}
	first, srvStream := link(f)
	first.c.Close()
	first.closed(f)
	for _, s := range aloLinkSeeds(srvStream) {
		f.Add(s, uint16(len(s)/2))
	}
	f.Add([]byte{}, uint16(0))

	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		a, _ := link(t)
		defer a.c.Close()
		k := min(int(split), len(b))
		if _, err := a.c.Write(b[:k]); err == nil && k < len(b) {
			a.c.Write(b[k:]) // errors are fine: the server may close at a bad frame
		}
		a.c.(*net.TCPConn).CloseWrite()
		a.closed(t)

		// a fresh link still negotiates, and its numbered messages are delivered once each, in
		// order and without the key (deliveries of the fuzz bytes may still be arriving: the
		// check messages carry a token of this execution)
		a2, _ := link(t)
		defer a2.c.Close()
		tok := "chk" + strconv.FormatUint(execs.Load(), 10) + "-"
		var out []byte
		for i := 1; i <= 3; i++ {
			out = append(out, aloSeqFrame(strconv.Itoa(i), tok+strconv.Itoa(i))...)
		}
		out = append(out, aloSeqFrame("2", tok+"2")...) // a duplicate: dropped
		if _, err := a2.c.Write(out); err != nil {
			t.Fatalf("write check: %v", err)
		}
		for i := 1; i <= 3; {
			select {
			case fb := <-delivered:
				fr, err := codec.ParseBody(fb[codec.LenPrefix:])
				if err == nil && !strings.HasPrefix(string(fr.Data), tok) {
					continue // from the fuzz bytes
				}
				if err != nil || string(fr.Data) != tok+strconv.Itoa(i) || strings.Contains(string(fr.JSON), aloSeqKey) {
					t.Fatalf("check message %d delivered as %q (%v)", i, fb, err)
				}
				i++
			case <-time.After(5 * time.Second):
				t.Fatalf("check message %d not delivered", i)
			}
		}
		if ack := a2.next(t, aloAckType); ack.JSON == nil {
			t.Fatal("no acknowledgement")
		}
	})
}

// FuzzALOLinkClient drives the receive path of a client link (aloControl's client branch: the
// server's `_aioconn` answer, acknowledgements, numbered messages): a fake server accepts the
// client connector's connection, checks its advertisement, sends the fuzz bytes and closes. The
// client must not panic and must reconnect and advertise again.
func FuzzALOLinkClient(f *testing.F) {
	dir := shortDir(f)
	ln, port := fakeServer(f)
	cli := newConnector(f, dir, clientConf(dir, port, "fz", opts{"at_least_once": true}), func(o *config.Options) {
		o.ReconnectInterval = time.Millisecond
		o.MaxFrame = 64 << 10
	})
	if err := cli.Local().Listen("any", func([]byte) {}); err != nil {
		f.Fatal(err)
	}
	// accept takes the client's next connection and returns it with the stream it advertised.
	accept := func(t testing.TB) (net.Conn, string) {
		ln.SetDeadline(time.Now().Add(5 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			t.Fatalf("client did not (re)connect: %v", err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		hs := readRaw(t, c)
		fr, err := codec.ParseBody(hs[codec.LenPrefix:])
		if err != nil {
			t.Fatalf("handshake %q: %v", hs, err)
		}
		v, _ := codec.Lookup(fr.JSON, aloHelloKey)
		sv, _ := codec.Lookup(v.Raw, "stream")
		_, stream, ok := parseStream(sv)
		if !ok || string(fr.Data) != "hello" {
			t.Fatalf("handshake without advertisement: %s", fr.JSON)
		}
		return c, stream
	}
	c, cliStream := accept(f)
	c.Close()
	hello := func(stream, ack string) []byte {
		return fr(`{"message_type": "_aioconn", "source_id": "server", "v": 1, "stream": "`+stream+`", "ack": `+ack+`}`, "")
	}
	for _, s := range aloLinkSeeds(cliStream) {
		f.Add(append(hello("0123456789abcdef", "0"), s...), uint16(len(s)/2))
	}
	f.Add(hello("0123456789abcdef", "18446744073709551615"), uint16(3))
	f.Add(hello("0123456789abcdef", "-1"), uint16(0))
	f.Add(hello("0123456789ABCDEF", "1e2"), uint16(0))
	f.Add(append(hello("not a stream", "1"), aloSeqFrame("1", "a")...), uint16(0))
	f.Add(append(hello("0123456789abcdef", "0"), hello("1123456789abcdef", "5")...), uint16(0))
	f.Add([]byte{}, uint16(0))

	f.Fuzz(func(t *testing.T, b []byte, split uint16) {
		c, _ := accept(t)
		defer c.Close()
		a := newALOFuzzConn(c)
		k := min(int(split), len(b))
		if _, err := c.Write(b[:k]); err == nil && k < len(b) {
			c.Write(b[k:])
		}
		// a hello among the fuzz bytes is acknowledged at once: wait for nothing else
		c.Close()
		<-a.done
		// the client is alive: it reconnects and advertises again
		c2, _ := accept(t)
		// Stop the reconnect after this check: the next execution accepts a fresh connection.
		c2.Close()
	})
}
