package uds

import (
	"errors"
	"strings"
	"testing"
)

// Expected values were produced by CPython 3.11.7 running aioconnectors 1.0.33's alnum_name
// and alnum_source_id expressions over the same inputs.
func TestAlnum(t *testing.T) {
	cases := []struct{ in, alnum, server string }{
		{"client1", "client1", "client1"},
		{"chat_client", "chatclient", "chatclient"},
		{"my client-2", "myclient2", "my_client2"},
		{"('127.0.0.1', 10673)", "12700110673", "127001_10673"},
		{"('0.0.0.0', 10673)", "000010673", "0000_10673"},
		{"('eth0', 10673)", "eth010673", "eth0_10673"},
		{"('my-host.example.com', '10673')", "myhostexamplecom10673", "myhostexamplecom_10673"},
		{"None", "None", "None"},
		{"", "", ""},
		{"h\u00e9llo w\u00f6rld", "h\u00e9llow\u00f6rld", "h\u00e9llo_w\u00f6rld"},
		{"\u65e5\u672c\u8a9e_\u30c6\u30b9\u30c8", "\u65e5\u672c\u8a9e\u30c6\u30b9\u30c8", "\u65e5\u672c\u8a9e\u30c6\u30b9\u30c8"},
		{"x\u2082y", "x\u2082y", "x\u2082y"},
		{"\u216b\u00bd\u2460", "\u216b\u00bd\u2460", "\u216b\u00bd\u2460"},
		{"a\u0301b", "ab", "ab"},
		{"\u0663\u0664\u0665", "\u0663\u0664\u0665", "\u0663\u0664\u0665"},
		{"a\u001cb", "ab", "a_b"},
		{"a\u3000b", "ab", "a_b"},
		{"  lead  trail  ", "leadtrail", "lead_trail"},
		{"a\tb\nc", "abc", "a_b_c"},
		{"\u00e9moji\U0001F600ok", "\u00e9mojiok", "\u00e9mojiok"},
		{"\u00df-\u1e9e", "\u00df\u1e9e", "\u00df\u1e9e"},
		{"\u00a0x\u0085y", "xy", "x_y"},
		{"_-.'(),/", "", ""},
		{"\u01c4", "\u01c4", "\u01c4"},
		{"\u210c", "\u210c", "\u210c"},
		{"a - b", "ab", "a__b"},
		{"bad\xffutf8", "badutf8", "badutf8"},
	}
	for _, c := range cases {
		if got := Alnum(c.in); got != c.alnum {
			t.Errorf("Alnum(%q) = %q, want %q", c.in, got, c.alnum)
		}
		if got := AlnumSourceID(false, c.in); got != c.alnum {
			t.Errorf("AlnumSourceID(client, %q) = %q, want %q", c.in, got, c.alnum)
		}
		if got := AlnumSourceID(true, c.in); got != c.server {
			t.Errorf("AlnumSourceID(server, %q) = %q, want %q", c.in, got, c.server)
		}
		if got := (Identity{IsServer: true, SourceID: c.in}).Alnum(); got != c.server {
			t.Errorf("Identity.Alnum(server, %q) = %q, want %q", c.in, got, c.server)
		}
	}
}

// LOCAL-API.md §1.5 worked example.
func TestWorkedExample(t *testing.T) {
	const dir = "/tmp/aioconnectors"
	srv, err := NewPaths(dir, true, "('127.0.0.1', 10673)", []string{"any", "_pubsub"})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewPaths(dir, false, "client1", []string{"any"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{srv.Commander, "/tmp/aioconnectors/uds_path_commander_127001_10673"},
		{srv.SendToConnector, "/tmp/aioconnectors/uds_path_send_to_connector_server_127001_10673"},
		{srv.Receive["any"], "/tmp/aioconnectors/uds_path_receive_from_connector_server_any_127001_10673"},
		{srv.Receive["_pubsub"], "/tmp/aioconnectors/uds_path_receive_from_connector_server__pubsub_127001_10673"},
		{srv.ReceivePath("other"), "/tmp/aioconnectors/uds_path_receive_from_connector_server_other_127001_10673"},
		{PersistSendPath(dir, srv.AlnumSourceID(), "client1"), "/tmp/aioconnectors/connector_disk_persistence_send_from_127001_10673_to_peer_client1"},
		{PersistRecvPath(dir, srv.AlnumSourceID(), "any"), "/tmp/aioconnectors/connector_disk_persistence_recv_by_127001_10673_any"},
		{cli.Commander, "/tmp/aioconnectors/uds_path_commander_client1"},
		{cli.SendToConnector, "/tmp/aioconnectors/uds_path_send_to_connector_client_client1"},
		{cli.Receive["any"], "/tmp/aioconnectors/uds_path_receive_from_connector_client_any_client1"},
		{PersistSendPath(dir, cli.AlnumSourceID(), "('127.0.0.1', 10673)"), "/tmp/aioconnectors/connector_disk_persistence_send_from_client1_to_peer_12700110673"},
		{PersistRecvPath(dir, cli.AlnumSourceID(), "any"), "/tmp/aioconnectors/connector_disk_persistence_recv_by_client1_any"},
		// os.path.join semantics: trailing slash kept, no cleaning of the type.
		{Join("/", "x"), "/x"},
		{Join("/a/", "x"), "/a/x"},
		{srv.ReceivePath("a/../b"), "/tmp/aioconnectors/uds_path_receive_from_connector_server_a/../b_127001_10673"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if len(srv.Receive) != 2 || len(cli.Receive) != 1 {
		t.Errorf("receive maps: %v %v", srv.Receive, cli.Receive)
	}
}

// The unchecked builders give the same paths as NewPaths, in SocketPaths order, and accept
// names NewPaths would refuse.
func TestUncheckedPaths(t *testing.T) {
	const dir = "/tmp/aioconnectors"
	types := []string{"any", "_pubsub"}
	for _, server := range []bool{true, false} {
		src := "client1"
		if server {
			src = "('127.0.0.1', 10673)"
		}
		p, err := NewPaths(dir, server, src, types)
		if err != nil {
			t.Fatal(err)
		}
		a := p.AlnumSourceID()
		want := []string{p.SendToConnector, p.Receive["any"], p.Receive["_pubsub"], p.Commander}
		got := SocketPaths(dir, server, a, types)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("SocketPaths(server=%v) = %q, want %q", server, got, want)
		}
		if CommanderPath(dir, a) != p.Commander || SendPath(dir, server, a) != p.SendToConnector ||
			ReceivePath(dir, server, a, "x") != p.ReceivePath("x") {
			t.Errorf("builders differ from NewPaths (server=%v)", server)
		}
	}
	long := strings.Repeat("x", MaxPathLen)
	if got := CommanderPath("/d", long); got != "/d/uds_path_commander_"+long {
		t.Errorf("CommanderPath long: %q", got)
	}
	if got := SocketPaths("", false, "c", nil); len(got) != 2 || got[0] != "uds_path_send_to_connector_client_c" {
		t.Errorf("SocketPaths empty dir: %q", got)
	}
	if Join("", "x") != "x" || Join("a", "x") != "a/x" {
		t.Error("Join")
	}
}

func TestPathLength(t *testing.T) {
	// "/" + dir + "/uds_path_send_to_connector_client_" + name: make the send path exactly 104.
	const prefix = "/uds_path_send_to_connector_client_c"
	dir := "/" + strings.Repeat("d", MaxPathLen-len(prefix)-1)
	p, err := NewPaths(dir, false, "c", nil)
	if err != nil {
		t.Fatalf("104-char path refused: %v", err)
	}
	if n := len(p.SendToConnector); n != MaxPathLen {
		t.Fatalf("test setup: len %d", n)
	}
	// One more character is refused, naming the path.
	_, err = NewPaths(dir+"x", false, "c", nil)
	var pe *PathError
	if !errors.Is(err, ErrPathTooLong) || !errors.As(err, &pe) || pe.Path != dir+"x"+prefix {
		t.Fatalf("105-char path: %v", err)
	}
	if want := "uds: " + dir + "x" + prefix + " is longer than 104"; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
	// Code points, not bytes: 'é' is two bytes.
	udir := "/" + strings.Repeat("\u00e9", MaxPathLen-len(prefix)-1)
	if _, err := NewPaths(udir, false, "c", nil); err != nil {
		t.Errorf("104-code-point path (%d bytes) refused: %v", len(udir)+len(prefix), err)
	}
	// Receive paths are checked before the commander, in the given order.
	dir2 := "/" + strings.Repeat("d", 40)
	_, err = NewPaths(dir2, true, "('127.0.0.1', 10673)", []string{"ok", strings.Repeat("t", 40), strings.Repeat("u", 50)})
	if !errors.As(err, &pe) || !strings.Contains(pe.Path, strings.Repeat("t", 40)) {
		t.Errorf("want the first long receive path, got %v", err)
	}
	// A long source id trips the send path first.
	_, err = NewPaths(dir2, true, strings.Repeat("s", 70), nil)
	if !errors.As(err, &pe) || !strings.Contains(pe.Path, "send_to_connector") {
		t.Errorf("want the send path, got %v", err)
	}
	// Commander alone too long: client with a name fitting send (longer prefix) is impossible,
	// so check CheckLen directly.
	if CheckLen(strings.Repeat("x", 104)) != nil || CheckLen(strings.Repeat("x", 105)) == nil {
		t.Error("CheckLen boundary")
	}
}

func BenchmarkAlnumSourceID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = AlnumSourceID(true, "('127.0.0.1', 10673)")
	}
}
