package uds

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ac")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// roundTrip dials path and checks that l accepts the connection.
func roundTrip(t *testing.T, l *net.UnixListener, path string) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	a.Close()
}

func TestListenReuse(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "s")

	// Fresh path: both flags bind.
	l, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, l, path)

	// Live listener, reuse false: refused, naming the path.
	_, err = Listen(path, false)
	var pe *PathError
	if !errors.Is(err, ErrPathExists) || !errors.As(err, &pe) || pe.Path != path {
		t.Fatalf("live, no reuse: %v", err)
	}
	if err.Error() != "uds: "+path+" already exists" {
		t.Errorf("text %q", err.Error())
	}
	// Live listener, reuse true: hijacked, the new listener gets the connections.
	l2, err := Listen(path, true)
	if err != nil {
		t.Fatalf("live, reuse: %v", err)
	}
	roundTrip(t, l2, path)
	l.Close() // does not unlink
	if !Exists(path) {
		t.Fatal("Close of the old listener removed the path")
	}
	l2.Close()

	// Stale socket (no listener): refused without reuse, rebound with reuse.
	if !Exists(path) {
		t.Fatal("stale socket missing")
	}
	if _, err := Listen(path, false); !errors.Is(err, ErrPathExists) {
		t.Fatalf("stale, no reuse: %v", err)
	}
	if err := PrepareListen(path, false); !errors.Is(err, ErrPathExists) {
		t.Fatalf("PrepareListen stale, no reuse: %v", err)
	}
	l3, err := Listen(path, true)
	if err != nil {
		t.Fatalf("stale, reuse: %v", err)
	}
	roundTrip(t, l3, path)
	l3.Close()

	// PrepareListen with reuse unlinks the stale socket and leaves the bind to the caller.
	if err := PrepareListen(path, true); err != nil {
		t.Fatal(err)
	}
	if Exists(path) {
		t.Fatal("PrepareListen(reuse) left the stale socket")
	}
	if err := PrepareListen(path, false); err != nil {
		t.Fatalf("missing path: %v", err)
	}

	// A regular file is never unlinked: reuse gives a bind error, the file survives.
	reg := filepath.Join(dir, "f")
	if err := os.WriteFile(reg, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(reg, true); err == nil {
		t.Fatal("bind over a regular file succeeded")
	}
	if _, err := os.Stat(reg); err != nil {
		t.Fatal("regular file removed")
	}
}

func TestRemoveExists(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "s")
	if Exists(path) {
		t.Fatal("exists before creation")
	}
	if err := Remove(path); err != nil {
		t.Fatalf("missing: %v", err)
	}
	l, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !Exists(path) {
		t.Fatal("not found after Listen")
	}
	if err := Remove(path); err != nil || Exists(path) {
		t.Fatalf("remove socket: %v", err)
	}
	reg := filepath.Join(dir, "f")
	os.WriteFile(reg, nil, 0o600)
	if err := Remove(reg); !errors.Is(err, ErrNotSocket) {
		t.Fatalf("regular file: %v", err)
	}
	// A dangling symlink does not "exist" (Python os.path.exists follows links).
	link := filepath.Join(dir, "l")
	os.Symlink(filepath.Join(dir, "nothing"), link)
	if Exists(link) {
		t.Error("dangling symlink exists")
	}
}

func TestChownNobody(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "s")
	l, err := Listen(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	err = ChownNobody(path)
	fi, serr := os.Lstat(path)
	if serr != nil {
		t.Fatal(serr)
	}
	if os.Geteuid() != 0 {
		if err == nil {
			t.Fatal("chown to nobody succeeded as non-root")
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("chmod not skipped after a failed chown: %v", fi.Mode())
		}
		return
	}
	if errors.Is(err, ErrNoNobody) {
		t.Skip("no nobody user on this host")
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o770 || fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("mode %v, want socket 0770", fi.Mode())
	}
	u, _ := user.Lookup("nobody")
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && u != nil && strconv.Itoa(int(st.Uid)) != u.Uid {
		t.Errorf("owner uid %d, want nobody (%s)", st.Uid, u.Uid)
	}
}

func BenchmarkExists(b *testing.B) {
	d, _ := os.MkdirTemp("", "ac")
	defer os.RemoveAll(d)
	path := filepath.Join(d, "s")
	l, err := Listen(path, false)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	for b.Loop() {
		if !Exists(path) {
			b.Fatal("missing")
		}
	}
}
