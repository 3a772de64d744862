package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aioconn/aioconn/api"
	"github.com/aioconn/aioconn/config"
)

// toolArgs parses `<config> [--count N] [--interval D]`: the original takes exactly the config
// path; --count (0 = forever) and --interval (default 2s) are aioconn additions for scripts.
func toolArgs(name string, args []string, stdout io.Writer) (path string, count int, interval time.Duration, code int, ok bool) {
	if len(args) == 1 && args[0] == "--help" {
		fmt.Fprintln(stdout, config.UsageLine(name))
		return "", 0, 0, 0, false
	}
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stdout, config.UsageLine(name))
		return "", 0, 0, 1, false
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := fs.Int("count", 0, "")
	iv := fs.Duration("interval", 2*time.Second, "")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stdout, config.UsageLine(name))
		return "", 0, 0, 1, false
	}
	return args[0], *c, *iv, 0, true
}

func newAPI(path string, stderr io.Writer) (*api.API, int) {
	cfg, err := config.LoadAPI(path)
	if err != nil {
		printConfigErrors(stderr, err)
		return nil, 2
	}
	a, err := api.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "aioconn: %v\n", err)
		return nil, 1
	}
	return a, 0
}

// peerLabel is what the original prints for the destination: the client name, or for a client
// the server tuple repr.
func peerLabel(a *api.API, dest string) string {
	if dest != "" {
		return dest
	}
	return a.Config().PeerNameOfServer()
}

// askDestination prompts a server for its remote client as the original does.
func askDestination(a *api.API, stdin io.Reader, stdout io.Writer) (string, error) {
	if !a.Config().IsServer {
		return "", nil
	}
	fmt.Fprint(stdout, "\nPlease type the name of your remote client\n")
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

var stdin io.Reader = os.Stdin

func runTestReceiveMessages(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path, count, _, code, ok := toolArgs("test_receive_messages", args, stdout)
	if !ok {
		return code
	}
	fmt.Fprintln(stdout, "Warning : No other application should be receiving events from this connector")
	a, code := newAPI(path, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	h := func(m *api.Message) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, "RECEIVED MESSAGE %s\n", pyReprJSON(m.Header))
		if len(m.Data) > 0 {
			fmt.Fprintf(stdout, "\tWith data %s\n", strings.ToValidUTF8(string(m.Data), "\uFFFD"))
		}
		if len(m.Binary) > 0 {
			fmt.Fprintf(stdout, "\tWith binary %s\n", pyBytesRepr(m.Binary))
		}
		n++
		if count > 0 && n == count {
			close(done)
		}
	}
	for _, t := range a.Config().RecvMessageTypes {
		if err := a.StartWaitingForMessages(t, h, false); err != nil {
			fmt.Fprintf(stderr, "aioconn: start_waiting_for_messages %s: %v\n", t, err)
		}
	}
	select {
	case <-ctx.Done():
	case <-done:
	}
	for _, t := range a.Config().RecvMessageTypes {
		a.StopWaitingForMessages(t)
	}
	fmt.Fprintln(stdout, "test_receive_messages stopped !")
	return 0
}

func runTestSendMessages(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return sendLoop(ctx, "test_send_messages", false, args, stdout, stderr)
}

func runTestPublishMessages(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return sendLoop(ctx, "test_publish_messages", true, args, stdout, stderr)
}

func sendLoop(ctx context.Context, name string, publish bool, args []string, stdout, stderr io.Writer) int {
	path, count, interval, code, ok := toolArgs(name, args, stdout)
	if !ok {
		return code
	}
	a, code := newAPI(path, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	dest, err := askDestination(a, stdin, stdout)
	if err != nil {
		return 1
	}
	verb := "SENDING"
	if publish {
		verb = "PUBLISHING"
	}
	for i := 1; count == 0 || i <= count; i++ {
		for _, t := range a.Config().SendMessageTypes {
			if publish && t == "_pubsub" {
				continue
			}
			fmt.Fprintf(stdout, "%s MESSAGE to peer %s of type %s and index %d\n", verb, peerLabel(a, dest), t, i)
			o := api.SendOptions{MessageType: t, DestinationID: dest, RequestID: i,
				Data: []byte(`"TEST_MESSAGE ` + strings.Repeat(strconv.Itoa(i), 5) + `"`)}
			if publish {
				a.PublishMessage(ctx, o)
			} else {
				a.SendMessage(ctx, o)
			}
		}
		if count > 0 && i == count {
			break
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "%s stopped !\n", name)
			return 0
		case <-time.After(interval):
		}
	}
	fmt.Fprintf(stdout, "%s stopped !\n", name)
	return 0
}

func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path, count, interval, code, ok := toolArgs("ping", args, stdout)
	if !ok {
		return code
	}
	a, code := newAPI(path, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	dest, err := askDestination(a, stdin, stdout)
	if err != nil {
		return 1
	}
	for i := 1; count == 0 || i <= count; i++ {
		fmt.Fprintf(stdout, "\nSENDING PING to peer %s with index %d\n", peerLabel(a, dest), i)
		m, err := a.SendMessageAwaitResponse(ctx, api.SendOptions{MessageType: "_ping", DestinationID: dest,
			RequestID: i, Data: []byte("PING " + strings.Repeat(strconv.Itoa(i), 5))})
		if err == nil && m != nil {
			fmt.Fprintf(stdout, "RECEIVING REPLY from peer %s with data %s\n", peerLabel(a, dest), pyBytesRepr(m.Data))
		}
		if ctx.Err() != nil {
			break
		}
		if count > 0 && i == count {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintln(stdout, "ping stopped !")
	return 0
}
