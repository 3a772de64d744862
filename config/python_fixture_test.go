package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// python_configs_1.0.33.json was produced by testdata/capture_python_configs.py
// running the real aioconnectors 1.0.33 (ConnectorManager / ConnectorAPI
// built from each config, $D = a temp directory, use_ssl false).
type pyCase struct {
	Name                  string            `json:"name"`
	Kind                  string            `json:"kind"`
	Config                json.RawMessage   `json:"config"`
	SourceID              string            `json:"source_id"`
	AlnumSourceID         string            `json:"alnum_source_id"`
	IsServer              bool              `json:"is_server"`
	SendMessageTypes      []string          `json:"send_message_types"`
	RecvMessageTypes      []string          `json:"recv_message_types"`
	Commander             string            `json:"uds_path_commander"`
	SendToConnector       string            `json:"uds_path_send_to_connector"`
	ReceiveFromConnector  map[string]string `json:"uds_path_receive_from_connector"`
	PubsubCentralBroker   *bool             `json:"pubsub_central_broker"`
	SubscribeMessageTypes []string          `json:"subscribe_message_types"`
}

func TestAgainstPython(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "python_configs_1.0.33.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []pyCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "ac")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.ReplaceAll(string(c.Config), "$D", dir)), &m); err != nil {
				t.Fatal(err)
			}
			if _, ok := m["connector_files_dirpath"]; !ok {
				m["connector_files_dirpath"] = dir
			}
			data, _ := json.Marshal(m)
			un := func(s string) string { return strings.ReplaceAll(s, dir, "$D") }
			type got struct {
				src, alnum, cmd, send string
				isServer              bool
				sendT, recvT          []string
				recvP                 map[string]string
			}
			var g got
			if c.Kind == "api" {
				a, err := ParseAPI(data, "case.json")
				if err != nil {
					t.Fatal(err)
				}
				g = got{a.SourceID(), a.AlnumSourceID(), un(a.CommanderPath()), un(a.SendToConnectorPath()), a.IsServer, a.SendMessageTypes, a.RecvMessageTypes, map[string]string{}}
				for _, ty := range a.RecvMessageTypes {
					g.recvP[ty] = un(a.ReceiveFromConnectorPath(ty))
				}
			} else {
				o, err := Parse(data, "case.json")
				if err != nil {
					t.Fatal(err)
				}
				g = got{o.SourceID(), o.AlnumSourceID(), un(o.CommanderPath()), un(o.SendToConnectorPath()), o.IsServer, o.SendMessageTypes, o.RecvMessageTypes, map[string]string{}}
				for _, ty := range o.RecvMessageTypes {
					g.recvP[ty] = un(o.ReceiveFromConnectorPath(ty))
				}
				if c.PubsubCentralBroker != nil && *c.PubsubCentralBroker != o.PubsubCentralBroker {
					t.Errorf("pubsub_central_broker = %v, python %v", o.PubsubCentralBroker, *c.PubsubCentralBroker)
				}
				if c.SubscribeMessageTypes != nil && !reflect.DeepEqual(c.SubscribeMessageTypes, o.SubscribeMessageTypes) {
					t.Errorf("subscribe = %q, python %q", o.SubscribeMessageTypes, c.SubscribeMessageTypes)
				}
			}
			want := got{c.SourceID, c.AlnumSourceID, c.Commander, c.SendToConnector, c.IsServer, c.SendMessageTypes, c.RecvMessageTypes, c.ReceiveFromConnector}
			if !reflect.DeepEqual(g, want) {
				t.Errorf("\n got %+v\nwant %+v", g, want)
			}
		})
	}
}
