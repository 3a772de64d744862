package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aioconn/aioconn/codec"
)

// readChunk is how much Load reads per system call.
const readChunk = 64 << 10

// maxRecord bounds the bytes Load buffers for one record: a record longer than this is
// skipped as bad without being held in memory. It is the largest frame the codec accepts
// (variable so tests can lower it).
var maxRecord = int(codec.DefaultMaxFrame) + codec.LenPrefix

// loader streams the records of one file.
type loader struct {
	r    io.Reader
	path string
	buf  []byte // file bytes from offset base
	base int64
	eof  bool
	rerr error // read error other than EOF

	bad      int
	firstBad error
}

// fill reads at least one more chunk (or hits EOF). keep is the first buffer index still
// needed; bytes before it may be discarded.
func (l *loader) fill(keep int) int {
	if l.eof {
		return keep
	}
	if keep > 0 && (keep >= len(l.buf)/2 || cap(l.buf)-len(l.buf) < readChunk) {
		n := copy(l.buf, l.buf[keep:])
		l.buf = l.buf[:n]
		l.base += int64(keep)
		keep = 0
	}
	if cap(l.buf)-len(l.buf) < readChunk {
		nb := make([]byte, len(l.buf), 2*cap(l.buf)+readChunk)
		copy(nb, l.buf)
		l.buf = nb
	}
	n, err := l.r.Read(l.buf[len(l.buf):cap(l.buf)])
	l.buf = l.buf[:len(l.buf)+n]
	if err != nil {
		l.eof = true
		if err != io.EOF {
			l.rerr = err
		}
	}
	return keep
}

// ensure reads until len(buf) >= n or EOF; keep as in fill. It returns the adjusted
// index shift (how many bytes were dropped from the front).
func (l *loader) ensure(n, keep int) int {
	shift := 0
	for len(l.buf) < n-shift && !l.eof {
		k := l.fill(keep - shift)
		shift += (keep - shift) - k
	}
	return shift
}

func (l *loader) badRecord(off int64, err error) {
	l.bad++
	if l.firstBad == nil {
		l.firstBad = fmt.Errorf("record at offset %d: %w", off, err)
	}
}

// structLen returns the frame body length implied by the inner json_len, data_len and,
// when with_binary is truthy, bin_len of rec (Python's parse; the record's own 4-byte prefix
// is ignored).
func structLen(rec []byte) (int, error) {
	if len(rec) < codec.LenPrefix {
		return 0, fmt.Errorf("%w: length prefix needs 4 bytes, %d left", codec.ErrTruncated, len(rec))
	}
	f, err := codec.ParseBody(rec[codec.LenPrefix:])
	if err != nil {
		return 0, err
	}
	return len(rec) - len(f.Trailing), nil
}

// run delivers records until EOF, max delivered records (max <= 0: no limit) or an fn error.
// It returns the number delivered and, when it stopped early, the file offset of the
// separator of the first record not delivered (-1 when the whole file was consumed).
func (l *loader) run(max int, fn func(frame []byte) error) (n int, stop int64, err error) {
	if fn == nil {
		fn = func([]byte) error { return nil } // count and validate only
	}
	l.buf = make([]byte, 0, readChunk)
	l.ensure(SepLen, 0)
	if l.rerr != nil {
		return 0, -1, fmt.Errorf("persist: read %s: %w", l.path, l.rerr)
	}
	if len(l.buf) < SepLen || !bytes.Equal(l.buf[:SepLen], sep) {
		return 0, -1, fmt.Errorf("%w: %s does not start with %s", ErrInvalidFile, l.path, Separator)
	}
	rs := SepLen // buffer index of the current record's first byte
	for {
		if max > 0 && n >= max {
			// The caller keeps what is left (unless it is a bare trailing separator).
			return n, l.base + int64(rs-SepLen), nil
		}
		// Find the end of the record: the next separator, or EOF.
		s, q, last, skipping := rs, -1, false, false
		for {
			if i := bytes.Index(l.buf[s:], sep); i >= 0 {
				q = s + i
				break
			}
			if l.eof {
				q, last = len(l.buf), true
				break
			}
			s = len(l.buf) - (SepLen - 1)
			if s < rs {
				s = rs
			}
			keep := rs
			if !skipping && len(l.buf)-rs > maxRecord {
				skipping = true
			}
			if skipping {
				keep = s // drop the oversized record's bytes as we go
			}
			k := l.fill(keep)
			d := keep - k
			rs, s = rs-d, s-d
		}
		if l.rerr != nil {
			return n, -1, fmt.Errorf("persist: read %s: %w", l.path, l.rerr)
		}
		recOff := l.base + int64(rs)
		next := -1 // buffer index of the next record; default q + SepLen
		var frame []byte
		var perr error
		switch {
		case skipping:
			perr = fmt.Errorf("%w: record longer than %d bytes", codec.ErrFrameTooLarge, maxRecord)
		default:
			L, e := structLen(l.buf[rs:q])
			if e != nil && !last && errors.Is(e, codec.ErrTruncated) {
				// The separator may start inside the record (frame ending with the
				// first 24-26 bytes of the separator, written unaltered by Python):
				// accept the record if its inner lengths end 1-26 bytes further,
				// right before a separator.
				d := l.ensure(q+2*SepLen-1, rs)
				rs, q = rs-d, q-d
				hi := min(q+SepLen-1, len(l.buf))
				if L2, e2 := structLen(l.buf[rs:hi]); e2 == nil && rs+L2 > q &&
					rs+L2+SepLen <= len(l.buf) && bytes.Equal(l.buf[rs+L2:rs+L2+SepLen], sep) {
					L, e, next = L2, nil, rs+L2+SepLen
				}
			}
			if e != nil {
				perr = e
				break
			}
			var h codec.Header
			if _, e = codec.ParseBodyHeader(l.buf[rs+codec.LenPrefix:rs+L], &h); e != nil {
				perr = e
				break
			}
			// Re-compute the record's own prefix in place.
			binary.LittleEndian.PutUint32(l.buf[rs:], uint32(L-codec.LenPrefix))
			frame = l.buf[rs : rs+L : rs+L]
		}
		if perr != nil {
			l.badRecord(recOff, perr)
		} else {
			if err := fn(frame); err != nil {
				return n, recOff - int64(SepLen), err
			}
			n++
		}
		if last {
			return n, -1, nil
		}
		if next < 0 {
			next = q + SepLen
		}
		rs = next
	}
}

func (l *loader) result(n int, err error) (int, error) {
	if err == nil && l.bad > 0 {
		err = fmt.Errorf("%w: %d record(s) of %s skipped, first %w", ErrBadRecord, l.bad, l.path, l.firstBad)
	}
	return n, err
}

// Load streams the records of the persistence file at path and calls fn with each complete
// frame, in file order. It reads the file in 64 KiB chunks; memory is bounded by the largest
// record (records longer than the codec's largest frame are skipped without being
// buffered).
//
// Parsing follows 1.0.33: the file must start with the separator, else nothing is loaded and
// the error wraps ErrInvalidFile (the caller logs "Invalid persistence file <path>"). The rest
// is split on the separator and each piece is parsed by its inner json_len, data_len and
// (when with_binary is truthy) bin_len; the record's own 4-byte prefix is ignored and fn gets
// the frame with the prefix re-computed from those inner lengths and any trailing bytes of
// the piece dropped (Python also re-packs, re-serialising the JSON; we keep the JSON bytes).
//
// Differences from Python, which stops at the first bad record (losing the rest when the
// file is deleted): a piece that is truncated or whose JSON is not an object (a crash cut the
// last write short, corruption) is skipped and loading goes on; after the last record the
// error wraps ErrBadRecord (and the parse error) with the count and the first offset. A
// separator that starts inside a frame (see AppendRecord) is recognised from the inner
// lengths, so files 1.0.33 cannot read back are read whole.
//
// The frame passed to fn aliases Load's buffer: it is valid only during the call (copy it to
// keep it); a nil fn only counts the valid records. If fn returns an error, Load stops and
// returns it with the number of frames accepted before. Load never deletes or modifies the
// file. n counts the frames fn accepted.
func Load(path string, fn func(frame []byte) error) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("persist: open %s: %w", path, err)
	}
	defer f.Close()
	l := loader{r: f, path: path}
	n, _, err = l.run(0, fn)
	return l.result(n, err)
}

// LoadAndRemove is the replay of a persistence file: it loads up to max records (max <= 0:
// all) like Load and then removes what was loaded, so the caller owns the frames it
// accepted and the file holds only what it did not.
//
// Python (1.0.33) puts every record into a transition FIFO of at most 300 000 entries with a
// blocking put before it starts sending, so a file of more than 300 000 records deadlocks the
// replay; 1.6.3 stops at the limit and still deletes the file, losing the rest. We never lose
// records: when max is reached or fn returns an error, the records not accepted (from the one
// fn refused) are kept — the file is replaced by its remaining tail (written to a temporary
// file in the same directory, synced, renamed over path) — and n tells how many were taken;
// call again once they are sent. When everything was consumed the file is removed (bad
// records are dropped with it; the error then wraps ErrBadRecord). An invalid file (not
// starting with the separator) is removed, as Python does, and the error wraps
// ErrInvalidFile.
//
// The caller must not append to path concurrently (close its Store first).
func LoadAndRemove(path string, max int, fn func(frame []byte) error) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("persist: open %s: %w", path, err)
	}
	l := loader{r: f, path: path}
	n, stop, err := l.run(max, fn)
	if err != nil && errors.Is(err, ErrInvalidFile) {
		f.Close()
		if rerr := os.Remove(path); rerr != nil {
			err = errors.Join(err, fmt.Errorf("persist: remove %s: %w", path, rerr))
		}
		return 0, err
	}
	if stop < 0 {
		f.Close()
		if err != nil { // read error: keep the file
			return n, err
		}
		if rerr := os.Remove(path); rerr != nil {
			return l.result(n, fmt.Errorf("persist: remove %s: %w", path, rerr))
		}
		return l.result(n, nil)
	}
	// Keep the tail from stop, unless it is only a bare separator.
	st, serr := f.Stat()
	if serr == nil && st.Size()-stop <= int64(SepLen) {
		f.Close()
		if rerr := os.Remove(path); rerr != nil {
			return l.result(n, errors.Join(err, fmt.Errorf("persist: remove %s: %w", path, rerr)))
		}
		return l.result(n, err)
	}
	terr := keepTail(f, path, stop)
	f.Close()
	return l.result(n, errors.Join(err, terr))
}

// keepTail replaces path by its bytes from offset off on.
func keepTail(f *os.File, path string, off int64) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("persist: stat %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tail*")
	if err != nil {
		return fmt.Errorf("persist: keep the rest of %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, io.NewSectionReader(f, off, st.Size()-off)); err != nil {
		return fmt.Errorf("persist: keep the rest of %s: %w", path, err)
	}
	if err = tmp.Chmod(st.Mode().Perm()); err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("persist: keep the rest of %s: %w", path, err)
	}
	ok = true
	return nil
}
