package connector

import (
	"fmt"

	"github.com/aioconn/aioconn/codec"
)

// Link compression (issue 11, `link_compression`: "s2" or "zstd", off by default). It rides on the
// link-extension negotiation of at_least_once (alo.go, alopeer.go), which runs when either
// feature is configured:
//
//   - The client adds "z": "<algorithm>" to its advertisement (the `aioconn` object of its
//     handshake JSON, or its `_aioconn` first frame in strict TLS after ALPN).
//   - A server that has link_compression configured (any algorithm) answers with the same "z" in
//     its `_aioconn` frame, and everything it writes after that frame is compressed.
//   - The client, on that answer, decodes everything after it, writes a plain `_aioconn_z` frame
//     and compresses everything it writes after that frame; the server decodes everything after
//     the `_aioconn_z` it reads. (The client may have written frames between its handshake and
//     the answer, so the server cannot know where the client's compressed bytes start without it.)
//
// The compressed stream is codec's chunk format: each flush of the link (a batch of whole frames)
// is compressed on its own. A corrupt chunk closes the connection with an error naming the peer
// (a client then reconnects). A Python peer never advertises nor answers, so it never sees any of
// this. Compression happens on the link's event loop (under the TLS records in TLS modes).

const aloZType = "_aioconn_z"

// linkExt reports whether this connector takes part in the link-extension negotiation.
func (c *Connector) linkExt() bool { return c.alo != nil || c.zKind != 0 }

// zName is the advertised name of the configured compression ("" when off).
func (c *Connector) zName() string { return c.cfg.LinkCompression }

// helloJSON is the client's advertisement value for peer name: {"v": 1[, "stream": S][, "z": A]}.
func (c *Connector) helloJSON(name string) []byte {
	var o codec.Obj
	o.Begin(nil)
	o.Int("v", aloVersion)
	if c.alo != nil {
		o.Str("stream", c.alo.sender(name).streamHex)
	}
	if c.zKind != 0 {
		o.Str("z", c.zName())
	}
	return o.End()
}

// zAgree is the server's choice for a client advertisement obj: the client's algorithm when this
// connector has compression configured and knows it, else 0.
func (c *Connector) zAgree(obj []byte) (byte, string) {
	if c.zKind == 0 {
		return 0, ""
	}
	v, _ := codec.Lookup(obj, "z")
	name, ok := v.Str()
	if !ok {
		return 0, ""
	}
	k, err := codec.ZAlgorithm(name)
	if err != nil {
		c.log.Warnf("%s %v: link uncompressed", c.sourceID, err)
		return 0, ""
	}
	return k, name
}

// zStartOutput flushes what is written so far (plain) and compresses everything after.
// Loop-owned.
func (p *peer) zStartOutput(kind byte) error {
	z, err := codec.NewCompressor(kind)
	if err != nil {
		return err
	}
	p.flush()
	p.conn.SetEncoder(z)
	p.zOut = z
	p.zOn.Add(1)
	return nil
}

// zStartInput decodes everything after the frame just consumed. Loop-owned.
func (p *peer) zStartInput() error {
	p.zIn = false
	d := &codec.Decompressor{}
	p.zDec = d
	p.zOn.Add(2)
	if err := p.conn.SetDecoder(d); err != nil {
		return p.zCorrupt(err)
	}
	return nil
}

// zCorrupt is the error that closes a link whose compressed input is corrupt.
func (p *peer) zCorrupt(err error) error {
	p.cn.log.Errorf("%s closing connection with %s: compressed stream: %v", p.cn.sourceID, p.name, err)
	return fmt.Errorf("connector: compressed stream from %s: %w", p.name, err)
}

// zClosed releases the link's compressor and decompressor. Loop-owned (OnClose).
func (p *peer) zClosed() {
	if p.zOn.Swap(0) > 0 { // the link's bytes join the connector's totals
		po, wo, wi, pi := p.conn.TransformCounts()
		st := &p.cn.stats
		st.zPlainOut.Add(po)
		st.zWireOut.Add(wo)
		st.zWireIn.Add(wi)
		st.zPlainIn.Add(pi)
	}
	if p.zOut != nil {
		p.conn.SetEncoder(nil) // a late Write goes nowhere, never to a closed compressor
		p.zOut.Close()
		p.zOut = nil
	}
	if p.zDec != nil {
		p.zDec.Close()
		p.zDec = nil
	}
}

// zClientAnswer handles the "z" of the server's `_aioconn` answer on a client link: decode what
// follows the answer, send `_aioconn_z` and compress what follows it. Loop-owned.
func (p *peer) zClientAnswer(js []byte) error {
	cn := p.cn
	if cn.zKind == 0 || p.zOut != nil {
		return nil
	}
	v, _ := codec.Lookup(js, "z")
	name, ok := v.Str()
	if !ok {
		return nil // the server has compression off
	}
	if name != cn.zName() {
		return fmt.Errorf("connector: server %s answered compression %q to our %q", p.name, name, cn.zName())
	}
	p.zIn = true
	cn.log.Infof("%s link with %s compressed (%s)", cn.sourceID, p.name, name)
	if p.fsend != nil { // a late answer while a file frame is being written: switch after it
		p.zOutAfterFile = true
		return nil
	}
	return p.zClientSwitch()
}

// zClientSwitch writes the `_aioconn_z` marker (plain) and compresses everything after it.
// Loop-owned, between frames.
func (p *peer) zClientSwitch() error {
	cn := p.cn
	p.zOutAfterFile = false
	var o codec.Obj
	o.Begin(nil)
	o.Str("message_type", aloZType)
	o.Str("source_id", cn.sourceID)
	o.Str("z", cn.zName())
	p.out = codec.AppendFrame(p.out, o.End(), nil, nil, false)
	return p.zStartOutput(cn.zKind)
}

// zServerStart handles the client's `_aioconn_z` on a server link: what follows is compressed.
func (p *peer) zServerStart() error {
	if p.client || p.zOut == nil || p.zDec != nil {
		return fmt.Errorf("connector: unexpected %s from %s", aloZType, p.name)
	}
	p.zIn = true
	return nil
}
