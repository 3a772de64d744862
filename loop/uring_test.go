package loop

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newTestSyncer(t *testing.T, e *Engine) *Syncer {
	t.Helper()
	s, err := e.NewSyncer()
	if errors.Is(err, ErrSyncUnavailable) {
		t.Skipf("io_uring not available here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func tempFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), name), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Concurrent writers, each appending records into its own region of one file, more of them than
// there are slots (some get ErrSyncBusy and write themselves): every byte lands where it was
// aimed, and the loop's completions wake every waiter.
func TestSyncerWriteSync(t *testing.T) {
	e := startEngine(t)
	s := newTestSyncer(t, e)
	f := tempFile(t, "log")
	const writers, each, rec = 40, 30, 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy := 0
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				b := bytes.Repeat([]byte{byte('a' + w%26)}, rec)
				copy(b, fmt.Sprintf("%02d/%02d", w, i))
				off := int64((w*each + i) * rec)
				n, err := s.WriteSync(int(f.Fd()), b, off)
				if errors.Is(err, ErrSyncBusy) {
					mu.Lock()
					busy++
					mu.Unlock()
					n, err = f.WriteAt(b, off)
				}
				if err != nil || n != rec {
					t.Errorf("writer %d record %d: %d, %v", w, i, n, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each*rec {
		t.Fatalf("file has %d bytes, want %d", len(got), writers*each*rec)
	}
	for w := 0; w < writers; w++ {
		for i := 0; i < each; i++ {
			r := got[(w*each+i)*rec:][:rec]
			if want := fmt.Sprintf("%02d/%02d", w, i); string(r[:5]) != want || r[rec-1] != byte('a'+w%26) {
				t.Fatalf("record %d/%d reads %q", w, i, r[:8])
			}
		}
	}
	t.Logf("%d of %d writes found every slot busy", busy, writers*each)
}

// A failing write is reported with its errno, and the Syncer goes on serving.
func TestSyncerWriteError(t *testing.T) {
	e := startEngine(t)
	s := newTestSyncer(t, e)
	f := tempFile(t, "ro")
	ro, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := s.WriteSync(int(ro.Fd()), []byte("x"), 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("write on a read-only descriptor: %v, want EBADF", err)
	}
	if n, err := s.WriteSync(int(f.Fd()), []byte("hello"), 0); n != 5 || err != nil {
		t.Fatalf("next write: %d, %v", n, err)
	}
}

// Once the engine is gone, waiters reap their completions themselves; after Close the Syncer
// says busy without submitting.
func TestSyncerAfterEngineStop(t *testing.T) {
	dir := t.TempDir()
	e, err := Start([]Listener{{Addr: "unix://" + filepath.Join(dir, "s"), Handler: nop{}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.NewSyncer()
	if errors.Is(err, ErrSyncUnavailable) {
		e.Stop(5 * time.Second)
		t.Skipf("io_uring not available here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	<-s.dead // OnClose of the notification socket ran
	f := tempFile(t, "after")
	if n, err := s.WriteSync(int(f.Fd()), []byte("still"), 0); n != 5 || err != nil {
		t.Fatalf("write after the engine stopped: %d, %v", n, err)
	}
	s.Close()
	if _, err := s.WriteSync(int(f.Fd()), []byte("x"), 0); !errors.Is(err, ErrSyncBusy) {
		t.Fatalf("write after Close: %v, want ErrSyncBusy", err)
	}
	s.Close()
}
