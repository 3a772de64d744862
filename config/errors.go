package config

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps one of them
// (errors.Is works through errors.Join and *KeyError).
var (
	// ErrNoFile: the config file could not be read (missing, permission...).
	ErrNoFile = errors.New("config: cannot read config file")
	// ErrSyntax: the config file is not valid JSON (the message gives line and column).
	ErrSyntax = errors.New("config: invalid JSON")
	// ErrNotObject: the JSON document is valid but is not an object.
	ErrNotObject = errors.New("config: JSON value is not an object")
	// ErrInvalidValue: a key holds a value the connector cannot use (see *KeyError).
	ErrInvalidValue = errors.New("config: invalid value")
)

// KeyError reports one bad key. Value is the offending value as compact JSON
// (shortened when long); Expected says what would have been accepted.
// Source is the file path (or the source name given to Parse), possibly empty.
type KeyError struct {
	Source   string
	Key      string
	Value    string
	Expected string
}

func (e *KeyError) Error() string {
	src := ""
	if e.Source != "" {
		src = e.Source + ": "
	}
	return fmt.Sprintf("config: %skey %q: got %s, expected %s", src, e.Key, e.Value, e.Expected)
}

// Unwrap makes errors.Is(err, ErrInvalidValue) true.
func (e *KeyError) Unwrap() error { return ErrInvalidValue }
