package persist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
	size int64  // file size when known (> 0), bounds record lengths
	buf  []byte // file bytes from offset base
	base int64
	eof  bool
	// format of the file (known: recognised from its first bytes)
	format Format
	known  bool
	rerr   error // read error other than EOF

	bad      int
	firstBad error
	damage   []Range // damaged byte ranges, in file order
	aside    string  // where LoadAndRemove copied them
}

// Range is a span of a persistence file: Off bytes from its start, Len bytes long.
type Range struct{ Off, Len int64 }

// maxRanges bounds the ranges a load remembers; beyond it the last range is extended.
const maxRanges = 64

// addDamage records the damaged bytes [off, end), merging with the previous range when they
// touch (or when too many ranges are remembered already).
func (l *loader) addDamage(off, end int64) {
	if end <= off {
		return
	}
	if k := len(l.damage); k > 0 {
		last := &l.damage[k-1]
		if last.Off+last.Len >= off || k >= maxRanges {
			if end > last.Off+last.Len {
				last.Len = end - last.Off
			}
			return
		}
	}
	l.damage = append(l.damage, Range{off, end - off})
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

func (l *loader) badRecord(off, end int64, err error) {
	l.addDamage(off, end)
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
	l.format, l.known = Detect(l.buf)
	switch {
	case len(l.buf) == 0:
		return 0, -1, nil // empty file
	case l.eof && len(l.buf) < HeaderLen && bytes.HasPrefix(header, l.buf):
		return 0, -1, nil // our header cut short at creation: no record was written
	case l.known && l.format == FormatPython:
		return l.runPython(max, fn)
	case l.known:
		if len(l.buf) < HeaderLen || binary.LittleEndian.Uint32(l.buf[len(Magic):]) != Version {
			// A newer version (or a torn header with data after it): set the file aside.
			l.badRecord(0, l.base+int64(len(l.buf)), fmt.Errorf("%w (header %q)", ErrUnsupportedVersion, l.buf[:min(len(l.buf), HeaderLen)]))
			l.skipToEOF()
			return 0, -1, nil
		}
		return l.runAioconn(HeaderLen, max, fn)
	}
	// Neither format: look for records of ours after the unknown start.
	l.firstBad = fmt.Errorf("record at offset 0: %w: starts with neither %q nor the aioconn header", ErrInvalidFile, Separator)
	l.bad++
	rs, ok := l.resync(0, 0)
	if !ok {
		return 0, -1, nil
	}
	return l.runAioconn(rs, max, fn)
}

// skipToEOF reads and drops the rest of the file, extending the last damage range.
func (l *loader) skipToEOF() {
	for !l.eof {
		l.fill(len(l.buf))
	}
	if k := len(l.damage); k > 0 {
		l.damage[k-1].Len = l.base + int64(len(l.buf)) - l.damage[k-1].Off
	}
}

// runPython is run for a file in FormatPython (the buffer starts with the separator).
func (l *loader) runPython(max int, fn func(frame []byte) error) (n int, stop int64, err error) {
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
			end := l.base + int64(q)
			if next >= 0 {
				end = l.base + int64(next) - int64(SepLen)
			}
			l.badRecord(recOff-int64(SepLen), end, perr)
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
	if l.bad > 0 || len(l.damage) > 0 {
		derr := &DamageError{Path: l.path, Records: l.bad, Ranges: l.damage, Aside: l.aside, Err: l.firstBad}
		if err == nil {
			return n, derr
		}
		return n, errors.Join(err, derr)
	}
	return n, err
}

// DamageError reports records that could not be loaded: a torn or corrupt tail, corrupt
// records in the middle, or a start in neither format. The records around them were
// loaded. It wraps ErrBadRecord and the first parse error (errors.Is works on both).
type DamageError struct {
	Path    string  // the persistence file
	Records int     // records (or unparsable pieces) skipped
	Ranges  []Range // damaged bytes, in file order (FormatPython: separator included)
	Aside   string  // LoadAndRemove: the file the damaged bytes were copied to ("" for Load)
	Err     error   // the first problem found
}

func (e *DamageError) Error() string {
	var b []byte
	b = fmt.Appendf(b, "%v: %d record(s) of %s skipped", ErrBadRecord, e.Records, e.Path)
	if len(e.Ranges) > 0 {
		r := e.Ranges[0]
		b = fmt.Appendf(b, ", damaged bytes at offset %d (%d bytes)", r.Off, r.Len)
		if len(e.Ranges) > 1 {
			b = fmt.Appendf(b, " and %d more range(s)", len(e.Ranges)-1)
		}
	}
	if e.Aside != "" {
		b = fmt.Appendf(b, ", kept aside in %s", e.Aside)
	}
	if e.Err != nil {
		b = fmt.Appendf(b, ", first %v", e.Err)
	}
	return string(b)
}

// Unwrap returns ErrBadRecord and the first parse error.
func (e *DamageError) Unwrap() []error { return []error{ErrBadRecord, e.Err} }

// Load streams the records of the persistence file at path and calls fn with each complete
// frame, in file order. The format is recognised from the first bytes (Detect): a file that
// starts with the Python separator is read as FormatPython, one that starts with Magic as
// FormatAioconn; an empty file (or our header cut short) has no record. It reads the file in
// 64 KiB chunks; memory is bounded by the largest record (FormatPython records longer than
// the codec's largest frame are skipped without being buffered).
//
// FormatAioconn: records are followed by their lengths; a record whose mark, length or
// checksum is wrong (a torn tail after a crash, corruption), and everything up to the next
// intact record, is damaged: skipped, and the load resumes at the next intact record (found
// by its mark, length and checksum; payload bytes can look like a mark but then fail the
// checksum). A file of an unknown version is damaged as a whole; a file in neither format is
// searched for intact records of ours (its unknown start is damaged).
//
// FormatPython follows 1.0.33: the content is split on the separator and each piece is
// parsed by its inner json_len, data_len and (when with_binary is truthy) bin_len; the
// record's own 4-byte prefix is ignored and fn gets the frame with the prefix re-computed
// from those inner lengths and any trailing bytes of the piece dropped (Python also re-packs,
// re-serialising the JSON; we keep the JSON bytes). Unlike Python, which stops at the first
// bad record (losing the rest when the file is deleted), a piece that is truncated or whose
// JSON is not an object is skipped and loading goes on. A separator that starts inside a
// frame (see AppendRecord) is recognised from the inner lengths, so files 1.0.33 cannot read
// back are read whole.
//
// After the last record, damage is reported by a *DamageError (wrapping ErrBadRecord) with
// the count and the byte ranges. The frame passed to fn aliases Load's buffer: it is valid
// only during the call (copy it to keep it); a nil fn only counts the valid records. If fn
// returns an error, Load stops and returns it with the number of frames accepted before.
// Load never deletes or modifies the file. n counts the frames fn accepted.
func Load(path string, fn func(frame []byte) error) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("persist: open %s: %w", path, err)
	}
	defer f.Close()
	l := newLoader(f, path)
	n, _, err = l.run(0, fn)
	return l.result(n, err)
}

func newLoader(f *os.File, path string) *loader {
	l := &loader{r: f, path: path}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		l.size = st.Size()
	}
	return l
}

// LoadAndRemove is the replay of a persistence file: it loads up to max records (max <= 0:
// all) like Load and then removes what was loaded, so the caller owns the frames it
// accepted and the file holds only what it did not.
//
// Python (1.0.33) puts every record into a transition FIFO of at most 300 000 entries with a
// blocking put before it starts sending, so a file of more than 300 000 records deadlocks the
// replay; 1.6.3 stops at the limit and still deletes the file, losing the rest. We never lose
// records: when max is reached or fn returns an error, the records not accepted (from the one
// fn refused) are kept — the file is replaced by its remaining tail, in its own format
// (written to a temporary file in the same directory, synced, renamed over path) — and n
// tells how many were taken; call again once they are sent. When everything was consumed
// the file is removed.
//
// Damaged bytes (see Load) are never dropped: they are copied to path + ".corrupt-<offset>"
// (the offset of the first damaged byte; a numbered variant if that name exists) before the
// file is removed or cut, and the returned *DamageError names that file in Aside. Python
// deletes a file that does not start with its separator; we set it aside as well.
//
// The caller must not append to path concurrently (close its Store first, or hand the file
// over with Store.MoveTo).
func LoadAndRemove(path string, max int, fn func(frame []byte) error) (n int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("persist: open %s: %w", path, err)
	}
	defer f.Close()
	l := newLoader(f, path)
	n, stop, err := l.run(max, fn)
	if l.rerr != nil { // read error: keep the file as it is
		return n, err
	}
	var aerr error
	if len(l.damage) > 0 {
		aerr = l.setAside(f)
	}
	switch {
	case stop < 0:
		if rerr := os.Remove(path); rerr != nil {
			aerr = errors.Join(aerr, fmt.Errorf("persist: remove %s: %w", path, rerr))
		}
	case l.format == FormatPython && l.size > 0 && l.size-stop <= int64(SepLen):
		// Only a bare separator is left.
		if rerr := os.Remove(path); rerr != nil {
			aerr = errors.Join(aerr, fmt.Errorf("persist: remove %s: %w", path, rerr))
		}
	default:
		var head []byte
		if l.format == FormatAioconn {
			head = header
		}
		aerr = errors.Join(aerr, keepTail(f, path, head, stop))
	}
	n, err = l.result(n, err)
	return n, errors.Join(err, aerr)
}

// setAside copies the damaged ranges of f to a new file next to it.
func (l *loader) setAside(f *os.File) error {
	name := fmt.Sprintf("%s.corrupt-%d", l.path, l.damage[0].Off)
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	for i := 1; err != nil && errors.Is(err, os.ErrExist) && i < 100; i++ {
		name = fmt.Sprintf("%s.corrupt-%d.%d", l.path, l.damage[0].Off, i)
		out, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return fmt.Errorf("persist: keep damaged bytes of %s aside: %w", l.path, err)
	}
	for _, r := range l.damage {
		if _, err = io.Copy(out, io.NewSectionReader(f, r.Off, r.Len)); err != nil {
			break
		}
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("persist: keep damaged bytes of %s aside in %s: %w", l.path, name, err)
	}
	l.aside = name
	return nil
}

// keepTail replaces path by head followed by its bytes from offset off on.
func keepTail(f *os.File, path string, head []byte, off int64) error {
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
	if _, err = tmp.Write(head); err == nil {
		_, err = io.Copy(tmp, io.NewSectionReader(f, off, st.Size()-off))
	}
	if err != nil {
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

// validAt checks for a complete FormatAioconn record at buffer index i (reading more as
// needed; bytes before keep may be dropped). It returns the record's total length, how far
// the buffer was shifted (subtract it from every index), and whether the record is intact:
// mark, plausible length, all bytes present, checksum.
func (l *loader) validAt(i, keep int) (total, shift int, ok bool) {
	shift = l.ensure(i+recHead, keep)
	i -= shift
	if len(l.buf)-i < recHead || !bytes.Equal(l.buf[i:i+len(mark)], mark) {
		return 0, shift, false
	}
	n := int64(binary.LittleEndian.Uint32(l.buf[i+RecordOverhead:]))
	if n < minBody || n+codec.LenPrefix > int64(maxRecord) ||
		(l.size > 0 && l.base+int64(i)+int64(RecordOverhead)+codec.LenPrefix+n > l.size) {
		return 0, shift, false
	}
	total = RecordOverhead + codec.LenPrefix + int(n)
	d := l.ensure(i+total, keep-shift)
	shift += d
	i -= d
	if len(l.buf)-i < total {
		return 0, shift, false
	}
	fr := l.buf[i+RecordOverhead : i+total]
	if crc32.Checksum(fr, castagnol) != binary.LittleEndian.Uint32(l.buf[i+len(mark):]) {
		return 0, shift, false
	}
	return total, shift, true
}

// resync looks for the first intact record at or after buffer index from, the bytes from
// damaged (a buffer index <= from) on being damaged. It records the damaged range and
// returns the record's buffer index, or ok=false after recording everything to EOF.
func (l *loader) resync(damaged, from int) (rs int, ok bool) {
	start := l.base + int64(damaged)
	s := from
	for {
		if i := bytes.Index(l.buf[s:], mark); i >= 0 {
			c := s + i
			_, d, valid := l.validAt(c, c)
			c -= d
			if valid {
				l.addDamage(start, l.base+int64(c))
				return c, true
			}
			s = c + 1
			continue
		}
		if l.eof {
			l.addDamage(start, l.base+int64(len(l.buf)))
			return 0, false
		}
		s = max(len(l.buf)-(len(mark)-1), s)
		s = l.fill(s) // damaged bytes are not kept in memory
	}
}

// runAioconn is run for a file in FormatAioconn from buffer index rs (the first record).
func (l *loader) runAioconn(rs, max int, fn func(frame []byte) error) (n int, stop int64, err error) {
	for {
		rs -= l.ensure(rs+1, rs)
		if l.rerr != nil {
			return n, -1, fmt.Errorf("persist: read %s: %w", l.path, l.rerr)
		}
		if rs >= len(l.buf) {
			return n, -1, nil // clean end
		}
		if max > 0 && n >= max {
			return n, l.base + int64(rs), nil
		}
		total, d, ok := l.validAt(rs, rs)
		rs -= d
		if l.rerr != nil {
			return n, -1, fmt.Errorf("persist: read %s: %w", l.path, l.rerr)
		}
		if !ok {
			// Torn or corrupt: everything up to the next intact record is damaged.
			off := l.base + int64(rs)
			l.bad++
			if l.firstBad == nil {
				l.firstBad = fmt.Errorf("record at offset %d: %w", off, ErrCorruptRecord)
			}
			if rs, ok = l.resync(rs, rs+1); !ok {
				return n, -1, nil
			}
			continue
		}
		fr := l.buf[rs+RecordOverhead : rs+total : rs+total]
		if p, perr := codec.ParseBody(fr[codec.LenPrefix:]); perr != nil || len(p.Trailing) != 0 {
			// Intact but not a frame (never written by this package): skip it alone.
			if perr == nil {
				perr = fmt.Errorf("%w: %d bytes after the frame", ErrBadFrame, len(p.Trailing))
			}
			off := l.base + int64(rs)
			l.badRecord(off, off+int64(total), perr)
		} else {
			if err := fn(fr); err != nil {
				return n, l.base + int64(rs), err
			}
			n++
		}
		rs += total
	}
}
