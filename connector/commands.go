package connector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aioconn/aioconn/persist"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/uds"
)

// maxCommand bounds a commander request.
const maxCommand = 1 << 20

// openCommander binds the commander socket (LOCAL-API §2.2, §7). It serves one request per
// connection on its own goroutine: management traffic is rare and must work while the loops are
// stopped (commander `stop`/`start`).
func (c *Connector) openCommander() error {
	path := c.paths.Commander
	if err := uds.PrepareListen(path, c.cfg.ReuseUDSPathCommanderServer); err != nil {
		return fmt.Errorf("connector: %s already exists. Cannot create_commander_server: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("connector: commander socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	c.cmdLn = ln
	c.cmdWG.Add(1)
	go func() {
		defer c.cmdWG.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serveCommand(conn)
		}
	}()
	return nil
}

func (c *Connector) closeCommander(deleteFile bool) {
	c.mu.Lock()
	ln := c.cmdLn
	c.cmdLn = nil
	c.mu.Unlock()
	if ln == nil {
		return
	}
	ln.Close()
	c.cmdWG.Wait()
	if deleteFile {
		os.Remove(c.paths.Commander)
	}
}

func (c *Connector) serveCommand(conn net.Conn) {
	defer conn.Close()
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > maxCommand {
		c.log.Errorf("%s commander request of %d bytes refused", c.sourceID, n)
		return
	}
	conn.SetReadDeadline(time.Now().Add(c.cfg.IOTimeout))
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		c.log.Errorf("%s commander: %v", c.sourceID, err)
		return
	}
	cmd, kwargs, err := parseCommand(body)
	if err != nil {
		c.log.Errorf("%s commander: invalid request %q: %v", c.sourceID, truncate(body, 80), err)
		return
	}
	if cmd == "" {
		return
	}
	reply, err := c.Command(cmd, kwargs)
	if err != nil {
		c.log.Warnf("%s %v", c.sourceID, err)
		return
	}
	if reply == "" {
		reply = "{}"
	}
	conn.SetWriteDeadline(time.Now().Add(c.cfg.IOTimeout))
	conn.Write(codec.AppendCommand(nil, []byte(reply)))
}

// parseCommand decodes a commander request body as the original reads it (json.loads, then the
// exact keys "cmd" and "kwargs"; encoding/json alone would also match "CMD" or "Kwargs"). An
// empty cmd (missing, null or "") means no reply. kwargs missing or null is taken as {} (the
// original fails there; every client sends an object).
func parseCommand(body []byte) (string, map[string]json.RawMessage, error) {
	if !utf8.Valid(body) {
		return "", nil, errors.New("not UTF-8")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return "", nil, err
	}
	if top == nil {
		return "", nil, errors.New("not a JSON object")
	}
	var cmd string
	if raw, ok := top["cmd"]; ok {
		if err := json.Unmarshal(raw, &cmd); err != nil {
			return "", nil, fmt.Errorf("cmd %.40s is not a string", raw)
		}
	}
	var kwargs map[string]json.RawMessage
	if raw, ok := top["kwargs"]; ok {
		if err := json.Unmarshal(raw, &kwargs); err != nil {
			return "", nil, fmt.Errorf("kwargs %.40s is not an object", raw)
		}
	}
	return cmd, kwargs, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// ErrUnknownCommand is returned by Command for a name the commander does not know.
var ErrUnknownCommand = errors.New("connector: Unknown command")

// Command executes one commander request (wire name, with or without the __sync suffix exactly as
// the original expects) and returns the reply text ("" means the falsy reply `{}`).
// Concurrency-safe.
func (c *Connector) Command(cmd string, kw map[string]json.RawMessage) (string, error) {
	flag := func(k string, def bool) bool {
		v, ok := kw[k]
		if !ok {
			return def
		}
		return truthyJSON(v)
	}
	str := func(k string) string {
		var s string
		json.Unmarshal(kw[k], &s)
		return s
	}
	switch cmd {
	case "start":
		if err := c.Start(); err != nil {
			c.log.Errorf("%s start: %v", c.sourceID, err)
		}
		return "", nil
	case "stop":
		c.Stop(flag("hard", false), flag("shutdown", false), flag("enable_delete_files", true))
		return "", nil
	case "restart":
		var sleep float64
		json.Unmarshal(kw["sleep_between"], &sleep)
		if err := c.Restart(flag("hard", false), time.Duration(sleep*float64(time.Second))); err != nil {
			c.log.Errorf("%s restart: %v", c.sourceID, err)
		}
		return "", nil
	case "show_connected_peers__sync":
		names := []string{}
		for name, p := range *c.peers.Load() {
			// A server-side peer is renamed on its loop at the handshake: show its table key,
			// which is its name; a client's showName is set before the peer is published.
			if p.client {
				name = p.showName
			}
			names = append(names, name)
		}
		sortStrings(names)
		return string(codec.AppendPyJSONList(nil, names)), nil
	case "show_stats", "show_stats__sync": // aioconn: every counter as JSON (stats.go)
		return c.showStats(), nil
	case "peek_queues__sync":
		recv, send := c.queueSizes()
		return string(codec.AppendPeekQueues(nil, recv, send)), nil
	case "manage_ignore_peer_traffic__sync":
		switch {
		case flag("show", false):
		case flag("enable", false):
			c.ignore.Store(&ignoreState{all: true})
		case flag("disable", false):
			c.ignore.Store(&ignoreState{})
		case flag("unique_peer", false):
			c.ignore.Store(&ignoreState{peers: []string{str("unique_peer")}})
		default:
			return "", nil
		}
		s := c.ignore.Load()
		switch {
		case s.all:
			return "True", nil
		case len(s.peers) > 0:
			return string(codec.AppendPyListRepr(nil, s.peers)), nil
		}
		return "False", nil
	case "disconnect_client":
		id := str("client_id")
		if !c.cfg.IsServer {
			c.log.Warnf("%s client cannot disconnect a client %s", c.sourceID, id)
			return "", nil
		}
		c.log.Infof("%s disconnecting client %s", c.sourceID, id)
		p := c.peerByName(id)
		if p == nil {
			return "Non existing client " + id, nil
		}
		c.removePeer(id, p)
		p.conn.Close()
		return "True", nil
	case "delete_previous_persistence_remains__sync":
		c.deletePersistenceRemains()
		return "", nil
	case "show_subscribe_message_types__sync":
		subs := c.subscriptions()
		if c.cfg.IsServer || len(subs) == 0 {
			return "", nil
		}
		return string(codec.AppendPyListRepr(nil, subs)), nil
	case "set_subscribe_message_types":
		if c.cfg.IsServer {
			return "", nil
		}
		var types []string
		if err := json.Unmarshal(kw["message_types"], &types); err != nil {
			return "", fmt.Errorf("connector: set_subscribe_message_types: message_types: %w", err)
		}
		keep, ok := c.setSubscriptions(types)
		if !ok { // not connected: Python logs the error and replies with its unchanged list
			keep = c.subscriptions()
		}
		if len(keep) == 0 {
			return "", nil // an empty list is falsy: `{}`
		}
		return string(codec.AppendPyListRepr(nil, keep)), nil
	case "show_log_level__sync":
		return c.log.Level().String(), nil
	case "set_log_level__sync":
		// a level name or a level number, as logging.Logger.setLevel takes; the reply is the
		// value given (0 is falsy: `{}`)
		raw := kw["level"]
		var lv string
		if json.Unmarshal(raw, &lv) == nil {
			l, ok := ParseLevel(lv)
			if !ok {
				return "", fmt.Errorf("connector: set_log_level: invalid level %q", lv)
			}
			c.log.SetLevel(l)
			return lv, nil
		}
		var n int32
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", fmt.Errorf("connector: set_log_level: level %.40s is neither a level name nor an integer", raw)
		}
		c.log.SetLevel(Level(n))
		if n == 0 {
			return "", nil
		}
		return strconv.Itoa(int(n)), nil
	case "delete_client_certificate_on_server":
		return c.deleteClientCertificate(true, str("client_id"), flag("remove_only_symlink", false), false), nil
	case "delete_client_certificate_on_client":
		return c.deleteClientCertificate(false, "", false, flag("restart_client", true)), nil
	}
	return "", fmt.Errorf("%w : %s", ErrUnknownCommand, cmd)
}

// deletePersistenceRemains removes this connector's persistence files (LOCAL-API §9.3, prefix match).
func (c *Connector) deletePersistenceRemains() {
	if err := persist.DeleteRemains(c.cfg.ConnectorFilesDirpath, c.alnumID, func(path string) {
		c.log.Warnf("Deleting old persistent file : %s", path)
	}); err != nil {
		c.log.Warnf("%s delete_previous_persistence_remains: %v", c.sourceID, err)
	}
}

// truthyJSON is Python truthiness of a JSON value.
func truthyJSON(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	switch s {
	case "", "false", "null", "0", `""`, "[]", "{}", "0.0", "-0", "-0.0":
		return false
	}
	if strings.HasPrefix(s, "[") || strings.HasPrefix(s, "{") {
		var v any
		if json.Unmarshal(raw, &v) == nil {
			switch x := v.(type) {
			case []any:
				return len(x) > 0
			case map[string]any:
				return len(x) > 0
			}
		}
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return f != 0
	}
	return true
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
