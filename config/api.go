package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/aioconn/aioconn/uds"
)

// APIOptions is a ConnectorAPI / ConnectorRemoteTool configuration read
// from the same file format with the API defaults (CONFIG §1.2, §2.2):
// is_server false, send types null -> [] (no _pubsub added), recv types
// null -> ["any"], _pubsub added to recv types when pubsub_central_broker
// is truthy. Plain data, same concurrency rules as Options.
type APIOptions struct {
	Source string

	IsServer          bool
	ServerHost        string
	ServerPort        int
	ServerPortRepr    string
	HasServerSockaddr bool

	ClientName          string
	ClientNameGenerated bool

	ConnectorFilesDirpath string // normalised absolute

	SendMessageTypes, RecvMessageTypes []string
	PubsubCentralBroker                bool // as given (the API does not force it false on clients)

	UDSPathReceivePreserveSocket, UDSPathSendPreserveSocket bool
	// ReceiveFromAnyConnectorOwner is always true from a file: Python assigns
	// the keyword value after reading the file.
	ReceiveFromAnyConnectorOwner bool

	// Effective default-logger settings. Python 1.0.33 rebuilds the logger from
	// the file only when the file has a "silent" key (HasSilent); otherwise the
	// rebuild fails and the keyword defaults stay.
	HasSilent             bool
	Silent                bool
	DefaultLoggerLogLevel string
	DefaultLoggerRotate   int64
	DefaultLoggerDirpath  string

	Unknown     []string
	Unsupported []string
	Raw         map[string]json.RawMessage

	warnings []string
	problems []error
}

var apiKeys = []string{
	"default_logger_log_level", "default_logger_rotate", "default_logger_dirpath", "silent",
	"connector_files_dirpath", "is_server", "server_sockaddr", "client_name",
	"uds_path_receive_preserve_socket", "uds_path_send_preserve_socket",
	"send_message_types", "recv_message_types", "pubsub_central_broker",
	"receive_from_any_connector_owner", "max_size_chunk_upload",
}

// LoadAPI reads an API config file; errors as Load.
func LoadAPI(path string) (*APIOptions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrNoFile, path, err)
	}
	return ParseAPI(data, path)
}

// ParseAPI parses API config data; source names it in messages.
func ParseAPI(data []byte, source string) (*APIOptions, error) {
	raw, err := decodeObject(data, source)
	if err != nil {
		return nil, err
	}
	d := &decoder{raw: raw, src: source}
	a := d.api()
	return a, a.Validate()
}

func (d *decoder) api() *APIOptions {
	a := &APIOptions{Source: d.src, Raw: d.raw, ReceiveFromAnyConnectorOwner: true}
	// A manager file is valid for the API: manager keys are known, not warned about.
	known := append(slices.Clone(apiKeys), managerKeys...)
	known = append(known, honoured163...)
	a.Unknown, _ = d.classifyKeys(known, true)
	filesDir := DefaultFilesDir()

	_, a.HasSilent = d.raw["silent"]
	if a.HasSilent {
		a.Silent = Truthy(d.raw["silent"])
		a.DefaultLoggerLogLevel = d.logLevel()
		a.DefaultLoggerRotate = d.rotate()
		a.DefaultLoggerDirpath, _ = d.strKey("default_logger_dirpath", filesDir, false, "a directory path string")
	} else {
		a.Silent = true
		a.DefaultLoggerLogLevel, a.DefaultLoggerRotate, a.DefaultLoggerDirpath = DefaultLogLevel, DefaultLogRotateBytes, filesDir
		for _, k := range []string{"default_logger_log_level", "default_logger_rotate", "default_logger_dirpath"} {
			if _, ok := d.raw[k]; ok {
				d.warn("%s ignored: without a \"silent\" key the Python API cannot apply the file's logger settings", k)
			}
		}
	}
	a.IsServer = d.boolKey("is_server", false)
	a.ServerHost, a.ServerPort, a.ServerPortRepr, a.HasServerSockaddr = d.sockaddr()
	dir, _ := d.strKey("connector_files_dirpath", filesDir, false, "a directory path string")
	a.ConnectorFilesDirpath = uds.NormalizeDir(dir)
	a.UDSPathReceivePreserveSocket = d.boolKey("uds_path_receive_preserve_socket", true)
	a.UDSPathSendPreserveSocket = d.boolKey("uds_path_send_preserve_socket", true)
	if !a.IsServer {
		name, ok := d.clientStr("client_name", "null or a client name string")
		if ok && name != "" {
			a.ClientName = name
		} else if ok {
			a.ClientName = RandomClientName()
			a.ClientNameGenerated = true
			d.warn("No client_name provided, using %s instead", a.ClientName)
		}
	}
	a.PubsubCentralBroker = d.boolKey("pubsub_central_broker", false)
	send, _ := d.typesKey("send_message_types")
	recv, recvNull := d.typesKey("recv_message_types")
	if a.PubsubCentralBroker {
		if recvNull {
			recv, recvNull = []string{}, false
		}
		recv = appendOnce(recv, PubsubType)
	}
	if recvNull {
		recv = DefaultMessageTypes()
	}
	if send == nil {
		send = []string{}
	}
	a.SendMessageTypes, a.RecvMessageTypes = send, recv
	a.warnings, a.problems = d.warnings, d.problems
	return a
}

// Warnings as Options.Warnings.
func (a *APIOptions) Warnings() []string { return slices.Clone(a.warnings) }

// Validate reports every problem at once (see Options.Validate).
func (a *APIOptions) Validate() error {
	errs := slices.Clone(a.problems)
	bad := func(key, value, expected string) {
		errs = append(errs, &KeyError{Source: a.Source, Key: key, Value: value, Expected: expected})
	}
	if a.ServerPort < 0 || a.ServerPort > 65535 {
		bad("server_sockaddr", strconv.Itoa(a.ServerPort), "a port 0-65535")
	}
	if !a.IsServer && a.ClientName == "" {
		bad("client_name", `""`, "a client name")
	}
	if a.IsServer || a.ClientName != "" {
		errs = append(errs, socketPathProblems(a.Source, a.ConnectorFilesDirpath, a.SocketPaths())...)
	}
	return errors.Join(errs...)
}

// SourceID as Options.SourceID.
func (a *APIOptions) SourceID() string {
	if a.IsServer {
		if a.ServerHost == "" {
			return "None"
		}
		return PyTupleRepr(a.ServerHost, a.ServerPortRepr)
	}
	return a.ClientName
}

// PeerNameOfServer is str(server_sockaddr): a client API's default destination.
func (a *APIOptions) PeerNameOfServer() string {
	if a.ServerHost == "" {
		return "None"
	}
	return PyTupleRepr(a.ServerHost, a.ServerPortRepr)
}

// AlnumSourceID as Options.AlnumSourceID.
func (a *APIOptions) AlnumSourceID() string { return uds.AlnumSourceID(a.IsServer, a.SourceID()) }

// SendToConnectorPath is the connector socket this API sends to.
func (a *APIOptions) SendToConnectorPath() string {
	return uds.SendPath(a.ConnectorFilesDirpath, a.IsServer, a.AlnumSourceID())
}

// ReceiveFromConnectorPath is the socket this API listens on for type t.
func (a *APIOptions) ReceiveFromConnectorPath(t string) string {
	return uds.ReceivePath(a.ConnectorFilesDirpath, a.IsServer, a.AlnumSourceID(), t)
}

// CommanderPath is the connector's management socket.
func (a *APIOptions) CommanderPath() string {
	return uds.CommanderPath(a.ConnectorFilesDirpath, a.AlnumSourceID())
}

// SocketPaths lists the send, receive and commander paths (104-limit check).
func (a *APIOptions) SocketPaths() []string {
	return uds.SocketPaths(a.ConnectorFilesDirpath, a.IsServer, a.AlnumSourceID(), a.RecvMessageTypes)
}
