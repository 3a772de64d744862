// Package config loads aioconnectors 1.0.33 JSON configuration files
// unchanged and turns them into the effective settings a ConnectorManager
// (create_connector) or a ConnectorAPI would use, with Python's quirks
// reproduced: "file value if present (even null), else default", Python
// truthiness for every boolean, the manager's _pubsub adjustments, the
// server source_id tuple repr; alnum file names and directory
// normalisation come from package uds (config imports uds, never the
// reverse). It also holds the exact CLI texts (help, usage,
// print_config_templates).
//
// Options values are plain data: not safe for concurrent mutation, safe
// for concurrent reads once built. Parse copies what it keeps from its
// input (Raw holds copies).
package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aioconn/aioconn/uds"
)

// Constants of aioconnectors 1.0.33 (core.py, helpers.py; PEER-PROTOCOL Appendix A, LOCAL §10).
const (
	Version                       = "1.0.33"
	DefaultServerHost             = "127.0.0.1"
	DefaultServerPort             = 10673
	DefaultMaxSizeFileUpload      = int64(8_000_000_000)
	DefaultMaxSizeChunkUpload     = int64(1_000_000_000)
	DefaultMaxSizePersistencePath = int64(1_000_000_000)
	DefaultLogRotateBytes         = int64(67108864) // 64 MiB, used when default_logger_rotate is true
	// DefaultMaxFrame bounds a frame body before it is buffered: the largest frame a 1.0.33 peer
	// sends in practice is one file chunk (MaxSizeChunkUpload) plus its JSON header and lengths.
	DefaultMaxFrame             = uint32(DefaultMaxSizeChunkUpload) + 2*65536 + 16
	LogBackupCount              = 5
	LogFileName                 = "aioconnectors.log"
	LoggerName                  = "aioconnectors"
	DefaultLogLevel             = "INFO"
	MaxLengthUDSPath            = uds.MaxPathLen
	MaxQueueSize                = 300_000
	MaxNumberOfAwaitingRequests = 1000
	MaxTransportID              = 100_000
	MaxRetriesBeforeAck         = 3
	MaxSocketBufferSize         = 65536
	ActiveConnectorsName        = "active_connectors.json"
	PersistenceSeparator        = "@@@PERSISTENCE_SEPARATOR@@@"
	PersistenceSeparatorReplace = "#@@PERSISTENCE_SEPARATOR@@#"
	ChunkIndicator              = "__aioconnectors_chunk"
	ClientDefaultCertName       = "default"
	PubsubType                  = "_pubsub"
	PingType                    = "_ping"
	AnyType                     = "any"

	DefaultReconnectInterval    = 5 * time.Second    // SLEEP_BETWEEN_START_FAILURES
	DefaultIOTimeout            = 10 * time.Second   // ASYNC_TIMEOUT
	DefaultAwaitResponseTimeout = 3600 * time.Second // AWAIT_RESPONSE_TIMEOUT
	DefaultConnectTimeout       = 2 * time.Second    // hard-coded in 1.0.33 (1.6.3: connect_timeout, 10 s)
	DefaultKeepAliveTimeout     = 5 * time.Second    // 1.6.3 keep_alive_timeout
	DefaultMaxUnansweredKA      = 2                  // 1.6.3 max_number_of_unanswered_keep_alive
	DefaultMsgCountsPeriod      = 2 * time.Second
	DefaultQueueIdleTimeout     = 5 * time.Second // TIMEOUT_QUEUE
)

// DefaultMessageTypes returns a fresh ["any"].
func DefaultMessageTypes() []string { return []string{AnyType} }

// DefaultFilesDir is helpers.get_tmp_dir of 1.0.33: /tmp/aioconnectors when
// /tmp exists, else the shorter of ~/aioconnectors_tmp and ./aioconnectors_tmp
// (both absolutised).
func DefaultFilesDir() string {
	if _, err := os.Stat("/tmp"); err == nil {
		return "/tmp/aioconnectors"
	}
	c1, c2 := uds.NormalizeDir("~/aioconnectors_tmp"), uds.NormalizeDir("aioconnectors_tmp")
	if runeLen(c2) < runeLen(c1) {
		return c2
	}
	return c1
}

// FullPath is aioconnectors' helpers.full_path (expanduser, expandvars,
// normpath, abspath); it calls uds.NormalizeDir, which owns the behaviour.
func FullPath(p string) string { return uds.NormalizeDir(p) }

// TypeSet is a "bool or list of message types" option (disk_persistence_send/recv).
type TypeSet struct {
	All   bool     // a truthy non-list value: every type
	Types []string // the list given (All is then false)
}

// Has reports whether message type t is selected.
func (s TypeSet) Has(t string) bool { return s.All || slices.Contains(s.Types, t) }

// Any reports whether the option is enabled at all (Python truthiness).
func (s TypeSet) Any() bool { return s.All || len(s.Types) > 0 }

// FileRecv is one entry of file_recv_config (CONFIG §2.1).
type FileRecv struct {
	TargetDirectory  string // Python str.format template, applied to the transport JSON
	Owner            string // "user:group" or ""
	OverrideExisting bool
}

// Proxy is the client's HTTP CONNECT proxy (proxy key).
type Proxy struct {
	Enabled            bool
	Address            string
	Port               int
	Username, Password string
	HasAuth            bool // authorization was a truthy object
	SSLServer          bool
}

// IgnorePeerTraffic is the 1.6.3 ignore_peer_traffic initial value.
type IgnorePeerTraffic struct {
	All   bool
	Peers []string // a string value gives one peer (Go matches exactly, 1.6.3 did a substring test)
}

// Options is a ConnectorManager configuration (what `create_connector FILE`
// runs) after the manager's own adjustments (CONFIG §1.1 steps 5–8).
type Options struct {
	Source string // file path or the name given to Parse

	IsServer          bool
	ServerHost        string // as given: IPv4, hostname or interface name (see ResolveHost)
	ServerPort        int
	ServerPortRepr    string // "10673", or "'10673'" when the JSON port was a string
	HasServerSockaddr bool   // false when the file had no server_sockaddr (default applied)

	UseSSL, SSLAllowAll       bool
	ClientBindIP              string // "" = none
	CertificatesDirectoryPath string // normalised; default DefaultFilesDir()
	ClientName                string
	ClientNameGenerated       bool // client without client_name: random 8-hex name

	SendMessageTypes      []string // with _pubsub appended
	RecvMessageTypes      []string // ["any"] default; _pubsub appended when pubsub_central_broker is truthy
	SubscribeMessageTypes []string
	PubsubCentralBroker   bool // effective: always false on a client

	ConnectorFilesDirpath string // normalised absolute (uds.NormalizeDir)

	DiskPersistenceSend, DiskPersistenceRecv TypeSet
	MaxSizePersistencePath                   int64
	FileRecvConfig                           map[string]FileRecv

	DebugMsgCounts, Silent                                   bool
	UDSPathReceivePreserveSocket, UDSPathSendPreserveSocket  bool
	EnableClientTryReconnect                                 bool
	ReuseServerSockaddr                                      bool
	ReuseUDSPathSendToConnector, ReuseUDSPathCommanderServer bool
	EverybodyCanSendMessages                                 bool

	MaxSizeFileUpload                            int64 // 1.0.33 key (both directions)
	MaxSizeFileUploadSend, MaxSizeFileUploadRecv int64 // = MaxSizeFileUpload unless the 1.6.3 keys are given

	SendMessageTypesPriorities map[string]int
	Proxy                      Proxy

	DefaultLoggerLogLevel string // effective level name: DEBUG, INFO, WARNING, ERROR, CRITICAL or NOTSET
	DefaultLoggerRotate   int64  // bytes; 0 = no rotation
	DefaultLoggerDirpath  string // as given (Python does not normalise it)

	// 1.6.3 keys honoured (defaults = 1.0.33 behaviour).
	SendTimeout            time.Duration // send_timeout; 0 = none (1.0.33)
	KeepAlivePeriod        time.Duration // keep_alive_period; 0 = off
	KeepAliveTimeout       time.Duration // keep_alive_timeout
	MaxUnansweredKeepAlive int           // max_number_of_unanswered_keep_alive
	IgnorePeerTraffic      IgnorePeerTraffic

	// aioconn keys (no aioconnectors version has them; absent = off).
	MetricsListen string // metrics_listen: "host:port" serving Prometheus /metrics; "" = off
	DetailedStats bool   // detailed_stats: count messages and bytes per peer and type without metrics_listen
	// LinkCompression is link_compression: "s2" or "zstd" compresses links with aioconn peers that
	// also configured it (negotiated; Python peers never see it); "" = off (null, false, "off").
	LinkCompression string

	// Testability hooks (not JSON keys except ConnectTimeout = 1.6.3 connect_timeout).
	ReconnectInterval    time.Duration // 5 s
	IOTimeout            time.Duration // 10 s
	AwaitResponseTimeout time.Duration // 3600 s
	ConnectTimeout       time.Duration // 2 s; 0 = none
	MsgCountsPeriod      time.Duration // 2 s
	MaxQueueSize         int           // 300000
	MaxAwaitingRequests  int           // 1000
	MaxFrame             uint32        // largest accepted frame body (DefaultMaxFrame); 1.0.33 has no limit

	Unknown     []string // unknown keys seen (sorted)
	Unsupported []string // 1.6.3 keys set to a non-default value that are not honoured (sorted)
	Raw         map[string]json.RawMessage

	warnings []string
	problems []error // type problems found by Parse, reported again by Validate
}

// Defaults returns the options create_connector uses for an empty config
// file `{}`: a server on ('127.0.0.1', 10673), send types ["_pubsub"]
// (CONFIG §1.1 step 7), recv types ["any"].
//
// server_sockaddr: the 1.0.33 keyword default is null, with which a Python
// server cannot start and a client cannot connect. The Go connector uses
// the documented template/Connector default ('127.0.0.1', 10673) instead
// and records a warning; HasServerSockaddr tells the two apart.
func Defaults() *Options {
	o, _ := Parse([]byte("{}"), "")
	o.Raw = map[string]json.RawMessage{}
	return o
}

// Warnings returns the non-fatal findings of Parse (unknown keys, generated
// client name, values Python would interpret surprisingly...), each
// starting with "config: ".
func (o *Options) Warnings() []string { return slices.Clone(o.warnings) }

// Load reads and parses a config file. Errors wrap ErrNoFile, ErrSyntax
// (with line:column), ErrNotObject or (joined, all at once) *KeyError.
// When the file is valid JSON the returned Options is non-nil even with an
// error, so that Warnings can still be shown.
func Load(path string) (*Options, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrNoFile, path, err)
	}
	return Parse(data, path)
}

// Parse parses config data; source names it in messages. See Load.
func Parse(data []byte, source string) (*Options, error) {
	raw, err := decodeObject(data, source)
	if err != nil {
		return nil, err
	}
	d := &decoder{raw: raw, src: source}
	o := d.manager()
	return o, o.Validate()
}

// decodeObject decodes a JSON object into raw values (copies).
func decodeObject(data []byte, source string) (map[string]json.RawMessage, error) {
	name := source
	if name == "" {
		name = "<config>"
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := lineCol(data, se.Offset)
			return nil, fmt.Errorf("%w in %s at line %d column %d: %s", ErrSyntax, name, line, col, se.Error())
		}
		return nil, fmt.Errorf("%w in %s: %w", ErrSyntax, name, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: %s holds %s", ErrNotObject, name, jsonKind(bytes.TrimSpace(data)))
	}
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w in %s: %w", ErrSyntax, name, err)
	}
	return raw, nil
}

// lineCol converts a json.SyntaxError offset (bytes read when the error was
// seen) to the 1-based line and column (in characters) of the offending byte.
func lineCol(data []byte, off int64) (int, int) {
	pos := int(off)
	if pos > 0 {
		pos--
	}
	if pos > len(data) {
		pos = len(data)
	}
	line := 1 + bytes.Count(data[:pos], []byte{'\n'})
	start := bytes.LastIndexByte(data[:pos], '\n') + 1
	return line, utf8.RuneCount(data[start:pos]) + 1
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// showValue renders a raw value for messages: compact, at most 80 bytes.
func showValue(v json.RawMessage) string {
	if v == nil {
		return "nothing"
	}
	var buf bytes.Buffer
	s := string(bytes.TrimSpace(v))
	if json.Compact(&buf, v) == nil {
		s = buf.String()
	}
	if len(s) > 80 {
		cut := 77
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// decoder applies file values over defaults and records problems.
type decoder struct {
	raw      map[string]json.RawMessage
	src      string
	problems []error
	warnings []string
}

func (d *decoder) bad(key string, v json.RawMessage, expected string) {
	d.problems = append(d.problems, &KeyError{Source: d.src, Key: key, Value: showValue(v), Expected: expected})
}

func (d *decoder) warn(format string, args ...any) {
	d.warnings = append(d.warnings, "config: "+fmt.Sprintf(format, args...))
}

func kind(v json.RawMessage) byte {
	b := bytes.TrimSpace(v)
	if len(b) == 0 {
		return 0
	}
	switch b[0] {
	case '{', '[', '"', 'n':
		return b[0]
	case 't', 'f':
		return 'b'
	}
	return '0'
}

func (d *decoder) boolKey(key string, def bool) bool {
	v, ok := d.raw[key]
	if !ok {
		return def
	}
	return Truthy(v)
}

// strKey: absent -> def; null -> "" with isNull; string -> value; else problem.
func (d *decoder) strKey(key, def string, nullOK bool, expected string) (s string, isNull bool) {
	v, ok := d.raw[key]
	if !ok {
		return def, false
	}
	switch kind(v) {
	case 'n':
		if !nullOK {
			d.bad(key, v, expected)
		}
		return "", true
	case '"':
		_ = json.Unmarshal(v, &s)
		return s, false
	}
	d.bad(key, v, expected)
	return def, false
}

// stringList decodes a list of strings; ok false (and a problem) otherwise.
func (d *decoder) stringList(key string, v json.RawMessage, expected string) ([]string, bool) {
	var elems []json.RawMessage
	if json.Unmarshal(v, &elems) != nil {
		d.bad(key, v, expected)
		return nil, false
	}
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		if kind(e) != '"' {
			d.bad(key, v, expected)
			return nil, false
		}
		var s string
		_ = json.Unmarshal(e, &s)
		out = append(out, s)
	}
	return out, true
}

// typesKey: absent or null -> (nil, true); list of strings -> list.
func (d *decoder) typesKey(key string) (list []string, isNull bool) {
	v, ok := d.raw[key]
	if !ok || kind(v) == 'n' {
		return nil, true
	}
	const exp = "null or a list of message type strings"
	if kind(v) != '[' {
		d.bad(key, v, exp)
		return nil, true
	}
	l, ok := d.stringList(key, v, exp)
	if !ok {
		return nil, true
	}
	return l, false
}

// number parses a JSON number into an int64 (fractions floored, clamped).
func number(v json.RawMessage) (int64, bool) {
	if kind(v) != '0' {
		return 0, false
	}
	s := string(bytes.TrimSpace(v))
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	f = math.Floor(f)
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, true
	case f <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(f), true
}

// isInteger reports whether v is a JSON integer literal (no fraction or exponent).
func isInteger(v json.RawMessage) bool {
	s := bytes.TrimSpace(v)
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (d *decoder) sizeKey(key string, def int64) int64 {
	v, ok := d.raw[key]
	if !ok {
		return def
	}
	n, ok := number(v)
	if !ok || n < 0 {
		d.bad(key, v, "a number of bytes >= 0")
		return def
	}
	return n
}

// secondsKey: number of seconds >= 0; null allowed when nullOK (-> 0).
func (d *decoder) secondsKey(key string, def time.Duration, nullOK bool) time.Duration {
	v, ok := d.raw[key]
	if !ok {
		return def
	}
	if kind(v) == 'n' && nullOK {
		return 0
	}
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
	if kind(v) != '0' || err != nil || f < 0 || f > 1e9 {
		exp := "a number of seconds >= 0"
		if nullOK {
			exp = "null or " + exp
		}
		d.bad(key, v, exp)
		return def
	}
	return time.Duration(f * float64(time.Second))
}

// Keys of the 1.0.33 ConnectorManager that a file may set.
var managerKeys = []string{
	"default_logger_log_level", "default_logger_rotate", "default_logger_dirpath",
	"is_server", "server_sockaddr", "use_ssl", "ssl_allow_all", "client_bind_ip",
	"certificates_directory_path", "client_name", "send_message_types", "recv_message_types",
	"subscribe_message_types", "connector_files_dirpath", "disk_persistence_send",
	"disk_persistence_recv", "max_size_persistence_path", "file_recv_config", "debug_msg_counts",
	"silent", "uds_path_receive_preserve_socket", "uds_path_send_preserve_socket",
	"enable_client_try_reconnect", "reuse_server_sockaddr", "reuse_uds_path_send_to_connector",
	"reuse_uds_path_commander_server", "max_size_file_upload", "everybody_can_send_messages",
	"send_message_types_priorities", "pubsub_central_broker", "proxy",
}

// Keyword-only arguments: accepted in a file (Python assigns them) without effect.
var keywordOnlyKeys = []string{"config_file_path", "logger", "use_default_logger", "hook_server_auth_client"}

// Keys of the API templates, harmless in a manager file.
var apiOnlyKeys = []string{"receive_from_any_connector_owner", "max_size_chunk_upload"}

// 1.6.3 keys mapped onto Options.
var honoured163 = []string{
	"connect_timeout", "send_timeout", "keep_alive_period", "keep_alive_timeout",
	"max_number_of_unanswered_keep_alive", "ignore_peer_traffic",
	"max_size_file_upload_send", "max_size_file_upload_recv",
}

// 1.6.3 keys accepted but not honoured; inert reports whether the value
// given is equivalent to the 1.6.3 default (then nothing is reported).
var unsupported163 = map[string]func(raw map[string]json.RawMessage, v json.RawMessage) bool{
	"config_file_overrides_kwargs": func(_ map[string]json.RawMessage, _ json.RawMessage) bool { return true },
	"default_logger_bk_count": func(_ map[string]json.RawMessage, v json.RawMessage) bool {
		n, ok := number(v)
		return ok && n == LogBackupCount
	},
	"use_token": falsy,
	"server_ca": falsy,
	"server_ca_certs_not_stored": func(raw map[string]json.RawMessage, v json.RawMessage) bool {
		return Truthy(v) || !Truthy(raw["server_ca"])
	},
	"server_secure_tls":                              func(_ map[string]json.RawMessage, v json.RawMessage) bool { return Truthy(v) },
	"tokens_directory_path":                          unlessToken,
	"max_certs":                                      func(_ map[string]json.RawMessage, v json.RawMessage) bool { n, ok := number(v); return ok && n == 1024 },
	"alternate_client_default_cert":                  falsy,
	"blacklisted_clients_id":                         falsy,
	"blacklisted_clients_ip":                         falsy,
	"blacklisted_clients_subnet":                     falsy,
	"whitelisted_clients_id":                         falsy,
	"whitelisted_clients_ip":                         falsy,
	"whitelisted_clients_subnet":                     falsy,
	"client_cafile_verify_server":                    falsy,
	"token_verify_peer_cert":                         unlessToken,
	"token_client_send_cert":                         unlessToken,
	"token_client_verify_server_hostname":            unlessToken,
	"token_server_allow_authorized_non_default_cert": unlessToken,
	"hook_target_directory":                          nullOnly,
	"hook_allow_certificate_creation":                nullOnly,
	"hook_proxy_authorization":                       nullOnly,
	"hook_store_token":                               nullOnly,
	"hook_load_token":                                nullOnly,
	"hook_whitelist_clients":                         nullOnly,
}

func falsy(_ map[string]json.RawMessage, v json.RawMessage) bool { return !Truthy(v) }
func nullOnly(_ map[string]json.RawMessage, v json.RawMessage) bool {
	return kind(v) == 'n'
}
func unlessToken(raw map[string]json.RawMessage, _ json.RawMessage) bool {
	return !Truthy(raw["use_token"])
}

// Keys of aioconn itself (ignored by Python connectors, which do not read them). at_least_once is
// read by package connector from Raw (true, false or a list of message types).
var aioconnKeys = []string{"metrics_listen", "detailed_stats", "at_least_once", "link_compression"}

// ReloadableKeys are the keys a running connector applies again when its config file is
// re-read (SIGHUP); a change to any other key needs a restart.
var ReloadableKeys = []string{
	"default_logger_log_level", "subscribe_message_types", "ignore_peer_traffic",
	"metrics_listen", "detailed_stats", "send_message_types_priorities",
}

// classifyKeys fills Unknown/Unsupported and warns about keys without effect.
func (d *decoder) classifyKeys(known []string, api bool) (unknown, unsupported []string) {
	for k, v := range d.raw {
		switch {
		case slices.Contains(known, k):
		case slices.Contains(keywordOnlyKeys, k):
			if k == "hook_server_auth_client" && kind(v) != 'n' && !api {
				d.warn("key %q cannot be set from a config file (Python would fail on the first connection), ignored", k)
			}
		case slices.Contains(honoured163, k):
		case slices.Contains(aioconnKeys, k):
		case unsupported163[k] != nil:
			if !unsupported163[k](d.raw, v) {
				unsupported = append(unsupported, k)
				d.warn("key %q (aioconnectors 1.6.3) is not supported yet, value %s ignored", k, showValue(v))
			}
		default:
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	sort.Strings(unsupported)
	for _, k := range unknown {
		d.warn("unknown key %q ignored", k)
	}
	return unknown, unsupported
}

// sockaddr decodes server_sockaddr.
func (d *decoder) sockaddr() (host string, port int, portRepr string, has bool) {
	host, port, portRepr = DefaultServerHost, DefaultServerPort, strconv.Itoa(DefaultServerPort)
	v, ok := d.raw["server_sockaddr"]
	if !ok {
		d.warn("no server_sockaddr given, using ('127.0.0.1', 10673) (Python 1.0.33 would run without a usable address)")
		return host, port, portRepr, false
	}
	const exp = `[host, port] with host a string and port an integer 0-65535 (or a string of digits)`
	var elems []json.RawMessage
	if kind(v) != '[' || json.Unmarshal(v, &elems) != nil || len(elems) != 2 || kind(elems[0]) != '"' {
		d.bad("server_sockaddr", v, exp)
		return host, port, portRepr, false
	}
	var h string
	_ = json.Unmarshal(elems[0], &h)
	if h == "" {
		d.bad("server_sockaddr", v, exp)
		return host, port, portRepr, false
	}
	var p int64
	var repr string
	switch kind(elems[1]) {
	case '0':
		if !isInteger(elems[1]) {
			d.bad("server_sockaddr", v, exp)
			return host, port, portRepr, false
		}
		p, _ = number(elems[1])
		repr = strconv.FormatInt(p, 10)
	case '"':
		var s string
		_ = json.Unmarshal(elems[1], &s)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || !isInteger(json.RawMessage(s)) || s[0] == '-' {
			d.bad("server_sockaddr", v, exp)
			return host, port, portRepr, false
		}
		p, repr = n, PyStrRepr(s)
	default:
		d.bad("server_sockaddr", v, exp)
		return host, port, portRepr, false
	}
	if p < 0 || p > 65535 {
		d.bad("server_sockaddr", v, exp)
		return host, port, portRepr, false
	}
	if strings.Contains(h, "'") {
		d.warn("server_sockaddr host %q contains a quote: its Python repr differs, API paths may not match", h)
	}
	return h, int(p), repr, true
}

// logLevel resolves default_logger_log_level like Python's getattr(logging, name, INFO).
func (d *decoder) logLevel() string {
	s, isNull := d.strKey("default_logger_log_level", DefaultLogLevel, false, "a log level name (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
	if isNull {
		return DefaultLogLevel
	}
	if lvl, ok := levelNames[s]; ok {
		return lvl
	}
	if _, ok := levelNames[strings.ToUpper(s)]; ok || pyLoggingAttrs[s] {
		d.bad("default_logger_log_level", d.raw["default_logger_log_level"], "an upper-case log level name (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
		return DefaultLogLevel
	}
	d.warn("default_logger_log_level %q is not a level name, using INFO", s)
	return DefaultLogLevel
}

var levelNames = map[string]string{
	"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARNING", "WARN": "WARNING",
	"ERROR": "ERROR", "CRITICAL": "CRITICAL", "FATAL": "CRITICAL", "NOTSET": "NOTSET",
}

// Attributes of Python's logging module that are not level numbers and make setLevel fail
// (lower-case names are covered by the ToUpper test above).
var pyLoggingAttrs = map[string]bool{
	"BASIC_FORMAT": true, "Formatter": true, "Filter": true, "Handler": true, "Logger": true,
	"LoggerAdapter": true, "LogRecord": true, "StreamHandler": true, "FileHandler": true,
	"NullHandler": true, "Manager": true, "PlaceHolder": true, "RootLogger": true,
	"BufferingFormatter": true, "Filterer": true, "PercentStyle": true, "StrFormatStyle": true,
	"StringTemplateStyle": true,
}

// rotate resolves default_logger_rotate like helpers.get_logger.
func (d *decoder) rotate() int64 {
	v, ok := d.raw["default_logger_rotate"]
	if !ok {
		return DefaultLogRotateBytes
	}
	if !Truthy(v) {
		return 0
	}
	switch kind(v) {
	case 'b':
		return DefaultLogRotateBytes
	case '0':
		n, _ := number(v)
		if f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64); err == nil && f < 0 {
			n = int64(math.Ceil(f)) // int() truncates toward zero
		}
		if n <= 0 {
			return 0 // RotatingFileHandler with maxBytes <= 0 never rotates
		}
		return n
	case '"':
		var s string
		_ = json.Unmarshal(v, &s)
		if n, ok := pyInt(s); ok {
			if n <= 0 {
				return 0
			}
			return n
		}
	}
	return DefaultLogRotateBytes
}

// pyInt parses like Python int(str): surrounding whitespace, sign, digits with single underscores.
func pyInt(s string) (int64, bool) {
	s = strings.TrimFunc(s, isPySpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	s = strings.ReplaceAll(s, "_", "")
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		n = math.MaxInt64
	}
	if neg {
		n = -n
	}
	return n, true
}

func (d *decoder) typeSet(key string) TypeSet {
	v, ok := d.raw[key]
	if !ok {
		return TypeSet{}
	}
	if kind(v) == '[' {
		l, ok := d.stringList(key, v, "a boolean or a list of message type strings")
		if ok {
			return TypeSet{Types: l}
		}
		return TypeSet{}
	}
	if kind(v) == '"' && Truthy(v) {
		d.warn("%s is the string %s: Python treats it as true (every type)", key, showValue(v))
	}
	return TypeSet{All: Truthy(v)}
}

func (d *decoder) fileRecvConfig() map[string]FileRecv {
	out := map[string]FileRecv{}
	v, ok := d.raw["file_recv_config"]
	if !ok || kind(v) == 'n' {
		return out
	}
	const exp = `null or an object {dst_type: {"target_directory": str, "owner": "user:group", "override_existing": bool}}`
	var m map[string]json.RawMessage
	if kind(v) != '{' || json.Unmarshal(v, &m) != nil {
		d.bad("file_recv_config", v, exp)
		return out
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := "file_recv_config." + k
		var e map[string]json.RawMessage
		if kind(m[k]) != '{' || json.Unmarshal(m[k], &e) != nil {
			d.bad(key, m[k], "an object with a \"target_directory\" string")
			continue
		}
		var fr FileRecv
		td, ok := e["target_directory"]
		if !ok || kind(td) != '"' {
			d.bad(key+".target_directory", td, "a string (absolute, normalised directory template)")
			continue
		}
		_ = json.Unmarshal(td, &fr.TargetDirectory)
		if ow, ok := e["owner"]; ok && Truthy(ow) {
			if kind(ow) != '"' {
				d.bad(key+".owner", ow, `null or a "user:group" string`)
				continue
			}
			_ = json.Unmarshal(ow, &fr.Owner)
			if !strings.Contains(fr.Owner, ":") {
				d.warn("%s.owner %q is not user:group, it will be ignored", key, fr.Owner)
			}
		}
		fr.OverrideExisting = Truthy(e["override_existing"])
		t := strings.TrimSuffix(fr.TargetDirectory, "/")
		if !strings.HasPrefix(fr.TargetDirectory, "/") || (uds.Normpath(t) != t && t != "") {
			d.warn("%s.target_directory %q is not an absolute normalised path: every file will be refused", key, fr.TargetDirectory)
		}
		out[k] = fr
	}
	return out
}

func (d *decoder) priorities() map[string]int {
	out := map[string]int{}
	v, ok := d.raw["send_message_types_priorities"]
	if !ok || !Truthy(v) {
		return out
	}
	const exp = "an object mapping message types to integers"
	var m map[string]json.RawMessage
	if kind(v) != '{' || json.Unmarshal(v, &m) != nil {
		d.bad("send_message_types_priorities", v, exp)
		return out
	}
	for k, e := range m {
		n, ok := number(e)
		if !ok || !isInteger(e) || n < math.MinInt32 || n > math.MaxInt32 {
			d.bad("send_message_types_priorities."+k, e, "an integer")
			continue
		}
		out[k] = int(n)
	}
	return out
}

func (d *decoder) proxy() Proxy {
	var p Proxy
	v, ok := d.raw["proxy"]
	if !ok || !Truthy(v) {
		return p
	}
	var m map[string]json.RawMessage
	if kind(v) != '{' || json.Unmarshal(v, &m) != nil {
		d.bad("proxy", v, `null or an object {"enabled": bool, "address": str, "port": int, "authorization": "" or {"username": str, "password": str}, "ssl_server": bool}`)
		return p
	}
	p.Enabled = Truthy(m["enabled"])
	p.SSLServer = Truthy(m["ssl_server"])
	if !p.Enabled {
		return p
	}
	if a, ok := m["address"]; !ok || kind(a) != '"' {
		d.bad("proxy.address", a, "a host string")
	} else {
		_ = json.Unmarshal(a, &p.Address)
	}
	pv := m["port"]
	switch kind(pv) {
	case '0':
		n, _ := number(pv)
		if isInteger(pv) && n > 0 && n <= 65535 {
			p.Port = int(n)
		} else {
			d.bad("proxy.port", pv, "a port number 1-65535")
		}
	case '"':
		var s string
		_ = json.Unmarshal(pv, &s)
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 65535 {
			p.Port = n
		} else {
			d.bad("proxy.port", pv, "a port number 1-65535")
		}
	default:
		d.bad("proxy.port", pv, "a port number 1-65535")
	}
	if au, ok := m["authorization"]; ok && Truthy(au) {
		var a map[string]json.RawMessage
		if kind(au) != '{' || json.Unmarshal(au, &a) != nil || kind(a["username"]) != '"' || kind(a["password"]) != '"' {
			d.bad("proxy.authorization", au, `"" or {"username": str, "password": str}`)
		} else {
			_ = json.Unmarshal(a["username"], &p.Username)
			_ = json.Unmarshal(a["password"], &p.Password)
			p.HasAuth = true
		}
	}
	return p
}

func (d *decoder) ignorePeerTraffic() IgnorePeerTraffic {
	v, ok := d.raw["ignore_peer_traffic"]
	if !ok || !Truthy(v) {
		return IgnorePeerTraffic{}
	}
	switch kind(v) {
	case 'b':
		return IgnorePeerTraffic{All: true}
	case '"':
		var s string
		_ = json.Unmarshal(v, &s)
		return IgnorePeerTraffic{Peers: []string{s}}
	case '[':
		if l, ok := d.stringList("ignore_peer_traffic", v, "a boolean, a peer name or a list of peer names"); ok {
			return IgnorePeerTraffic{Peers: l}
		}
		return IgnorePeerTraffic{}
	}
	d.bad("ignore_peer_traffic", v, "a boolean, a peer name or a list of peer names")
	return IgnorePeerTraffic{}
}

// listenKey reads a "host:port" TCP listen address (null, absent or "" = off). The port may be 0
// (any free port).
func (d *decoder) listenKey(key string) string {
	const exp = `null or a "host:port" listen address, e.g. "127.0.0.1:9464"`
	s, isNull := d.strKey(key, "", true, exp)
	if isNull || s == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(s)
	if err == nil {
		var n int
		n, err = strconv.Atoi(port)
		if err == nil && (n < 0 || n > 65535) {
			err = strconv.ErrRange
		}
	}
	if err != nil {
		d.bad(key, d.raw[key], exp)
		return ""
	}
	return s
}

// compressionKey reads link_compression: null, false, "" or "off" (off), "s2" or "zstd".
func (d *decoder) compressionKey(key string) string {
	const exp = `null, "off", "s2" or "zstd"`
	v, ok := d.raw[key]
	if !ok || kind(v) == 'n' || string(v) == "false" {
		return ""
	}
	s, _ := d.strKey(key, "", true, exp)
	switch s {
	case "", "off":
		return ""
	case "s2", "zstd":
		return s
	}
	d.bad(key, v, exp)
	return ""
}

// RandomClientName returns 8 lowercase hex characters (Python uuid4().hex[:8]).
func RandomClientName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func appendOnce(l []string, t string) []string {
	if slices.Contains(l, t) {
		return l
	}
	return append(l, t)
}

func (d *decoder) manager() *Options {
	o := &Options{Source: d.src, Raw: d.raw}
	o.Unknown, o.Unsupported = d.classifyKeys(append(slices.Clone(managerKeys), apiOnlyKeys...), false)
	filesDir := DefaultFilesDir()

	o.DefaultLoggerLogLevel = d.logLevel()
	o.DefaultLoggerRotate = d.rotate()
	o.DefaultLoggerDirpath, _ = d.strKey("default_logger_dirpath", filesDir, false, "a directory path string")

	o.IsServer = d.boolKey("is_server", true)
	o.ServerHost, o.ServerPort, o.ServerPortRepr, o.HasServerSockaddr = d.sockaddr()
	if o.IsServer && o.HasServerSockaddr && strings.HasPrefix(o.ServerPortRepr, "'") {
		d.warn("server_sockaddr port is a string: source_id is %s (Python 1.0.33 cannot bind a server with it)", o.SourceID())
	}
	o.UseSSL = d.boolKey("use_ssl", true)
	o.SSLAllowAll = d.boolKey("ssl_allow_all", false)
	cert, certNull := d.strKey("certificates_directory_path", "", true, "null or a directory path string")
	if certNull || !hasKey(d.raw, "certificates_directory_path") {
		o.CertificatesDirectoryPath = filesDir
	} else {
		o.CertificatesDirectoryPath = uds.NormalizeDir(cert)
	}
	dir, _ := d.strKey("connector_files_dirpath", filesDir, false, "a directory path string")
	o.ConnectorFilesDirpath = uds.NormalizeDir(dir)

	o.DiskPersistenceSend = d.typeSet("disk_persistence_send")
	o.DiskPersistenceRecv = d.typeSet("disk_persistence_recv")
	o.MaxSizePersistencePath = d.sizeKey("max_size_persistence_path", DefaultMaxSizePersistencePath)
	o.FileRecvConfig = d.fileRecvConfig()
	o.DebugMsgCounts = d.boolKey("debug_msg_counts", true)
	o.Silent = d.boolKey("silent", true)
	o.UDSPathReceivePreserveSocket = d.boolKey("uds_path_receive_preserve_socket", true)
	o.UDSPathSendPreserveSocket = d.boolKey("uds_path_send_preserve_socket", true)
	o.EnableClientTryReconnect = d.boolKey("enable_client_try_reconnect", true)
	o.ReuseServerSockaddr = d.boolKey("reuse_server_sockaddr", false)
	o.ReuseUDSPathSendToConnector = d.boolKey("reuse_uds_path_send_to_connector", false)
	o.ReuseUDSPathCommanderServer = d.boolKey("reuse_uds_path_commander_server", false)
	o.EverybodyCanSendMessages = d.boolKey("everybody_can_send_messages", true)
	o.MaxSizeFileUpload = d.sizeKey("max_size_file_upload", DefaultMaxSizeFileUpload)
	o.MaxSizeFileUploadSend, o.MaxSizeFileUploadRecv = o.MaxSizeFileUpload, o.MaxSizeFileUpload
	if !hasKey(d.raw, "max_size_file_upload") { // 1.6.3: the obsolete key wins over _send/_recv
		o.MaxSizeFileUploadSend = d.sizeKey("max_size_file_upload_send", o.MaxSizeFileUpload)
		o.MaxSizeFileUploadRecv = d.sizeKey("max_size_file_upload_recv", o.MaxSizeFileUpload)
	}
	o.SendMessageTypesPriorities = d.priorities()

	// 1.6.3 keys and internal timers.
	o.ReconnectInterval = DefaultReconnectInterval
	o.IOTimeout = DefaultIOTimeout
	o.AwaitResponseTimeout = DefaultAwaitResponseTimeout
	o.MsgCountsPeriod = DefaultMsgCountsPeriod
	o.MaxQueueSize = MaxQueueSize
	o.MaxAwaitingRequests = MaxNumberOfAwaitingRequests
	o.MaxFrame = DefaultMaxFrame
	o.ConnectTimeout = d.secondsKey("connect_timeout", DefaultConnectTimeout, true)
	o.SendTimeout = d.secondsKey("send_timeout", 0, true)
	o.KeepAlivePeriod = d.secondsKey("keep_alive_period", 0, true)
	o.KeepAliveTimeout = d.secondsKey("keep_alive_timeout", DefaultKeepAliveTimeout, false)
	o.MaxUnansweredKeepAlive = DefaultMaxUnansweredKA
	if v, ok := d.raw["max_number_of_unanswered_keep_alive"]; ok {
		n, ok := number(v)
		if !ok || !isInteger(v) || n < 0 || n > math.MaxInt32 {
			d.bad("max_number_of_unanswered_keep_alive", v, "an integer >= 0")
		} else {
			o.MaxUnansweredKeepAlive = int(n)
		}
	}
	o.IgnorePeerTraffic = d.ignorePeerTraffic()
	o.MetricsListen = d.listenKey("metrics_listen")
	o.DetailedStats = d.boolKey("detailed_stats", false)
	o.LinkCompression = d.compressionKey("link_compression")

	// Step 6: client identity.
	pubsub := d.boolKey("pubsub_central_broker", false)
	if !o.IsServer {
		o.ClientBindIP, _ = d.clientStr("client_bind_ip", "null or an IPv4 address / interface name string")
		name, ok := d.clientStr("client_name", "null or a client name string")
		if ok && name != "" {
			o.ClientName = name
		} else if ok {
			o.ClientName = RandomClientName()
			o.ClientNameGenerated = true
			d.warn("No client_name provided, using %s instead", o.ClientName)
		}
		o.Proxy = d.proxy()
		sub, _ := d.typesKey("subscribe_message_types")
		o.SubscribeMessageTypes = sub
		if o.SubscribeMessageTypes == nil {
			o.SubscribeMessageTypes = []string{}
		}
	} else {
		o.SubscribeMessageTypes = []string{}
		o.PubsubCentralBroker = pubsub
	}

	// Step 7: message types, adjusted by the manager, then step 8 connector defaults.
	send, _ := d.typesKey("send_message_types")
	recv, recvNull := d.typesKey("recv_message_types")
	if pubsub {
		if recvNull {
			recv = []string{}
			recvNull = false
		}
		recv = appendOnce(recv, PubsubType)
	}
	if recvNull {
		recv = DefaultMessageTypes()
	}
	if send == nil {
		send = []string{}
	}
	o.SendMessageTypes = appendOnce(send, PubsubType)
	o.RecvMessageTypes = recv

	o.warnings = d.warnings
	o.problems = d.problems
	return o
}

// clientStr reads a client-only string key: null/falsy -> "" (ok), string -> value,
// other truthy values -> problem (ok false).
func (d *decoder) clientStr(key, expected string) (string, bool) {
	v, present := d.raw[key]
	if !present || !Truthy(v) {
		return "", true
	}
	if kind(v) != '"' {
		d.bad(key, v, expected)
		return "", false
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return s, true
}

func hasKey(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

// Validate reports every problem at once (errors.Join of *KeyError): the
// type problems found by Parse plus checks of the current field values
// (ports, sizes, socket path lengths). nil when the options are usable.
func (o *Options) Validate() error {
	errs := slices.Clone(o.problems)
	bad := func(key, value, expected string) {
		errs = append(errs, &KeyError{Source: o.Source, Key: key, Value: value, Expected: expected})
	}
	if o.ServerHost == "" {
		bad("server_sockaddr", "null", "[host, port]")
	}
	if o.ServerPort < 0 || o.ServerPort > 65535 || (!o.IsServer && o.ServerPort == 0) {
		exp := "a port 0-65535"
		if !o.IsServer {
			exp = "a port 1-65535 for a client"
		}
		bad("server_sockaddr", strconv.Itoa(o.ServerPort), exp)
	}
	for key, n := range map[string]int64{
		"max_size_persistence_path": o.MaxSizePersistencePath,
		"max_size_file_upload":      o.MaxSizeFileUpload,
		"max_size_file_upload_send": o.MaxSizeFileUploadSend,
		"max_size_file_upload_recv": o.MaxSizeFileUploadRecv,
		"default_logger_rotate":     o.DefaultLoggerRotate,
	} {
		if n < 0 {
			bad(key, strconv.FormatInt(n, 10), "a number of bytes >= 0")
		}
	}
	if !o.IsServer && o.ClientName == "" {
		bad("client_name", `""`, "a client name")
	}
	if o.ConnectorFilesDirpath == "" {
		bad("connector_files_dirpath", `""`, "a directory path")
	}
	if _, ok := levelNames[o.DefaultLoggerLogLevel]; !ok {
		bad("default_logger_log_level", strconv.Quote(o.DefaultLoggerLogLevel), "DEBUG, INFO, WARNING, ERROR, CRITICAL or NOTSET")
	}
	if o.ConnectorFilesDirpath != "" && (o.IsServer || o.ClientName != "") {
		errs = append(errs, socketPathProblems(o.Source, o.ConnectorFilesDirpath, o.SocketPaths())...)
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		var ka, kb *KeyError
		if errors.As(a, &ka) && errors.As(b, &kb) {
			return strings.Compare(ka.Key, kb.Key)
		}
		return 0
	})
	return errors.Join(errs...)
}

// SourceID is the connector's identity (LOCAL §1.1): a server's is the
// Python repr of the server_sockaddr tuple, e.g. "('127.0.0.1', 10673)";
// a client's is its client_name.
func (o *Options) SourceID() string {
	if o.IsServer {
		return o.PeerNameOfServer()
	}
	return o.ClientName
}

// PeerNameOfServer is str(server_sockaddr) as a client names its server
// ("None" when no host is set).
func (o *Options) PeerNameOfServer() string {
	if o.ServerHost == "" {
		return "None"
	}
	repr := o.ServerPortRepr
	if repr == "" {
		repr = strconv.Itoa(o.ServerPort)
	}
	return PyTupleRepr(o.ServerHost, repr)
}

// The socket and persistence file names are owned by package uds; the
// methods below only feed it this configuration's identity and directory.

// AlnumSourceID is alnum_source_id (LOCAL §1.2), used in every file name.
func (o *Options) AlnumSourceID() string { return uds.AlnumSourceID(o.IsServer, o.SourceID()) }

// CommanderPath is uds_path_commander_<alnum source id>.
func (o *Options) CommanderPath() string {
	return uds.CommanderPath(o.ConnectorFilesDirpath, o.AlnumSourceID())
}

// SendToConnectorPath is the socket the connector listens on for its APIs.
func (o *Options) SendToConnectorPath() string {
	return uds.SendPath(o.ConnectorFilesDirpath, o.IsServer, o.AlnumSourceID())
}

// ReceiveFromConnectorPath is the API listener socket for message type t.
func (o *Options) ReceiveFromConnectorPath(t string) string {
	return uds.ReceivePath(o.ConnectorFilesDirpath, o.IsServer, o.AlnumSourceID(), t)
}

// SocketPaths lists the send, every receive and the commander socket path
// (the paths checked against the 104-character limit, in Python's order).
func (o *Options) SocketPaths() []string {
	return uds.SocketPaths(o.ConnectorFilesDirpath, o.IsServer, o.AlnumSourceID(), o.RecvMessageTypes)
}

// PersistenceSendPath is the send persistence file towards peer (peer name
// reduced with plain Alnum, no underscore split).
func (o *Options) PersistenceSendPath(peer string) string {
	return uds.PersistSendPath(o.ConnectorFilesDirpath, o.AlnumSourceID(), peer)
}

// PersistenceRecvPath is the receive persistence file of message type t (raw type).
func (o *Options) PersistenceRecvPath(t string) string {
	return uds.PersistRecvPath(o.ConnectorFilesDirpath, o.AlnumSourceID(), t)
}

// ActiveConnectorsPath is <dir>/active_connectors.json.
func (o *Options) ActiveConnectorsPath() string {
	return uds.Join(o.ConnectorFilesDirpath, ActiveConnectorsName)
}

// LogFilePath is <default_logger_dirpath>/aioconnectors.log.
func (o *Options) LogFilePath() string { return uds.Join(o.DefaultLoggerDirpath, LogFileName) }

// socketPathProblems reports every socket path longer than MaxLengthUDSPath
// code points as a *KeyError on connector_files_dirpath (dir).
func socketPathProblems(source, dir string, paths []string) []error {
	var errs []error
	for _, p := range paths {
		if uds.CheckLen(p) != nil {
			errs = append(errs, &KeyError{Source: source, Key: "connector_files_dirpath", Value: strconv.Quote(dir),
				Expected: fmt.Sprintf("socket paths of at most %d characters (%s is longer than %d)", MaxLengthUDSPath, p, MaxLengthUDSPath)})
		}
	}
	return errs
}

// ResolveHost mimics helpers.iface_to_ip for a host without a dot: the
// first IPv4 address of the interface of that name, or host unchanged when
// it has a dot or no such interface/address exists.
func ResolveHost(host string) string {
	if strings.Contains(host, ".") {
		return host
	}
	ifc, err := net.InterfaceByName(host)
	if err != nil {
		return host
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return host
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil {
				return ip4.String()
			}
		}
	}
	return host
}
