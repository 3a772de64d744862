package benchmarks

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// FileRes is the outcome of a file transfer.
type FileRes struct {
	Bytes    int64   `json:"bytes"`
	Chunks   int     `json:"chunks"`   // with_file messages (1 = not chunked)
	Seconds  float64 `json:"seconds"`  // first send to the delivery of the last message (file on disk)
	MBps     float64 `json:"mb_per_s"` // Bytes / Seconds / 1e6
	Verified bool    `json:"verified"` // received file has the source's size and SHA-256
	SHA256   string  `json:"sha256"`   // of the source
	Received string  `json:"-"`        // path of the received file
	Note     string  `json:"note,omitempty"`
}

const fileDstType = "bench"

// runFile sends one file of o.FileSize bytes (or its chunks, o.FileChunk) from a client
// application through the client connector, TCP and the server connector to a file on the
// server's disk; the phase ends when the server application gets the (last) message, which the
// connector delivers once the file is stored. The received file's SHA-256 is then compared
// with the source's.
func runFile(ctx context.Context, e *env, o *Options, res *Result) error {
	dir := o.FileDir
	if dir == "" {
		dir = e.dir
	}
	work, err := os.MkdirTemp(dir, "f")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	recvDir := filepath.Join(work, "recv")
	srcDir := filepath.Join(work, "src")
	if err := os.MkdirAll(recvDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return err
	}
	chunks := 1
	if o.FileChunk > 0 && o.FileSize > o.FileChunk {
		chunks = int((o.FileSize + o.FileChunk - 1) / o.FileChunk)
	}
	// space: source + received (+ received chunks before reassembly)
	need := 2 * o.FileSize
	if chunks > 1 {
		need += o.FileSize
	}
	if free := freeBytes(work); free >= 0 && free < need+1<<30 {
		return fmt.Errorf("%w: file mode needs %d bytes free in %s (source, copy, chunks) plus 1 GiB; %d free", ErrBadOptions, need, work, free)
	}
	recvTarget := recvDir
	if e.ext != nil {
		// the running server decides where files go: use its first dst_type without a template
		recvTarget = ""
		for t, fr := range e.ext.full.FileRecvConfig {
			if fr.TargetDirectory != "" && !strings.Contains(fr.TargetDirectory, "{") {
				recvTarget = fr.TargetDirectory
				res.Notes = append(res.Notes, "file: dst_type "+t+" of the running server, target "+fr.TargetDirectory)
				e.fileType = t
				break
			}
		}
		if recvTarget == "" {
			return fmt.Errorf("%w: the --config server has no file_recv_config entry with a plain target_directory", ErrBadOptions)
		}
	}
	dstType := fileDstType
	if e.fileType != "" {
		dstType = e.fileType
	}
	// the source (or its chunk files), hashed as it is written
	h := sha256.New()
	var srcs []string
	t0 := time.Now()
	left := o.FileSize
	for i := 1; i <= chunks; i++ {
		n := left
		if chunks > 1 {
			n = min(left, o.FileChunk)
		}
		p := filepath.Join(srcDir, "src_"+strconv.Itoa(i))
		if err := writeRandomFile(p, n, o.FileSize-left, h); err != nil {
			return err
		}
		left -= n
		srcs = append(srcs, p)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	res.Notes = append(res.Notes, fmt.Sprintf("file: source written and hashed in %.2fs (not counted)", time.Since(t0).Seconds()))

	maxUp := strconv.FormatInt(o.FileSize+1<<20, 10)
	srv, err := e.startServer(ctx, map[string]any{
		"file_recv_config":     map[string]any{fileDstType: map[string]any{"target_directory": recvDir}},
		"max_size_file_upload": jsonNumber(maxUp)}, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	cnt := newCounter(1, true)
	cnt.notify = make(chan struct{}, 1)
	oc, err := e.startOneClient(ctx, srv, clk, cnt, "f", "client", map[string]any{"max_size_file_upload": jsonNumber(maxUp)}, o)
	if err != nil {
		return err
	}
	defer oc.close()
	dstName := "bench.bin"
	var out []byte
	for i, src := range srcs {
		wf := codec.NewObj(nil)
		wf.Str("src_path", src)
		wf.Str("dst_type", dstType)
		name := dstName
		if chunks > 1 {
			base := dstName + "__aioconnectors_chunk"
			name = base + "_" + strconv.Itoa(i+1) + "_" + strconv.Itoa(chunks)
			wf.Raw("chunked", []byte(`["`+base+`", `+strconv.Itoa(i+1)+`, `+strconv.Itoa(chunks)+`]`))
		}
		wf.Str("dst_name", name)
		wf.Raw("delete", []byte("false"))
		js := codec.NewObj(nil)
		js.Str("message_type", "any")
		js.Str("source_id", oc.p.name)
		js.Str("destination_id", e.server)
		js.Raw("with_file", wf.End())
		t := newTmpl(string(js.End()), o.Size)
		out = t.add(out, 0, uint64(i), 0)
	}
	e.markCPU()
	cpuSelf0 := selfCPU()
	// timestamps: each message carries the time of the (single) write
	sendStart := clk.now()
	stop := make(chan struct{})
	go progress(o, stop, func() string {
		return fmt.Sprintf("file: %.1fs, %d of %d messages delivered", time.Duration(clk.now()-sendStart).Seconds(), cnt.unique.Load(), chunks)
	})
	for off, i := 0, 0; i < len(srcs); i++ {
		sz, _ := codec.FrameSize(out[off:], 1<<26)
		putPayload(out[off+sz-o.Size:off+sz], 0, uint64(i), sendStart)
		off += sz
	}
	if _, err := oc.conn.Write(out); err != nil {
		close(stop)
		return err
	}
	sendEnd := clk.now()
	// a file moves at well over 10 MB/s: allow size/10 MB/s + 30 s, and o.Drain without progress
	// does not apply (one message may take long)
	deadline := time.Now().Add(30*time.Second + time.Duration(o.FileSize/10e6)*time.Second)
	for cnt.unique.Load() < int64(chunks) && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-cnt.notify:
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	close(stop)
	ph := Phase{Name: "file"}
	finish(&ph, clk, sendStart, sendEnd, cnt, []int64{int64(chunks)}, o.Size, e, cpuSelf0)
	fr := &FileRes{Bytes: o.FileSize, Chunks: chunks, SHA256: sum, Received: filepath.Join(recvTarget, dstName)}
	if ph.Latency != nil {
		fr.Seconds = ph.Latency.Max / 1e6
	}
	if fr.Seconds > 0 {
		fr.MBps = float64(o.FileSize) / fr.Seconds / 1e6
		ph.MBps = fr.MBps
	}
	ph.File = fr
	res.Phases = append(res.Phases, ph)
	if ph.Delivered < int64(chunks) {
		return fmt.Errorf("benchmarks: file: %d of %d messages delivered", ph.Delivered, chunks)
	}
	// reassembly runs before the last chunk's delivery; allow a moment anyway
	waitUntil(10*time.Second, ctx.Done(), func() bool {
		st, err := os.Stat(fr.Received)
		return err == nil && st.Size() == o.FileSize
	})
	got, n, err := hashFile(fr.Received)
	switch {
	case err != nil:
		fr.Note = err.Error()
	case n != o.FileSize:
		fr.Note = fmt.Sprintf("received %d bytes, sent %d", n, o.FileSize)
	case got != sum:
		fr.Note = "SHA-256 differs"
	default:
		fr.Verified = true
	}
	os.Remove(fr.Received)
	if !fr.Verified {
		return fmt.Errorf("benchmarks: file not verified: %s", fr.Note)
	}
	res.Notes = append(res.Notes, "file: seconds = app write of the with_file message(s) to the server app's receipt of the last one (the server "+
		"connector delivers it once the file is stored); the received file's SHA-256 was checked afterwards")
	return ctx.Err()
}

// jsonNumber is a number written as is into a config.
type jsonNumber string

func (n jsonNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

// writeRandomFile writes n pseudo-random bytes (a 4 MiB random block, each 64 KiB piece stamped
// with its absolute offset so that misplaced bytes change the hash) to path, feeding h.
func writeRandomFile(path string, n, base int64, h io.Writer) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	block := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(uint64(base), 7))
	for i := 0; i+8 <= len(block); i += 8 {
		binary.LittleEndian.PutUint64(block[i:], r.Uint64())
	}
	for off := int64(0); off < n; {
		k := int(min(int64(len(block)), n-off))
		for p := 0; p+8 <= k; p += 64 << 10 {
			binary.LittleEndian.PutUint64(block[p:], uint64(base+off+int64(p)))
		}
		h.Write(block[:k])
		if _, err := f.Write(block[:k]); err != nil {
			return err
		}
		off += int64(k)
	}
	// on disk before the transfer, so that the run does not pay for this file's writeback
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 4<<20))
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// freeBytes is the space available to unprivileged users on dir's filesystem (-1 unknown).
func freeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}
