package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
)

// Separator starts every record; Replacement is what an occurrence of Separator inside a
// frame is turned into before the frame is written (same length).
const (
	Separator   = "@@@PERSISTENCE_SEPARATOR@@@"
	Replacement = "#@@PERSISTENCE_SEPARATOR@@#"
	// SepLen is the length of Separator and Replacement (27).
	SepLen = len(Separator)
)

var (
	sep  = []byte(Separator)
	repl = []byte(Replacement)
)

// DefaultMaxSize is 1.0.33's max_size_persistence_path default (bytes per file).
const DefaultMaxSize int64 = 1_000_000_000

// commitSize is the buffered amount above which Append writes to the file by itself.
const commitSize = 256 << 10

// Store appends records to one persistence file: the send file of one peer or the receive
// file of one message type.
//
// Group commit: Append copies the record into an in-memory buffer; the buffer is written to
// the file (one write system call for every record in it) when it passes 256 KiB, and by
// Flush, Sync, AppendBatch and Close. The caller decides the commit points, typically one
// Flush per batch of appends (per event-loop turn), or Sync when durability matters.
//
// Crash semantics: records still in the buffer are lost if the process dies; records written
// (Flush) but not synced survive a process crash but may be lost by an operating-system crash
// or power loss (like Python, which opens, writes and closes the file per record and never
// syncs); after Sync they are durable. A write cut short by a crash leaves a truncated last
// record: Load skips it (reporting ErrBadRecord) and delivers every earlier record.
//
// The file is opened (created with mode 0666 minus umask, append-only) lazily by the first
// Append, which also reads its current size. Close releases the descriptor; a later Append
// reopens the path, so a Store can live as long as its peer and be closed around
// LoadAndRemove.
//
// Concurrency: all methods are safe for concurrent use (one mutex). Memory: Append copies the
// frame (the caller keeps ownership of it); frames larger than the commit size are written
// from the caller's slice directly, before Append returns.
type Store struct {
	mu     sync.Mutex
	path   string
	max    int64
	format Format // for new files
	f      *os.File
	fi     os.FileInfo // of f at open: detects that path was removed or replaced
	ff     Format      // format of the open file
	size   int64       // bytes in the file plus bytes in buf; valid when f != nil
	buf    []byte
	// needHeader: the open file is empty and in FormatAioconn; the next record starts it
	needHeader bool
}

// Open returns a Store for path in FormatAioconn with the size limit maxSize
// (max_size_persistence_path; a value <= 0 means DefaultMaxSize). Nothing is opened or
// created until the first Append.
func Open(path string, maxSize int64) *Store { return OpenFormat(path, maxSize, FormatAioconn) }

// OpenFormat is Open with the format of the files the Store creates. A file that already
// exists keeps its own format: records are appended in the format its first bytes show
// (Detect), and in FormatAioconn when they show neither (the loader then resynchronises on
// the records and sets the unknown start aside), so a file never mixes formats.
func OpenFormat(path string, maxSize int64, f Format) *Store {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Store{path: path, max: maxSize, format: f}
}

// Path returns the file path of the store.
func (s *Store) Path() string { return s.path }

// checkFrame verifies that frame is one complete frame: 4-byte LE prefix equal to the
// number of bytes that follow.
func checkFrame(frame []byte) error {
	if len(frame) < 4 || uint64(binary.LittleEndian.Uint32(frame)) != uint64(len(frame)-4) {
		return fmt.Errorf("%w: %d bytes with a length prefix that does not match", ErrBadFrame, len(frame))
	}
	return nil
}

// open opens the file if needed and loads its size. Caller holds mu.
func (s *Store) open() error {
	if s.f != nil {
		return nil
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return fmt.Errorf("persist: open %s: %w", s.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("persist: stat %s: %w", s.path, err)
	}
	s.f, s.fi, s.size, s.ff = f, st, st.Size(), s.format
	if s.size == 0 {
		s.startFile()
		return nil
	}
	var start [SepLen]byte
	n, _ := f.ReadAt(start[:], 0)
	s.ff, _ = Detect(start[:n])
	return nil
}

// startFile notes that the open file is empty: in FormatAioconn the first record is
// preceded by the header. Caller holds mu.
func (s *Store) startFile() {
	s.needHeader = s.ff == FormatAioconn
}

// overhead is what a record adds to its frame in the open file's format.
func (s *Store) overhead() int {
	if s.ff == FormatPython {
		return SepLen
	}
	return RecordOverhead
}

// tooLarge returns the ErrTooLarge error for a frame of n bytes.
func (s *Store) tooLarge(n int) error {
	return fmt.Errorf("%w: Cannot store message of size %d to persistence because %s is too big (%d + %d + %d > %d)",
		ErrTooLarge, n, s.path, n, s.overhead(), s.size, s.max)
}

// Append adds one record: Separator followed by frame (a complete frame including its
// 4-byte prefix), with every occurrence of Separator inside the frame replaced by
// Replacement (same length; see AppendRecord for one more alteration Python does not do).
// When len(frame) + 27 + current size > max it returns an error wrapping ErrTooLarge and
// writes nothing, like Python's "Cannot store message of size ..." (Python drops the
// message; so should the caller). A frame whose prefix does not match its length is refused
// with ErrBadFrame. The record is buffered (see Store); Append writes to the file only when
// the buffer passes the commit size or the frame is larger than it.
func (s *Store) Append(frame []byte) error {
	if err := checkFrame(frame); err != nil {
		return fmt.Errorf("%w (file %s)", err, s.path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return err
	}
	return s.appendLocked(frame)
}

func (s *Store) appendLocked(frame []byte) error {
	ov := s.overhead()
	head := 0
	if s.needHeader {
		head = HeaderLen
	}
	if int64(len(frame))+int64(ov+head)+s.size > s.max {
		return s.tooLarge(len(frame))
	}
	if s.needHeader {
		s.buf = append(s.buf, header...)
		s.size += int64(HeaderLen)
		s.needHeader = false
	}
	if len(frame) >= commitSize && (s.ff == FormatAioconn || !needsAltering(frame)) {
		// Big frame: write it from the caller's slice instead of copying it.
		if s.ff == FormatPython {
			s.buf = append(s.buf, sep...)
		} else {
			s.buf = append(s.buf, mark...)
			s.buf = binary.LittleEndian.AppendUint32(s.buf, crc32.Checksum(frame, castagnol))
		}
		s.size += int64(ov)
		if err := s.flushLocked(); err != nil {
			return err
		}
		n, err := s.f.Write(frame)
		s.size += int64(n)
		if err != nil {
			return fmt.Errorf("persist: write %s: %w", s.path, err)
		}
		return nil
	}
	if s.ff == FormatPython {
		s.buf = AppendRecord(s.buf, frame)
	} else {
		s.buf = AppendAioconnRecord(s.buf, frame)
	}
	s.size += int64(ov + len(frame))
	if len(s.buf) >= commitSize {
		return s.flushLocked()
	}
	return nil
}

// AppendBatch appends many frames and commits them with one write (plus one per frame
// larger than the commit size). Each frame is checked on its own against the size rule, in
// order, exactly as Python stores a peer's queue one message at a time: frames that do not
// fit (or are malformed) are skipped and the others are still written. The returned error
// wraps ErrTooLarge (or ErrBadFrame) and counts the skipped frames; a write error is
// returned as such.
func (s *Store) AppendBatch(frames [][]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.open(); err != nil {
		return err
	}
	var first error
	skipped := 0
	for _, fr := range frames {
		err := checkFrame(fr)
		if err == nil {
			err = s.appendLocked(fr)
		}
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrBadFrame) {
				return err // write error
			}
			if first == nil {
				first = err
			}
			skipped++
		}
	}
	if err := s.flushLocked(); err != nil {
		return err
	}
	if first != nil {
		return fmt.Errorf("%d of %d frames not stored in %s, first: %w", skipped, len(frames), s.path, first)
	}
	return nil
}

// needsAltering reports whether AppendRecord would change the frame.
func needsAltering(frame []byte) bool {
	return bytes.Contains(frame, sep) || badTail(frame) > 0
}

// badTail returns m (24, 25 or 26) when frame ends with the first m bytes of Separator, else
// 0. Such a frame followed by the next record's separator would contain a separator that
// starts inside the frame (the separator's border "@@@" overlaps), and Python's loader
// would cut the record there.
func badTail(frame []byte) int {
	for m := SepLen - 1; m >= SepLen-3; m-- {
		if len(frame) >= m && bytes.Equal(frame[len(frame)-m:], sep[:m]) {
			return m
		}
	}
	return 0
}

// AppendRecord appends one record (Separator + frame, altered) to dst and returns it. Every
// occurrence of Separator in frame is replaced by Replacement, scanning left to right without
// overlap (Python bytes.replace). In addition, and unlike Python, a frame ending with the
// first 24, 25 or 26 bytes of Separator has the first byte of that tail changed from '@' to
// '#': 1.0.33 writes such a frame unchanged and then cannot read its own file back (the next
// separator is found 24-26 bytes early, the next record gets garbage in front and the load
// stops). Both alterations keep the length. Pure function; no allocation beyond growing dst.
func AppendRecord(dst, frame []byte) []byte {
	dst = append(dst, sep...)
	start := len(dst)
	for {
		i := bytes.Index(frame, sep)
		if i < 0 {
			break
		}
		dst = append(dst, frame[:i]...)
		dst = append(dst, repl...)
		frame = frame[i+SepLen:]
	}
	dst = append(dst, frame...)
	if m := badTail(dst[start:]); m > 0 {
		dst[len(dst)-m] = '#'
	}
	return dst
}

// Flush writes the buffered records to the file (one write). It does not sync.
func (s *Store) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *Store) flushLocked() error {
	if len(s.buf) == 0 || s.f == nil {
		return nil
	}
	s.reopenIfReplaced()
	n, err := s.f.Write(s.buf)
	if err != nil {
		// Keep what was not written so a later Flush can retry; the size already counts it.
		s.buf = s.buf[:copy(s.buf, s.buf[n:])]
		return fmt.Errorf("persist: write %s: %w", s.path, err)
	}
	if cap(s.buf) > 4*commitSize {
		s.buf = nil // do not keep a huge buffer alive after a burst
	} else {
		s.buf = s.buf[:0]
	}
	return nil
}

// reopenIfReplaced handles a file removed or replaced behind the Store's back
// (delete_previous_persistence_remains, an operator, MoveTo of another Store): the buffered
// records go to a new file at path instead of an unlinked inode. Caller holds mu; f != nil.
func (s *Store) reopenIfReplaced() {
	st, err := os.Stat(s.path)
	if err == nil && os.SameFile(st, s.fi) {
		return
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return // keep writing to the old descriptor; the write error, if any, is reported
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return
	}
	s.f.Close()
	pending := s.buf
	if s.ff == FormatAioconn && bytes.HasPrefix(pending, header) {
		pending = pending[HeaderLen:]
	}
	s.f, s.fi, s.buf, s.size = f, st, nil, st.Size()
	if s.size == 0 && s.ff == FormatAioconn {
		s.buf = append(s.buf, header...)
		s.size += int64(HeaderLen)
	}
	s.buf = append(s.buf, pending...)
	s.size += int64(len(pending))
}

// MoveTo hands the file over for replay: it flushes the buffer, closes the file and renames
// path to dst (on the same file system), so that appends made while dst is being loaded go
// to a new file at path instead of racing with the loader. It reports false (and does
// nothing) when there is no file at path. The Store stays usable.
func (s *Store) MoveTo(dst string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.closeLocked(); err != nil {
		return false, err
	}
	if err := os.Rename(s.path, dst); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("persist: move %s: %w", s.path, err)
	}
	return true, nil
}

// Sync flushes and then fsyncs the file, making every appended record durable.
func (s *Store) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flushLocked(); err != nil {
		return err
	}
	if s.f == nil {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("persist: sync %s: %w", s.path, err)
	}
	return nil
}

// Size returns the size the file has once the buffer is flushed: its size on disk when it
// was opened plus everything appended since. Before the first Append (or after Close) it
// stats the file (0 when it does not exist).
func (s *Store) Size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return s.size
	}
	st, err := os.Stat(s.path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Buffered returns the number of bytes appended but not yet written to the file.
func (s *Store) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

// Close flushes the buffer and closes the file. The Store stays usable: the next Append
// reopens the path (and re-reads its size). Closing an unopened Store is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

func (s *Store) closeLocked() error {
	if s.f == nil {
		return nil
	}
	err := s.flushLocked()
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("persist: close %s: %w", s.path, cerr)
	}
	s.f, s.buf = nil, nil
	return err
}

// Exists reports whether path exists (Python os.path.exists: false on any stat error).
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
