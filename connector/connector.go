// Package connector is the aioconnectors-compatible connector: server or client, point-to-point,
// the local unix-socket API (send socket, application listener sockets, await_response replies)
// and the commander socket. It runs the peer link and the API sockets on package loop.
//
// Concurrency: one Connector is driven by several event loops (one per CPU) plus a few goroutines
// (dialers, commander, timers). Shared state is either immutable after start (type tables, paths),
// read through atomic pointers (the peer table, ignore_peer_traffic), or guarded by Connector.mu
// (lifecycle, waiters). Per-connection state (write batches, pending ack) is owned by the
// connection's loop. Lock order: Connector.mu before any other lock; no lock is held across a
// blocking call or a loop call that may block (Enroll, Stop).
package connector

import (
	"context"
	"errors"
	"fmt"
	"github.com/aioconn/aioconn/codec"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/loop"
	"github.com/aioconn/aioconn/uds"
)

// Errors of package connector.
var (
	ErrRunning    = errors.New("connector: already running")
	ErrNotRunning = errors.New("connector: not running")
	ErrNoSockaddr = errors.New("connector: server_sockaddr is required")
	// ErrClosed: Start after Close (the connector's logs and state files are closed).
	ErrClosed = errors.New("connector: closed")
)

// Connector is one aioconnectors connector (ConnectorManager + Connector in Python).
type Connector struct {
	cfg      *config.Options
	log      *Logger
	sourceID string // own source_id as Python prints it
	alnumID  string
	paths    uds.Paths
	// serverPeer is str(server_sockaddr): the peer name a client gives its server.
	serverPeer string

	sendPrio  atomic.Pointer[map[string]int] // allowed send types -> priority (replaced whole on reload)
	recvTypes map[string]struct{}            // allowed receive types (immutable)

	mu        sync.Mutex  // guards running, eng, waiters, cmd state
	group     *loop.Group // set by SetLoopGroup: runs on these shared loops; nil: loops of its own
	running   bool
	eng       *loop.Engine
	runCtx    context.Context // cancelled on stop: ends dialers and timers of this run
	tls       *tlsRun         // TLS state of this run (nil: plaintext)
	runCancel context.CancelFunc
	waiters   map[waitKey]*waiter
	waitCount map[waitGroupKey]int

	peers   atomic.Pointer[map[string]*peer] // identified peers by name (copy on write under peersMu)
	peersMu sync.Mutex
	recv    map[string]*recvType // per message type delivery (rebuilt at each start)
	ignore  atomic.Pointer[ignoreState]

	pstores  stores     // persistence files by path
	subs     subs       // broker: subscription table
	subMu    sync.Mutex // guards subTypes
	subTypes []string   // client: current subscribe_message_types

	cmdLn  *net.UnixListener
	cmdWG  sync.WaitGroup
	closed atomic.Bool
	// embedded mode (embedded.go)
	localOnce sync.Once
	local     *Local
	sinks     map[string]*localSink // guarded by mu: in-process listeners by message type
	// at_least_once (alo.go), nil when not configured
	alo *aloState
	// link_compression (compress.go): codec.ZS2 or codec.ZZstd, 0 when off
	zKind byte

	// apiConns counts the application connections on the send socket (a readiness signal for tests).
	apiConns atomic.Int64
	stats    counters
	statsWG  sync.WaitGroup
	// certWG counts the goroutines storing a certificate the server just issued (tlslink.go);
	// Stop waits for them, so that no run's files are written after it returned.
	certWG  sync.WaitGroup
	tcpAddr atomic.Pointer[net.TCPAddr]
	// peerEvt is closed and replaced whenever the peer table changes (PeerChange).
	peerEvt atomic.Pointer[chan struct{}]
	// Ready is closed when the first start completed (listeners bound, client dial launched).
	ready     chan struct{}
	readyOnce sync.Once

	// AuthClient is hook_server_auth_client of 1.0.33: when set (before Start) on a TLS server,
	// it is called with the peer name of every accepted connection (the Python repr of the
	// client's socket address, e.g. "('127.0.0.1', 40312)") after the TLS handshake and before
	// any of its traffic is read; false drops the connection. It runs on that connection's own
	// goroutine and may block (the chat asks its user). On a plaintext server it runs on a
	// goroutine of its own while the connection's input waits unread.
	AuthClient func(peername string) bool
}

// ignoreState is ignore_peer_traffic: false, true (all) or a list of peer names (one from the
// commander, any from the config file). Immutable once stored.
type ignoreState struct {
	all   bool
	peers []string // non-empty: only these peers
}

func (s *ignoreState) match(peer string) bool {
	if s == nil {
		return false
	}
	if s.all {
		return true
	}
	for _, p := range s.peers {
		if p == peer {
			return true
		}
	}
	return false
}

// matchBytes is match for a name held in a byte slice (no allocation).
func (s *ignoreState) matchBytes(peer []byte) bool {
	if s == nil {
		return false
	}
	if s.all {
		return true
	}
	for _, p := range s.peers {
		if p == string(peer) {
			return true
		}
	}
	return false
}

// New builds a connector from validated options: it computes the socket paths, creates the files
// directory and the log, and opens the commander socket (like the Python constructor). Run starts it.
func New(cfg *config.Options, logOut io.Writer) (*Connector, error) {
	if !cfg.HasServerSockaddr {
		return nil, ErrNoSockaddr
	}
	c := &Connector{cfg: cfg, ready: make(chan struct{})}
	c.sourceID = cfg.SourceID()
	c.alnumID = uds.AlnumSourceID(cfg.IsServer, c.sourceID)
	c.serverPeer = cfg.PeerNameOfServer()
	if err := os.MkdirAll(cfg.ConnectorFilesDirpath, 0o777); err != nil {
		return nil, fmt.Errorf("connector: create connector_files_dirpath: %w", err)
	}
	paths, err := uds.NewPaths(cfg.ConnectorFilesDirpath, cfg.IsServer, c.sourceID, cfg.RecvMessageTypes)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	c.paths = paths
	if cfg.DefaultLoggerDirpath != "" {
		os.MkdirAll(cfg.DefaultLoggerDirpath, 0o777)
	}
	lv, ok := ParseLevel(cfg.DefaultLoggerLogLevel)
	if !ok {
		lv = LevelInfo
	}
	name := "aioconnectors.client"
	if cfg.IsServer {
		name = "aioconnectors.server"
	}
	var stdout io.Writer
	if !cfg.Silent {
		stdout = logOut
	}
	c.log, err = NewLogger(name, cfg.DefaultLoggerDirpath, lv, cfg.DefaultLoggerRotate, stdout)
	if err != nil {
		return nil, err
	}
	sp := sendPriorities(cfg.SendMessageTypes, cfg.SendMessageTypesPriorities)
	c.sendPrio.Store(&sp)
	c.recvTypes = map[string]struct{}{}
	for _, t := range cfg.RecvMessageTypes {
		c.recvTypes[t] = struct{}{}
	}
	empty := map[string]*peer{}
	c.peers.Store(&empty)
	evt := make(chan struct{})
	c.peerEvt.Store(&evt)
	c.ignore.Store(&ignoreState{all: cfg.IgnorePeerTraffic.All, peers: cfg.IgnorePeerTraffic.Peers})
	if !cfg.IsServer {
		c.subTypes = append([]string(nil), cfg.SubscribeMessageTypes...)
	}
	c.pstores.kick = make(chan struct{}, 1)
	c.waiters = map[waitKey]*waiter{}
	c.waitCount = map[waitGroupKey]int{}
	if cfg.LinkCompression != "" {
		if c.zKind, err = codec.ZAlgorithm(cfg.LinkCompression); err != nil {
			c.log.Close()
			return nil, err
		}
	}
	if c.alo, err = newALO(c); err != nil {
		c.log.Close()
		return nil, err
	}
	if err := c.openCommander(); err != nil {
		c.alo.close()
		c.log.Close()
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		c.log.Warnf("%s", w)
	}
	for _, k := range cfg.Unsupported {
		c.log.Warnf("config key %s is accepted but not supported yet by aioconn; it has no effect", k)
	}
	return c, nil
}

// SourceID is the connector's own identity on the wire.
func (c *Connector) SourceID() string { return c.sourceID }

// Paths are the unix socket paths of this connector.
func (c *Connector) Paths() uds.Paths { return c.paths }

// TCPAddr is the bound server address (useful with port 0), nil before start or on a client.
func (c *Connector) TCPAddr() *net.TCPAddr { return c.tcpAddr.Load() }

// Ready is closed once the first start has completed.
func (c *Connector) Ready() <-chan struct{} { return c.ready }

// Logger returns the connector's logger.
func (c *Connector) Logger() *Logger { return c.log }

// Run starts the connector and blocks until ctx is cancelled, then stops it with shutdown
// (sockets removed), like create_connector on SIGINT. The first fatal start error is returned.
func (c *Connector) Run(ctx context.Context) error {
	if err := c.Start(); err != nil {
		c.Close()
		return err
	}
	<-ctx.Done()
	c.Close()
	return nil
}

// Start starts listening/connecting (commander `start`). Starting a running connector only warns.
func (c *Connector) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return ErrClosed
	}
	if c.running {
		c.log.Warnf("%s Connector already running", c.sourceID)
		return nil
	}
	c.log.Infof("%s Connector starting ...", c.sourceID)
	if err := uds.PrepareListen(c.paths.SendToConnector, c.cfg.ReuseUDSPathSendToConnector); err != nil {
		c.log.Errorf("%s already exists. Cannot queue_send_to_connector", c.paths.SendToConnector)
		return fmt.Errorf("connector: %w", err)
	}
	ls := []loop.Listener{{Addr: "unix://" + c.paths.SendToConnector, Handler: &apiHandler{cn: c}}}
	if c.cfg.IsServer && !c.cfg.UseSSL { // TLS servers accept on a goroutine (tlslink.go)
		host := c.cfg.ServerHost
		if ip := resolveInterface(host); ip != "" {
			host = ip
		}
		ls = append(ls, loop.Listener{Addr: "tcp://" + net.JoinHostPort(host, strconv.Itoa(c.cfg.ServerPort)), Handler: &peerHandler{cn: c}})
	}
	c.recv = map[string]*recvType{}
	for _, t := range c.cfg.RecvMessageTypes {
		rt := newRecvType(c, t)
		c.recv[t] = rt
		if s := c.sinks[t]; s != nil {
			rt.sink.Store(s)
			go s.run(rt)
		}
	}
	start := loop.Start
	if c.group != nil {
		start = c.group.Start
	}
	eng, err := start(ls, loop.Options{ReusePort: c.cfg.ReuseServerSockaddr, Loops: loopsFromEnv()})
	if err != nil {
		os.Remove(c.paths.SendToConnector)
		return fmt.Errorf("connector: start: %w", err)
	}
	c.eng = eng
	if a, ok := eng.TCPAddr().(*net.TCPAddr); ok {
		c.tcpAddr.Store(a)
	}
	if c.cfg.UseSSL {
		t, err := c.startTLS(eng)
		if err != nil {
			c.eng = nil
			eng.Stop(5 * time.Second)
			os.Remove(c.paths.SendToConnector)
			return err
		}
		c.tls = t
	}
	if c.cfg.EverybodyCanSendMessages {
		if err := uds.ChownNobody(c.paths.SendToConnector); err != nil {
			c.log.Infof("chown_nobody_permissions : %v", err)
		}
	}
	c.runCtx, c.runCancel = context.WithCancel(context.Background())
	c.running = true
	if c.cfg.DebugMsgCounts {
		c.statsWG.Add(1)
		go c.logCounts(c.runCtx)
	}
	go c.sweepWaiters(c.runCtx)
	if c.cfg.DiskPersistenceSend.Any() || c.cfg.DiskPersistenceRecv.Any() {
		go c.flushStores(c.runCtx)
	}
	if !c.cfg.IsServer {
		go c.dialLoop(c.runCtx, true)
	} else {
		c.registerActive()
	}
	c.readyOnce.Do(func() { close(c.ready) })
	return nil
}

// Stop stops the peer link and the send socket (commander `stop`); the commander stays unless
// shutdown. hard is accepted for compatibility: queues are never waited on for a dead link.
func (c *Connector) Stop(hard, shutdown, deleteFiles bool) {
	c.mu.Lock()
	if c.running {
		c.log.Infof("%s Connector stopping ...", c.sourceID)
		c.running = false
		c.runCancel()
		eng := c.eng
		c.eng = nil
		t := c.tls
		c.tls = nil
		c.mu.Unlock()
		c.unsubscribeOnStop()
		t.stop()
		eng.Stop(5 * time.Second) // no loop runs receiveCertificate after this (certWG.Add)
		c.statsWG.Wait()
		c.certWG.Wait()
		c.mu.Lock()
		for _, rt := range c.recv {
			close(rt.stopped)
		}
		c.alo.stopped()
		empty := map[string]*peer{}
		c.peersMu.Lock()
		c.peers.Store(&empty)
		c.notifyPeers()
		c.peersMu.Unlock()
		for k, w := range c.waiters {
			if w.api != nil {
				w.api.drop()
			}
			delete(c.waiters, k)
		}
		c.waitCount = map[waitGroupKey]int{}
		if deleteFiles {
			os.Remove(c.paths.SendToConnector)
		}
		c.unregisterActive()
		c.tcpAddr.Store(nil)
	}
	c.mu.Unlock()
	if shutdown {
		c.closeCommander(deleteFiles)
	}
}

// Restart is stop (not shutdown), sleep, start.
func (c *Connector) Restart(hard bool, sleepBetween time.Duration) error {
	c.Stop(hard, false, true)
	if sleepBetween > 0 {
		time.Sleep(sleepBetween)
	}
	return c.Start()
}

// Close stops with shutdown and releases the log. Idempotent.
func (c *Connector) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.Stop(false, true, true)
	c.alo.close()
	c.log.Infof("%s Connector stopped", c.sourceID)
	c.log.Close()
}

// peerByName returns the identified peer, or nil. Concurrency-safe, lock-free.
// sendPriorities maps the allowed send types (and _ping, _pubsub) to their priority.
func sendPriorities(types []string, prio map[string]int) map[string]int {
	m := map[string]int{}
	for _, t := range types {
		m[t] = prio[t]
	}
	for _, t := range []string{"_ping", "_pubsub"} {
		if _, ok := m[t]; !ok {
			m[t] = prio[t]
		}
	}
	return m
}

// prios is the current send-type priority map (read-only). Concurrency-safe.
func (c *Connector) prios() map[string]int { return *c.sendPrio.Load() }

func (c *Connector) peerByName(name string) *peer {
	return (*c.peers.Load())[name]
}

// setPeer installs p under name (replacing and returning any previous one).
func (c *Connector) setPeer(name string, p *peer) *peer {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	old := *c.peers.Load()
	n := make(map[string]*peer, len(old)+1)
	for k, v := range old {
		n[k] = v
	}
	prev := n[name]
	n[name] = p
	c.peers.Store(&n)
	c.notifyPeers()
	return prev
}

// removePeer removes name if it still maps to p.
func (c *Connector) removePeer(name string, p *peer) bool {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	old := *c.peers.Load()
	if old[name] != p {
		return false
	}
	n := make(map[string]*peer, len(old))
	for k, v := range old {
		if k != name {
			n[k] = v
		}
	}
	c.peers.Store(&n)
	c.notifyPeers()
	return true
}

// notifyPeers wakes PeerChange waiters. Call with peersMu held.
func (c *Connector) notifyPeers() {
	evt := make(chan struct{})
	old := c.peerEvt.Swap(&evt)
	close(*old)
}

// PeerChange returns a channel closed at the next change of the connected peers (a readiness
// signal for tools and tests). Concurrency-safe.
func (c *Connector) PeerChange() <-chan struct{} { return *c.peerEvt.Load() }

// ConnectedPeers returns the sorted routing names of the identified peers. Concurrency-safe.
func (c *Connector) ConnectedPeers() []string {
	var names []string
	for k, p := range *c.peers.Load() {
		if p.ident.Load() {
			names = append(names, k)
		}
	}
	sortStrings(names)
	return names
}

// peerNames returns the sorted names of connected peers.
func (c *Connector) peerNames() []string {
	m := *c.peers.Load()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// unsubscribeOnStop sends the client's `_pubsub` unsubscribe frame before the link closes, as the
// original does on every client-side stop (best effort, bounded by a second).
func (c *Connector) unsubscribeOnStop() {
	if c.cfg.IsServer {
		return
	}
	subs := c.subscriptions()
	p := c.peerByName(c.serverPeer)
	if len(subs) == 0 || p == nil || !p.ident.Load() {
		return
	}
	done := make(chan struct{})
	if p.conn.AsyncWrite(c.subscriptionFrame(nil, "unsubscribe_message_types", subs), func(error) { close(done) }) != nil {
		return
	}
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// SetLoopGroup makes the connector's runs use g's event loops instead of loops of their own
// (aioconn bench_host, which runs many connectors in one process). Call it before Start; g must
// outlive the connector's Close.
func (c *Connector) SetLoopGroup(g *loop.Group) {
	c.mu.Lock()
	c.group = g
	c.mu.Unlock()
}

// loopsFromEnv reads AIOCONN_LOOPS (number of event loops); the default is one loop per
// GOMAXPROCS (see cli: a plaintext connector runs with GOMAXPROCS=1 unless told otherwise).
func loopsFromEnv() int {
	if n, err := strconv.Atoi(os.Getenv("AIOCONN_LOOPS")); err == nil && n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}
