package cli

// `aioconn chat` (CONFIG-AND-CLI §5): the two-station chat and file transfer of aioconnectors
// 1.0.33. One process runs a connector (server, or client named chat_client) and an API on it;
// the console sends typed lines as text, runs `!command`s locally, uploads files and
// directories (zipped) with `!upload`, unzips with `!dezip`. `--upload PATH` uploads and exits.
//
// aioconn additions (the original has none of these):
//   - Upload progress on stderr: on a terminal one line redrawn in place (percentage, bytes,
//     rate, ETA), otherwise at most one plain line per second plus a final line. Progress is
//     the read offset of the connector's open descriptor on the file (/proc/self/fdinfo): the
//     connector streams the file from disk to the link through a small bounded buffer, so the
//     offset follows the bytes handed to the link. Where /proc is absent only the final line
//     is shown.
//   - AIOCONN_CHAT_DIR overrides the files directory (default: the aioconnectors default
//     /tmp/aioconnectors).

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/config"
	"github.com/aioconn/aioconn/connector"
	ctls "github.com/aioconn/aioconn/tls"
)

const (
	chatPrompt     = "aioconnectors>> "
	chatClientName = "chat_client"
	chatType       = "any"
	chatProg       = "__main__.py" // argparse's program name in the original
	chatDirEnv     = "AIOCONN_CHAT_DIR"
)

const chatBanner = "\nWelcome to aioconnectors chat !\n" +
	"Usage :\n" +
	"- Type messages, or !exit to exit, or any shell command preceded by a ! to execute locally\n" +
	"- !upload <file or dir path> to upload to peer's current working directory\n" +
	"- !dezip <downloaded file name> to unzip a file\n\n"

const chatUsage = "usage: " + chatProg + " [-h] [--target [TARGET]] [--accept] [--port [PORT]]\n" +
	"                   [--bind_server_ip [BIND_SERVER_IP]] [--upload [UPLOAD]]\n" +
	"                   chat\n"

const chatHelp = chatUsage + `
positional arguments:
  chat

options:
  -h, --help            show this help message and exit
  --target [TARGET]     server ip, mandatory for client
  --accept              accept all clients if specified, optional for server
  --port [PORT]         server port, optional for server and client
  --bind_server_ip [BIND_SERVER_IP]
                        bind to ip, optional for server
  --upload [UPLOAD]     path of directory or file to upload
`

// chatOptions is the parsed command line (argparse semantics: empty = not given or given
// without value, which the original treats alike).
type chatOptions struct {
	target, port, bindIP, upload string
	accept                       bool
}

// parseChatArgs parses the arguments after `chat` as the original's argparse parser does:
// long options may be abbreviated to any unique prefix and take `=value`; an option with an
// optional value takes the next argument unless it looks like an option; -h/--help wins over
// unrecognized arguments. help is true when help was asked; errMsg is argparse's error text.
func parseChatArgs(args []string) (o chatOptions, help bool, errMsg string) {
	names := []string{"--help", "--target", "--accept", "--port", "--bind_server_ip", "--upload"}
	var extras []string
	isOpt := func(s string) bool {
		if len(s) < 2 || s[0] != '-' {
			return false
		}
		_, err := strconv.ParseFloat(s, 64) // argparse treats negative numbers as values
		return err != nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			extras = append(extras, args[i+1:]...)
			break
		}
		if !isOpt(a) {
			extras = append(extras, a)
			continue
		}
		if a == "-h" {
			return o, true, ""
		}
		if !strings.HasPrefix(a, "--") {
			extras = append(extras, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		var match []string
		for _, n := range names {
			if n == name {
				match = []string{n}
				break
			}
			if strings.HasPrefix(n, name) {
				match = append(match, n)
			}
		}
		switch len(match) {
		case 0:
			extras = append(extras, a)
			continue
		case 1:
		default:
			return o, false, fmt.Sprintf("ambiguous option: %s could match %s", name, strings.Join(match, ", "))
		}
		name = match[0]
		if name == "--help" || name == "--accept" {
			if hasVal {
				return o, false, fmt.Sprintf("argument %s: ignored explicit argument %s", map[string]string{"--help": "-h/--help", "--accept": "--accept"}[name], pyRepr(val))
			}
			if name == "--help" {
				return o, true, ""
			}
			o.accept = true
			continue
		}
		if !hasVal {
			val = ""
			if i+1 < len(args) && !isOpt(args[i+1]) && args[i+1] != "--" {
				i++
				val = args[i]
			}
		}
		switch name {
		case "--target":
			o.target = val
		case "--port":
			o.port = val
		case "--bind_server_ip":
			o.bindIP = val
		case "--upload":
			o.upload = val
		}
	}
	if len(extras) > 0 {
		return o, false, "unrecognized arguments: " + strings.Join(extras, " ")
	}
	return o, false, ""
}

// pyRepr is Python's repr of a str.
func pyRepr(s string) string {
	b, _ := json.Marshal(s)
	return pyReprJSON(b)
}

// chatEnv is what a chat station takes from its process; tests give each station its own.
type chatEnv struct {
	in        io.Reader
	out, errw io.Writer // stdout (the chat), stderr (progress, errors)
	dir       string    // working directory: received files, relative paths, shell commands
	filesDir  string    // connector_files_dirpath and certificates
	logOut    io.Writer // connector log echo (nil: log file only)
	tty       bool      // errw is a terminal
	// started, when set, is called once the station runs (connector and API up).
	started func(*chatStation)
}

func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	io.WriteString(stdout, chatBanner)
	o, help, msg := parseChatArgs(args)
	if help {
		io.WriteString(stdout, chatHelp)
		return 0
	}
	if msg != "" {
		io.WriteString(stderr, chatUsage+chatProg+": error: "+msg+"\n")
		return 2
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "aioconn chat: %v\n", err)
		return 1
	}
	env := chatEnv{in: stdin, out: stdout, errw: stderr, dir: wd, filesDir: config.DefaultFilesDir(), tty: isTerminal(stderr)}
	if d := os.Getenv(chatDirEnv); d != "" {
		env.filesDir = config.FullPath(d)
	}
	return runChatStation(ctx, o, env)
}

// chatStation is one running chat. Output goes through print (serialised).
type chatStation struct {
	o       chatOptions
	env     chatEnv
	conn    *connector.Connector
	api     *api.API
	dest    string // "" for a client: the API's default destination, the server
	ctx     context.Context
	cancel  context.CancelFunc
	outMu   sync.Mutex
	authMu  sync.Mutex // one accept prompt at a time
	pendMu  sync.Mutex
	pending chan bool // set while a client waits for the user's y/n
	uploads sync.WaitGroup
}

func (s *chatStation) print(text string) {
	s.outMu.Lock()
	io.WriteString(s.env.out, text)
	s.outMu.Unlock()
}

func (s *chatStation) progressOut(text string) {
	s.outMu.Lock()
	io.WriteString(s.env.errw, text)
	s.outMu.Unlock()
}

// chatConfigs returns the connector and API configuration JSON of the original's setup.
func chatConfigs(o chatOptions, filesDir, cwd, host string, port int) (conn, apiCfg []byte) {
	isServer := o.target == ""
	c := map[string]any{
		"is_server":                   isServer,
		"server_sockaddr":             []any{host, port},
		"use_ssl":                     true,
		"ssl_allow_all":               true,
		"connector_files_dirpath":     filesDir,
		"certificates_directory_path": filesDir,
		"default_logger_dirpath":      filesDir,
		"send_message_types":          []string{chatType},
		"recv_message_types":          []string{chatType},
		"file_recv_config":            map[string]any{chatType: map[string]any{"target_directory": cwd}},
	}
	a := map[string]any{
		"is_server":                isServer,
		"server_sockaddr":          []any{host, port},
		"connector_files_dirpath":  filesDir,
		"default_logger_dirpath":   filesDir,
		"send_message_types":       []string{chatType},
		"recv_message_types":       []string{chatType},
		"default_logger_log_level": "INFO",
		"silent":                   true,
	}
	if !isServer {
		c["client_name"] = chatClientName
		c["enable_client_try_reconnect"] = false
		a["client_name"] = chatClientName
	}
	conn, _ = json.Marshal(c)
	apiCfg, _ = json.Marshal(a)
	return conn, apiCfg
}

// runChatStation sets up and runs one station until !exit, ctx cancellation or (upload mode)
// the end of the upload; it returns the exit code.
func runChatStation(ctx context.Context, o chatOptions, env chatEnv) int {
	s := &chatStation{o: o, env: env}
	if s.env.errw == nil {
		s.env.errw = io.Discard
	}
	isServer := o.target == ""
	var host string
	port := config.DefaultServerPort
	if isServer {
		host = o.bindIP
		if host == "" {
			host = "0.0.0.0"
		}
		if !strings.Contains(host, ".") {
			if ip := interfaceIPv4(host); ip != "" {
				host = ip
			}
		}
	} else {
		host = o.target
	}
	if o.port != "" {
		p, err := strconv.Atoi(strings.TrimSpace(o.port))
		if err != nil || p < 0 || p > 65535 {
			fmt.Fprintf(s.env.errw, "aioconn chat: invalid port %s\n", pyRepr(o.port))
			return 1
		}
		if p != 0 || !isServer {
			port = p
		}
	}
	if isServer {
		addrs := []string{host}
		if host == "0.0.0.0" {
			addrs = upIPv4s()
		}
		if len(addrs) > 5 {
			addrs = addrs[:5]
		}
		quoted := make([]string, len(addrs))
		for i, a := range addrs {
			quoted[i] = pyRepr(a)
		}
		s.print(fmt.Sprintf("Chat Server listening on addresses [%s], and port %d\n\n", strings.Join(quoted, ", "), port))
	}
	_, statErr := os.Stat(env.filesDir)
	created := errors.Is(statErr, fs.ErrNotExist)
	defer func() {
		if created {
			os.RemoveAll(env.filesDir)
		}
	}()
	ctls.CreateCertificates(env.filesDir, io.Discard) // an existing tree is used as is (failure ignored, as the original)

	connJSON, apiJSON := chatConfigs(o, env.filesDir, env.dir, host, port)
	cfg, err := config.Parse(connJSON, "chat")
	if err != nil {
		fmt.Fprintf(s.env.errw, "aioconn chat: %v\n", err)
		return 1
	}
	if env.logOut != nil {
		cfg.Silent = false
	}
	s.conn, err = connector.New(cfg, env.logOut)
	if err != nil {
		fmt.Fprintf(s.env.errw, "aioconn chat: %v\n", err)
		return 1
	}
	if isServer && !o.accept {
		s.conn.AuthClient = s.authClient
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	defer s.cancel()
	if err := s.conn.Start(); err != nil {
		s.conn.Close()
		fmt.Fprintf(s.env.errw, "aioconn chat: %v\n", err)
		return 1
	}
	defer s.conn.Close()
	acfg, err := config.ParseAPI(apiJSON, "chat")
	if err == nil {
		s.api, err = api.New(acfg)
	}
	if err != nil {
		fmt.Fprintf(s.env.errw, "aioconn chat: %v\n", err)
		return 1
	}
	defer s.api.Close()
	if isServer {
		s.dest = chatClientName
	}
	if env.started != nil {
		env.started(s)
	}
	if o.upload != "" {
		s.uploadOnly()
	} else {
		s.chat()
	}
	s.cancel()
	s.uploads.Wait()
	s.print("Connector stopped !\n")
	if o.upload == "" {
		s.api.StopWaitingForMessages(chatType)
	}
	return 0
}

// uploadOnly is --upload: wait (at most 3 s, the original's fixed wait) for the link, send the
// file or directory with empty data, and return when it is acknowledged or fails.
func (s *chatStation) uploadOnly() {
	s.waitConnected(3 * time.Second)
	done := make(chan struct{})
	if err := s.startUpload(s.o.upload, "", done); err != nil {
		s.progressOut(err.Error() + "\n")
		return
	}
	select {
	case <-done:
	case <-s.ctx.Done():
	}
}

// waitConnected waits until the connector has an identified peer, s.ctx ends or max elapses
// (max 0: no limit). It reports whether a peer is connected.
func (s *chatStation) waitConnected(max time.Duration) bool {
	var timeout <-chan time.Time
	if max > 0 {
		t := time.NewTimer(max)
		defer t.Stop()
		timeout = t.C
	}
	for {
		ch := s.conn.PeerChange()
		if len(s.conn.ConnectedPeers()) > 0 {
			return true
		}
		select {
		case <-ch:
		case <-s.ctx.Done():
			return false
		case <-timeout:
			return false
		}
	}
}

// chat is the console mode.
func (s *chatStation) chat() {
	if err := s.api.StartWaitingForMessages(chatType, s.onMessage, true); err != nil {
		fmt.Fprintf(s.env.errw, "aioconn chat: %v\n", err)
	}
	if s.o.target != "" {
		s.print("Connector waiting to connect ... (Ctrl+C to quit)\n")
		if !s.waitConnected(0) {
			return
		}
		s.print("Connected !\n")
	}
	lines := make(chan string)
	go readLines(s.env.in, lines, s.ctx.Done())
	s.print(chatPrompt)
	for {
		select {
		case <-s.ctx.Done():
			return
		case line, ok := <-lines:
			if !ok {
				lines = nil // stdin closed: keep receiving until !exit or interruption, as the original
				continue
			}
			if !s.input(line) {
				return
			}
		}
	}
}

// readLines sends each line of in (without its end of line) to lines, and closes lines at EOF.
func readLines(in io.Reader, lines chan<- string, done <-chan struct{}) {
	defer close(lines)
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := in.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			i := strings.IndexByte(string(buf), '\n')
			if i < 0 {
				break
			}
			select {
			case lines <- string(buf[:i]):
			case <-done:
				return
			}
			buf = buf[i+1:]
		}
		if err != nil {
			if len(buf) > 0 {
				select {
				case lines <- string(buf):
				case <-done:
				}
			}
			return
		}
	}
}

// input handles one console line (CONFIG-AND-CLI §5.3); false ends the chat.
func (s *chatStation) input(line string) bool {
	data := strings.TrimFunc(line, isPySpace)
	s.pendMu.Lock()
	pending := s.pending
	s.pending = nil
	s.pendMu.Unlock()
	if pending != nil {
		pending <- data == "y"
		s.print(chatPrompt)
		return true
	}
	switch {
	case data == "!exit":
		return false
	case strings.HasPrefix(data, "!upload "):
		if err := s.startUpload(data[len("!upload "):], "", nil); err != nil {
			s.print(chatPrompt + err.Error() + "\n")
		}
		s.print(chatPrompt)
		return true
	case strings.HasPrefix(data, "!dezip "):
		target := strings.SplitN(data, "!dezip ", 3)[1]
		if err := dezip(s.env.dir, target); err != nil {
			s.print(chatPrompt + err.Error() + "\n")
		}
		s.print(chatPrompt)
		return true
	case len(data) > 1 && data[0] == '!':
		res := runShell(s.ctx, s.env.dir, data[1:])
		s.print(chatPrompt + res + "\n" + chatPrompt)
		return true
	}
	err := s.api.SendMessage(s.ctx, api.SendOptions{MessageType: chatType, DestinationID: s.dest, Data: []byte(data)})
	if err != nil && s.ctx.Err() == nil {
		s.progressOut("aioconn chat: " + err.Error() + "\n")
	}
	s.print(chatPrompt)
	return true
}

// authClient is the connector's AuthClient hook: it asks the user and waits for the next line.
func (s *chatStation) authClient(peername string) bool {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	ch := make(chan bool, 1)
	s.pendMu.Lock()
	s.pending = ch
	s.pendMu.Unlock()
	s.print("Accept client " + peername + " ? y/n\n")
	select {
	case ok := <-ch:
		return ok
	case <-s.ctx.Done():
		s.pendMu.Lock()
		if s.pending == ch {
			s.pending = nil
		}
		s.pendMu.Unlock()
		return false
	}
}

// onMessage is the listener of type any: acknowledge what awaits a response, print the text.
func (s *chatStation) onMessage(m *api.Message) {
	if v, _ := m.Get("await_response"); v.Truthy() {
		rid, _ := m.Get("request_id")
		src, _ := m.Get("source_id")
		var id any
		if n, ok := rid.Int(); ok {
			id = n
		} else if str, ok := rid.Str(); ok {
			id = str
		}
		dst, _ := src.Str()
		if id != nil {
			o := api.SendOptions{MessageType: chatType, Data: append([]byte(nil), m.Data...), ResponseID: id, DestinationID: dst}
			go s.api.SendMessage(s.ctx, o)
		}
	}
	if len(m.Data) > 0 {
		s.print(strings.ToValidUTF8(string(m.Data), "\uFFFD") + "\n" + chatPrompt)
	}
}

// startUpload sends the file or directory typed (a directory as <path>.zip, made unless it
// exists and deleted after the answer when made here). data is the message text ("" in upload
// mode, else "Receiving <path>"). The upload runs in the background; done (if not nil) is
// closed at its end.
func (s *chatStation) startUpload(typed, data string, done chan struct{}) error {
	abs := typed
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(s.env.dir, typed)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("%s does not exist", typed)
	}
	remove := ""
	if fi.IsDir() {
		typed = strings.TrimRight(typed, "/")
		abs = strings.TrimRight(abs, "/")
		if typed == "" {
			typed, abs = "/", "/"
		}
		typed += ".zip"
		abs += ".zip"
		if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) {
			if err := zipDir(abs[:len(abs)-4], abs); err != nil {
				return err
			}
			remove = abs
		}
		if fi, err = os.Stat(abs); err != nil {
			return err
		}
	}
	if s.o.upload == "" {
		data = "Receiving " + typed
	}
	src := typed // the path as typed when the station runs in the process's directory (as Python)
	if wd, _ := os.Getwd(); wd != s.env.dir || filepath.IsAbs(typed) {
		src = abs
	}
	no := false
	o := api.SendOptions{
		MessageType: chatType, DestinationID: s.dest, Data: []byte(data),
		RequestID: rand.IntN(1000) + 1,
		WithFile:  &api.WithFile{SrcPath: src, DstType: chatType, DstName: filepath.Base(typed), Delete: &no},
	}
	s.uploads.Add(1)
	go func() {
		defer s.uploads.Done()
		if done != nil {
			defer close(done)
		}
		p := newUploadProgress(s, filepath.Base(typed), abs, fi.Size())
		_, err := s.api.SendMessageAwaitResponse(s.ctx, o)
		if remove != "" { // before the final line, which then says the upload is wholly done
			os.Remove(remove)
		}
		p.finish(err)
	}()
	return nil
}

// zipDir writes the content of dir (not dir itself) into zipPath, as shutil.make_archive(base,
// 'zip', dir) does: directory entries end with '/', files are deflated, symlinks followed for
// files. It writes a temporary file renamed at the end, so an interrupted zip is never sent.
func zipDir(dir, zipPath string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(zipPath), "."+filepath.Base(zipPath)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := zip.NewWriter(tmp)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, werr error) error {
		if werr != nil {
			return werr
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			h, err := zip.FileInfoHeader(fi)
			if err != nil {
				return err
			}
			h.Name = name + "/"
			_, err = zw.CreateHeader(h)
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		h, err := zip.FileInfoHeader(fi)
		if err != nil {
			return err
		}
		h.Name, h.Method = name, zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		f.Close()
		return err
	})
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), zipPath)
	}
	return err
}

// dezip extracts zip file name (relative to dir) into <name up to the first ".zip">, with
// Python's zipfile member sanitising (empty, "." and ".." components dropped). Errors read as
// Python's.
func dezip(dir, name string) error {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, name)
	}
	target := strings.SplitN(path, ".zip", 2)[0]
	if rel := strings.SplitN(name, ".zip", 2)[0]; rel == "" {
		target = dir
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("[Errno 2] No such file or directory: %s", pyRepr(name))
		case errors.Is(err, zip.ErrFormat):
			return errors.New("File is not a zip file")
		case errors.Is(err, syscall.EISDIR):
			return fmt.Errorf("[Errno 21] Is a directory: %s", pyRepr(name))
		}
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		mname := zipMemberName(f)
		var parts []string
		for _, p := range strings.Split(mname, "/") { // "/" only: a backslash is a name character on POSIX
			if p != "" && p != "." && p != ".." {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 {
			continue
		}
		dst := filepath.Join(append([]string{target}, parts...)...)
		if strings.HasSuffix(mname, "/") {
			if err := os.MkdirAll(dst, 0o777); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
			return err
		}
		if err := extractOne(f, dst); err != nil {
			return zipMemberError(f, mname, err)
		}
	}
	return nil
}

// cp437High is code page 437 from 0x80 to 0xff (zip member names without the UTF-8 flag).
const cp437High = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0"

// zipMemberName is the member name as Python's zipfile reads it: UTF-8 when the header says so,
// else code page 437, cut at the first NUL.
func zipMemberName(f *zip.File) string {
	name := f.Name
	if f.Flags&0x800 == 0 {
		high := []rune(cp437High)
		var b strings.Builder
		for i := 0; i < len(name); i++ {
			if c := name[i]; c < 0x80 {
				b.WriteByte(c)
			} else {
				b.WriteRune(high[c-0x80])
			}
		}
		name = b.String()
	}
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return name
}

// zipMemberError is what extracting member name failed with, as Python's zipfile says it where
// the cause is the archive, naming the member otherwise.
func zipMemberError(f *zip.File, name string, err error) error {
	var pe *fs.PathError
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return fmt.Errorf("Bad CRC-32 for file %s", pyRepr(name))
	case errors.Is(err, zip.ErrAlgorithm):
		names := map[uint16]string{1: "shrink", 2: "reduce", 3: "reduce", 4: "reduce", 5: "reduce", 6: "implode",
			7: "tokenize", 9: "deflate64", 10: "implode", 12: "bzip2", 14: "lzma", 18: "terse", 19: "lz77",
			97: "wavpack", 98: "ppmd"}
		if n, ok := names[f.Method]; ok {
			return fmt.Errorf("compression type %d (%s)", f.Method, n)
		}
		return fmt.Errorf("compression type %d", f.Method)
	case errors.Is(err, zip.ErrFormat):
		return errors.New("Bad magic number for file header")
	case errors.As(err, &pe):
		return err // names the file written
	}
	return fmt.Errorf("%v (file %s)", err, pyRepr(name))
}

func extractOne(f *zip.File, dst string) error {
	r, err := f.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// runShell runs cmd with /bin/sh in dir and returns what the original prints: the stripped
// stdout, or subprocess.CalledProcessError's text. stderr is discarded, stdin is empty.
func runShell(ctx context.Context, dir, cmd string) string {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Dir = dir
	out, err := c.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sig := ws.Signal()
			return fmt.Sprintf("Command '%s' died with <Signals.%s: %d>.", cmd, signalName(sig), int(sig))
		}
		return fmt.Sprintf("Command '%s' returned non-zero exit status %d.", cmd, ee.ExitCode())
	}
	if err != nil {
		return err.Error()
	}
	return strings.TrimFunc(strings.ToValidUTF8(string(out), "\uFFFD"), isPySpace)
}

func signalName(sig syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGABRT: "SIGABRT", syscall.SIGKILL: "SIGKILL", syscall.SIGSEGV: "SIGSEGV", syscall.SIGPIPE: "SIGPIPE",
		syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2"}
	if n, ok := names[sig]; ok {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// interfaceIPv4 is iface_to_ip: the first IPv4 address of interface name, "" if none.
func interfaceIPv4(name string) string {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	addrs, _ := ifi.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

// upIPv4s lists the IPv4 addresses of the interfaces that are up and running, loopback
// excluded (what the original reads from `ip -4 -br addr show` lines marked UP).
func upIPv4s() []string {
	var out []string
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagRunning == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				out = append(out, ipn.IP.String())
			}
		}
	}
	return out
}

// uploadProgress reports one upload on stderr (see the file comment). finish must be called.
type uploadProgress struct {
	s          *chatStation
	name, path string
	size       int64
	start      time.Time
	stop, done chan struct{}
}

func newUploadProgress(s *chatStation, name, path string, size int64) *uploadProgress {
	p := &uploadProgress{s: s, name: name, path: path, size: size, start: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *uploadProgress) run() {
	defer close(p.done)
	period := time.Second
	if p.s.env.tty {
		period = 200 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	var last int64 = -1
	seen := false
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		pos, open := readOffset(p.path)
		switch {
		case open:
			seen = true
		case seen: // the connector closed the file: everything was read
			pos = p.size
		default:
			continue
		}
		if pos == last && !p.s.env.tty {
			continue
		}
		last = pos
		line := p.line(pos, time.Since(p.start))
		if p.s.env.tty {
			p.s.progressOut("\r\x1b[K" + line)
		} else {
			p.s.progressOut(line + "\n")
		}
	}
}

// line renders "upload NAME [#####     ] 50% 1.2 MB/2.4 MB 3.1 MB/s ETA 1s".
func (p *uploadProgress) line(pos int64, el time.Duration) string {
	pct := int64(100)
	if p.size > 0 {
		pct = pos * 100 / p.size
	}
	rate := float64(pos) / el.Seconds()
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.size-pos) / rate * float64(time.Second)).Round(time.Second).String()
	}
	if p.s.env.tty {
		n := int(pct / 5)
		bar := strings.Repeat("#", n) + strings.Repeat(" ", 20-n)
		return fmt.Sprintf("upload %s [%s] %3d%% %s/%s %s/s ETA %s", p.name, bar, pct, humanBytes(pos), humanBytes(p.size), humanBytes(int64(rate)), eta)
	}
	return fmt.Sprintf("upload %s: %d%% %s of %s, %s/s, ETA %s", p.name, pct, humanBytes(pos), humanBytes(p.size), humanBytes(int64(rate)), eta)
}

// finish stops the reporting and writes the final line.
func (p *uploadProgress) finish(err error) {
	close(p.stop)
	<-p.done
	el := time.Since(p.start)
	prefix := ""
	if p.s.env.tty {
		prefix = "\r\x1b[K"
	}
	switch {
	case err == nil:
		p.s.progressOut(fmt.Sprintf("%supload %s: %s sent in %s (%s/s)\n", prefix, p.name, humanBytes(p.size),
			el.Round(time.Millisecond), humanBytes(int64(float64(p.size)/el.Seconds()))))
	case p.s.ctx.Err() != nil:
		p.s.progressOut(fmt.Sprintf("%supload %s: interrupted\n", prefix, p.name))
		return
	default:
		p.s.progressOut(fmt.Sprintf("%supload %s failed: %v\n", prefix, p.name, err))
	}
	if p.s.env.tty && p.s.o.upload == "" {
		p.s.print(chatPrompt)
	}
}

// readOffset returns the file offset of this process's first open descriptor on path (the
// connector reading the file), from /proc/self/fdinfo; open is false when none is open.
func readOffset(path string) (pos int64, open bool) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || l != path {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, ln := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(ln, "pos:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				return n, true
			}
		}
	}
	return 0, false
}

// humanBytes renders n in B, kB, MB or GB (decimal units).
func humanBytes(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1000_000:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + " kB"
	case n < 1000_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', 2, 64) + " GB"
}
