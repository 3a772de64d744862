package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// The interactive `aioconn cli` menu (CONFIG-AND-CLI §4.4): the same prompts, menu entries
// 0–12, flows and replies as the `cli` of aioconnectors 1.0.33, byte for byte when stdout is
// not a terminal (testdata/menu_*.txt are transcripts of the Python tool).
//
// Differences with the original, all on paths where Python crashes or has a side effect:
//   - the screen is cleared (ANSI "\x1b[H\x1b[2J\x1b[3J", what `clear` prints on xterm) only
//     when stdout is a terminal; the original runs `clear` through a shell, which writes its
//     escape codes to a redirected stdout too (or "TERM environment variable not set." to
//     stderr);
//   - end of input at a prompt ends the menu with exit code 1 and no traceback (Python: an
//     EOFError traceback, exit 1); an interrupt (ctx cancelled) ends it with exit code 130;
//   - a server port that is not an integer prints `invalid literal for int() with base 10:
//     '<text>'` and asks again (Python dies with that ValueError);
//   - a peek_queues reply that is not JSON is printed as received (Python dies in json.loads);
//   - the connector_files_dirpath typed is not created when missing (Python's tool creates it);
//   - a commander that never replies is abandoned after menuCommandTimeout (Python waits
//     forever); local errors are printed as Python's str(exception) for the usual cases
//     ("[Errno 111] Connection refused", "0 bytes read on a total of 4 expected bytes"), as
//     the Go error text otherwise.

// menuCommandTimeout bounds one management command sent from the menu. A graceful stop waits
// for the send queues to drain, so it is generous.
var menuCommandTimeout = 10 * time.Minute

// clearSequence is what `clear` prints on an xterm-like terminal.
const clearSequence = "\x1b[H\x1b[2J\x1b[3J"

var menuCommands = [...]string{
	"start", "stop gracefully", "stop hard", "restart", "show_connected_peers",
	"ignore_peer_traffic", "peek_queues", "delete_client_certificate", "disconnect_client",
	"show_log_level", "set_log_level", "show_subscribe_message_types", "set_subscribe_message_types",
}

var menuLogLevels = [...]string{"ERROR", "WARNING", "INFO", "DEBUG"}

// errInputEnd: stdin reached its end at a prompt. errInterrupted: ctx was cancelled.
var (
	errInputEnd    = errors.New("cli: end of input")
	errInterrupted = errors.New("cli: interrupted")
)

// menu holds one interactive session. Not safe for concurrent use; it owns its reader.
type menu struct {
	ctx   context.Context
	in    *bufio.Reader
	out   io.Writer
	clear bool // stdout is a terminal
}

// runMenu runs the interactive menu reading answers from in and printing to out; it returns
// the process exit code (0 after "q" at the connector prompt).
func runMenu(ctx context.Context, in io.Reader, out io.Writer) int {
	m := &menu{ctx: ctx, in: bufio.NewReader(in), out: out, clear: isTerminal(out)}
	err := m.run()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInterrupted):
		m.print("")
		return 130
	default:
		return 1
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (m *menu) print(s string) { io.WriteString(m.out, s+"\n") }

func (m *menu) clearScreen() {
	if m.clear {
		io.WriteString(m.out, clearSequence)
	}
}

// input is Python's input(prompt): print the prompt, read one line, drop its "\n". A last
// line without "\n" is returned as is; no more input is errInputEnd. The read happens in a
// goroutine so that an interrupt ends the menu while it waits (the goroutine then stays
// blocked on the reader, which the process exit ends).
func (m *menu) input(prompt string) (string, error) {
	io.WriteString(m.out, prompt)
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := m.in.ReadString('\n')
		ch <- res{s, err}
	}()
	select {
	case <-m.ctx.Done():
		return "", errInterrupted
	case r := <-ch:
		if r.err != nil && r.s == "" {
			return "", errInputEnd
		}
		return strings.TrimSuffix(r.s, "\n"), nil
	}
}

func (m *menu) displayList(items []string) {
	for i, s := range items {
		m.print(strconv.Itoa(i) + ")    " + s)
	}
}

// run is the connector selection loop (step 3).
func (m *menu) run() error {
	m.print("\nWelcome to aioconnectors CLI")
	def := config.DefaultFilesDir()
	dir, err := m.input("\nPlease type your connector_files_dirpath, or Enter if it is " + def + "\n")
	if err != nil {
		return err
	}
	if dir == "" {
		dir = def
	} else {
		dir = config.FullPath(dir)
	}
	activePath := filepath.Join(dir, config.ActiveConnectorsName)
	for {
		active, listed := m.listActive(activePath)
		nameInput, err := m.input("\nTo check your server, please type your server <ip> <port> (default port is " +
			strconv.Itoa(config.DefaultServerPort) + ").\nTo check your client, please type your client name.\nType \"q\" to quit.\n")
		if err != nil {
			return err
		}
		if nameInput == "q" {
			return nil
		}
		name := nameInput
		indexed := false
		if i, ok := listIndex(nameInput, len(listed)); ok {
			name, indexed = listed[i], true
		}
		opts := &config.APIOptions{ConnectorFilesDirpath: dir}
		var label string
		if parts := pySplitOnce(name); len(parts) == 2 {
			port, ok := pyInt(parts[1])
			if !ok {
				m.print("invalid literal for int() with base 10: " + string(codec.AppendPyReprStr(nil, parts[1])))
				continue
			}
			opts.IsServer, opts.HasServerSockaddr = true, true
			opts.ServerHost, opts.ServerPort, opts.ServerPortRepr = parts[0], port, strconv.Itoa(port)
			label = config.PyTupleRepr(parts[0], opts.ServerPortRepr)
		} else {
			opts.ClientName = name
			label = name
		}
		tool := api.NewRemoteTool(opts)
		if _, err := os.Stat(tool.Path()); err != nil {
			m.clearScreen()
			m.print("The connector " + name + " does not exist")
			if indexed {
				m.removeActive(activePath, active, name)
			}
			continue
		}
		if err := m.commands(tool, label, opts.IsServer, opts.ClientName); err != nil {
			return err
		}
	}
}

// listActive prints the sorted names of active_connectors.json with their index; it returns
// the file's list as read and the sorted list (nil when the file is absent or unreadable).
func (m *menu) listActive(path string) (active, sorted []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.print(err.Error())
		}
		return nil, nil
	}
	if err := json.Unmarshal(b, &active); err != nil {
		m.print(path + ": " + err.Error())
		return nil, nil
	}
	sorted = append([]string(nil), active...)
	sort.Strings(sorted) // UTF-8 byte order is Python's code point order
	m.displayList(sorted)
	m.print("\nPlease type the connector number you would like to run, or")
	return active, sorted
}

// removeActive drops the first occurrence of name from active_connectors.json as the original
// does for a stale indexed entry (json.dump: ", " separators, ASCII escapes).
func (m *menu) removeActive(path string, active []string, name string) {
	for i, n := range active {
		if n == name {
			active = append(active[:i:i], active[i+1:]...)
			break
		}
	}
	if err := os.WriteFile(path, codec.AppendPyJSONList(nil, active), 0o644); err != nil {
		m.print(err.Error())
	}
}

// listIndex maps "0".."n-1" (the exact decimal text, as the original's dict keys) to an index.
func listIndex(s string, n int) (int, bool) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i >= n || strconv.Itoa(i) != s {
		return 0, false
	}
	return i, true
}

// isPySpace is str.isspace for one rune (Python also counts \x1c-\x1f).
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// pySplitOnce is Python's s.split(maxsplit=1): at most two fields, leading whitespace dropped,
// the remainder keeps its trailing whitespace.
func pySplitOnce(s string) []string {
	s = strings.TrimLeftFunc(s, isPySpace)
	if s == "" {
		return nil
	}
	i := strings.IndexFunc(s, isPySpace)
	if i < 0 {
		return []string{s}
	}
	first := s[:i]
	rest := strings.TrimLeftFunc(s[i:], isPySpace)
	if rest == "" {
		return []string{first}
	}
	return []string{first, rest}
}

// pyInt is Python's int(s) for ASCII decimal text: surrounding whitespace, a sign, single
// underscores between digits. Values beyond int are refused.
func pyInt(s string) (int, bool) {
	s = strings.TrimFunc(s, isPySpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	digits := strings.ReplaceAll(s, "_", "")
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func (m *menu) displayCommands(label string) {
	m.print("\n Connector : " + label)
	m.displayList(menuCommands[:])
}

const commandPrompt = "\nPlease type the command number you would like to run, or q to quit\n"

// send runs one remote command and returns the text the original prints for its reply:
// the reply bytes, or Python's str(exception) for a local error.
func (m *menu) send(f func(ctx context.Context) ([]byte, error)) (string, error) {
	ctx, cancel := context.WithTimeout(m.ctx, menuCommandTimeout)
	defer cancel()
	reply, err := f(ctx)
	if err != nil {
		if m.ctx.Err() != nil {
			return "", errInterrupted
		}
		return pyErrorText(err), nil
	}
	return string(reply), nil
}

// pyErrorText is what ConnectorRemoteTool returns as reply for a local error.
func pyErrorText(err error) string {
	if errors.Is(err, api.ErrNoResponse) {
		return "0 bytes read on a total of 4 expected bytes"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg != "" {
			msg = strings.ToUpper(msg[:1]) + msg[1:]
		}
		return "[Errno " + strconv.Itoa(int(errno)) + "] " + msg
	}
	return err.Error()
}

// commands is the command menu (step 4) of one connector; it returns nil to go back to the
// connector selection.
func (m *menu) commands(t *api.RemoteTool, label string, isServer bool, clientName string) error {
	m.clearScreen()
	m.displayCommands(label)
	res, err := m.input(commandPrompt)
	if err != nil {
		return err
	}
	showPeers := func() error {
		r, err := m.send(t.ShowConnectedPeers)
		if err != nil {
			return err
		}
		m.print("\nConnected peers : " + r)
		return nil
	}
	printReply := func(f func(ctx context.Context) ([]byte, error)) error {
		r, err := m.send(f)
		if err == nil {
			m.print(r)
		}
		return err
	}
	for {
		m.clearScreen()
		if res == "q" {
			return nil
		}
		i, ok := listIndex(res, len(menuCommands))
		if !ok {
			m.print("Invalid number : " + res)
		} else {
			back, err := m.runCommand(t, menuCommands[i], isServer, clientName, showPeers, printReply)
			if err != nil || back {
				return err
			}
		}
		m.displayCommands(label)
		if res, err = m.input(commandPrompt); err != nil {
			return err
		}
	}
}

// runCommand runs one menu entry; back reports that the entry's flow returns to the
// connector selection (set_log_level and set_subscribe_message_types cancelled).
func (m *menu) runCommand(t *api.RemoteTool, cmd string, isServer bool, clientName string,
	showPeers func() error, printReply func(func(context.Context) ([]byte, error)) error) (back bool, err error) {
	switch cmd {
	case "start":
		return false, printReply(t.StartConnector)
	case "stop gracefully", "stop hard":
		hard := cmd == "stop hard"
		return false, printReply(func(ctx context.Context) ([]byte, error) {
			return t.StopConnector(ctx, hard, false, true, false)
		})
	case "restart":
		return false, printReply(func(ctx context.Context) ([]byte, error) {
			return t.RestartConnector(ctx, false, 2*time.Second)
		})
	case "show_connected_peers":
		return false, showPeers()
	case "ignore_peer_traffic":
		return false, m.ignorePeerTraffic(t, showPeers)
	case "peek_queues":
		r, err := m.send(t.PeekQueues)
		if err != nil {
			return false, err
		}
		if b, ok := pyJSONIndent([]byte(r)); ok {
			r = string(b)
		}
		m.print(r)
		return false, nil
	case "delete_client_certificate":
		return false, m.deleteClientCertificate(t, isServer, clientName, showPeers, printReply)
	case "disconnect_client":
		if !isServer {
			m.print("A client cannot use this functionality")
			return false, nil
		}
		if err := showPeers(); err != nil {
			return false, err
		}
		name, err := m.input("\nPlease type the client name you would like to disconnect, or q to quit\n")
		if err != nil {
			return false, err
		}
		yes, err := m.input("\nAre you sure you want to disconnect " + name + " ? y/n\n")
		if err != nil || yes != "y" {
			return false, err
		}
		return false, printReply(func(ctx context.Context) ([]byte, error) { return t.DisconnectClient(ctx, name) })
	case "show_log_level":
		return false, printReply(t.ShowLogLevel)
	case "set_log_level":
		m.displayList(menuLogLevels[:])
		res, err := m.input("\nPlease type the log level you would like to set, or q to quit\n")
		if err != nil {
			return false, err
		}
		m.clearScreen()
		if res == "q" {
			return true, nil
		}
		i, ok := listIndex(res, len(menuLogLevels))
		if !ok {
			m.print("Invalid number : " + res)
			return true, nil
		}
		return false, printReply(func(ctx context.Context) ([]byte, error) { return t.SetLogLevel(ctx, menuLogLevels[i]) })
	case "show_subscribe_message_types":
		if isServer {
			m.print("Only available for clients")
			return false, nil
		}
		return false, printReply(t.ShowSubscribeMessageTypes)
	case "set_subscribe_message_types":
		if isServer {
			m.print("Only available for clients")
			return false, nil
		}
		m.print("Current subscribed message types are :")
		if err := printReply(t.ShowSubscribeMessageTypes); err != nil {
			return false, err
		}
		res, err := m.input("\nPlease type the list of all message types you would like to subscribe, or q to quit\n")
		if err != nil {
			return false, err
		}
		m.clearScreen()
		if res == "q" {
			return true, nil
		}
		types := strings.FieldsFunc(res, isPySpace)
		yes, err := m.input("\nAre you sure you want to subscribe to these message types : " +
			string(codec.AppendPyListRepr(nil, types)) + " ? y/n\n")
		if err != nil {
			return false, err
		}
		if strings.ToLower(yes) != "y" {
			return true, nil
		}
		return false, printReply(func(ctx context.Context) ([]byte, error) { return t.SetSubscribeMessageTypes(ctx, types...) })
	}
	return false, nil
}

// ignorePeerTraffic is entry 5: show the status, then offer to change it until Enter.
func (m *menu) ignorePeerTraffic(t *api.RemoteTool, showPeers func() error) error {
	for {
		status, err := m.send(t.IgnorePeerTrafficShow)
		if err != nil {
			return err
		}
		// print() with two arguments: one more space after the colon.
		m.print("\nignore_peer_traffic current status :  " + status)
		var f func(context.Context) ([]byte, error)
		if status == "False" {
			if err := showPeers(); err != nil {
				return err
			}
			res, err := m.input("\nType \"y\" to ignore peer traffic, or <peer name> to ignore a unique peer traffic, or Enter to quit\n")
			if err != nil {
				return err
			}
			switch res {
			case "":
				return nil
			case "y":
				f = t.IgnorePeerTrafficEnable
			default:
				f = func(ctx context.Context) ([]byte, error) { return t.IgnorePeerTrafficEnableUnique(ctx, res) }
			}
		} else {
			res, err := m.input("\nType \"y\" to stop ignoring peer traffic, or Enter to quit\n")
			if err != nil {
				return err
			}
			if res != "y" {
				return nil
			}
			f = t.IgnorePeerTrafficDisable
		}
		if _, err := m.send(f); err != nil {
			return err
		}
	}
}

// deleteClientCertificate is entry 7. A server asks for the client name (then also
// disconnects it); a client confirms with its own name.
func (m *menu) deleteClientCertificate(t *api.RemoteTool, isServer bool, clientName string,
	showPeers func() error, printReply func(func(context.Context) ([]byte, error)) error) error {
	if isServer {
		if err := showPeers(); err != nil {
			return err
		}
		var err error
		clientName, err = m.input("\nPlease type the client name whose certificate you would like to delete, or q to quit\n")
		if err != nil {
			return err
		}
	}
	yes, err := m.input("\nAre you sure you want to delete " + clientName + " 's certificate ? y/n\n")
	if err != nil || yes != "y" {
		return err
	}
	if err := printReply(func(ctx context.Context) ([]byte, error) {
		return t.DeleteClientCertificate(ctx, clientName, false, true)
	}); err != nil || !isServer {
		return err
	}
	return printReply(func(ctx context.Context) ([]byte, error) { return t.DisconnectClient(ctx, clientName) })
}

// pyJSONIndent is json.dumps(json.loads(b), indent=4, sort_keys=True): objects with sorted
// keys, 4-space indentation, ", "-free item separators (newlines), ": " after keys, empty
// containers as {} and [], strings with ASCII escapes, numbers as written (the replies it
// re-indents hold only integers). ok is false when b is not one JSON value.
func pyJSONIndent(b []byte) ([]byte, bool) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return appendIndented(nil, v, 0), true
}

func appendIndented(dst []byte, v any, depth int) []byte {
	nl := func(dst []byte, d int) []byte {
		dst = append(dst, '\n')
		for i := 0; i < d*4; i++ {
			dst = append(dst, ' ')
		}
		return dst
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if x {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case json.Number:
		return append(dst, x...)
	case string:
		return codec.AppendPyString(dst, x)
	case []any:
		if len(x) == 0 {
			return append(dst, "[]"...)
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = nl(dst, depth+1)
			dst = appendIndented(dst, e, depth+1)
		}
		dst = nl(dst, depth)
		return append(dst, ']')
	case map[string]any:
		if len(x) == 0 {
			return append(dst, "{}"...)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = nl(dst, depth+1)
			dst = codec.AppendPyString(dst, k)
			dst = append(dst, ": "...)
			dst = appendIndented(dst, x[k], depth+1)
		}
		dst = nl(dst, depth)
		return append(dst, '}')
	}
	return dst
}
