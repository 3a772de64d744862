package loop

import (
	gotls "crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"
)

// TLS records on the event loop (ARCHITECTURE.md "TLS on an event loop", design (a)). The
// handshake runs on a goroutine with crypto/tls over a HandshakeConn, which reads and writes
// the socket. EnrollTLS then switches the HandshakeConn to memory and hands the socket to gnet:
// the loop feeds the ciphertext it reads to the same *tls.Conn and takes the plaintext back
// (a read past the fed bytes returns a temporary net.Error, which crypto/tls reports without
// poisoning the connection), and what crypto/tls writes lands in a buffer that the loop writes
// to the socket. No goroutine, no thread hand-off and no lock between the socket and the
// Handler, as on a plaintext connection.

// HandshakeConn is the net.Conn under a *tls.Conn: the socket itself until EnrollTLS, memory
// after. Before EnrollTLS it is used by one handshake goroutine; after, on the loop only.
type HandshakeConn struct {
	net.Conn
	mem bool
	in  []byte // ciphertext offered to crypto/tls (mem mode)
	off int    // bytes of in consumed
	out []byte // ciphertext crypto/tls wrote (mem mode)
}

// NewHandshakeConn wraps an established socket for tls.Client or tls.Server.
func NewHandshakeConn(nc net.Conn) *HandshakeConn { return &HandshakeConn{Conn: nc} }

// errNoInput ends a crypto/tls read at the end of the bytes the loop offered. Temporary: the
// *tls.Conn keeps any partial record and is not poisoned.
var errNoInput net.Error = noInput{}

type noInput struct{}

func (noInput) Error() string   { return "loop: no more TLS input" }
func (noInput) Timeout() bool   { return false }
func (noInput) Temporary() bool { return true }

// Read implements net.Conn.
func (h *HandshakeConn) Read(b []byte) (int, error) {
	if !h.mem {
		return h.Conn.Read(b)
	}
	if h.off >= len(h.in) {
		return 0, errNoInput
	}
	n := copy(b, h.in[h.off:])
	h.off += n
	return n, nil
}

// Write implements net.Conn.
func (h *HandshakeConn) Write(b []byte) (int, error) {
	if !h.mem {
		return h.Conn.Write(b)
	}
	h.out = append(h.out, b...)
	return len(b), nil
}

// SetDeadline, SetReadDeadline and SetWriteDeadline apply to the socket until EnrollTLS (the
// handshake's timeout); on the loop there is nothing to wait for.
func (h *HandshakeConn) SetDeadline(t time.Time) error {
	if h.mem {
		return nil
	}
	return h.Conn.SetDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (h *HandshakeConn) SetReadDeadline(t time.Time) error {
	if h.mem {
		return nil
	}
	return h.Conn.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (h *HandshakeConn) SetWriteDeadline(t time.Time) error {
	if h.mem {
		return nil
	}
	return h.Conn.SetWriteDeadline(t)
}

// Close closes the socket before EnrollTLS; after, the loop owns the socket (Conn.Close).
func (h *HandshakeConn) Close() error {
	if h.mem {
		return nil
	}
	return h.Conn.Close()
}

// wireTLS is the TLS record layer of a connection served by gnet. Loop-owned.
type wireTLS struct {
	tc *gotls.Conn
	hc *HandshakeConn
	// pending: plaintext may wait inside tc (the last decode stopped at its limit, or the
	// handshake read application records along with its last flight).
	pending bool
}

// tlsReadChunk is the room given to each crypto/tls read (one record is at most 16 KiB).
const tlsReadChunk = 16<<10 + 256

// encode appends to dst the records of src (and any record crypto/tls wrote meanwhile, e.g.
// a key update reply, in order).
func (w *wireTLS) encode(dst, src []byte) ([]byte, error) {
	dst = append(dst, w.hc.out...)
	keep := w.hc.out[:0]
	w.hc.out = dst
	_, err := w.tc.Write(src)
	dst, w.hc.out = w.hc.out, keep
	if err != nil {
		return dst, fmt.Errorf("loop: TLS write: %w", err)
	}
	return dst, nil
}

// decode feeds src to crypto/tls (it takes all of it: a partial record stays inside) and
// appends the plaintext to dst, stopping once dst grew by limit (pending is then set). It
// returns the bytes of src consumed.
func (w *wireTLS) decode(dst, src []byte, limit int) ([]byte, int, error) {
	w.hc.in, w.hc.off = src, 0
	defer func() { w.hc.in = nil }()
	start := len(dst)
	w.pending = false
	for {
		if len(dst)-start >= limit {
			w.pending = true
			return dst, w.hc.off, nil
		}
		dst = slices.Grow(dst, tlsReadChunk)
		n, err := w.tc.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err != nil {
			if err == errNoInput {
				return dst, w.hc.off, nil
			}
			if errors.Is(err, io.EOF) {
				return dst, w.hc.off, errTLSClosed
			}
			return dst, w.hc.off, fmt.Errorf("loop: TLS read: %w", err)
		}
	}
}

// takeOut returns the records crypto/tls wrote while reading (alerts, key update replies),
// which the loop must send now; the slice is valid until the next encode or decode.
func (w *wireTLS) takeOut() []byte {
	if len(w.hc.out) == 0 {
		return nil
	}
	b := w.hc.out
	w.hc.out = w.hc.out[:0]
	return b
}

// closeNotify writes the close_notify alert (after what the connection buffered), as
// tls.Conn.Close would; the caller closes the socket next. On the loop only.
func (w *wireTLS) closeNotify(c *Conn) {
	w.tc.CloseWrite()
	if out := w.takeOut(); len(out) > 0 {
		c.gc.Write(out)
	}
}

// EnrollTLS serves a *tls.Conn whose handshake is complete, made over hc, with Handler h on one
// of the engine's gnet loops: records are decrypted and encrypted on the loop (see above), and
// the Handler sees plaintext exactly as on a plaintext connection. h.OnOpen runs before
// EnrollTLS returns; ctx is stored in Conn.Ctx before. Conn.NetConn returns tc. The socket
// under hc is closed by EnrollTLS (the loop owns a duplicate of its descriptor).
// Concurrency-safe; never call it on a loop.
func (e *Engine) EnrollTLS(tc *gotls.Conn, hc *HandshakeConn, h Handler, ctx any) (*Conn, error) {
	hc.mem = true
	c := &Conn{h: h, Ctx: ctx, network: hc.Conn.RemoteAddr().Network()}
	c.tf = &transform{wire: &wireTLS{tc: tc, hc: hc, pending: true}}
	c.tfPub.Store(c.tf)
	c.encoded.Store(true)
	if err := e.enroll(c, hc.Conn); err != nil {
		return nil, err
	}
	c.Wake() // plaintext the handshake may have read along with its last flight
	return c, nil
}
