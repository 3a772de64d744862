package persist

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test with errors.Is)
// or an *fs.PathError / *os.LinkError from the file system; the wrapping message names the
// file at fault.
var (
	// ErrTooLarge: appending the record would make the file exceed its maximum size
	// (len(frame) + 27 + current size > max). The message reads like Python's warning
	// "Cannot store message of size N to persistence because <path> is too big".
	ErrTooLarge = errors.New("persist: message does not fit the persistence file")
	// ErrInvalidFile: the file does not start with the separator; no record is loaded.
	// Python logs "Invalid persistence file <path>".
	ErrInvalidFile = errors.New("persist: invalid persistence file")
	// ErrBadRecord: one or more records could not be parsed as frames (truncated by a
	// crash, corrupted); they were skipped and the other records were delivered.
	ErrBadRecord = errors.New("persist: bad persistence record")
	// ErrBadFrame: a frame handed to Append is not a complete frame (its 4-byte prefix does
	// not match its length).
	ErrBadFrame = errors.New("persist: malformed frame")
)
