package uds

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPathLen is aioconnectors' MAX_LENGTH_UDS_PATH: the most code points a socket path may have.
const MaxPathLen = 104

// File-name prefixes of aioconnectors 1.0.33 (core.py constants).
const (
	prefixCommander     = "uds_path_commander_"
	prefixSendServer    = "uds_path_send_to_connector_server_"
	prefixSendClient    = "uds_path_send_to_connector_client_"
	prefixReceiveServer = "uds_path_receive_from_connector_server_"
	prefixReceiveClient = "uds_path_receive_from_connector_client_"
	prefixPersistSend   = "connector_disk_persistence_send_from_"
	infixPersistSend    = "_to_peer_"
	prefixPersistRecv   = "connector_disk_persistence_recv_by_"
)

// Identity is who a connector (or an API talking to it) is: a server or a client, and its
// source_id, i.e. the Python repr of the server_sockaddr tuple ("('127.0.0.1', 10673)") for a
// server, the client_name for a client.
type Identity struct {
	IsServer bool
	SourceID string
}

// Alnum returns AlnumSourceID(id.IsServer, id.SourceID).
func (id Identity) Alnum() string { return AlnumSourceID(id.IsServer, id.SourceID) }

// Alnum keeps the characters of s for which Python's str.isalnum() is true, i.e. the Unicode
// categories L* and N* (checked against CPython 3.11 over every code point: identical).
// Invalid UTF-8 bytes are dropped.
func Alnum(s string) string {
	keep := true
	for _, r := range s {
		if !isAlnum(r) {
			keep = false
			break
		}
	}
	if keep && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r != utf8.RuneError && isAlnum(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isAlnum(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// isPySpace is Python's str.isspace for one code point: Go's unicode.IsSpace plus the
// information separators U+001C..U+001F, which Python's str.split() also splits on.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// AlnumSourceID is aioconnectors' alnum_source_id: for a server, the source_id split on
// whitespace (Python str.split()), Alnum applied to each piece, joined with "_"
// ("('127.0.0.1', 10673)" gives "127001_10673"); for a client, Alnum(sourceID).
func AlnumSourceID(isServer bool, sourceID string) string {
	if !isServer {
		return Alnum(sourceID)
	}
	pieces := strings.FieldsFunc(sourceID, isPySpace)
	for i, p := range pieces {
		pieces[i] = Alnum(p)
	}
	return strings.Join(pieces, "_")
}

// Paths holds the socket paths of one connector identity in one directory.
// Receive maps each configured receive message type to its socket path.
// A Paths value is immutable after NewPaths; share it freely (do not modify Receive).
type Paths struct {
	Dir             string
	Commander       string
	SendToConnector string
	Receive         map[string]string

	isServer bool
	alnum    string
}

// NewPaths builds the 1.0.33 socket paths (LOCAL-API.md §1.4) for the identity in dir. dir is
// used as given (normalise it once with NormalizeDir); names are appended the way Python's
// os.path.join does (no cleaning, so a message type containing "/" makes a sub-path).
// It fails with a *PathError wrapping ErrPathTooLong for the first path longer than
// MaxPathLen code points, checked in Python's order (that of SocketPaths): send, receive
// paths in recvTypes order, commander.
func NewPaths(dir string, isServer bool, sourceID string, recvTypes []string) (Paths, error) {
	a := AlnumSourceID(isServer, sourceID)
	all := SocketPaths(dir, isServer, a, recvTypes)
	for _, sp := range all {
		if err := checkLen(sp); err != nil {
			return Paths{}, err
		}
	}
	p := Paths{Dir: dir, isServer: isServer, alnum: a, Receive: make(map[string]string, len(recvTypes))}
	p.SendToConnector = all[0]
	for i, t := range recvTypes {
		p.Receive[t] = all[1+i]
	}
	p.Commander = all[len(all)-1]
	return p, nil
}

// SocketPaths lists every socket path of a connector in the order Python checks their
// lengths: send_to_connector, one receive path per recvTypes entry (same order), commander.
// alnumSource is AlnumSourceID of the identity. Lengths are not checked (see CheckLen,
// NewPaths). The returned slice is new and owned by the caller.
func SocketPaths(dir string, isServer bool, alnumSource string, recvTypes []string) []string {
	ps := make([]string, 0, len(recvTypes)+2)
	ps = append(ps, SendPath(dir, isServer, alnumSource))
	for _, t := range recvTypes {
		ps = append(ps, ReceivePath(dir, isServer, alnumSource, t))
	}
	return append(ps, CommanderPath(dir, alnumSource))
}

// CommanderPath is the management socket: dir/uds_path_commander_<alnumSource>.
// The length is not checked (see CheckLen).
func CommanderPath(dir, alnumSource string) string {
	return Join(dir, prefixCommander+alnumSource)
}

// SendPath is the socket the connector listens on for its applications:
// dir/uds_path_send_to_connector_{server|client}_<alnumSource>. The length is not checked.
func SendPath(dir string, isServer bool, alnumSource string) string {
	if isServer {
		return Join(dir, prefixSendServer+alnumSource)
	}
	return Join(dir, prefixSendClient+alnumSource)
}

// ReceivePath is the socket an application listens on for msgType:
// dir/uds_path_receive_from_connector_{server|client}_<msgType>_<alnumSource>. The type is
// used raw (not sanitised) and the length is not checked.
func ReceivePath(dir string, isServer bool, alnumSource, msgType string) string {
	if isServer {
		return Join(dir, prefixReceiveServer+msgType+"_"+alnumSource)
	}
	return Join(dir, prefixReceiveClient+msgType+"_"+alnumSource)
}

// AlnumSourceID returns the alnum source id the paths were built with.
func (p Paths) AlnumSourceID() string { return p.alnum }

// ReceivePath returns the receive-from-connector socket path of msgType, whether or not it
// was in recvTypes. The type is used raw (not sanitised) and the length is not checked
// (use CheckLen).
func (p Paths) ReceivePath(msgType string) string {
	return ReceivePath(p.Dir, p.isServer, p.alnum, msgType)
}

// CheckLen returns a *PathError wrapping ErrPathTooLong if path has more than MaxPathLen
// code points.
func CheckLen(path string) error { return checkLen(path) }

func checkLen(path string) error {
	if len(path) > MaxPathLen && utf8.RuneCountInString(path) > MaxPathLen {
		return &PathError{Path: path, Err: ErrPathTooLong}
	}
	return nil
}

// PersistSendPath is the send-persistence file of one peer:
// dir/connector_disk_persistence_send_from_<alnumSource>_to_peer_<Alnum(peerName)>.
// Note the peer part is plain Alnum (no "_" between host and port).
func PersistSendPath(dir, alnumSource, peerName string) string {
	return Join(dir, prefixPersistSend+alnumSource+infixPersistSend+Alnum(peerName))
}

// PersistRecvPath is the receive-persistence file of one message type:
// dir/connector_disk_persistence_recv_by_<alnumSource>_<msgType> (type used raw).
func PersistRecvPath(dir, alnumSource, msgType string) string {
	return Join(dir, prefixPersistRecv+alnumSource+"_"+msgType)
}

// Join is Python's posixpath.join(dir, name) for a name that does not start with "/": name
// is appended after a "/" unless dir is empty or already ends with one; nothing is cleaned.
func Join(dir, name string) string {
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}
