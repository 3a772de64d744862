// Package persist reads and writes the disk-persistence files of an aioconnectors 1.0.33
// connector (LOCAL-API.md §9, PEER-PROTOCOL.md §6.9): one file per peer for messages that
// could not be sent (send persistence) and one file per message type for messages no local
// listener could take (receive persistence).
//
// Two file formats (docs/persistence.md gives both byte by byte). FormatAioconn, written by
// default: a 12-byte header (Magic, u32 LE version) and records of RecordMark, the CRC32C of the
// frame and the frame itself (u32 length prefix, u16 json_len, JSON, u32 data_len, data, and
// u32 bin_len + binary when the JSON's with_binary is truthy), never altered; a torn or corrupt
// record is found by its length and checksum, the loader resynchronises on the next intact
// record, and LoadAndRemove copies the damaged bytes to <file>.corrupt-<offset>.
// FormatPython, 1.0.33's: records of the 27 ASCII bytes "@@@PERSISTENCE_SEPARATOR@@@" followed
// by the frame, every occurrence of the separator inside it rewritten as
// "#@@PERSISTENCE_SEPARATOR@@#". Load and LoadAndRemove recognise the format from the first
// bytes (Detect), so files left by a Python connector are replayed; a Store appends in the format
// of the file it finds, and in its configured format (OpenFormat) to new files.
//
// The package uses only the standard library and starts no goroutines. Store serialises its
// own methods with a mutex (safe for concurrent use); Load, LoadAndRemove and DeleteRemains
// are plain functions that make blocking file-system calls and must not run on an event
// loop's hot path. A Store and a Load/LoadAndRemove of the same path must not overlap: close
// (or at least Flush) the Store first; LoadAndRemove may delete or replace the file, and a
// Store that still holds the old descriptor would write into an unlinked file (Close makes
// the next Append reopen the path).
package persist
