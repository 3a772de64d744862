package loop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Group is one set of gnet event loops shared by several engines (aioconn bench_host: a hundred
// client connectors in one process). Each engine started with Group.Start keeps its own
// listeners, connections and Stop, but its connections are served by one of the group's loops:
// a burst of messages for many connectors wakes one loop thread, not one thread per connector.
// Every connection of one member engine is on the same loop (members are dealt round-robin), so
// a connector's application connection and peer link never wake each other's thread.
//
// A member engine listens with Go's listeners (an accept goroutine each, parked in the runtime's
// poller) and enrolls what it accepts, so an accepted connection costs one hand-over to the loop
// more than on an engine of its own; connections that stay open (preserve-socket applications,
// peer links) do not notice. Concurrency-safe.
type Group struct {
	roots []*Engine // one single-loop engine per loop
	next  atomic.Uint32
	dir   string
}

// NewGroup starts a group of loops event loops (0: one per GOMAXPROCS). Close it after every
// member engine has stopped.
func NewGroup(loops int) (*Group, error) {
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	dir, err := os.MkdirTemp("", "aioconn-lg")
	if err != nil {
		return nil, fmt.Errorf("loop: group: %w", err)
	}
	g := &Group{dir: dir}
	for i := range loops {
		// gnet runs an engine around at least one listener: a private socket whose connections
		// are refused (no Handler).
		root, err := Start([]Listener{{Addr: "unix://" + filepath.Join(dir, strconv.Itoa(i))}}, Options{Loops: 1})
		if err != nil {
			g.Close(5 * time.Second)
			return nil, fmt.Errorf("loop: group: %w", err)
		}
		g.roots = append(g.roots, root)
	}
	return g, nil
}

// Close stops the group's loops (at most timeout each) and removes its private sockets.
func (g *Group) Close(timeout time.Duration) error {
	var errs []error
	for _, r := range g.roots {
		errs = append(errs, r.Stop(timeout))
	}
	os.RemoveAll(g.dir)
	return errors.Join(errs...)
}

// Start listens on every listener for a new member engine of g, as the package-level Start
// does for an engine of its own; the engine's Stop closes its listeners and its connections
// only. Of o only ReusePort applies: the loops and their buffers are the group's.
func (g *Group) Start(ls []Listener, o Options) (*Engine, error) {
	nets, addrs, err := splitListeners(ls)
	if err != nil {
		return nil, err
	}
	root := g.roots[int(g.next.Add(1)-1)%len(g.roots)]
	m := &member{conns: map[*Conn]struct{}{}}
	e := &Engine{eng: root.eng, done: make(chan struct{}), m: m}
	for i := range ls {
		ln, err := memberListen(nets[i], addrs[i], o.ReusePort)
		if err != nil {
			for _, prev := range m.lns {
				prev.Close()
			}
			return nil, err
		}
		if tl, ok := ln.(*net.TCPListener); ok {
			e.tcpAddr = tl.Addr()
		}
		m.lns = append(m.lns, ln)
	}
	// every listener bound before any accepts: a failed Start leaves no connection behind
	for i, ln := range m.lns {
		m.acceptWG.Add(1)
		go e.accept(ln, ls[i].Handler)
	}
	return e, nil
}

// member is the part of an Engine that belongs to a Group.
type member struct {
	lns      []net.Listener
	acceptWG sync.WaitGroup
	mu       sync.Mutex
	conns    map[*Conn]struct{} // enrolled and not yet closed; guarded by mu
	stopping bool               // guarded by mu: nothing more is enrolled
	empty    chan struct{}      // made by Stop; closed when conns is empty
}

// memberListen listens on a "tcp" or "unix" address (splitListeners) as Start's gnet listeners
// do (SO_REUSEADDR always, SO_REUSEPORT on request, no keep-alive).
func memberListen(network, addr string, reusePort bool) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1, // no TCP keep-alive on accepted connections, as gnet's own listener
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if reusePort && network == "tcp" {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
				}
			})
			return errors.Join(err, serr)
		},
	}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("loop: listen %s://%s: %w", network, addr, err)
	}
	return ln, nil
}

// accept enrolls the connections ln accepts with Handler h until ln is closed. A failed accept
// (out of descriptors) is retried after a pause, as gnet's own accept does at the next event.
func (e *Engine) accept(ln net.Listener, h Handler) {
	defer e.m.acceptWG.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if h == nil {
			nc.Close()
			continue
		}
		network := "tcp"
		if _, ok := nc.(*net.UnixConn); ok {
			network = "unix"
		}
		e.enroll(&Conn{h: h, network: network}, nc) // an error: nc is closed, the member stopping
	}
}

// join records c as the member's, in its OnOpen (on the loop); false: the member is stopping
// (the connection is closed at once).
func (m *member) join(c *Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

// stopped reports whether Stop began (a connection enrolled now would be closed at once).
func (m *member) stopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopping
}

// leave forgets c, in its OnClose (on the loop).
func (m *member) leave(c *Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, c)
	if m.empty != nil && len(m.conns) == 0 {
		close(m.empty)
		m.empty = nil
	}
}

// stop closes the member's listeners, then its connections, and waits (until ctx ends) for
// their OnClose.
func (m *member) stop(ctx context.Context) error {
	for _, ln := range m.lns {
		ln.Close()
	}
	m.acceptWG.Wait()
	m.mu.Lock()
	m.stopping = true
	conns := make([]*Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	var empty chan struct{}
	if len(conns) > 0 {
		empty = make(chan struct{})
		m.empty = empty
	}
	m.mu.Unlock()
	for _, c := range conns {
		c.abort.Store(true) // as gnet's own stop: a TLS link sends close_notify, not its backlog
		c.Close()
	}
	if empty == nil {
		return nil
	}
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
