package codec

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them (test with errors.Is); the wrapping message names the frame section,
// key or offset at fault.
var (
	// ErrFrameTooLarge: a frame's declared length exceeds the caller's maximum.
	ErrFrameTooLarge = errors.New("codec: frame too large")
	// ErrTruncated: a length field points past the end of the frame body.
	ErrTruncated = errors.New("codec: truncated frame")
	// ErrBadJSON: the transport JSON is not a valid JSON object (or a value
	// handed to SetKey is not a valid JSON value).
	ErrBadJSON = errors.New("codec: invalid transport JSON")
	// ErrJSONTooLarge: the transport JSON does not fit the 16-bit json_len field.
	ErrJSONTooLarge = errors.New("codec: transport JSON too large")
	// ErrCompressed: a compressed link chunk is corrupt (bad header, lengths, data or CRC), or a
	// compression name or kind is unknown.
	ErrCompressed = errors.New("codec: corrupt compressed stream")
)
