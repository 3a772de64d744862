package loop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Errors of the Syncer.
var (
	// ErrSyncUnavailable: the kernel refused io_uring (too old, or disabled by
	// kernel.io_uring_disabled or a seccomp filter). Callers write and fsync themselves.
	ErrSyncUnavailable = errors.New("loop: io_uring unavailable")
	// ErrSyncBusy: every slot is in flight, or the Syncer is closed. Nothing was submitted;
	// the caller writes and fsyncs itself.
	ErrSyncBusy = errors.New("loop: io_uring syncer busy or closed")
)

// io_uring ABI (include/uapi/linux/io_uring.h).
const (
	uringOpFsync     = 3
	uringOpWrite     = 23
	uringFsyncData   = 1      // IORING_FSYNC_DATASYNC
	uringHardlink    = 1 << 3 // IOSQE_IO_HARDLINK: the next entry runs even if this one fails
	uringGetEvents   = 1      // IORING_ENTER_GETEVENTS
	uringOffSQRing   = 0
	uringOffCQRing   = 0x8000000
	uringOffSQEs     = 0x10000000
	uringFeatSingle  = 1 // IORING_FEAT_SINGLE_MMAP
	uringSQESize     = 64
	uringCQESize     = 16
	uringParamsSize  = 120
	uringSyncEntries = 96 // submission entries: 32 write+fsync+notify chains in flight
)

// notifyByte is what the kernel writes to the notification socket after each chain (static,
// so the address handed to the kernel never moves).
var notifyByte = [1]byte{1}

// Syncer writes a buffer into a file and fdatasyncs it through io_uring, with the completion
// arriving on an event loop: after each write+fdatasync the kernel writes one byte to a socket
// pair whose other end is a connection of the engine, and the loop wakes the waiting goroutine.
// A goroutine waiting in WriteSync is parked on a channel, not in a system call, so in a
// one-P process the Go scheduler does not hand the P between threads around every fsync, as it
// does around a blocking fdatasync(2).
//
// WriteSync is concurrency-safe and must not run on an event loop. Close is concurrency-safe.
type Syncer struct {
	ringFd   int
	notifyFd int // the kernel writes notifyByte here
	mem      []byte
	sqes     []byte

	sqHead, sqTail, sqMask, cqHead, cqTail, cqMask *uint32
	sqArray                                        []uint32
	cqes                                           []byte
	sqEntries                                      uint32

	subMu sync.Mutex // submission queue

	mu       sync.Mutex // slots and completion queue
	slots    []syncSlot
	notified uint64 // notification completions reaped
	notes    uint64 // notification bytes read by the loop (loop-owned)
	free     []int
	inUse    int
	closed   bool
	dead     chan struct{} // closed when the loop end is gone: waiters reap themselves
	idle     *sync.Cond    // signalled when inUse drops to 0
	conn     *Conn
}

type syncSlot struct {
	ch         chan struct{} // buffered 1: the chain completed
	wres, fres int32
	done       bool
}

// NewSyncer sets up an io_uring and its notification socket on one of e's loops. It returns
// ErrSyncUnavailable (wrapped) when the kernel refuses io_uring. Never call it on a loop.
func (e *Engine) NewSyncer() (*Syncer, error) {
	s, err := newRing(uringSyncEntries)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		s.unmap()
		return nil, fmt.Errorf("loop: syncer socketpair: %w", err)
	}
	s.notifyFd = fds[0]
	f := os.NewFile(uintptr(fds[1]), "syncer")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		unix.Close(s.notifyFd)
		s.unmap()
		return nil, fmt.Errorf("loop: syncer conn: %w", err)
	}
	c, err := e.Enroll(nc, syncHandler{s}, nil)
	if err != nil {
		unix.Close(s.notifyFd)
		s.unmap()
		return nil, err
	}
	s.conn = c
	return s, nil
}

func newRing(entries uint32) (*Syncer, error) {
	var p [uringParamsSize]byte
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p[0])), 0)
	if e != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrSyncUnavailable, e)
	}
	le := binary.LittleEndian
	sqEntries, cqEntries, features := le.Uint32(p[0:]), le.Uint32(p[4:]), le.Uint32(p[20:])
	sqOff, cqOff := p[40:80], p[80:120]
	s := &Syncer{ringFd: int(fd), sqEntries: sqEntries, dead: make(chan struct{})}
	s.idle = sync.NewCond(&s.mu)
	if features&uringFeatSingle == 0 {
		unix.Close(s.ringFd)
		return nil, fmt.Errorf("%w: kernel without IORING_FEAT_SINGLE_MMAP", ErrSyncUnavailable)
	}
	sqSize := int(le.Uint32(sqOff[24:])) + int(sqEntries)*4
	cqSize := int(le.Uint32(cqOff[20:])) + int(cqEntries)*uringCQESize
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(s.ringFd, uringOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(s.ringFd)
		return nil, fmt.Errorf("%w: mmap ring: %v", ErrSyncUnavailable, err)
	}
	sqes, err := unix.Mmap(s.ringFd, uringOffSQEs, int(sqEntries)*uringSQESize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Munmap(mem)
		unix.Close(s.ringFd)
		return nil, fmt.Errorf("%w: mmap sqes: %v", ErrSyncUnavailable, err)
	}
	s.mem, s.sqes = mem, sqes
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	s.sqHead, s.sqTail, s.sqMask = u32(le.Uint32(sqOff[0:])), u32(le.Uint32(sqOff[4:])), u32(le.Uint32(sqOff[8:]))
	s.sqArray = unsafe.Slice(u32(le.Uint32(sqOff[24:])), sqEntries)
	s.cqHead, s.cqTail, s.cqMask = u32(le.Uint32(cqOff[0:])), u32(le.Uint32(cqOff[4:])), u32(le.Uint32(cqOff[8:]))
	cqesOff := le.Uint32(cqOff[20:])
	s.cqes = mem[cqesOff : cqesOff+cqEntries*uringCQESize]
	n := int(sqEntries / 3)
	s.slots = make([]syncSlot, n)
	for i := range s.slots {
		s.slots[i].ch = make(chan struct{}, 1)
		s.free = append(s.free, i)
	}
	return s, nil
}

func (s *Syncer) unmap() {
	unix.Munmap(s.sqes)
	unix.Munmap(s.mem)
	unix.Close(s.ringFd)
}

// putSQE fills submission entry number at (not yet published).
func (s *Syncer) putSQE(at uint32, op, flags uint8, fd int, off uint64, addr unsafe.Pointer, n uint32, opFlags uint32, user uint64) {
	i := at & *s.sqMask
	e := s.sqes[i*uringSQESize : (i+1)*uringSQESize]
	clear(e)
	le := binary.LittleEndian
	e[0], e[1] = op, flags
	le.PutUint32(e[4:], uint32(int32(fd)))
	le.PutUint64(e[8:], off)
	le.PutUint64(e[16:], uint64(uintptr(addr)))
	le.PutUint32(e[24:], n)
	le.PutUint32(e[28:], opFlags)
	le.PutUint64(e[32:], user)
	s.sqArray[i] = i
}

// WriteSync writes b at offset off of the file fd, then fdatasyncs fd, and returns the bytes
// written. A short write is reported as an error (io.ErrShortWrite wrapped) with n; the
// fdatasync ran anyway. ErrSyncBusy means nothing was submitted. b must stay unmodified until
// WriteSync returns (the kernel reads it); WriteSync keeps it alive. Concurrency-safe; blocks
// the calling goroutine, so never call it on an event loop.
func (s *Syncer) WriteSync(fd int, b []byte, off int64) (int, error) {
	if len(b) == 0 || len(b) > 1<<30 {
		return 0, fmt.Errorf("loop: syncer write of %d bytes", len(b))
	}
	s.mu.Lock()
	if s.closed || len(s.free) == 0 {
		s.mu.Unlock()
		return 0, ErrSyncBusy
	}
	i := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	s.inUse++
	sl := &s.slots[i]
	sl.done, sl.wres, sl.fres = false, 0, 0
	s.mu.Unlock()
	// Submission has its own lock so that the loop, which takes only mu, never waits behind
	// io_uring_enter (which may copy b into the page cache inline).
	s.subMu.Lock()
	tail := atomic.LoadUint32(s.sqTail)
	user := uint64(i) << 2
	s.putSQE(tail, uringOpWrite, uringHardlink, fd, uint64(off), unsafe.Pointer(&b[0]), uint32(len(b)), 0, user)
	s.putSQE(tail+1, uringOpFsync, uringHardlink, fd, 0, nil, 0, uringFsyncData, user|1)
	s.putSQE(tail+2, uringOpWrite, 0, s.notifyFd, ^uint64(0), unsafe.Pointer(&notifyByte[0]), 1, 0, user|2)
	atomic.StoreUint32(s.sqTail, tail+3)
	for {
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(s.ringFd), 3, 0, 0, 0, 0)
		if e == 0 || atomic.LoadUint32(s.sqHead) == tail+3 {
			break
		}
		if e == unix.EINTR || e == unix.EAGAIN || e == unix.EBUSY {
			continue
		}
		if atomic.LoadUint32(s.sqHead) == tail { // nothing consumed: take the entries back
			atomic.StoreUint32(s.sqTail, tail)
			s.subMu.Unlock()
			s.mu.Lock()
			s.release(i)
			s.mu.Unlock()
			return 0, fmt.Errorf("%w: io_uring_enter: %v", ErrSyncBusy, e)
		}
		break // consumed; the completions will come
	}
	s.subMu.Unlock()
	s.wait(sl)
	runtime.KeepAlive(b)
	s.mu.Lock()
	w, f := sl.wres, sl.fres
	s.release(i)
	s.mu.Unlock()
	switch {
	case w < 0:
		return 0, fmt.Errorf("loop: io_uring write: %w", unix.Errno(-w))
	case f < 0:
		return int(w), fmt.Errorf("loop: io_uring fdatasync: %w", unix.Errno(-f))
	case int(w) < len(b):
		return int(w), fmt.Errorf("loop: io_uring write: %d of %d bytes: short write", w, len(b))
	}
	return int(w), nil
}

// release returns slot i (s.mu held).
func (s *Syncer) release(i int) {
	s.free = append(s.free, i)
	s.inUse--
	if s.inUse == 0 {
		s.idle.Broadcast()
	}
}

// wait blocks until sl's chain completed: woken by the loop, or, once the loop end is gone,
// reaping the completions itself.
func (s *Syncer) wait(sl *syncSlot) {
	select {
	case <-sl.ch:
		return
	case <-s.dead:
	}
	for {
		s.mu.Lock()
		s.reapLocked()
		done := sl.done
		s.mu.Unlock()
		if done {
			select { // the loop may have signalled too
			case <-sl.ch:
			default:
			}
			return
		}
		unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(s.ringFd), 0, 1, uringGetEvents, 0, 0)
	}
}

// reapLocked consumes the completion queue (s.mu held).
func (s *Syncer) reapLocked() {
	head, tail := atomic.LoadUint32(s.cqHead), atomic.LoadUint32(s.cqTail)
	mask := *s.cqMask
	le := binary.LittleEndian
	for ; head != tail; head++ {
		e := s.cqes[(head&mask)*uringCQESize:]
		user, res := le.Uint64(e[0:]), int32(le.Uint32(e[8:]))
		i := int(user >> 2)
		if i >= len(s.slots) {
			continue
		}
		sl := &s.slots[i]
		switch user & 3 {
		case 0:
			sl.wres = res
		case 1:
			sl.fres = res
		case 2:
			s.notified++
			sl.done = true
			select {
			case sl.ch <- struct{}{}:
			default:
			}
		}
	}
	atomic.StoreUint32(s.cqHead, head)
}

// kill switches the waiters to reaping for themselves (the loop end closed).
func (s *Syncer) kill() {
	s.mu.Lock()
	select {
	case <-s.dead:
	default:
		close(s.dead)
	}
	s.mu.Unlock()
}

// Close refuses new writes, waits for the chains in flight, closes the loop's end and frees
// the ring. Concurrency-safe and idempotent; never call it on a loop.
func (s *Syncer) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.kill()
	s.mu.Lock()
	for s.inUse > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
	}
	unix.Close(s.notifyFd)
	s.unmap()
}

// syncHandler runs on the loop that owns the notification socket.
type syncHandler struct{ s *Syncer }

func (syncHandler) OnOpen(*Conn) {}

// OnTraffic reaps the completions. The kernel makes the notification byte readable before it
// posts that chain's completion, so while fewer completions than bytes were seen the loop
// comes back (Wake) until they are there.
func (h syncHandler) OnTraffic(c *Conn) error {
	n, _ := c.Discard(c.InboundBuffered())
	s := h.s
	s.notes += uint64(n)
	s.mu.Lock()
	behind := false
	if !s.closed || s.inUse > 0 {
		s.reapLocked()
		behind = s.notified < s.notes
	}
	s.mu.Unlock()
	if behind {
		c.Wake()
	}
	return nil
}

func (h syncHandler) OnClose(*Conn, error) { h.s.kill() }
