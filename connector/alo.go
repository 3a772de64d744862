package connector

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/uds"
)

// At-least-once delivery between aioconn peers (issue 10, `at_least_once`). Off unless the key is
// configured; a Python peer never sees anything of it. See docs/persistence.md ("At-least-once
// delivery") for the protocol, the files and the exact duplicate windows, and
// docs/compatibility.md for the negotiation.
//
//   - Negotiation: a client that has at_least_once adds {"aioconn": {"v": 1, "stream": S}} to its
//     `_handshake_no_ssl`/`_handshake_ssl` JSON (strict TLS: ALPN "aioconn/1", then a `_aioconn`
//     frame as its first frame). A server that has at_least_once answers only such a client, with
//     a `_aioconn` frame carrying its own stream and its acknowledgement of the client's stream.
//     A client that gets no answer within aloHelloWait treats the server as a Python peer.
//   - Sender (alolog.go): messages of the covered types are numbered per stream, appended to the
//     per-peer log by a writer goroutine and sent once written; a syncer goroutine fsyncs the log
//     (group commit) for durable sends. Each carries its number in the transport JSON key
//     aioconn_seq. After a machine crash the sender skips the numbers its log may have lost and
//     announces them (`_aioconn_skip`).
//   - Receiver (alorecv.go): de-duplicates by (stream, number), strips the key, delivers, and
//     acknowledges cumulatively (`_aioconn_ack`) what was handed to the application once its
//     state file is fsynced. The sender trims its log on acknowledgement and resends the rest
//     after a reconnect or a restart of either side.

// Errors of the at-least-once layer.
var (
	// ErrNotDurable is returned by Local.SendDurable when the message was handled without the
	// at-least-once guarantee (type not covered by at_least_once, a file, a Python peer...).
	ErrNotDurable = errors.New("connector: message not covered by at_least_once")
	// ErrALOConfig reports an invalid at_least_once value.
	ErrALOConfig = errors.New("connector: invalid at_least_once")
	// ErrALOLog reports a damaged or unusable at-least-once log or state file.
	ErrALOLog  = errors.New("connector: at-least-once log")
	errALOFull = errors.New("connector: at-least-once window full")
	// errALOProtocol: a peer sent an at_least_once number or frame no aioconn sender produces.
	errALOProtocol = errors.New("connector: at_least_once protocol error")
)

const (
	aloVersion   = 1
	aloALPN      = "aioconn/1"
	aloSeqKey    = "aioconn_seq" // transport JSON key carrying the sequence number
	aloHelloKey  = "aioconn"     // handshake JSON key of the client's advertisement
	aloHelloType = "_aioconn"
	aloAckType   = "_aioconn_ack"
	aloSkipType  = "_aioconn_skip"
	// aloHelloWait is how long a client waits for the server's `_aioconn` answer before it treats
	// the server as a Python peer. The answer is written as soon as the server reads the
	// handshake, so it arrives one round trip after the connection; a Python server never
	// answers, and the link's queue is held meanwhile (its messages wait, none are lost).
	aloHelloWaitDefault = time.Second
	// Limits of the in-memory copy of a sender's unacknowledged messages (the log holds them
	// too): beyond them new messages wait (backpressure).
	aloMaxMsgs  = 1 << 20
	aloMaxBytes = 256 << 20
	aloSegMax   = 64 << 20 // a log segment is closed past this size
)

// aloHelloWait is aloHelloWaitDefault (a variable for tests).
var aloHelloWait = aloHelloWaitDefault

// aloSendMaxMsgs is aloMaxMsgs for a sender's window (a variable for tests).
var aloSendMaxMsgs = aloMaxMsgs

// Link modes (peer.aloMode).
const (
	aloOff         int32 = iota // at_least_once not configured, or a certificate-request link
	aloNegotiating              // waiting for the peer's `_aioconn`: nothing is sent yet
	aloOn                       // both sides take part
	aloLegacy                   // the peer is a Python connector (or does not take part)
)

// aloState is the at-least-once state of a connector: its configuration, senders by peer name
// and receive trackers by peer name. It lives as long as the Connector (across stop/start).
type aloState struct {
	cn    *Connector
	all   bool
	types map[string]bool
	dir   string
	base  string // file name prefix part: alnum source id

	mu       sync.Mutex
	senders  map[string]*aloSender
	trackers map[string]*aloTracker
	byIdx    []*aloTracker // trackers by index (tags carry the index)

	recv *aloRecvState // receiver state file and committer

	// bootChanged: the logs found at start were written before the machine last booted (or
	// this cannot be told) and not closed cleanly: their unsynced tails may be lost (alolog.go).
	bootChanged bool
	logsSynced  bool   // the logs found at start are synced to their end (clean close, or older aioconn)
	boot        string // this boot's id ("" unknown)
	bootPath    string
	syncFailed  sync.Once // the boot file marked aloSyncFailedMark (markSyncFailed)
}

// The boot file (aioconn_alo_boot_<B>) holds the boot id the logs were last opened under,
// followed by " clean" once a Close synced every log. No file: the logs (if any) come from an
// aioconn that fsynced every message before sending it.
const aloCleanMark = "clean"

// aloSyncFailedMark replaces the boot file's content when an fdatasync of a log failed: it is no
// boot id, so the next start treats the logs as after a machine crash.
const aloSyncFailedMark = "fdatasync-failed"

// parseBootFile reads the boot file's content: the boot id and the clean mark.
func parseBootFile(b []byte) (id string, clean bool) {
	f := strings.Fields(string(b))
	if n := len(f); n > 0 && f[n-1] == aloCleanMark {
		clean, f = true, f[:n-1]
	}
	if len(f) > 0 {
		id = f[0]
	}
	return id, clean
}

// aloBootID identifies the running boot of the machine ("" when unknown); a variable for tests.
var aloBootID = func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// parseALO reads at_least_once from the raw config: absent/false/null = off, true = every type,
// a list of strings = those types (an empty list takes part in the negotiation and receives with
// the guarantee, but sends nothing with it).
func parseALO(raw map[string]json.RawMessage) (on, all bool, types map[string]bool, err error) {
	v, ok := raw["at_least_once"]
	if !ok {
		return false, false, nil, nil
	}
	s := strings.TrimSpace(string(v))
	switch s {
	case "false", "null", "0":
		return false, false, nil, nil
	case "true", "1":
		return true, true, nil, nil
	}
	var l []string
	if json.Unmarshal(v, &l) != nil {
		return false, false, nil, fmt.Errorf("%w: %s (true, false or a list of message types)", ErrALOConfig, s)
	}
	types = map[string]bool{}
	for _, t := range l {
		types[t] = true
	}
	return true, false, types, nil
}

// newALO builds the state and recovers the logs and the receive state from dir. Called by New.
func newALO(cn *Connector) (*aloState, error) {
	on, all, types, err := parseALO(cn.cfg.Raw)
	if err != nil || !on {
		return nil, err
	}
	a := &aloState{cn: cn, all: all, types: types, dir: cn.cfg.ConnectorFilesDirpath, base: cn.alnumID,
		senders: map[string]*aloSender{}, trackers: map[string]*aloTracker{}}
	a.boot = aloBootID()
	a.bootPath = uds.Join(a.dir, "aioconn_alo_boot_"+a.base)
	old, rerr := os.ReadFile(a.bootPath)
	switch id, clean := parseBootFile(old); {
	case errors.Is(rerr, fs.ErrNotExist), rerr == nil && clean:
		a.bootChanged, a.logsSynced = false, true
	default:
		a.bootChanged = rerr != nil || a.boot == "" || id != a.boot
	}
	if err := a.recoverSenders(); err != nil {
		return nil, err
	}
	if err := a.openRecv(); err != nil {
		return nil, err
	}
	// Only now, with every recovered log made safe for this boot, is the boot recorded (and the
	// clean mark removed: from here on a crash may leave unsynced tails).
	if rerr != nil || string(old) != a.boot { // also when the boot id is unknown and no file exists yet
		if err := writeFileSync(a.bootPath, []byte(a.boot)); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrALOLog, a.bootPath, err)
		}
	}
	return a, nil
}

// writeFileSync replaces path with b durably (a temporary file fsynced, renamed, the directory
// fsynced).
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// covers reports whether a message of type mt (header h) is sent with the guarantee: a
// publication by its topic, control types never, files never.
func (a *aloState) covers(mt []byte, h *codec.Header) bool {
	if h.WithFile.Present() {
		return false
	}
	if string(mt) == "_pubsub" {
		if !h.MessageTypePublish.Present() {
			return false
		}
		if a.all {
			return true
		}
		t, _ := h.MessageTypePublish.Str()
		return a.types[t]
	}
	if len(mt) > 0 && mt[0] == '_' {
		return false
	}
	return a.all || a.types[string(mt)]
}

// coversTopic is covers for a publication the broker fans out.
func (a *aloState) coversTopic(topic string) bool { return a.all || a.types[topic] }

// sender returns the sender of peer name, creating it (in memory: its first segment is written
// by its committer). Concurrency-safe.
func (a *aloState) sender(name string) *aloSender {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.senders[name]
	if s == nil {
		var id [8]byte
		rand.Read(id[:])
		s = newALOSender(a, name, id, 1)
		a.senders[name] = s
		s.start()
	}
	return s
}

func (a *aloState) senderList() []*aloSender {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := make([]*aloSender, 0, len(a.senders))
	for _, s := range a.senders {
		l = append(l, s)
	}
	return l
}

// tracker returns the receive tracker of peer name, creating it. Concurrency-safe.
func (a *aloState) tracker(name string) *aloTracker {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.trackerLocked(name)
}

func (a *aloState) trackerLocked(name string) *aloTracker {
	t := a.trackers[name]
	if t == nil {
		t = &aloTracker{a: a, peer: name, idx: uint32(len(a.byIdx)), base: 1}
		a.trackers[name] = t
		a.byIdx = append(a.byIdx, t)
	}
	return t
}

func (a *aloState) trackerAt(i uint32) *aloTracker {
	a.mu.Lock()
	defer a.mu.Unlock()
	if int(i) < len(a.byIdx) {
		return a.byIdx[i]
	}
	return nil
}

func (a *aloState) trackerList() []*aloTracker {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*aloTracker(nil), a.byIdx...)
}

// markSyncFailed records in the boot file, once whichever senders' syncers fail, that the
// next start must not trust the logs' tails. Concurrency-safe.
func (a *aloState) markSyncFailed() {
	a.syncFailed.Do(func() {
		if err := writeFileSync(a.bootPath, []byte(aloSyncFailedMark)); err != nil {
			a.cn.log.Errorf("%s at_least_once: %s: %v", a.cn.sourceID, a.bootPath, err)
		}
	})
}

// close stops the committers after a last commit. Called by Connector.Close.
func (a *aloState) close() {
	if a == nil {
		return
	}
	a.recv.stop() // first: its last commit may wait for the senders' logs (broker)
	clean := true
	for _, s := range a.senderList() {
		if !s.stop() {
			clean = false
		}
	}
	if clean { // every log synced to its end: a reboot before the next start loses nothing
		if err := writeFileSync(a.bootPath, []byte(a.boot+" "+aloCleanMark)); err != nil {
			a.cn.log.Errorf("%s at_least_once: %s: %v", a.cn.sourceID, a.bootPath, err)
		}
	}
}

// stopped is called when the connector stops (rings discarded): accepted but undelivered
// messages become unaccepted so that the resend delivers them.
func (a *aloState) stopped() {
	if a == nil {
		return
	}
	for _, t := range a.trackerList() {
		t.resetAccepted()
	}
}

// logPrefix is the name prefix of the segments of peer name's log.
func (a *aloState) logPrefix(name string) string {
	return uds.Join(a.dir, "aioconn_alo_send_"+a.base+"_to_"+uds.Alnum(name)+"_")
}

// recoverSenders opens every log segment of this connector found in dir.
func (a *aloState) recoverSenders() error {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrALOLog, err)
	}
	prefix := "aioconn_alo_send_" + a.base + "_to_"
	byName := map[string][]aloSeg{}
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || strings.Contains(n, ".corrupt") {
			continue
		}
		path := uds.Join(a.dir, n)
		seg, err := readSegHeader(path)
		if err != nil {
			a.cn.log.Errorf("%s %v: set aside as %s.corrupt", a.cn.sourceID, err, path)
			os.Rename(path, path+".corrupt")
			continue
		}
		byName[seg.peer] = append(byName[seg.peer], seg)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		segs := byName[n]
		// by first number; a retry's segment (name suffix _n) after the one it retried
		slices.SortFunc(segs, func(x, y aloSeg) int {
			return cmp.Or(cmp.Compare(x.first, y.first), cmp.Compare(len(x.path), len(y.path)), strings.Compare(x.path, y.path))
		})
		s, err := recoverSender(a, n, segs)
		if err != nil {
			return err
		}
		a.senders[n] = s
		s.start()
		if len(s.mem)-s.memHead > 0 {
			a.cn.log.Infof("%s at_least_once: %d unacknowledged messages for %s recovered (stream %s, next %d)",
				a.cn.sourceID, len(s.mem)-s.memHead, n, s.streamHex, s.next)
		}
	}
	return nil
}

// --- control frames ---

// appendALOHello appends a `_aioconn` frame: the strict-TLS client's first frame (advert: its
// advertisement, helloJSON) or the server's answer (stream "" when at_least_once is not agreed,
// ack < 0: none; z "" when compression is not agreed).
func (c *Connector) appendALOHello(dst []byte, stream string, ack int64, z string) []byte {
	var o codec.Obj
	o.Begin(nil)
	o.Str("message_type", aloHelloType)
	o.Str("source_id", c.sourceID)
	o.Int("v", aloVersion)
	if stream != "" {
		o.Str("stream", stream)
	}
	if ack >= 0 {
		o.Int("ack", ack)
	}
	if z != "" {
		o.Str("z", z)
	}
	return codec.AppendFrame(dst, o.End(), nil, nil, false)
}

// appendALOAck appends a cumulative acknowledgement of stream up to seq.
func (c *Connector) appendALOAck(dst []byte, stream string, seq uint64) []byte {
	var o codec.Obj
	o.Begin(nil)
	o.Str("message_type", aloAckType)
	o.Str("source_id", c.sourceID)
	o.Str("stream", stream)
	o.Raw("seq", strconv.AppendUint(nil, seq, 10))
	return codec.AppendFrame(dst, o.End(), nil, nil, false)
}

// appendALOSkip appends the announcement that stream's numbers from..to will never be sent.
func (c *Connector) appendALOSkip(dst []byte, stream string, from, to uint64) []byte {
	var o codec.Obj
	o.Begin(nil)
	o.Str("message_type", aloSkipType)
	o.Str("source_id", c.sourceID)
	o.Str("stream", stream)
	o.Raw("from", strconv.AppendUint(nil, from, 10))
	o.Raw("to", strconv.AppendUint(nil, to, 10))
	return codec.AppendFrame(dst, o.End(), nil, nil, false)
}

// parseStream reads a 16-hex-digit stream id.
func parseStream(v codec.Value) ([8]byte, string, bool) {
	var id [8]byte
	s, ok := v.Str()
	if !ok || len(s) != 16 {
		return id, "", false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, "", false
	}
	return id, s, true
}

func valueUint(v codec.Value) (uint64, bool) {
	if v.Kind != codec.KindNumber {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v.Raw), 10, 64)
	return n, err == nil
}
