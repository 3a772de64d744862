package api

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/config"
)

// repoRoot walks up from the working directory to the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	t.Skip("go.mod not found above the working directory")
	return ""
}

func wireDir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(repoRoot(t), "..", "shared", "testdata", "wire")
	if _, err := os.Stat(d); err != nil {
		t.Skipf("golden vectors not available: %v", err)
	}
	return d
}

// vec reads a vector of a session by its number prefix ("002") or by its path under the
// session directory ("streams/x.bin").
func vec(t testing.TB, session, name string) []byte {
	t.Helper()
	dir := filepath.Join(wireDir(t), session)
	if !strings.Contains(name, "/") {
		m, _ := filepath.Glob(filepath.Join(dir, name+"_*.bin"))
		if len(m) != 1 {
			t.Fatalf("vector %s/%s: %d matches", session, name, len(m))
		}
		name = filepath.Base(m[0])
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// shortDir returns a short temp dir (unix socket paths must stay under 104 chars).
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

const golden10673 = `"server_sockaddr": ["127.0.0.1", 10673]`

func apiConfig(t testing.TB, dir, extra string) *config.APIOptions {
	t.Helper()
	js := `{"connector_files_dirpath": "` + dir + `", "send_message_types": ["any"], "recv_message_types": ["any"]`
	if extra != "" {
		js += ", " + extra
	}
	js += "}"
	cfg, err := config.ParseAPI([]byte(js), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientCfg(t testing.TB, dir, extra string) *config.APIOptions {
	e := `"is_server": false, "client_name": "client1", ` + golden10673
	if extra != "" {
		e += ", " + extra
	}
	return apiConfig(t, dir, e)
}

func serverCfg(t testing.TB, dir, extra string) *config.APIOptions {
	e := `"is_server": true, ` + golden10673
	if extra != "" {
		e += ", " + extra
	}
	return apiConfig(t, dir, e)
}

func newAPI(t testing.TB, cfg *config.APIOptions) *API {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// fakeConnector listens on a socket path and runs serve for every accepted connection.
type fakeConnector struct {
	ln   *net.UnixListener
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func listenFake(t testing.TB, path string, serve func(c *net.UnixConn) error) *fakeConnector {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeConnector{ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				if err := serve(c); err != nil {
					f.mu.Lock()
					f.errs = append(f.errs, err)
					f.mu.Unlock()
				}
			}()
		}
	}()
	t.Cleanup(func() {
		f.ln.Close()
		f.wg.Wait()
		for _, err := range f.errs {
			t.Error(err)
		}
	})
	return f
}

// recordAll returns a serve function that sends every connection's complete byte stream
// (read until EOF) on out.
func recordAll(out chan<- []byte) func(c *net.UnixConn) error {
	return func(c *net.UnixConn) error {
		b, err := io.ReadAll(c)
		out <- b
		return err
	}
}

// readCmd reads one u32-prefixed record.
func readRecord(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 4+binary.LittleEndian.Uint32(h[:]))
	copy(b, h[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

// replyWith returns a serve function that reads one frame, sends it on got and writes reply.
func replyWith(got chan<- []byte, reply []byte) func(c *net.UnixConn) error {
	return func(c *net.UnixConn) error {
		b, err := readRecord(c)
		if err != nil {
			return fmt.Errorf("fake: %w", err)
		}
		got <- b
		if reply != nil {
			_, err = c.Write(reply)
		}
		return err
	}
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timeout waiting for the fake connector")
	}
	var z T
	return z
}

func mustEqualBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// splitFrames splits a stream of u32-prefixed records.
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatal("short stream")
		}
		n := 4 + int(binary.LittleEndian.Uint32(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func parseVec(t testing.TB, b []byte) codec.Frame {
	t.Helper()
	f, err := codec.ParseBody(b[4:])
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var _ = errors.Is
