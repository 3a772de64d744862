package api

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"testing"
	"time"
)

// Expected payloads were produced by Python's json.dumps({'cmd': ..., 'kwargs': ...}) with
// the kwargs ConnectorRemoteTool 1.0.33 builds for each method.
func TestRemoteToolRequests(t *testing.T) {
	type call func(context.Context, *RemoteTool) ([]byte, error)
	for _, tc := range []struct {
		name   string
		server bool
		call   call
		want   string
	}{
		{"start", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.StartConnector(c) },
			`{"cmd": "start", "kwargs": {}}`},
		{"stop", true, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.StopConnector(c, false, true, true, false)
		},
			`{"cmd": "stop", "kwargs": {"hard": false, "shutdown": true, "enable_delete_files": true, "client_wait_for_reconnect": false}}`},
		{"restart", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.RestartConnector(c, true, 0) },
			`{"cmd": "restart", "kwargs": {"hard": true, "sleep_between": 0}}`},
		{"restart_float", true, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.RestartConnector(c, false, 1500*time.Millisecond)
		}, `{"cmd": "restart", "kwargs": {"hard": false, "sleep_between": 1.5}}`},
		{"delete_cert_server", true, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.DeleteClientCertificate(c, "client1", false, true)
		}, `{"cmd": "delete_client_certificate_on_server", "kwargs": {"client_id": "client1", "remove_only_symlink": false}}`},
		{"delete_cert_client", false, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.DeleteClientCertificate(c, "", false, true)
		}, `{"cmd": "delete_client_certificate_on_client", "kwargs": {"restart_client": true}}`},
		{"disconnect_client", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.DisconnectClient(c, "client1") },
			`{"cmd": "disconnect_client", "kwargs": {"client_id": "client1"}}`},
		{"persistence", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.DeletePreviousPersistenceRemains(c) },
			`{"cmd": "delete_previous_persistence_remains__sync", "kwargs": {}}`},
		{"set_subscribe", false, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.SetSubscribeMessageTypes(c, "type1", "typé2")
		}, `{"cmd": "set_subscribe_message_types", "kwargs": {"message_types": ["type1", "typ\u00e92"]}}`},
		{"set_subscribe_none", false, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.SetSubscribeMessageTypes(c) },
			`{"cmd": "set_subscribe_message_types", "kwargs": {"message_types": []}}`},
		{"ignore_show", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.IgnorePeerTrafficShow(c) },
			`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"show": true}}`},
		{"ignore_enable", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.IgnorePeerTrafficEnable(c) },
			`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"enable": true}}`},
		{"ignore_unique", true, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.IgnorePeerTrafficEnableUnique(c, "client1")
		}, `{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"unique_peer": "client1"}}`},
		{"ignore_disable", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.IgnorePeerTrafficDisable(c) },
			`{"cmd": "manage_ignore_peer_traffic__sync", "kwargs": {"disable": true}}`},
		{"set_log_level", true, func(c context.Context, r *RemoteTool) ([]byte, error) { return r.SetLogLevel(c, "DEBUG") },
			`{"cmd": "set_log_level__sync", "kwargs": {"level": "DEBUG"}}`},
		{"generic_sorted", true, func(c context.Context, r *RemoteTool) ([]byte, error) {
			return r.SendCommand(c, "show_attribute__sync", map[string]any{"b": []any{1, "x", nil}, "a": map[string]any{"z": 0.5, "y": int64(-1)}})
		}, `{"cmd": "show_attribute__sync", "kwargs": {"a": {"y": -1, "z": 0.5}, "b": [1, "x", null]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			cfg := clientCfg(t, dir, "")
			if tc.server {
				cfg = serverCfg(t, dir, "")
			}
			got := make(chan []byte, 1)
			listenFake(t, cfg.CommanderPath(), replyWith(got, []byte("\x02\x00\x00\x00{}")))
			out, err := tc.call(context.Background(), NewRemoteTool(cfg))
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != "{}" {
				t.Errorf("reply %q", out)
			}
			req := recv(t, got)
			mustEqualBytes(t, "payload", req[4:], []byte(tc.want))
		})
	}
}

func TestRemoteToolErrors(t *testing.T) {
	dir := shortDir(t)
	ctx := context.Background()
	client := NewRemoteTool(clientCfg(t, dir, ""))
	if _, err := client.DisconnectClient(ctx, "x"); !errors.Is(err, ErrNotServer) {
		t.Errorf("client DisconnectClient: %v", err)
	}
	if _, err := client.ShowLogLevel(ctx); !errors.Is(err, ErrConnect) {
		t.Errorf("no connector: %v", err)
	}
	// Connector closes without reply (unknown command in a Go connector).
	cfg := serverCfg(t, dir, "")
	got := make(chan []byte, 4)
	listenFake(t, cfg.CommanderPath(), replyWith(got, nil))
	tool := NewRemoteTool(cfg)
	if _, err := tool.SendCommand(ctx, "nope", nil); !errors.Is(err, ErrNoResponse) {
		t.Errorf("no reply: %v", err)
	}
	recv(t, got)
	if _, err := tool.SendCommand(ctx, "x", map[string]any{"k": struct{}{}}); !errors.Is(err, ErrBadKwarg) {
		t.Errorf("bad kwarg: %v", err)
	}
}

// A Python connector never replies to an unknown command: ctx bounds the call.
func TestRemoteToolContext(t *testing.T) {
	dir := shortDir(t)
	cfg := serverCfg(t, dir, "")
	hold := make(chan struct{})
	listenFake(t, cfg.CommanderPath(), func(c *net.UnixConn) error {
		readRecord(c)
		<-hold
		return nil
	})
	defer close(hold)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := NewRemoteTool(cfg).SendCommand(ctx, "unknown", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want deadline exceeded", err)
	}
}

func TestAppendPyFloat(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{1e16, "1e+16"}, {1e15, "1000000000000000.0"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
		{1.5, "1.5"}, {123456789.125, "123456789.125"}, {-2, "-2.0"}, {1.0 / 3, "0.3333333333333333"},
		{5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e+308"}, {0, "0.0"}, {math.Copysign(0, -1), "-0.0"},
		{math.NaN(), "NaN"}, {math.Inf(1), "Infinity"}, {math.Inf(-1), "-Infinity"},
	} {
		if got := string(appendPyFloat(nil, tc.f, 64)); got != tc.want {
			t.Errorf("%v: got %s want %s", tc.f, got, tc.want)
		}
	}
	if _, err := appendPyValue(nil, json.RawMessage(`{"a": [1]}`)); err != nil {
		t.Error(err)
	}
	if _, err := appendPyValue(nil, json.RawMessage(`{`)); !errors.Is(err, ErrBadKwarg) {
		t.Error("invalid raw accepted")
	}
}
