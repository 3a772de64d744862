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
	// ErrInvalidFile: the file starts with neither the Python separator nor the aioconn
	// header (Python logs "Invalid persistence file <path>" and loads nothing; we look for
	// intact aioconn records after the unknown start). Reported inside a *DamageError.
	ErrInvalidFile = errors.New("persist: invalid persistence file")
	// ErrBadRecord: one or more records could not be loaded (a torn tail after a crash,
	// corruption, an unknown start); the others were delivered. Wrapped by *DamageError,
	// which names the file, the damaged byte ranges and where LoadAndRemove kept them.
	ErrBadRecord = errors.New("persist: bad persistence record")
	// ErrCorruptRecord: an aioconn record whose mark, length or CRC32C is wrong.
	ErrCorruptRecord = errors.New("persist: torn or corrupt record")
	// ErrUnsupportedVersion: an aioconn file of a version this package does not read; it
	// is set aside whole.
	ErrUnsupportedVersion = errors.New("persist: unsupported aioconn persistence version")
	// ErrBadFrame: a frame handed to Append is not a complete frame (its 4-byte prefix does
	// not match its length).
	ErrBadFrame = errors.New("persist: malformed frame")
)
