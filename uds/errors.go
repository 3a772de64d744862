package uds

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (test with errors.Is);
// the ones about a particular path are *PathError values naming that path.
var (
	// ErrPathTooLong: a socket path has more than MaxPathLen code points (Python len()).
	ErrPathTooLong = errors.New("uds: path is longer than 104")
	// ErrPathExists: the socket path exists and reuse was not allowed.
	ErrPathExists = errors.New("uds: path already exists")
	// ErrNotSocket: Remove was asked to delete something that is not a socket.
	ErrNotSocket = errors.New("uds: not a socket")
	// ErrNoNobody: neither the user "nobody" nor the groups "nogroup"/"nobody" could be found.
	ErrNoNobody = errors.New("uds: user or group nobody not found")
)

// PathError reports a problem with one socket path. Err is ErrPathTooLong, ErrPathExists or
// ErrNotSocket. Error() reads "uds: <path> is longer than 104", "uds: <path> already exists"
// or "uds: <path> is not a socket"; the Python texts are the same without the "uds: " prefix
// (and with the caller's suffix, e.g. ". Cannot create_commander_server"), build them from Path.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string {
	switch e.Err {
	case ErrPathTooLong:
		return "uds: " + e.Path + " is longer than 104"
	case ErrPathExists:
		return "uds: " + e.Path + " already exists"
	case ErrNotSocket:
		return "uds: " + e.Path + " is not a socket"
	}
	return "uds: " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the sentinel.
func (e *PathError) Unwrap() error { return e.Err }
