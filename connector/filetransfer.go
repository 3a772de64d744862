package connector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aioconn/aioconn/codec"
	"github.com/aioconn/aioconn/loop"
	"github.com/valyala/bytebufferpool"
)

// File transfer (PEER-PROTOCOL §9): a file rides in the binary section of one frame. Both sides
// stream it: the sender's reader goroutine feeds the file to the link in fileChunk pieces through
// a bounded channel; the receiver hands the file bytes to a writer goroutine through another
// bounded channel, so neither side holds more than a few chunks of a file in memory and no disk
// I/O runs on an event loop. While a file frame is in flight on a link, other frames on that link
// wait (frames cannot interleave).

const (
	fileChunk    = 256 << 10
	fileChanCap  = 8         // chunks in flight per transfer (2 MiB)
	rxStreamMin  = 1 << 20   // frames above this are streamed when they carry a file
	rxHeaderMax  = 4 << 20   // JSON + data of a streamed frame must fit in this
	maxFileFrame = 1<<32 - 1 // a frame can carry at most a 4 GiB-1 body
	rxBlockAt    = 2 << 20   // buffered input above which a file's link waits for its writer
	rxBlockWait  = 50 * time.Millisecond
	rxCloseWait  = 2 * time.Second // at most, for a file's writer when its link closes (advanceRx)
	// fileOutboundLimit is the unsent output above which a file's sender stops feeding the link.
	fileOutboundLimit = 512 << 10
)

var errFileWait = errors.New("connector: waiting for a file transfer")

// ---------------------------------------------------------------- sender

// fileSend is one outgoing with_file message being streamed. The reader goroutine owns the file;
// the link's loop takes the pieces from chunks.
type fileSend struct {
	chunks chan *bytebufferpool.ByteBuffer // closed by the reader at the end
	quit   chan struct{}                   // closed by the link when it goes away
	ack    uint32                          // transport_id to wait for after the last byte, 0 none
	failed atomic.Bool                     // reading failed after the header went out: the link must close
}

// startFileSend launches the reader of a queued with_file frame (m owns the frame). Loop-owned.
func (p *peer) startFileSend(m qmsg) {
	cn := p.cn
	fs := &fileSend{chunks: make(chan *bytebufferpool.ByteBuffer, fileChanCap), quit: make(chan struct{})}
	if m.ack {
		p.transport++
		if p.transport > 100000 {
			p.transport = 1
		}
		fs.ack = p.transport
	}
	p.fsend = fs
	conn := p.conn
	go func() {
		defer func() {
			close(fs.chunks)
			conn.Wake() // the link learns the end only from the closed channel
		}()
		defer bytebufferpool.Put(m.b)
		if err := cn.streamFile(m.b.B, fs, conn); err != nil {
			cn.log.Errorf("%s file transfer to %s failed: %v", cn.sourceID, p.name, err)
		}
	}()
}

// put hands one piece to the link, waiting while the channel is full. false: the link is gone.
func (fs *fileSend) put(b *bytebufferpool.ByteBuffer, conn *loop.Conn) bool {
	select {
	case fs.chunks <- b:
		conn.Wake()
		return true
	case <-fs.quit:
		bytebufferpool.Put(b)
		return false
	}
}

// streamFile builds the frame of §9.1 from the queued frame (JSON, data, application binary)
// and the file, and feeds it to the link. Runs on the reader goroutine.
func (cn *Connector) streamFile(frame []byte, fs *fileSend, conn *loop.Conn) error {
	var h codec.Header
	f, err := codec.ParseBodyHeader(frame[codec.LenPrefix:], &h)
	if err != nil {
		return err
	}
	wf := h.WithFile.Raw
	srcV, _ := codec.Lookup(wf, "src_path")
	src, _ := srcV.Str()
	delV, _ := codec.Lookup(wf, "delete")
	del := !delV.Present() || delV.Truthy() // absent means delete, as in Python
	js := f.JSON
	var file *os.File
	var size int64
	fileErr := ""
	file, err = os.Open(src)
	if err == nil {
		var st os.FileInfo
		if st, err = file.Stat(); err == nil && st.IsDir() {
			err = &os.PathError{Op: "open", Path: src, Err: syscall.EISDIR}
		} else if err == nil {
			size = st.Size()
		}
	}
	limit := cn.cfg.MaxSizeFileUploadSend
	switch {
	case err != nil:
		fileErr = pyOSError(err, src)
	case size > limit || size+int64(len(frame)) > maxFileFrame:
		fileErr = cn.sourceID + " cannot send too large file of size " + strconv.FormatInt(size, 10)
	}
	if fileErr != "" {
		if file != nil {
			file.Close()
			file = nil
		}
		size = 0
		nwf, err := codec.SetKey(nil, wf, "file_error", codec.AppendPyString(nil, fileErr))
		if err != nil {
			return err
		}
		if js, err = codec.SetKey(nil, js, "with_file", nwf); err != nil {
			return err
		}
		cn.log.Warnf("%s with_file: %s", cn.sourceID, fileErr)
	} else if size > 0 {
		appBin := f.HasBinary && len(f.Binary) > 0
		if appBin {
			nwf, err := codec.SetKey(nil, wf, "binary_offset", strconv.AppendInt(nil, int64(len(f.Binary)), 10))
			if err != nil {
				return err
			}
			if js, err = codec.SetKey(nil, js, "with_file", nwf); err != nil {
				return err
			}
		} else if js, err = codec.SetKey(nil, js, "with_binary", []byte("true")); err != nil {
			return err
		}
	}
	if fs.ack != 0 {
		if js, err = codec.SetKey(nil, js, "transport_id", strconv.AppendUint(nil, uint64(fs.ack), 10)); err != nil {
			return err
		}
	}
	// Header piece: everything up to the file bytes.
	withBinary := size > 0 || (f.HasBinary && len(f.Binary) > 0)
	binLen := int64(len(f.Binary)) + size
	if !withBinary {
		binLen = 0
	}
	total := int64(2+len(js)+4+len(f.Data)) + binLen
	if withBinary {
		total += 4
	}
	hb := bytebufferpool.Get()
	var u [4]byte
	binary.LittleEndian.PutUint32(u[:], uint32(total))
	hb.B = append(hb.B[:0], u[:]...)
	hb.B = append(hb.B, byte(len(js)), byte(len(js)>>8))
	hb.B = append(hb.B, js...)
	binary.LittleEndian.PutUint32(u[:], uint32(len(f.Data)))
	hb.B = append(append(hb.B, u[:]...), f.Data...)
	if withBinary {
		binary.LittleEndian.PutUint32(u[:], uint32(binLen))
		hb.B = append(append(hb.B, u[:]...), f.Binary...)
	}
	if !fs.put(hb, conn) {
		if file != nil {
			file.Close()
		}
		return nil
	}
	if file != nil {
		defer file.Close()
		left := size
		for left > 0 {
			b := bytebufferpool.Get()
			n := int64(fileChunk)
			if left < n {
				n = left
			}
			if int64(cap(b.B)) < n {
				b.B = make([]byte, n)
			}
			b.B = b.B[:n]
			if _, err := io.ReadFull(file, b.B); err != nil {
				bytebufferpool.Put(b)
				fs.failed.Store(true) // the frame is promised: the link must be closed
				conn.Wake()
				return fmt.Errorf("reading %s: %w", src, err)
			}
			left -= n
			if !fs.put(b, conn) {
				return nil
			}
		}
	}
	if del && src != "" {
		if err := os.Remove(src); err != nil && !errors.Is(err, fs2ErrNotExist) {
			cn.log.Warnf("%s could not delete %s : %v", cn.sourceID, src, err)
		}
	}
	return nil
}

var fs2ErrNotExist = fs.ErrNotExist

// pumpFile moves ready pieces of the current file into the write batch. It reports whether the
// transfer is complete. Loop-owned.
func (p *peer) pumpFile() (bool, error) {
	fsend := p.fsend
	for {
		if fsend.failed.Load() {
			return false, fmt.Errorf("connector: file source failed during the transfer to %s", p.name)
		}
		if p.conn.OutboundBuffered() > fileOutboundLimit { // files stay in the kernel's socket buffer, not ours
			p.scheduleRewake()
			return false, nil
		}
		select {
		case b, ok := <-fsend.chunks:
			if !ok {
				p.fsend = nil
				p.out = append(p.out, p.ctrl...) // control frames held back during the file
				p.ctrl = p.ctrl[:0]
				if p.zOutAfterFile {
					if err := p.zClientSwitch(); err != nil {
						return false, err
					}
				}
				if fsend.ack != 0 {
					p.ackWait = fsend.ack
					p.armAckTimer()
				}
				if p.cn.cfg.DebugMsgCounts {
					p.cn.stats.queueSent.Add(1)
				}
				return true, nil
			}
			p.out = append(p.out, b.B...)
			bytebufferpool.Put(b)
			if len(p.out) >= sendBatchBytes {
				p.flush()
			}
		default:
			return false, nil // the reader wakes the link when it has more
		}
	}
}

// pyOSError renders an error like Python's str(OSError): "[Errno 2] No such file or directory: '/x'".
func pyOSError(err error, path string) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if len(msg) > 0 {
			msg = string(msg[0]-32) + msg[1:]
			if msg[0] < 'A' || msg[0] > 'Z' {
				msg = errno.Error()
			}
		}
		return "[Errno " + strconv.Itoa(int(errno)) + "] " + msg + ": " + string(codec.AppendPyReprStr(nil, path))
	}
	return err.Error()
}

// ---------------------------------------------------------------- receiver

// fileRx is an incoming with_file frame whose file bytes are being written. The message is
// delivered (steps 9-10 of the receive pipeline) once the writer is done.
type fileRx struct {
	mt       []byte
	json     []byte // delivered JSON (transport_id already removed)
	data     []byte
	app      []byte // the application's part of the binary
	appNeed  int    // application binary bytes still to read from the link
	fileNeed int64  // file bytes still to read from the link
	w        *fileWriter
	waiting  bool
	discard  bool // the whole frame is dropped (filtered before the file step)
}

// fileWriter writes one received file on its own goroutine (§9.2: target directory, containment,
// override_existing, size limit, owner, chunk reassembly); it never writes outside the target
// directory and reports refusals in the log only, as Python does.
type fileWriter struct {
	in     chan *bytebufferpool.ByteBuffer // pooled pieces of the file; the writer returns them
	space  chan struct{}                   // signalled after each chunk written
	done   chan struct{}
	target string      // the file written (set before done is closed; "" when refused)
	abort  atomic.Bool // the link was lost mid-file: discard the partial file
}

// cancel aborts a transfer whose link is gone. Loop-owned (the link's last call).
func (rx *fileRx) cancel() {
	if rx.w != nil && !rx.waiting {
		rx.w.abort.Store(true)
		close(rx.w.in)
		rx.waiting = true
	}
}

func (w *fileWriter) full() bool { return len(w.in) == cap(w.in) }

func (w *fileWriter) finished() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// startFile begins step 8 for a frame that passed the filters. For a fully buffered frame
// (stream < 0) the file bytes are in f.Binary; otherwise stream bytes of binary follow on the link.
func (p *peer) startFile(mt []byte, h *codec.Header, js []byte, f codec.Frame, stream int64) error {
	cn := p.cn
	off := 0
	if v, err := codec.Lookup(h.WithFile.Raw, "binary_offset"); err == nil && v.Present() {
		if n, ok := v.Int(); ok && n > 0 {
			off = int(n)
		}
	}
	rx := &fileRx{mt: append([]byte(nil), mt...), json: append([]byte(nil), js...), data: append([]byte(nil), f.Data...)}
	var fileLen int64
	if stream < 0 {
		bin := f.Binary
		if !f.HasBinary {
			bin = nil
		}
		if off > len(bin) {
			off = len(bin)
		}
		rx.app = append([]byte(nil), bin[:off]...)
		fileLen = int64(len(bin) - off)
	} else {
		if int64(off) > stream {
			off = int(stream)
		}
		rx.appNeed = off
		fileLen = stream - int64(off)
		rx.fileNeed = fileLen
	}
	rx.w = cn.newFileWriter(p, rx.json, fileLen)
	if stream < 0 && fileLen > 0 {
		b := bytebufferpool.Get()
		b.B = append(b.B[:0], f.Binary[off:]...)
		rx.w.in <- b
	}
	p.rx = rx
	if stream < 0 {
		close(rx.w.in)
		rx.waiting = true
		return errFileWait
	}
	return nil
}

// advanceRx consumes link bytes of the current file frame and delivers it when done. It
// reports whether the frame is finished (p.rx cleared). Loop-owned.
func (p *peer) advanceRx(c *loop.Conn) (bool, error) {
	rx := p.rx
	for !rx.waiting {
		n := c.InboundBuffered()
		if n == 0 {
			return false, nil
		}
		switch {
		case rx.appNeed > 0:
			k := min(n, rx.appNeed)
			b, _ := c.Peek(k)
			rx.app = append(rx.app, b...)
			c.Discard(k)
			rx.appNeed -= k
		case rx.fileNeed > 0:
			k := int(min(int64(n), rx.fileNeed, fileChunk))
			if rx.w != nil {
				if rx.w.full() {
					// gnet cannot stop reading a socket: while the disk is behind, its input
					// piles up in memory. Past rxBlockAt buffered bytes the loop waits for the
					// writer (bounded waits): disk speed becomes the link's backpressure, as in
					// Python, which writes files on its loop (TLS and compressed links alike:
					// Held counts their input before and after decoding).
					if c.Held() < rxBlockAt && !c.Closing() {
						return false, nil // the writer wakes the link
					}
					select {
					case <-rx.w.space:
					case <-rx.w.done:
					case <-time.After(rxBlockWait):
					}
					continue
				}
				b, _ := c.Peek(k)
				pb := bytebufferpool.Get()
				pb.B = append(pb.B[:0], b...)
				rx.w.in <- pb
			}
			c.Discard(k)
			rx.fileNeed -= int64(k)
		}
		if rx.appNeed == 0 && rx.fileNeed == 0 {
			if rx.w != nil {
				close(rx.w.in)
			}
			rx.waiting = true
		}
	}
	if rx.w != nil && !rx.w.finished() {
		if !c.Closing() {
			return false, nil // the writer wakes the link
		}
		// the peer closed after the whole file came: the link cannot be woken any more, so its
		// last call waits (bounded) for the writer and delivers the message
		select {
		case <-rx.w.done:
		case <-time.After(rxCloseWait):
			return false, nil
		}
	}
	p.rx = nil
	if rx.discard {
		return true, nil
	}
	js := rx.json
	if len(rx.app) == 0 {
		var err error
		if js, err = codec.DeleteKey(nil, js, "with_binary"); err != nil {
			return true, nil
		}
	}
	// A broker re-sends a received file from where it stored it (PEER-PROTOCOL §7.4).
	if p.cn.cfg.PubsubCentralBroker && string(rx.mt) == "_pubsub" && rx.w != nil && rx.w.target != "" {
		if wf, err := codec.Lookup(js, "with_file"); err == nil {
			if nwf, err := codec.SetKey(nil, wf.Raw, "src_path", codec.AppendPyString(nil, rx.w.target)); err == nil {
				if njs, err := codec.SetKey(nil, js, "with_file", nwf); err == nil {
					js = njs
				}
			}
		}
	}
	var h codec.Header
	if err := codec.ScanHeader(js, &h); err != nil {
		return true, nil
	}
	return true, p.deliverRest(rx.mt, p.cn.recv[string(rx.mt)], &h, codec.Frame{JSON: js, Data: rx.data, Binary: rx.app, HasBinary: len(rx.app) > 0}, js)
}

// newFileWriter starts the writer of a received file. Nothing is decided on the loop: the
// target directory, containment and existence checks run on the writer goroutine.
func (cn *Connector) newFileWriter(p *peer, js []byte, size int64) *fileWriter {
	w := &fileWriter{in: make(chan *bytebufferpool.ByteBuffer, fileChanCap), done: make(chan struct{}), space: make(chan struct{}, 1)}
	conn := p.conn
	sender := p.name
	go func() {
		defer func() {
			close(w.done)
			conn.Wake()
		}()
		target, owner, err := cn.fileTarget(js, size)
		var tmp *os.File
		if err == nil {
			tmp, err = createPartial(target)
		}
		if err != nil {
			cn.log.Warnf("%s file from %s refused (%s): %v", cn.sourceID, sender, fileLabel(js), err)
		}
		for pb := range w.in {
			b := pb.B
			if tmp != nil {
				if _, werr := tmp.Write(b); werr != nil {
					cn.log.Errorf("%s writing %s: %v", cn.sourceID, target, werr)
					tmp.Close()
					os.Remove(tmp.Name())
					tmp = nil
				}
			}
			bytebufferpool.Put(pb)
			select {
			case w.space <- struct{}{}:
			default:
			}
			conn.Wake()
		}
		if tmp == nil {
			return
		}
		tmp.Close()
		if w.abort.Load() {
			os.Remove(tmp.Name())
			cn.log.Warnf("%s file %s from %s incomplete (connection lost): discarded", cn.sourceID, target, sender)
			return
		}
		if err := os.Rename(tmp.Name(), target); err != nil {
			os.Remove(tmp.Name())
			cn.log.Errorf("%s storing %s: %v", cn.sourceID, target, err)
			return
		}
		if owner != "" {
			if uid, gid, ok := ParseOwner(owner); ok {
				os.Lchown(target, uid, gid)
			}
		}
		w.target = target
		cn.log.Infof("%s received file %s (%d bytes) from %s", cn.sourceID, target, size, sender)
		if wf, err := codec.Lookup(js, "with_file"); err == nil {
			if ch, ok, _ := ChunkInfo(wf.Raw); ok && !cn.cfg.PubsubCentralBroker {
				override := false
				if v, _ := codec.Lookup(wf.Raw, "dst_type"); v.Present() {
					dt, _ := v.Str()
					override = cn.cfg.FileRecvConfig[dt].OverrideExisting
				}
				if dst, done, err := ReassembleChunks(filepath.Dir(target), ch.Basename, ch.Total, override); err != nil {
					cn.log.Warnf("%s reassembling %s: %v", cn.sourceID, dst, err)
				} else if done {
					cn.log.Infof("%s reassembled %s from %d chunks", cn.sourceID, dst, ch.Total)
				}
			}
		}
	}()
	return w
}

// fileTarget applies §9.2 steps 1-8 (not the write) and returns the destination and owner.
func (cn *Connector) fileTarget(js []byte, size int64) (string, string, error) {
	wfv, err := codec.Lookup(js, "with_file")
	if err != nil || wfv.Kind != codec.KindObject {
		return "", "", fmt.Errorf("with_file is not an object")
	}
	wf := wfv.Raw
	get := func(k string) string {
		v, _ := codec.Lookup(wf, k)
		s, _ := v.Str()
		return s
	}
	if v, _ := codec.Lookup(wf, "file_error"); v.Present() {
		return "", "", fmt.Errorf("the sender reported file_error %s", v.Raw)
	}
	dstType, dstName := get("dst_type"), get("dst_name")
	rc, ok := cn.cfg.FileRecvConfig[dstType]
	if !ok {
		return "", "", fmt.Errorf("dst_type %q is not in file_recv_config (dst_name %q)", dstType, dstName)
	}
	dir, err := PyFormat(rc.TargetDirectory, js)
	if err != nil {
		return "", "", err
	}
	target, err := TargetPath(dir, dstName)
	if err != nil {
		return "", "", err
	}
	if size > cn.cfg.MaxSizeFileUploadRecv {
		return "", "", fmt.Errorf("%s: file of %d bytes is over max_size_file_upload %d", target, size, cn.cfg.MaxSizeFileUploadRecv)
	}
	if _, err := os.Lstat(target); err == nil && !rc.OverrideExisting {
		return "", "", fmt.Errorf("%s already exists (override_existing is false)", target)
	}
	owner := get("owner")
	if owner == "" {
		owner = rc.Owner
	}
	if err := mkdirOwned(filepath.Dir(target), owner); err != nil {
		return "", "", err
	}
	return target, owner, nil
}

// mkdirOwned creates missing directories one level at a time, chowning each new one.
func mkdirOwned(dir, owner string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirOwned(filepath.Dir(dir), owner); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if owner != "" {
		if uid, gid, ok := ParseOwner(owner); ok {
			os.Lchown(dir, uid, gid)
		}
	}
	return nil
}

// createPartial creates the temporary file a received file is written to before it is renamed
// into place (a reader never sees half a file).
func createPartial(target string) (*os.File, error) {
	for i := 0; ; i++ {
		name := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".part"+strconv.Itoa(os.Getpid())+"_"+strconv.Itoa(i))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666) // mode as Python's open()
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return f, err
		}
	}
}

// fileLabel names a received file for log lines: its dst_type and dst_name.
func fileLabel(js []byte) string {
	wf, err := codec.Lookup(js, "with_file")
	if err != nil {
		return "no with_file"
	}
	t, _ := codec.Lookup(wf.Raw, "dst_type")
	n, _ := codec.Lookup(wf.Raw, "dst_name")
	return "dst_type " + string(t.Raw) + ", dst_name " + string(n.Raw)
}
