package ring

import "errors"

// ErrFull is what a caller that needs an error (rather than Push's false) should report when
// a queue refuses an item: the count cap or the byte cap would be exceeded.
var ErrFull = errors.New("ring: queue full")
