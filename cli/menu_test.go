package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
)

// menuPair is a server and its client "client1" running in-process on 127.0.0.1:port, both
// with their files in dir.
type menuPair struct {
	dir      string
	port     int
	srv, cli *connector.Connector
}

func (p *menuPair) activePath() string { return filepath.Join(p.dir, config.ActiveConnectorsName) }

func startConnector(t *testing.T, cfgJSON string) (*connector.Connector, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(cfgJSON), "test.json")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.ReconnectInterval = 50 * time.Millisecond // disconnect_client test: the client comes back soon
	c, err := connector.New(cfg, io.Discard)
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(c.Close)
	return c, nil
}

// startMenuPair starts the pair and waits until the client is connected on both sides and
// both names are in active_connectors.json.
func startMenuPair(t *testing.T) *menuPair {
	t.Helper()
	dir, err := os.MkdirTemp("", "ac") // short: unix socket paths are limited to 104 chars
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &menuPair{dir: dir}
	common := `"use_ssl": false, "connector_files_dirpath": "` + dir + `", "default_logger_dirpath": "` + dir + `", "silent": true`
	for try := 0; ; try++ { // the port was free a moment ago; retry if someone took it
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		p.srv, err = startConnector(t, `{"is_server": true, "server_sockaddr": ["127.0.0.1", `+strconv.Itoa(p.port)+`], `+common+`}`)
		if err == nil {
			break
		}
		if try == 4 {
			t.Fatalf("server: %v", err)
		}
	}
	p.cli, err = startConnector(t, `{"is_server": false, "client_name": "client1", "server_sockaddr": ["127.0.0.1", `+
		strconv.Itoa(p.port)+`], `+common+`}`)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	p.waitConnected(t)
	return p
}

// waitConnected waits (bounded) for client1 on the server, the server on the client, and both
// names in active_connectors.json. The connector signals peer changes (PeerChange) but not
// its write of the registry that follows, so the file is polled on a short ticker.
func (p *menuPair) waitConnected(t *testing.T) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		sc, cc := p.srv.PeerChange(), p.cli.PeerChange()
		if slices.Contains(p.srv.ConnectedPeers(), "client1") && len(p.cli.ConnectedPeers()) == 1 {
			break
		}
		select {
		case <-sc:
		case <-cc:
		case <-deadline.C:
			t.Fatalf("client not connected: server sees %v, client sees %v", p.srv.ConnectedPeers(), p.cli.ConnectedPeers())
		}
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	want := []string{"127.0.0.1 " + strconv.Itoa(p.port), "client1"}
	for {
		if got := p.readActive(t); slices.Equal(sorted(got), want) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("active_connectors.json = %v, want %v", p.readActive(t), want)
		}
	}
}

func sorted(l []string) []string { l = slices.Clone(l); slices.Sort(l); return l }

func (p *menuPair) readActive(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(p.activePath())
	if err != nil {
		return nil
	}
	var l []string
	json.Unmarshal(b, &l)
	return l
}

// addGhost appends a stale entry to active_connectors.json as json.dump writes it.
func (p *menuPair) addGhost(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(p.activePath())
	if err != nil {
		t.Fatal(err)
	}
	b = append(bytes.TrimSuffix(b, []byte("]")), `, "ghost"]`...)
	if err := os.WriteFile(p.activePath(), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fill replaces {DIR} and {PORT}; unfill does the reverse on output.
func (p *menuPair) fill(s string) string {
	return strings.NewReplacer("{DIR}", p.dir, "{PORT}", strconv.Itoa(p.port)).Replace(s)
}

func (p *menuPair) unfill(s string) string {
	return strings.NewReplacer(p.dir, "{DIR}", strconv.Itoa(p.port), "{PORT}").Replace(s)
}

// runScript runs the menu on the given answers (one per line) and returns its output with
// placeholders and its exit code.
func (p *menuPair) runScript(t *testing.T, lines ...string) (string, int) {
	t.Helper()
	in := p.fill(strings.Join(lines, "\n") + "\n")
	return p.runInput(t, in)
}

func (p *menuPair) runInput(t *testing.T, in string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	code := runMenu(ctx, strings.NewReader(in), &out)
	if ctx.Err() != nil {
		t.Fatalf("menu did not finish: %s", out.String())
	}
	return p.unfill(out.String()), code
}

// TestMenuTranscripts replays the inputs of testdata/menu_*.in and compares the output byte
// for byte with the transcript of the Python 1.0.33 cli (TERM unset, stdout redirected) for
// the same inputs against a Python server and client set up the same way (testdata/README.md).
func TestMenuTranscripts(t *testing.T) {
	for _, name := range []string{"menu_server", "menu_client"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".in"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", name+".out"))
			if err != nil {
				t.Fatal(err)
			}
			p := startMenuPair(t)
			p.addGhost(t)
			got, code := p.runInput(t, p.fill(string(in)))
			if code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			if got != string(want) {
				diffLines(t, got, string(want))
			}
		})
	}
}

func diffLines(t *testing.T, got, want string) {
	t.Helper()
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			t.Fatalf("transcript differs at line %d:\n got %q\nwant %q\nfull output:\n%s", i+1, gl, wl, got)
		}
	}
}

const (
	welcome  = "\nWelcome to aioconnectors CLI\n\nPlease type your connector_files_dirpath, or Enter if it is /tmp/aioconnectors\n"
	askName  = "\nTo check your server, please type your server <ip> <port> (default port is 10673).\nTo check your client, please type your client name.\nType \"q\" to quit.\n"
	askCmd   = "\nPlease type the command number you would like to run, or q to quit\n"
	listed   = "0)    127.0.0.1 {PORT}\n1)    client1\n\nPlease type the connector number you would like to run, or\n"
	cmdsTail = "0)    start\n1)    stop gracefully\n2)    stop hard\n3)    restart\n4)    show_connected_peers\n" +
		"5)    ignore_peer_traffic\n6)    peek_queues\n7)    delete_client_certificate\n8)    disconnect_client\n" +
		"9)    show_log_level\n10)    set_log_level\n11)    show_subscribe_message_types\n12)    set_subscribe_message_types\n" + askCmd
	serverMenu = "\n Connector : ('127.0.0.1', {PORT})\n" + cmdsTail
	clientMenu = "\n Connector : client1\n" + cmdsTail
)

// TestMenuServerFlows checks each server flow's exact output.
func TestMenuServerFlows(t *testing.T) {
	p := startMenuPair(t)
	server := "127.0.0.1 {PORT}"
	start := welcome + listed + askName + serverMenu
	end := listed + askName
	cases := []struct {
		name  string
		input []string
		out   string
		check func(t *testing.T)
		eof   bool // input ends after the flow (exit 1, no connector list)
	}{
		{"show_connected_peers", []string{"4"}, "\nConnected peers : [\"client1\"]\n" + serverMenu, nil, false},
		{"peek_queues", []string{"6"},
			"{\n    \"queue_recv\": 0,\n    \"queue_send\": {\n        \"client1\": 0\n    }\n}\n" + serverMenu, nil, false},
		{"show_log_level", []string{"9"}, "INFO\n" + serverMenu, nil, false},
		{"set_log_level", []string{"10", "1", "9", "10", "2"},
			"0)    ERROR\n1)    WARNING\n2)    INFO\n3)    DEBUG\n\nPlease type the log level you would like to set, or q to quit\n" +
				"WARNING\n" + serverMenu + "WARNING\n" + serverMenu +
				"0)    ERROR\n1)    WARNING\n2)    INFO\n3)    DEBUG\n\nPlease type the log level you would like to set, or q to quit\n" +
				"INFO\n" + serverMenu, nil, false},
		{"invalid number", []string{"13", "", "x"},
			"Invalid number : 13\n" + serverMenu + "Invalid number : \n" + serverMenu + "Invalid number : x\n" + serverMenu, nil, false},
		{"ignore_peer_traffic", []string{"5", "client1", "y", "y", "y", ""},
			"\nignore_peer_traffic current status :  False\n\nConnected peers : [\"client1\"]\n" +
				"\nType \"y\" to ignore peer traffic, or <peer name> to ignore a unique peer traffic, or Enter to quit\n" +
				"\nignore_peer_traffic current status :  ['client1']\n\nType \"y\" to stop ignoring peer traffic, or Enter to quit\n" +
				"\nignore_peer_traffic current status :  False\n\nConnected peers : [\"client1\"]\n" +
				"\nType \"y\" to ignore peer traffic, or <peer name> to ignore a unique peer traffic, or Enter to quit\n" +
				"\nignore_peer_traffic current status :  True\n\nType \"y\" to stop ignoring peer traffic, or Enter to quit\n" +
				"\nignore_peer_traffic current status :  False\n\nConnected peers : [\"client1\"]\n" +
				"\nType \"y\" to ignore peer traffic, or <peer name> to ignore a unique peer traffic, or Enter to quit\n" +
				serverMenu, nil, false},
		{"disconnect_client no", []string{"8", "client1", "n"},
			"\nConnected peers : [\"client1\"]\n\nPlease type the client name you would like to disconnect, or q to quit\n" +
				"\nAre you sure you want to disconnect client1 ? y/n\n" + serverMenu, nil, false},
		{"disconnect_client unknown", []string{"8", "nosuch", "y"},
			"\nConnected peers : [\"client1\"]\n\nPlease type the client name you would like to disconnect, or q to quit\n" +
				"\nAre you sure you want to disconnect nosuch ? y/n\nNon existing client nosuch\n" + serverMenu, nil, false},
		{"subscribe entries", []string{"11", "12"},
			"Only available for clients\n" + serverMenu + "Only available for clients\n" + serverMenu, nil, false},
		{"set_log_level q", []string{"10", "q"},
			"0)    ERROR\n1)    WARNING\n2)    INFO\n3)    DEBUG\n\nPlease type the log level you would like to set, or q to quit\n", nil, false},
		{"set_log_level invalid", []string{"10", "7"},
			"0)    ERROR\n1)    WARNING\n2)    INFO\n3)    DEBUG\n\nPlease type the log level you would like to set, or q to quit\n" +
				"Invalid number : 7\n", nil, false},
		{"disconnect_client yes", []string{"8", "client1", "y"},
			"\nConnected peers : [\"client1\"]\n\nPlease type the client name you would like to disconnect, or q to quit\n" +
				"\nAre you sure you want to disconnect client1 ? y/n\nTrue\n" + serverMenu,
			// The client comes back. The input ends here: the registry may be read while the
			// reconnecting client rewrites it (the connector does not write it atomically).
			func(t *testing.T) { p.waitConnected(t) }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lines := append([]string{"{DIR}", server}, c.input...)
			want, wantCode := start+c.out, 1
			if !c.eof {
				if strings.HasSuffix(c.out, askCmd) { // else the flow went back to the connector selection
					lines = append(lines, "q")
				}
				lines = append(lines, "q")
				want, wantCode = want+end, 0
			}
			got, code := p.runScript(t, lines...)
			if got != want {
				diffLines(t, got, want)
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d", code, wantCode)
			}
			if c.check != nil {
				c.check(t)
			}
		})
	}
}

// TestMenuClientFlows checks the client-only texts.
func TestMenuClientFlows(t *testing.T) {
	p := startMenuPair(t)
	got, code := p.runScript(t, "{DIR}", "1", "8", "11", "7", "n", "q", "q")
	want := welcome + listed + askName + clientMenu +
		"A client cannot use this functionality\n" + clientMenu +
		"{}\n" + clientMenu +
		"\nAre you sure you want to delete client1 's certificate ? y/n\n" + clientMenu +
		listed + askName
	if got != want {
		diffLines(t, got, want)
	}
	if code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// TestMenuConnectorSelection covers quitting, unknown names, stale entries, bad ports, the
// end of input and interrupts.
func TestMenuConnectorSelection(t *testing.T) {
	p := startMenuPair(t)

	t.Run("quit", func(t *testing.T) {
		got, code := p.runScript(t, "{DIR}", "q", "ignored")
		if want := welcome + listed + askName; got != want || code != 0 {
			t.Fatalf("got %q (exit %d), want %q (exit 0)", got, code, want)
		}
	})
	t.Run("unknown connector typed", func(t *testing.T) {
		got, _ := p.runScript(t, "{DIR}", "nosuch", "127.0.0.1 1", "", "q")
		want := welcome + listed + askName + "The connector nosuch does not exist\n" + listed + askName +
			"The connector 127.0.0.1 1 does not exist\n" + listed + askName +
			"The connector  does not exist\n" + listed + askName
		if got != want {
			diffLines(t, got, want)
		}
		if l := p.readActive(t); len(l) != 2 {
			t.Errorf("active_connectors.json changed: %v", l)
		}
	})
	t.Run("stale index removed", func(t *testing.T) {
		p.addGhost(t)
		before := p.readActive(t)
		got, _ := p.runScript(t, "{DIR}", "2", "q")
		ghostListed := "0)    127.0.0.1 {PORT}\n1)    client1\n2)    ghost\n\nPlease type the connector number you would like to run, or\n"
		want := welcome + ghostListed + askName + "The connector ghost does not exist\n" + listed + askName
		if got != want {
			diffLines(t, got, want)
		}
		b, _ := os.ReadFile(p.activePath())
		wantFile := `["` + strings.Join(slices.DeleteFunc(before, func(s string) bool { return s == "ghost" }), `", "`) + `"]`
		if string(b) != wantFile {
			t.Errorf("active_connectors.json = %s, want %s", b, wantFile)
		}
	})
	t.Run("server typed with spaces and bad port", func(t *testing.T) {
		got, _ := p.runScript(t, "{DIR}", "  127.0.0.1   +{PORT} ", "q", "127.0.0.1 12x", "q")
		want := welcome + listed + askName + serverMenu + listed + askName +
			"invalid literal for int() with base 10: '12x'\n" + listed + askName
		if got != want {
			diffLines(t, got, want)
		}
	})
	t.Run("no active_connectors.json", func(t *testing.T) {
		dir := t.TempDir()
		var out bytes.Buffer
		code := runMenu(context.Background(), strings.NewReader(dir+"\nclient1\nq\n"), &out)
		want := welcome + askName + "The connector client1 does not exist\n" + askName
		if out.String() != want || code != 0 {
			t.Fatalf("got %q (exit %d), want %q", out.String(), code, want)
		}
	})
	t.Run("end of input", func(t *testing.T) {
		got, code := p.runInput(t, p.fill("{DIR}\n0\n4"))
		want := welcome + listed + askName + serverMenu + "\nConnected peers : [\"client1\"]\n" + serverMenu
		if got != want || code != 1 {
			t.Fatalf("got %q (exit %d), want %q (exit 1)", got, code, want)
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() { done <- runMenu(ctx, pr, io.Discard) }()
		io.WriteString(pw, p.dir+"\n") // the menu has read it once this write returns
		cancel()
		if code := <-done; code != 130 {
			t.Fatalf("exit code %d, want 130", code)
		}
	})
	t.Run("commander not listening", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "ac")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		ln, err := net.Listen("unix", filepath.Join(dir, "uds_path_commander_dead"))
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
		var out bytes.Buffer
		runMenu(context.Background(), strings.NewReader(dir+"\ndead\n9\nq\nq\n"), &out)
		want := welcome + askName + "\n Connector : dead\n" + cmdsTail + "[Errno 111] Connection refused\n" +
			"\n Connector : dead\n" + cmdsTail + askName
		if out.String() != want {
			diffLines(t, out.String(), want)
		}
	})
}

// TestMenuMain checks the wiring: `aioconn cli` without arguments runs the menu on stdin.
func TestMenuMain(t *testing.T) {
	dir := t.TempDir()
	old := stdin
	stdin = strings.NewReader(dir + "\nq\n")
	defer func() { stdin = old }()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"cli"}, &out, &errb); code != 0 {
		t.Fatalf("exit code %d, stderr %s", code, errb.String())
	}
	if want := welcome + askName; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func TestPySplitOnce(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil}, {"   ", nil}, {"client1", []string{"client1"}}, {" client1 ", []string{"client1"}},
		{"127.0.0.1 10673", []string{"127.0.0.1", "10673"}}, {"\t a  b c ", []string{"a", "b c "}},
		{"a\u00a0b", []string{"a", "b"}}, {"a\x1fb", []string{"a", "b"}},
	}
	for _, c := range cases {
		if got := pySplitOnce(c.in); !slices.Equal(got, c.want) {
			t.Errorf("pySplitOnce(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPyInt(t *testing.T) {
	ok := map[string]int{"10673": 10673, " 10673 ": 10673, "+5": 5, "-1": -1, "010": 10, "1_000": 1000}
	for in, want := range ok {
		if got, k := pyInt(in); !k || got != want {
			t.Errorf("pyInt(%q) = %d, %v; want %d", in, got, k, want)
		}
	}
	for _, in := range []string{"", "x", "1x", "_1", "1_", "1__0", "+", "1 0", "0x10", "99999999999999999999999"} {
		if _, k := pyInt(in); k {
			t.Errorf("pyInt(%q) accepted", in)
		}
	}
}

func TestListIndex(t *testing.T) {
	for in, want := range map[string]bool{"0": true, "12": true, "13": false, "-1": false, "+1": false, "01": false, " 1": false, "": false} {
		if _, ok := listIndex(in, 13); ok != want {
			t.Errorf("listIndex(%q) ok = %v, want %v", in, ok, want)
		}
	}
}

// Expected outputs are CPython's json.dumps(json.loads(in), indent=4, sort_keys=True).
func TestPyJSONIndent(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"queue_send": {"b": 1, "a": 2}, "queue_recv": 0}`,
			"{\n    \"queue_recv\": 0,\n    \"queue_send\": {\n        \"a\": 2,\n        \"b\": 1\n    }\n}"},
		{`{"queue_recv": 0, "queue_send": {}}`, "{\n    \"queue_recv\": 0,\n    \"queue_send\": {}\n}"},
		{`[1, [], {"\u00e9": null, "t": true}]`,
			"[\n    1,\n    [],\n    {\n        \"t\": true,\n        \"\\u00e9\": null\n    }\n]"},
		{`"x"`, `"x"`},
	}
	for _, c := range cases {
		got, ok := pyJSONIndent([]byte(c.in))
		if !ok || string(got) != c.want {
			t.Errorf("pyJSONIndent(%s) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
	for _, in := range []string{"", "[Errno 2] No such file or directory", "{} {}", "{"} {
		if _, ok := pyJSONIndent([]byte(in)); ok {
			t.Errorf("pyJSONIndent(%q) accepted", in)
		}
	}
}

func TestPyErrorText(t *testing.T) {
	_, err := net.Dial("unix", filepath.Join(t.TempDir(), "none"))
	if got := pyErrorText(err); got != "[Errno 2] No such file or directory" {
		t.Errorf("ENOENT: %q", got)
	}
	if got := pyErrorText(errors.New("other")); got != "other" {
		t.Errorf("other: %q", got)
	}
}
