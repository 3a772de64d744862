package config

import "strings"

// HelpText is the exact stdout of `python3 -m aioconnectors --help` (and of
// running it without argument) for 1.0.33, final newline included. Note
// the trailing spaces kept on two lines.
const HelpText = "\n" +
	"aioconnectors supported commands :\n" +
	"    \n" +
	"    - print_config_templates\n" +
	"    - create_certificates [optional dirpath]\n" +
	"    - cli (start, stop, restart, show_connected_peers, ignore_peer_traffic, peek_queues, delete_client_certificate)\n" +
	"    - create_connector <config file path>\n" +
	"    - test_receive_messages <config file path>\n" +
	"    - test_send_messages <config file path>\n" +
	"    - test_publish_messages <config file path>    \n" +
	"    - ping <config file path>\n" +
	"    - chat [--target <server_ip>] [--upload <path>] [--help]\n" +
	"    - --help\n" +
	"    - --version\n" +
	"\n"

// VersionText is the stdout of `--version`.
const VersionText = Version + "\n"

// ConfigCommands are the commands taking exactly one <config file path>.
var ConfigCommands = []string{"create_connector", "test_receive_messages", "test_send_messages", "test_publish_messages", "ping"}

// UsageLine is the line printed (with a newline) for a config-file command
// called with a wrong number of arguments (exit 1) or with --help (exit 0):
// "Usage : <cmd> <config file path>".
func UsageLine(cmd string) string { return "Usage : " + cmd + " <config file path>" }

// UnknownCommandLine is printed for an unknown first argument (exit 0).
func UnknownCommandLine(arg string) string { return "Unknown command : " + arg }

// CreateCertificatesHelp is the stdout of `create_certificates --help` for
// the default directory defaultDir, final newline included.
func CreateCertificatesHelp(defaultDir string) string {
	return "create_certificates without argument will create client and server certificates directories under " +
		defaultDir + ".\n" +
		"You can specify a target directory as an optional argument.\n" +
		"(Use \"create_certificates .\" to create your target directory in your current working directory.)\n"
}

// PrintConfigTemplates returns the exact stdout of
// `python3 -m aioconnectors print_config_templates` (1.0.33) for the given
// default files directory (DefaultFilesDir()), final newline included.
func PrintConfigTemplates(defaultDir string) string {
	any1 := []any{AnyType}
	sockaddr := []any{DefaultServerHost, DefaultServerPort}
	manager := pyObject{
		"default_logger_log_level": DefaultLogLevel, "default_logger_rotate": true,
		"default_logger_dirpath": defaultDir, "connector_files_dirpath": defaultDir,
		"is_server": true, "server_sockaddr": sockaddr, "reuse_server_sockaddr": false,
		"use_ssl": true, "ssl_allow_all": false, "certificates_directory_path": defaultDir,
		"client_name": nil, "client_bind_ip": nil,
		"send_message_types": any1, "recv_message_types": any1,
		"subscribe_message_types": []any{}, "pubsub_central_broker": false,
		"disk_persistence_send": false, "disk_persistence_recv": false,
		"max_size_persistence_path": DefaultMaxSizePersistencePath,
		"file_recv_config":          pyObject{}, "debug_msg_counts": true, "silent": true,
		"uds_path_receive_preserve_socket": true, "uds_path_send_preserve_socket": true,
		"enable_client_try_reconnect": true, "max_size_file_upload": DefaultMaxSizeFileUpload,
		"everybody_can_send_messages": true, "send_message_types_priorities": pyObject{},
		"proxy": pyObject{},
	}
	fileRecv := pyObject{"any": pyObject{
		"target_directory": "/tmp/aioconnectors/{message_type}/{source_id}/",
		"owner":            "user:user", "override_existing": false,
	}}
	api := pyObject{
		"default_logger_log_level": DefaultLogLevel, "default_logger_rotate": true,
		"default_logger_dirpath": defaultDir, "connector_files_dirpath": defaultDir,
		"is_server": true, "server_sockaddr": sockaddr, "client_name": nil,
		"uds_path_receive_preserve_socket": true, "uds_path_send_preserve_socket": true,
		"send_message_types": any1, "recv_message_types": any1,
		"receive_from_any_connector_owner": true, "pubsub_central_broker": false,
	}
	var sb strings.Builder
	sb.WriteString("\n- MANAGER TEMPLATE, used to create a connector\n")
	sb.WriteString(pyDumps(manager))
	sb.WriteString("\n\n- file_recv_config example, used inside MANAGER TEMPLATE\n")
	sb.WriteString(pyDumps(fileRecv))
	sb.WriteString("\n\n- API TEMPLATE, used to send/receive messages\n")
	sb.WriteString(pyDumps(api))
	sb.WriteString("\n")
	return sb.String()
}
