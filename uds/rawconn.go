package uds

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a unix-socket connection of an application (the Go API's, the bench's) whose reads
// and writes are non-blocking system calls made without the Go runtime's system-call
// bookkeeping (syscall.RawSyscall inside syscall.RawConn's Read and Write), everything else
// (deadlines, Close, addresses) being the wrapped *net.UnixConn's.
//
// Why: the runtime's monitor thread (sysmon) sleeps while every P is idle, and the first
// ordinary system call after that wakes it (entersyscall); it then polls every 20 µs until
// the process is idle again. An application that answers one message at a time is idle
// between messages, so every message paid a futex wake-up of that thread and its polling:
// on a 2-vCPU VM about half of a request/response application's CPU and 5 – 10 µs of the
// round trip (benchmarks/RESULTS.md, "sysmon"). The calls made here never block (the socket
// is non-blocking: EAGAIN parks the goroutine in the runtime's poller, as net.Conn does), and
// each moves at most rawChunk bytes (a longer Write loops in Go, where the goroutine can be
// preempted), so keeping the P through one is harmless. net.Buffers.WriteTo on a *Conn takes
// net's own writev (the embedded connection's method is promoted): fine for the large writes
// that use it (the Go API's frames over 64 KiB), where the copy costs more than the wake-up.
//
// Concurrency: as net.Conn, every method is safe for concurrent use (Reads are serialised
// among themselves, Writes too); Close may be called from any goroutine and interrupts a
// parked Read or Write. The caller's slices are not retained after a call returns.
type Conn struct {
	*net.UnixConn
	rc     syscall.RawConn
	rd, wr rawOp
}

// rawOp is one direction's call in progress: the closure handed to RawConn is made once, in
// Wrap, so that a call allocates nothing.
type rawOp struct {
	mu    sync.Mutex
	p     []byte
	n     int64
	errno syscall.Errno
	call  func(uintptr) bool // doRead or doWrite, bound to this rawOp
}

// Wrap returns c as a *Conn when it is a stream *net.UnixConn, and c unchanged otherwise (or
// when its raw descriptor cannot be had). Built with -race it returns c unchanged: raw system
// calls do not tell the race detector about the memory a read or write hands over.
func Wrap(c net.Conn) net.Conn {
	if raceEnabled {
		return c
	}
	return wrap(c)
}

func wrap(c net.Conn) net.Conn {
	uc, ok := c.(*net.UnixConn)
	if !ok || uc.LocalAddr() == nil || uc.LocalAddr().Network() != "unix" {
		return c
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{UnixConn: uc, rc: rc}
	w.rd.call = w.rd.doRead
	w.wr.call = w.wr.doWrite
	return w
}

func opErr(c *Conn, op string, err error) error {
	return &net.OpError{Op: op, Net: "unix", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// rawChunk bounds the bytes one raw call moves: a write to a socket whose reader keeps up can
// otherwise copy tens of megabytes (20 ms) in one call, holding the P and delaying a
// stop-the-world that long.
const rawChunk = 256 << 10

// run makes one call of this direction on p: op (RawConn's Read or Write) with o.call. It
// returns the bytes moved and op's own error (deadline, closed: already a *net.OpError), or the
// failing system call's as a *net.OpError of name.
func (o *rawOp) run(c *Conn, name string, p []byte, op func(func(uintptr) bool) error) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p, o.n, o.errno = p, 0, 0
	err := op(o.call)
	o.p = nil
	if err == nil && o.errno != 0 {
		err = opErr(c, name, os.NewSyscallError(name, o.errno))
	}
	return int(o.n), err
}

// rawCall makes one raw read or write (trap) of p on fd, at most rawChunk bytes, retrying on
// EINTR: n bytes moved; again on EAGAIN; errno on any other failure. p is not empty.
func rawCall(trap, fd uintptr, p []byte) (n int64, again bool, errno syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(min(len(p), rawChunk)))
		switch e {
		case 0:
			return int64(r), false, 0
		case syscall.EINTR:
		case syscall.EAGAIN:
			return 0, true, 0
		default:
			return 0, false, e
		}
	}
}

func (o *rawOp) doRead(fd uintptr) bool {
	n, again, e := rawCall(syscall.SYS_READ, fd, o.p)
	o.n, o.errno = n, e
	return !again
}

// Read reads up to len(p) bytes as net.Conn's Read does: io.EOF at the end of the stream,
// a *net.OpError wrapping os.ErrDeadlineExceeded or net.ErrClosed when the read deadline
// passes or the connection is closed.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.rd.run(c, "read", p, c.rc.Read)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

func (o *rawOp) doWrite(fd uintptr) bool {
	for o.n < int64(len(o.p)) {
		n, again, e := rawCall(syscall.SYS_WRITE, fd, o.p[o.n:])
		if again {
			return false
		}
		if e != 0 {
			o.errno = e
			return true
		}
		o.n += n
	}
	return true
}

// Write writes all of p (or fails) as net.Conn's Write does; a write that fails midway
// reports how much was written.
func (c *Conn) Write(p []byte) (int, error) {
	return c.wr.run(c, "write", p, c.rc.Write)
}
