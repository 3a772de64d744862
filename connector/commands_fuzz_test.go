package connector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// cmdKnown are the commands Command answers (LOCAL-API §7.3, plus show_stats); the lifecycle
// ones (stop, restart) are not run by the fuzz target: the connector must stay up.
var cmdKnown = map[string]bool{
	"start": true, "stop": true, "restart": true, "show_connected_peers__sync": true,
	"show_stats": true, "show_stats__sync": true, "peek_queues__sync": true,
	"manage_ignore_peer_traffic__sync": true, "disconnect_client": true,
	"delete_previous_persistence_remains__sync": true, "show_subscribe_message_types__sync": true,
	"set_subscribe_message_types": true, "show_log_level__sync": true, "set_log_level__sync": true,
	"delete_client_certificate_on_server": true, "delete_client_certificate_on_client": true,
}

// cmdRequest is a request as the commander reads it (Python: json.loads, then .get on the exact
// keys): ok=false when Python would not get a dict out of body.
func cmdRequest(body []byte) (cmd json.RawMessage, kwargs json.RawMessage, ok bool) {
	var top map[string]json.RawMessage
	if !utf8.Valid(body) || json.Unmarshal(body, &top) != nil || top == nil {
		return nil, nil, false
	}
	return top["cmd"], top["kwargs"], true
}

// FuzzCommand sends arbitrary requests to the commander socket of a running server (serveCommand
// and Command): the connector must not panic and must answer as LOCAL-API §7 says. A reply is
// one u32-prefixed text and then the connection is closed; a request that is not a JSON object,
// whose cmd is missing, empty or not a string, that names an unknown command, or whose kwargs are
// not an object gets no reply (the connection is closed); a known command's reply has its
// documented form. With raw set the fuzz bytes are written as they are (length prefix
// included), else they are the request body and the prefix is added.
func FuzzCommand(f *testing.F) {
	dir := shortDir(f)
	srv := newConnector(f, dir, serverConf(dir, 0, nil), nil)
	path := srv.Paths().Commander
	level := srv.log.Level()
	seeds := []string{
		`{"cmd": "show_connected_peers__sync", "kwargs": {}}`,
		`{"cmd": "peek_queues__sync", "kwargs": {"dump_result": true}}`,
		`{"cmd": "show_log_level__sync", "kwargs": {}}`,
		`{"cmd": "set_log_level__sync", "kwargs": {"level": "DEBUG"}}`,
		`{"cmd": "set_log_level__sync", "kwargs": {"level": "verbose"}}`,
		`{"cmd": "set_log_level__sync", "kwargs": {"level": 10}}`,
		`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"show": true}}`,
		`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"enable": 1}}`,
		`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"unique_peer": "client1"}}`,
		`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"unique_peer": "it's \"q\"\n\u00e9"}}`,
		`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"disable": [0]}}`,
		`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {}}`,
		`{"cmd": "disconnect_client", "kwargs": {"client_id": "nobody"}}`,
		`{"cmd": "delete_previous_persistence_remains__sync", "kwargs": {}}`,
		`{"cmd": "show_subscribe_message_types__sync", "kwargs": {}}`,
		`{"cmd": "set_subscribe_message_types", "kwargs": {"message_types": ["a", "b"]}}`,
		`{"cmd": "delete_client_certificate_on_server", "kwargs": {"client_id": "../x", "remove_only_symlink": false}}`,
		`{"cmd": "delete_client_certificate_on_client", "kwargs": {"restart_client": false}}`,
		`{"cmd": "start", "kwargs": {}}`,
		`{"cmd": "show_stats", "kwargs": {}}`,
		`{"cmd": "stop", "kwargs": {"hard": true}}`,
		`{"cmd": "peek_queues", "kwargs": {}}`, // sync method without __sync: unknown
		`{"cmd": "no_such_command__sync", "kwargs": {}}`,
		`{"CMD": "show_log_level__sync", "kwargs": {}}`, // keys are case sensitive
		`{"cmd": "show_log_level__sync", "Kwargs": {"x": 1}}`,
		`{"cmd": "", "kwargs": {}}`,
		`{"cmd": 5, "kwargs": {}}`,
		`{"cmd": "show_log_level__sync", "kwargs": [1]}`,
		`{"cmd": "show_log_level__sync"}`,
		`{"cmd": "show_log_level__sync", "kwargs": {}} trailing`,
		`{"cmd": "show_log_level__sync", "kwargs": {}, "cmd": "peek_queues__sync"}`,
		"{\"cmd\": \"show_log_level__sync\", \"kwargs\": {\"level\": \"\xff\"}}",
		`["show_log_level__sync"]`,
		`null`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
	}
	le := func(n uint32) []byte { return binary.LittleEndian.AppendUint32(nil, n) }
	f.Add(append(le(3), `{"c`...), true)                     // shorter than declared
	f.Add(le(maxCommand+1), true)                            // over the limit
	f.Add([]byte{1, 0}, true)                                // truncated prefix
	f.Add(append(le(2), `{}{"cmd": "show_stats"}`...), true) // data after the request

	f.Fuzz(func(t *testing.T, in []byte, raw bool) {
		body := in
		if raw {
			body = nil
			if len(in) >= 4 {
				if n := binary.LittleEndian.Uint32(in); n <= maxCommand && int(n) <= len(in)-4 {
					body = in[4 : 4+n]
				}
			}
		}
		// what the reply must be (body == nil: none)
		cmdRaw, kwRaw, ok := cmdRequest(body)
		var cmd string
		if ok && json.Unmarshal(cmdRaw, &cmd) != nil {
			ok = false // missing, null or not a string
		}
		if ok && len(kwRaw) > 0 && string(kwRaw) != "null" {
			var kw map[string]json.RawMessage
			ok = json.Unmarshal(kwRaw, &kw) == nil
		}
		if ok && (cmd == "stop" || cmd == "restart") {
			return // not run: the connector must stay up for the next inputs
		}
		known := cmdKnown[cmd]
		if ok && cmd == "set_log_level__sync" { // an invalid level: no reply (§7.3)
			known = logLevelValid(kwRaw)
		}
		if ok && cmd != "" && !cmdKnown[cmd] {
			_, err := srv.Command(cmd, nil)
			if !errors.Is(err, ErrUnknownCommand) || !strings.Contains(err.Error(), cmd) {
				t.Fatalf("unknown command %q: %v", cmd, err)
			}
		}
		defer func() { // undo what a command changed
			srv.log.SetLevel(level)
			srv.ignore.Store(&ignoreState{})
		}()

		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		wire := in
		if !raw {
			wire = append(binary.LittleEndian.AppendUint32(nil, uint32(len(in))), in...)
		}
		c.Write(wire)
		c.(*net.UnixConn).CloseWrite()
		reply, err := io.ReadAll(c)
		if errors.Is(err, syscall.ECONNRESET) && raw && len(in) > 4+len(body) {
			return // closed with the bytes after the request unread: the reply may be lost
		}
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		want := ok && cmd != "" && known
		if !want {
			if len(reply) != 0 {
				t.Fatalf("request %q (cmd %q) answered %q; want no reply", body, cmd, reply)
			}
			return
		}
		if len(reply) < 4 || int(binary.LittleEndian.Uint32(reply)) != len(reply)-4 || len(reply) == 4 {
			t.Fatalf("request %q: reply %q is not one u32-prefixed text", body, reply)
		}
		checkCommandReply(t, srv, cmd, kwRaw, string(reply[4:]))
	})
}

// checkCommandReply checks a known command's reply text against LOCAL-API §7.3 (a server
// without TLS, no peer connected).
func checkCommandReply(t *testing.T, srv *Connector, cmd string, kwRaw json.RawMessage, rep string) {
	t.Helper()
	var kw map[string]json.RawMessage
	json.Unmarshal(kwRaw, &kw)
	isJSON := func(v any) bool { return json.Unmarshal([]byte(rep), v) == nil }
	bad := false
	switch cmd {
	case "show_connected_peers__sync":
		var l []string
		bad = !isJSON(&l) || rep != "[]"
	case "show_stats", "show_stats__sync":
		var m map[string]any
		bad = !isJSON(&m)
	case "peek_queues__sync":
		var m struct {
			Recv *int           `json:"queue_recv"`
			Send map[string]int `json:"queue_send"`
		}
		bad = !isJSON(&m) || m.Recv == nil || m.Send == nil
	case "manage_ignore_peer_traffic__sync":
		bad = rep != "True" && rep != "False" && rep != "{}" && !(strings.HasPrefix(rep, "[") && strings.HasSuffix(rep, "]"))
		if !truthyJSON(kw["show"]) && !truthyJSON(kw["enable"]) && !truthyJSON(kw["disable"]) && !truthyJSON(kw["unique_peer"]) {
			bad = bad || rep != "{}"
		}
	case "disconnect_client":
		bad = !strings.HasPrefix(rep, "Non existing client ")
	case "delete_previous_persistence_remains__sync", "show_subscribe_message_types__sync",
		"set_subscribe_message_types", "start":
		bad = rep != "{}"
	case "show_log_level__sync":
		bad = rep != srv.log.Level().String()
	case "set_log_level__sync":
		var lv string
		var n int32
		if json.Unmarshal(kw["level"], &lv) == nil {
			bad = rep != lv
		} else if json.Unmarshal(kw["level"], &n) == nil {
			bad = rep != strconv.Itoa(int(n)) && !(n == 0 && rep == "{}")
		} else {
			bad = true
		}
	case "delete_client_certificate_on_server", "delete_client_certificate_on_client":
		bad = rep != `{"status": false, "msg": "'Connector' object has no attribute 'ssl_helper'"}`
	}
	if bad {
		t.Fatalf("%s %s: reply %q", cmd, kwRaw, rep)
	}
}

// logLevelValid reports whether set_log_level accepts the level of kwargs: a Python level name
// or an integer (logging.Logger.setLevel).
func logLevelValid(kwRaw json.RawMessage) bool {
	var kw map[string]json.RawMessage
	json.Unmarshal(kwRaw, &kw)
	var lv string
	if json.Unmarshal(kw["level"], &lv) == nil {
		_, ok := ParseLevel(lv)
		return ok
	}
	var n int32
	return json.Unmarshal(kw["level"], &n) == nil
}
