package uds

import (
	"errors"
	"strings"
	"testing"
)

// Paths printed by the real aioconnectors 1.0.33 Connector(tool_only=True,
// recv_message_types=["any", "type/x", "_pubsub"]) under CPython 3.11.7, directory shown as D.
func TestAgainstPython1033(t *testing.T) {
	const D = "/D"
	cases := []struct {
		server                         bool
		sourceID, commander, send, sfx string
	}{
		{true, "('127.0.0.1', 10673)", "D/uds_path_commander_127001_10673", "D/uds_path_send_to_connector_server_127001_10673", "127001_10673"},
		{true, "('my-host.example.com', '10673')", "D/uds_path_commander_myhostexamplecom_10673", "D/uds_path_send_to_connector_server_myhostexamplecom_10673", "myhostexamplecom_10673"},
		{false, "my client-2", "D/uds_path_commander_myclient2", "D/uds_path_send_to_connector_client_myclient2", "myclient2"},
		{false, "h\u00e9llo_w\u00f6rld", "D/uds_path_commander_h\u00e9llow\u00f6rld", "D/uds_path_send_to_connector_client_h\u00e9llow\u00f6rld", "h\u00e9llow\u00f6rld"},
	}
	for _, c := range cases {
		p, err := NewPaths(D, c.server, c.sourceID, []string{"any", "type/x", "_pubsub"})
		if err != nil {
			t.Fatal(err)
		}
		role := "client"
		if c.server {
			role = "server"
		}
		want := map[string]string{
			"any":     "D/uds_path_receive_from_connector_" + role + "_any_" + c.sfx,
			"type/x":  "D/uds_path_receive_from_connector_" + role + "_type/x_" + c.sfx,
			"_pubsub": "D/uds_path_receive_from_connector_" + role + "__pubsub_" + c.sfx,
		}
		if "/"+c.commander != p.Commander || "/"+c.send != p.SendToConnector {
			t.Errorf("%s: %q %q", c.sourceID, p.Commander, p.SendToConnector)
		}
		for k, v := range want {
			if p.Receive[k] != "/"+v {
				t.Errorf("%s %s: %q want %q", c.sourceID, k, p.Receive[k], "/"+v)
			}
		}
	}
	// Python: Exception('D/xxx…x/uds_path_send_to_connector_server_127001_10673 is longer than 104')
	dir := "/D/" + strings.Repeat("x", 60)
	_, err := NewPaths(dir, true, "('127.0.0.1', 10673)", []string{"any"})
	var pe *PathError
	if !errors.As(err, &pe) || pe.Path != dir+"/uds_path_send_to_connector_server_127001_10673" {
		t.Errorf("got %v", err)
	}
}
