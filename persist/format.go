package persist

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// Format is the on-disk layout of a persistence file.
type Format uint8

const (
	// FormatAioconn is aioconn's own format (the default for new files): a 12-byte header
	// (Magic, then the version as u32 LE) followed by records, each RecordMark, the CRC32C
	// (Castagnoli) of the frame as u32 LE, and the complete frame (its own u32 LE length
	// prefix, then the body). Payload bytes are never altered and never searched for
	// boundaries; a torn or corrupt record is detected by its length and checksum.
	FormatAioconn Format = iota
	// FormatPython is aioconnectors 1.0.33's format: records "@@@PERSISTENCE_SEPARATOR@@@"
	// + frame, with occurrences of the separator inside the frame rewritten.
	FormatPython
)

// String returns "aioconn" or "python".
func (f Format) String() string {
	if f == FormatPython {
		return "python"
	}
	return "aioconn"
}

// ParseFormat maps "aioconn" (or "") and "python" to a Format.
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "", "aioconn":
		return FormatAioconn, true
	case "python":
		return FormatPython, true
	}
	return FormatAioconn, false
}

const (
	// Magic starts every file in FormatAioconn. Its first byte (0x89) is not ASCII, so it
	// can never be mistaken for the Python separator ('@'); "\r\n" catches line-ending
	// translation.
	Magic = "\x89AIOCP\r\n"
	// Version is the FormatAioconn version this package writes and reads.
	Version = 1
	// HeaderLen is the size of the FormatAioconn file header (Magic + u32 version).
	HeaderLen = len(Magic) + 4
	// RecordMark starts every FormatAioconn record. It is only searched for when the loader
	// resynchronises after damage, and a candidate is accepted only with a valid checksum.
	RecordMark = "\xacREC"
	// RecordOverhead is what a FormatAioconn record adds to its frame (mark + CRC32C).
	RecordOverhead = len(RecordMark) + 4
	// recHead is the bytes needed to know a record's length: mark, CRC, frame prefix.
	recHead = RecordOverhead + 4
	// minBody is the smallest frame body: u16 json_len + u32 data_len.
	minBody = 6
)

var (
	mark      = []byte(RecordMark)
	header    = binary.LittleEndian.AppendUint32([]byte(Magic), Version)
	castagnol = crc32.MakeTable(crc32.Castagnoli)
)

// Header returns the FormatAioconn file header (a new slice).
func Header() []byte { return append([]byte(nil), header...) }

// AppendAioconnRecord appends one FormatAioconn record for frame (a complete frame, its
// 4-byte prefix included; not checked) to dst and returns it. Pure function; no allocation
// beyond growing dst.
func AppendAioconnRecord(dst, frame []byte) []byte {
	dst = append(dst, mark...)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(frame, castagnol))
	return append(dst, frame...)
}

// Detect tells the format of a file from its first bytes (at least HeaderLen of them when
// the file is that long): FormatPython when it starts with Separator, FormatAioconn when it
// starts with Magic. ok is false for anything else (empty, unknown, or a prefix too short
// to tell).
func Detect(start []byte) (f Format, ok bool) {
	switch {
	case bytes.HasPrefix(start, sep):
		return FormatPython, true
	case bytes.HasPrefix(start, []byte(Magic)):
		return FormatAioconn, true
	}
	return FormatAioconn, false
}
