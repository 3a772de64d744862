package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTruthy(t *testing.T) {
	cases := map[string]bool{
		`false`: false, `null`: false, `0`: false, `-0`: false, `0.0`: false, `0e5`: false, `""`: false,
		`[]`: false, `{}`: false, `[ ]`: false, ` { } `: false, ``: false,
		`true`: true, `"false"`: true, `"0"`: true, `1`: true, `0.5`: true, `-1`: true, `[0]`: true,
		`{"a":1}`: true, `" "`: true, `1e-9`: true,
	}
	for in, want := range cases {
		if got := Truthy(json.RawMessage(in)); got != want {
			t.Errorf("Truthy(%s) = %v, want %v", in, got, want)
		}
	}
}

// Alnum names and directory normalisation are tested in package uds.
func TestPyStrRepr(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "'abc'", "it's": `"it's"`, `a'"b`: `'a\'"b'`, "a\\b": `'a\\b'`, "t\tn\n\x01": `'t\tn\n\x01'`,
		"é": "'é'", "\u00a0": `'\xa0'`, "\u2028": `'\u2028'`,
	} {
		if got := PyStrRepr(in); got != want {
			t.Errorf("PyStrRepr(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	o := Defaults()
	if !o.IsServer || o.SourceID() != "('127.0.0.1', 10673)" || o.HasServerSockaddr {
		t.Errorf("identity: %v %q %v", o.IsServer, o.SourceID(), o.HasServerSockaddr)
	}
	if !reflect.DeepEqual(o.SendMessageTypes, []string{"_pubsub"}) || !reflect.DeepEqual(o.RecvMessageTypes, []string{"any"}) {
		t.Errorf("types %q %q", o.SendMessageTypes, o.RecvMessageTypes)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"use_ssl", o.UseSSL && !o.SSLAllowAll},
		{"dirs", o.ConnectorFilesDirpath == DefaultFilesDir() && o.CertificatesDirectoryPath == DefaultFilesDir() && o.DefaultLoggerDirpath == DefaultFilesDir()},
		{"sizes", o.MaxSizeFileUpload == 8_000_000_000 && o.MaxSizePersistencePath == 1_000_000_000 && o.MaxSizeFileUploadSend == 8_000_000_000},
		{"bools", o.DebugMsgCounts && o.Silent && o.UDSPathReceivePreserveSocket && o.UDSPathSendPreserveSocket && o.EnableClientTryReconnect && o.EverybodyCanSendMessages},
		{"false bools", !o.ReuseServerSockaddr && !o.ReuseUDSPathCommanderServer && !o.ReuseUDSPathSendToConnector && !o.PubsubCentralBroker},
		{"persistence", !o.DiskPersistenceSend.Any() && !o.DiskPersistenceRecv.Any()},
		{"logger", o.DefaultLoggerLogLevel == "INFO" && o.DefaultLoggerRotate == 67108864},
		{"timers", o.ReconnectInterval == 5*time.Second && o.IOTimeout == 10*time.Second && o.AwaitResponseTimeout == time.Hour && o.ConnectTimeout == 2*time.Second && o.KeepAlivePeriod == 0},
		{"limits", o.MaxQueueSize == 300000 && o.MaxAwaitingRequests == 1000 && o.MaxFrame == DefaultMaxFrame},
		{"maps", len(o.FileRecvConfig) == 0 && o.FileRecvConfig != nil && len(o.SendMessageTypesPriorities) == 0 && !o.Proxy.Enabled},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("default %s wrong: %+v", c.name, o)
		}
	}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
}

func mustParse(t *testing.T, s string) *Options {
	t.Helper()
	o, err := Parse([]byte(s), "t.json")
	if err != nil {
		t.Fatalf("Parse(%s): %v", s, err)
	}
	return o
}

func TestParseValues(t *testing.T) {
	cases := []struct {
		name, cfg string
		check     func(o *Options) bool
	}{
		{"string false is true", `{"use_ssl":"false","silent":"false","is_server":"no"}`, func(o *Options) bool { return o.UseSSL && o.Silent && o.IsServer }},
		{"falsy values", `{"use_ssl":0,"silent":[],"debug_msg_counts":{},"uds_path_send_preserve_socket":""}`, func(o *Options) bool {
			return !o.UseSSL && !o.Silent && !o.DebugMsgCounts && !o.UDSPathSendPreserveSocket
		}},
		{"null overrides true default", `{"use_ssl":null,"everybody_can_send_messages":null}`, func(o *Options) bool { return !o.UseSSL && !o.EverybodyCanSendMessages }},
		{"null recv -> any", `{"recv_message_types":null}`, func(o *Options) bool { return reflect.DeepEqual(o.RecvMessageTypes, []string{"any"}) }},
		{"empty recv stays empty", `{"recv_message_types":[]}`, func(o *Options) bool { return len(o.RecvMessageTypes) == 0 }},
		{"send gets _pubsub once", `{"send_message_types":["a","_pubsub"]}`, func(o *Options) bool { return reflect.DeepEqual(o.SendMessageTypes, []string{"a", "_pubsub"}) }},
		{"broker", `{"pubsub_central_broker":true}`, func(o *Options) bool {
			return o.PubsubCentralBroker && reflect.DeepEqual(o.RecvMessageTypes, []string{"_pubsub"})
		}},
		{"broker recv list", `{"pubsub_central_broker":"x","recv_message_types":["a"]}`, func(o *Options) bool {
			return reflect.DeepEqual(o.RecvMessageTypes, []string{"a", "_pubsub"})
		}},
		{"client broker flag forced false", `{"is_server":false,"client_name":"c","pubsub_central_broker":true}`, func(o *Options) bool {
			return !o.PubsubCentralBroker && reflect.DeepEqual(o.RecvMessageTypes, []string{"_pubsub"})
		}},
		{"string port repr", `{"server_sockaddr":["127.0.0.1","10673"]}`, func(o *Options) bool {
			return o.SourceID() == "('127.0.0.1', '10673')" && o.ServerPort == 10673 && o.ServerPortRepr == "'10673'" && o.AlnumSourceID() == "127001_10673"
		}},
		{"interface host", `{"server_sockaddr":["lo",10673]}`, func(o *Options) bool {
			return o.SourceID() == "('lo', 10673)" && o.AlnumSourceID() == "lo_10673" && o.ServerHost == "lo"
		}},
		{"client peer name", `{"is_server":false,"client_name":"client1","server_sockaddr":["127.0.0.1",10673]}`, func(o *Options) bool {
			return o.SourceID() == "client1" && o.PeerNameOfServer() == "('127.0.0.1', 10673)" &&
				strings.HasSuffix(o.PersistenceSendPath(o.PeerNameOfServer()), "connector_disk_persistence_send_from_client1_to_peer_12700110673")
		}},
		{"generated client name", `{"is_server":false,"client_name":""}`, func(o *Options) bool {
			return o.ClientNameGenerated && len(o.ClientName) == 8 && strings.Contains(strings.Join(o.Warnings(), "\n"), "No client_name provided, using "+o.ClientName)
		}},
		{"persistence list", `{"disk_persistence_send":["a"],"disk_persistence_recv":"yes"}`, func(o *Options) bool {
			return o.DiskPersistenceSend.Has("a") && !o.DiskPersistenceSend.Has("b") && o.DiskPersistenceSend.Any() && o.DiskPersistenceRecv.All && o.DiskPersistenceRecv.Has("b")
		}},
		{"empty persistence list", `{"disk_persistence_send":[]}`, func(o *Options) bool { return !o.DiskPersistenceSend.Any() }},
		{"rotate int", `{"default_logger_rotate":1000}`, func(o *Options) bool { return o.DefaultLoggerRotate == 1000 }},
		{"rotate string int", `{"default_logger_rotate":" 1_000 "}`, func(o *Options) bool { return o.DefaultLoggerRotate == 1000 }},
		{"rotate junk string", `{"default_logger_rotate":"abc"}`, func(o *Options) bool { return o.DefaultLoggerRotate == 67108864 }},
		{"rotate false", `{"default_logger_rotate":false}`, func(o *Options) bool { return o.DefaultLoggerRotate == 0 }},
		{"rotate float", `{"default_logger_rotate":0.5}`, func(o *Options) bool { return o.DefaultLoggerRotate == 0 }},
		{"log level WARN", `{"default_logger_log_level":"WARN"}`, func(o *Options) bool { return o.DefaultLoggerLogLevel == "WARNING" }},
		{"log level unknown -> INFO", `{"default_logger_log_level":"LOUD"}`, func(o *Options) bool {
			return o.DefaultLoggerLogLevel == "INFO" && len(o.Warnings()) > 0
		}},
		{"dirpath normalised", `{"connector_files_dirpath":"/tmp//x/./y/../"}`, func(o *Options) bool { return o.ConnectorFilesDirpath == "/tmp/x" }},
		{"file_recv_config", `{"file_recv_config":{"any":{"target_directory":"/d/{message_type}/","owner":"u:g","override_existing":1}}}`, func(o *Options) bool {
			return reflect.DeepEqual(o.FileRecvConfig, map[string]FileRecv{"any": {"/d/{message_type}/", "u:g", true}})
		}},
		{"priorities", `{"send_message_types_priorities":{"a":-1,"b":3}}`, func(o *Options) bool {
			return reflect.DeepEqual(o.SendMessageTypesPriorities, map[string]int{"a": -1, "b": 3})
		}},
		{"proxy", `{"is_server":false,"client_name":"c","proxy":{"enabled":true,"address":"1.2.3.4","port":"3128","authorization":{"username":"u","password":"p"},"ssl_server":false}}`, func(o *Options) bool {
			return o.Proxy == Proxy{Enabled: true, Address: "1.2.3.4", Port: 3128, Username: "u", Password: "p", HasAuth: true}
		}},
		{"1.6.3 mapped keys", `{"connect_timeout":10,"send_timeout":50,"keep_alive_period":1.5,"keep_alive_timeout":3,"max_number_of_unanswered_keep_alive":4,"ignore_peer_traffic":"client1","max_size_file_upload_send":10,"max_size_file_upload_recv":20}`, func(o *Options) bool {
			return o.ConnectTimeout == 10*time.Second && o.SendTimeout == 50*time.Second && o.KeepAlivePeriod == 1500*time.Millisecond &&
				o.KeepAliveTimeout == 3*time.Second && o.MaxUnansweredKeepAlive == 4 && reflect.DeepEqual(o.IgnorePeerTraffic.Peers, []string{"client1"}) &&
				o.MaxSizeFileUploadSend == 10 && o.MaxSizeFileUploadRecv == 20 && len(o.Unsupported) == 0 && len(o.Unknown) == 0
		}},
		{"obsolete alias wins", `{"max_size_file_upload":5,"max_size_file_upload_send":10}`, func(o *Options) bool {
			return o.MaxSizeFileUploadSend == 5 && o.MaxSizeFileUploadRecv == 5
		}},
		{"1.6.3 unsupported", `{"use_token":true,"server_ca":false,"max_certs":1024,"blacklisted_clients_id":["x"],"tokens_directory_path":"/t"}`, func(o *Options) bool {
			return reflect.DeepEqual(o.Unsupported, []string{"blacklisted_clients_id", "tokens_directory_path", "use_token"})
		}},
		{"unknown keys", `{"zeta":1,"alpha":2,"receive_from_any_connector_owner":true}`, func(o *Options) bool {
			w := strings.Join(o.Warnings(), "\n")
			return reflect.DeepEqual(o.Unknown, []string{"alpha", "zeta"}) && strings.Contains(w, `config: unknown key "alpha" ignored`)
		}},
		{"raw kept", `{"foo":[1, 2]}`, func(o *Options) bool { return string(o.Raw["foo"]) == "[1, 2]" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := mustParse(t, c.cfg)
			if !c.check(o) {
				t.Errorf("check failed for %s: %+v warnings %q", c.cfg, o, o.Warnings())
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	cases := []struct {
		cfg  string
		keys []string
	}{
		{`{"server_sockaddr":"127.0.0.1"}`, []string{"server_sockaddr"}},
		{`{"server_sockaddr":["127.0.0.1"]}`, []string{"server_sockaddr"}},
		{`{"server_sockaddr":null}`, []string{"server_sockaddr"}},
		{`{"server_sockaddr":["127.0.0.1",1.5]}`, []string{"server_sockaddr"}},
		{`{"server_sockaddr":["127.0.0.1",70000]}`, []string{"server_sockaddr"}},
		{`{"server_sockaddr":["127.0.0.1","http"]}`, []string{"server_sockaddr"}},
		{`{"server_sockaddr":[1,2]}`, []string{"server_sockaddr"}},
		{`{"is_server":false,"client_name":"c","server_sockaddr":["127.0.0.1",0]}`, []string{"server_sockaddr"}},
		{`{"send_message_types":"any"}`, []string{"send_message_types"}},
		{`{"recv_message_types":["a",1]}`, []string{"recv_message_types"}},
		{`{"is_server":false,"client_name":"c","subscribe_message_types":{}}`, []string{"subscribe_message_types"}},
		{`{"default_logger_log_level":10}`, []string{"default_logger_log_level"}},
		{`{"default_logger_log_level":"info"}`, []string{"default_logger_log_level"}},
		{`{"default_logger_dirpath":null}`, []string{"default_logger_dirpath"}},
		{`{"connector_files_dirpath":null}`, []string{"connector_files_dirpath"}},
		{`{"file_recv_config":[]}`, []string{"file_recv_config"}},
		{`{"file_recv_config":{"any":"x"}}`, []string{"file_recv_config.any"}},
		{`{"file_recv_config":{"any":{"owner":"u:g"}}}`, []string{"file_recv_config.any.target_directory"}},
		{`{"max_size_persistence_path":-1}`, []string{"max_size_persistence_path"}},
		{`{"max_size_file_upload":null}`, []string{"max_size_file_upload"}},
		{`{"max_size_file_upload":"big"}`, []string{"max_size_file_upload"}},
		{`{"send_message_types_priorities":{"a":"high"}}`, []string{"send_message_types_priorities.a"}},
		{`{"send_message_types_priorities":[1]}`, []string{"send_message_types_priorities"}},
		{`{"is_server":false,"client_name":5}`, []string{"client_name"}},
		{`{"is_server":false,"client_name":"c","client_bind_ip":7}`, []string{"client_bind_ip"}},
		{`{"is_server":false,"client_name":"c","proxy":"x"}`, []string{"proxy"}},
		{`{"is_server":false,"client_name":"c","proxy":{"enabled":true,"port":0}}`, []string{"proxy.address", "proxy.port"}},
		{`{"connect_timeout":-1}`, []string{"connect_timeout"}},
		{`{"ignore_peer_traffic":5}`, []string{"ignore_peer_traffic"}},
		{`{"connector_files_dirpath":"/tmp/` + strings.Repeat("x", 80) + `"}`, []string{"connector_files_dirpath"}},
		// several problems at once
		{`{"server_sockaddr":[1],"send_message_types":5,"max_size_persistence_path":"x","default_logger_log_level":[]}`,
			[]string{"default_logger_log_level", "max_size_persistence_path", "send_message_types", "server_sockaddr"}},
	}
	for _, c := range cases {
		t.Run(c.cfg, func(t *testing.T) {
			_, err := Parse([]byte(c.cfg), "bad.json")
			if err == nil {
				t.Fatalf("no error for %s", c.cfg)
			}
			if !errors.Is(err, ErrInvalidValue) {
				t.Errorf("not ErrInvalidValue: %v", err)
			}
			var keys []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ke *KeyError
				if !errors.As(e, &ke) {
					t.Fatalf("not a KeyError: %v", e)
				}
				msg := ke.Error()
				if !strings.HasPrefix(msg, "config: bad.json: key "+`"`+ke.Key+`"`) || ke.Value == "" || ke.Expected == "" {
					t.Errorf("message lacks key/value/expected: %q", msg)
				}
				if len(keys) == 0 || keys[len(keys)-1] != ke.Key {
					keys = append(keys, ke.Key)
				}
			}
			if !reflect.DeepEqual(keys, c.keys) {
				t.Errorf("keys %q, want %q (%v)", keys, c.keys, err)
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"{\n  \"a\": 1,\n  \"b\" 2\n}", "line 3 column 7"},
		{"{\"a\": tru}", "line 1 column 10"},
		{"{\"a\": 1", "line 1 column 7"},
		{"", "line 1 column 1"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.in), "s.json")
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "s.json") {
			t.Errorf("Parse(%q) = %v, want %s", c.in, err, c.want)
		}
	}
	for _, in := range []string{`[1]`, `"x"`, `null`, `3`} {
		if _, err := Parse([]byte(in), "s.json"); !errors.Is(err, ErrNotObject) {
			t.Errorf("Parse(%s) = %v, want ErrNotObject", in, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, ErrNoFile) || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"server_sockaddr":["127.0.0.1",10673],"connector_files_dirpath":"`+dir+`"}`), 0o600)
	o, err := Load(p)
	if err != nil || o.Source != p || o.CommanderPath() != dir+"/uds_path_commander_127001_10673" {
		t.Errorf("Load: %v %+v", err, o)
	}
	os.WriteFile(p, []byte(`{"use_ssl": true, "is_server": fals}`), 0o600)
	if _, err := Load(p); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), p+" at line 1 column 36") {
		t.Errorf("bad json: %v", err)
	}
	if _, err := LoadAPI(filepath.Join(dir, "missing.json")); !errors.Is(err, ErrNoFile) {
		t.Errorf("LoadAPI missing: %v", err)
	}
}

// The file names themselves are tested in package uds; this checks the
// identity and directories config feeds it.
func TestFilePaths(t *testing.T) {
	o, err := Parse([]byte(`{"is_server":false,"client_name":"my client-2","connector_files_dirpath":"/d/","default_logger_dirpath":"/l","recv_message_types":["a","b"]}`), "c.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{o.PersistenceSendPath("('127.0.0.1', 10673)"), "/d/connector_disk_persistence_send_from_myclient2_to_peer_12700110673"},
		{o.PersistenceRecvPath("a"), "/d/connector_disk_persistence_recv_by_myclient2_a"},
		{o.ActiveConnectorsPath(), "/d/active_connectors.json"},
		{o.LogFilePath(), "/l/aioconnectors.log"},
		{strings.Join(o.SocketPaths(), " "), "/d/uds_path_send_to_connector_client_myclient2 /d/uds_path_receive_from_connector_client_a_myclient2 /d/uds_path_receive_from_connector_client_b_myclient2 /d/uds_path_commander_myclient2"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestAPIOptions(t *testing.T) {
	a, err := ParseAPI([]byte(`{"client_name":"c1","default_logger_log_level":"DEBUG","recv_message_types":null}`), "api.json")
	if err != nil {
		t.Fatal(err)
	}
	if a.IsServer || a.SourceID() != "c1" || len(a.SendMessageTypes) != 0 || !reflect.DeepEqual(a.RecvMessageTypes, []string{"any"}) {
		t.Errorf("api defaults: %+v", a)
	}
	if a.HasSilent || a.DefaultLoggerLogLevel != "INFO" || len(a.Warnings()) == 0 {
		t.Errorf("without silent the file's logger settings must be ignored: %+v %q", a, a.Warnings())
	}
	a, err = ParseAPI([]byte(`{"silent":false,"default_logger_log_level":"DEBUG","is_server":true,"server_sockaddr":["127.0.0.1",10673],"use_ssl":true,"file_recv_config":{}}`), "api.json")
	if err != nil {
		t.Fatal(err)
	}
	if !a.HasSilent || a.Silent || a.DefaultLoggerLogLevel != "DEBUG" || a.SourceID() != "('127.0.0.1', 10673)" || len(a.Unknown) != 0 {
		t.Errorf("api: %+v", a)
	}
	if _, err := ParseAPI([]byte(`{"is_server":true,"server_sockaddr":5}`), "api.json"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("api bad sockaddr: %v", err)
	}
}

func TestResolveHost(t *testing.T) {
	if got := ResolveHost("1.2.3.4"); got != "1.2.3.4" {
		t.Error(got)
	}
	if got := ResolveHost("nosuchif0zz"); got != "nosuchif0zz" {
		t.Error(got)
	}
	if got := ResolveHost("lo"); got != "127.0.0.1" && got != "lo" {
		t.Errorf("lo -> %s", got)
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{`{}`, `{"server_sockaddr":["127.0.0.1","10673"]}`, `{"is_server":false}`, `[`, `{"file_recv_config":{"a":{"target_directory":1}}}`,
		`{"proxy":{"enabled":1,"authorization":{"username":1}}}`, `{"default_logger_rotate":"-1_0"}`, `{"ignore_peer_traffic":[1]}`, "{\"a\":\n1,}"}
	if b, err := os.ReadFile(filepath.Join("testdata", "python_config_cases.json")); err == nil {
		var cases []struct {
			Config json.RawMessage `json:"config"`
		}
		if json.Unmarshal(b, &cases) == nil {
			for _, c := range cases {
				seeds = append(seeds, string(c.Config))
			}
		}
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse(data, "fuzz")
		if o != nil {
			_ = o.SourceID()
			_ = o.AlnumSourceID()
			_ = o.SocketPaths()
			_ = o.Warnings()
		}
		if err != nil {
			_ = err.Error()
		}
		a, _ := ParseAPI(data, "fuzz")
		if a != nil {
			_ = a.SocketPaths()
		}
		_ = Truthy(data)
	})
}

func BenchmarkParseTemplate(b *testing.B) {
	data := []byte(`{"server_sockaddr":["127.0.0.1",10673],"send_message_types":["any"],"recv_message_types":["any"],"file_recv_config":{"any":{"target_directory":"/tmp/x/"}},"connector_files_dirpath":"/tmp/aioconnectors"}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data, "b"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrintConfigTemplates(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = PrintConfigTemplates("/tmp/aioconnectors")
	}
}
