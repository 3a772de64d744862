package connector

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
	ctls "github.com/aioconn/aioconn/tls"
)

// frameSink collects the frames a Local listener receives, in order.
type frameSink struct {
	mu      sync.Mutex
	frames  [][]byte
	changed chan struct{}
}

func newFrameSink() *frameSink { return &frameSink{changed: make(chan struct{}, 1)} }

func (s *frameSink) handle(frame []byte) {
	s.mu.Lock()
	s.frames = append(s.frames, append([]byte(nil), frame...))
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *frameSink) wait(t testing.TB, n int) [][]byte {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		got := s.frames
		s.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("received %d of %d frames", len(got), n)
		}
	}
}

// zTraffic sends numbered messages both ways (with a binary larger than a compression chunk in
// the middle) and checks they arrive whole and in order.
func zTraffic(t *testing.T, srv, cli *Connector) {
	t.Helper()
	atSrv, atCli := newFrameSink(), newFrameSink()
	if err := srv.Local().Listen("any", atSrv.handle); err != nil {
		t.Fatal(err)
	}
	if err := cli.Local().Listen("any", atCli.handle); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, codec.ZChunkMax+12345)
	rand.Read(big)
	const n = 300
	var want [][]byte
	for i := 0; i < n; i++ {
		data := `{"host": "node-` + strconv.Itoa(i%7) + `", "metric": "cpu", "value": ` + strconv.Itoa(i) + `}`
		var bin []byte
		wb := ""
		if i == n/2 {
			bin, wb = big, `, "with_binary": true`
		}
		want = append(want, []byte(data))
		f := codec.AppendFrame(nil, []byte(`{"message_type": "any"`+wb+`}`), []byte(data), bin, bin != nil)
		if err := cli.Local().Send(f); err != nil {
			t.Fatal(err)
		}
		g := codec.AppendFrame(nil, []byte(`{"message_type": "any", "destination_id": "client1"`+wb+`}`), []byte(data), bin, bin != nil)
		if err := srv.Local().Send(g); err != nil {
			t.Fatal(err)
		}
	}
	for side, s := range map[string]*frameSink{"server": atSrv, "client": atCli} {
		got := s.wait(t, n)
		for i, fb := range got[:n] {
			f, err := codec.ParseBody(fb[codec.LenPrefix:])
			if err != nil || !bytes.Equal(f.Data, want[i]) || (i == n/2) != f.HasBinary || (i == n/2 && !bytes.Equal(f.Binary, big)) {
				t.Fatalf("%s: frame %d: %q (err %v) bin %v %d", side, i, f.Data, err, f.HasBinary, len(f.Binary))
			}
		}
	}
}

func zLinked(t *testing.T, srv, cli *Connector, want int32) {
	t.Helper()
	eventually(t, "link compression state", func() bool {
		p, sp := cli.peerByName(cli.serverPeer), srv.peerByName("client1")
		return p != nil && sp != nil && p.zOn.Load() == want && sp.zOn.Load() == want
	})
}

// TestCompressedLink: with link_compression on both sides the link is compressed both ways in
// every security mode, with and without at_least_once, and carries the same messages as a
// plain link.
func TestCompressedLink(t *testing.T) {
	certs := filepath.Join(shortDir(t), "c") // one tree for every TLS case (key generation is slow)
	if err := ctls.CreateCertificates(certs, nil); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"plain", "allow_all", "strict"} {
		for _, z := range []string{"s2", "zstd"} {
			for _, alo := range []bool{false, true} {
				if alo && z == "s2" && mode != "plain" {
					continue
				}
				t.Run(mode+"/"+z+"/alo="+strconv.FormatBool(alo), func(t *testing.T) {
					o := opts{"link_compression": z}
					if alo {
						o["at_least_once"] = true
					}
					dir := shortDir(t)
					if mode != "plain" {
						o["use_ssl"] = true
						o["ssl_allow_all"] = mode == "allow_all"
						o["certificates_directory_path"] = certs
					}
					srv := newConnector(t, dir, serverConf(dir, 0, o), nil)
					cli := newConnector(t, dir, clientConf(dir, srv.TCPAddr().Port, "client1", o), nil)
					dumpLogs(t, srv, cli)
					waitLinked(t, srv, cli, "client1")
					zLinked(t, srv, cli, 3)
					if alo {
						eventually(t, "at_least_once too", func() bool {
							p := cli.peerByName(cli.serverPeer)
							return p != nil && p.aloMode.Load() == aloOn
						})
					}
					zTraffic(t, srv, cli)
					eventually(t, "show_stats link_compression counts agree", func() bool {
						a, b := cli.Stats().Compression, srv.Stats().Compression
						return a.Links == 1 && b.Links == 1 && a.WireOut > 0 && a.PlainIn > 0 &&
							a.PlainOut == b.PlainIn && a.WireOut == b.WireIn && b.PlainOut == a.PlainIn && b.WireOut == a.WireIn
					})
				})
			}
		}
	}
}

// TestCompressedLinkOneSide: compression configured on one side only leaves the link plain (a
// server without it ignores the advertisement as a Python server does; a client without it
// does not advertise), and the messages flow.
func TestCompressedLinkOneSide(t *testing.T) {
	aloHelloWait = 100 * time.Millisecond
	defer func() { aloHelloWait = aloHelloWaitDefault }()
	for _, c := range []struct {
		name     string
		srv, cli opts
	}{
		{"client only", nil, opts{"link_compression": "zstd"}},
		{"server only", opts{"link_compression": "s2"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, cli := startPair(t, c.srv, c.cli, nil, nil)
			dumpLogs(t, srv, cli)
			zTraffic(t, srv, cli)
			zLinked(t, srv, cli, 0)
		})
	}
}

// TestCompressedLinkRejectsCorrupt: a corrupt compressed chunk closes that connection (and only
// it) with an error naming the peer; the client reconnects and traffic resumes compressed.
func TestCompressedLinkRejectsCorrupt(t *testing.T) {
	dir := shortDir(t)
	o := opts{"link_compression": "s2"}
	srv := newConnector(t, dir, serverConf(dir, 0, o), nil)
	px := newCorruptProxy(t, srv.TCPAddr().String())
	cli := newConnector(t, dir, clientConf(dir, px.port(), "client1", o), func(c *config.Options) {
		c.ReconnectInterval = 50 * time.Millisecond
	})
	dumpLogs(t, srv, cli)
	waitLinked(t, srv, cli, "client1")
	zLinked(t, srv, cli, 3)
	first := cli.peerByName(cli.serverPeer)
	atCli := newFrameSink()
	if err := cli.Local().Listen("any", atCli.handle); err != nil {
		t.Fatal(err)
	}
	px.corruptNext.Store(true) // server → client: the next read of 64 bytes or more
	msg := codec.AppendFrame(nil, []byte(`{"message_type": "any", "destination_id": "client1"}`), bytes.Repeat([]byte("telemetry "), 20), nil, false)
	srv.Local().Send(msg)
	waitNewPeer(t, cli, cli.serverPeer, first)
	waitLinked(t, srv, cli, "client1")
	zLinked(t, srv, cli, 3)
	// after the reconnect, messages flow again
	for i := 0; i < 3; i++ {
		srv.Local().Send(msg)
	}
	atCli.wait(t, 3)
	if !logContains(cli, "compressed stream") {
		t.Fatal("no log line about the corrupt compressed stream")
	}
}

// TestCompressedLinkUnexpectedMarker: `_aioconn_z` on a link that did not agree on compression
// closes it with an error.
func TestCompressedLinkUnexpectedMarker(t *testing.T) {
	dir := shortDir(t)
	srv := newConnector(t, dir, serverConf(dir, 0, opts{"link_compression": "zstd"}), nil)
	c := fakeClient(t, srv, "fz") // plain handshake, no advertisement
	write(t, c, fr(`{"message_type": "_aioconn_z", "source_id": "fz", "z": "zstd"}`, ""))
	expectClosed(t, "link after an unexpected _aioconn_z", c)
}

// corruptProxy forwards a TCP connection, and flips a byte of one server→client read on demand.
type corruptProxy struct {
	ln          net.Listener
	target      string
	corruptNext atomic.Bool
}

func newCorruptProxy(t *testing.T, target string) *corruptProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n >= 64 && p.corruptNext.CompareAndSwap(true, false) {
						buf[n-1] ^= 0xff
					}
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return p
}

func (p *corruptProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// TestCompressedFileTransfer: a file frame streamed on both sides (over rxStreamMin) crosses a
// compressed link intact, and messages sent after it still arrive.
func TestCompressedFileTransfer(t *testing.T) {
	srv, cli, dir := filePairWith(t, `, "link_compression": "zstd"`)
	zLinked(t, srv, cli, 3)
	app := listenApp(t, srv.Paths().ReceivePath("any"))
	var appConn net.Conn
	src := filepath.Join(dir, "big.bin")
	body := bytes.Repeat([]byte(`{"metric": "cpu", "value": 12.5}`+"\n"), 100000) // compressible
	rnd := make([]byte, 1<<20)
	rand.Read(rnd)
	body = append(body, rnd...)
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	send := dialUnix(t, cli.Paths().SendToConnector)
	send.Write(fileMsg(cli, src, "any", "big.bin", ""))
	app.next(t, &appConn)
	got, err := os.ReadFile(filepath.Join(dir, "in", "big.bin"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("received file differs (%d of %d bytes, %v)", len(got), len(body), err)
	}
	send.Write(frameOf(`{"message_type": "any", "source_id": "client1", "destination_id": `+pyStr(cli.serverPeer)+`}`, "after"))
	if m := app.next(t, &appConn); !bytes.Contains(m, []byte("after")) {
		t.Fatalf("message after the file: %q", m)
	}
}

// TestCompressedLinkLateAnswerDuringFile: a server's `_aioconn` answer (agreeing on compression)
// that arrives after the client gave up waiting and started writing a file frame: the client
// finishes the file frame plain, then writes `_aioconn_z`, and only then compresses.
func TestCompressedLinkLateAnswerDuringFile(t *testing.T) {
	aloHelloWait = 50 * time.Millisecond
	defer func() { aloHelloWait = aloHelloWaitDefault }()
	ln, port := fakeServer(t)
	dir := shortDir(t)
	cli := newConnector(t, dir, clientConf(dir, port, "client1", opts{"link_compression": "s2"}), nil)
	dumpLogs(t, cli)
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	hs, buf, err := codec.ReadFrame(c, nil, 1<<20)
	if err != nil || !bytes.Contains(hs.JSON, []byte(`"z": "s2"`)) {
		t.Fatalf("handshake %s: %v", hs.JSON, err)
	}
	eventually(t, "client treats the server as a Python peer", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloLegacy
	})
	// a file far larger than the socket buffers: it stays in flight while we do not read
	src := filepath.Join(dir, "big.bin")
	content := make([]byte, 24<<20)
	rand.Read(content)
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cli.Local().Send(fileMsg(cli, src, "any", "big.bin", `, "delete": false`)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 64<<10) // the file frame has started
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatal(err)
	}
	// the late answer
	write(t, c, fr(`{"message_type": "_aioconn", "source_id": "srv", "v": 1, "z": "s2"}`, ""))
	// the rest of the file frame, whole and plain
	size := int(head[0]) | int(head[1])<<8 | int(head[2])<<16 | int(head[3])<<24
	frame := make([]byte, codec.LenPrefix+size)
	copy(frame, head)
	if _, err := io.ReadFull(c, frame[len(head):]); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(frame, content[len(content)-4096:]) {
		t.Fatal("file frame corrupted by a frame written inside it")
	}
	// then the marker, plain
	m, _, err := codec.ReadFrame(c, buf, 1<<20)
	if err != nil || !bytes.Contains(m.JSON, []byte(`"_aioconn_z"`)) {
		t.Fatalf("after the file frame: %s %v", m.JSON, err)
	}
	// and what follows is compressed: a message sent now arrives in a chunk
	cli.Local().Send(fr(`{"message_type": "any"}`, "after"))
	var d codec.Decompressor
	defer d.Close()
	var raw, plain []byte
	rb := make([]byte, 4096)
	for !bytes.Contains(plain, []byte("after")) {
		n, err := c.Read(rb)
		if err != nil {
			t.Fatalf("reading the compressed stream: %v (decoded %q)", err, plain)
		}
		raw = append(raw, rb[:n]...)
		var used int
		if plain, used, err = d.Decode(plain, raw, 1<<20); err != nil {
			t.Fatal(err)
		}
		raw = raw[used:]
	}
}

// TestLinkExtAnswerWithoutAgreement: an aioconn server that takes part in the negotiation but
// agrees on nothing the client asked for (here: it has at_least_once, the client only
// compression) still answers, so the client does not wait for its timeout.
func TestLinkExtAnswerWithoutAgreement(t *testing.T) {
	srv, cli := startPair(t, opts{"at_least_once": true}, opts{"link_compression": "zstd"}, nil, nil)
	dumpLogs(t, srv, cli)
	eventually(t, "client settled", func() bool {
		p := cli.peerByName(cli.serverPeer)
		return p != nil && p.aloMode.Load() == aloLegacy
	})
	if logContains(cli, "no at_least_once answer") {
		t.Fatal("the client waited for its timeout instead of reading the answer")
	}
	zTraffic(t, srv, cli)
	zLinked(t, srv, cli, 0)
}
