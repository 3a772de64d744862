// Package persist reads and writes the disk-persistence files of an aioconnectors 1.0.33
// connector (LOCAL-API.md §9, PEER-PROTOCOL.md §6.9): one file per peer for messages that
// could not be sent (send persistence) and one file per message type for messages no local
// listener could take (receive persistence).
//
// File format (identical to the Python connector's, so either program can replay the other's
// files): a sequence of records, each the 27 ASCII bytes "@@@PERSISTENCE_SEPARATOR@@@"
// followed by one complete message frame (u32 length prefix, u16 json_len, JSON, u32
// data_len, data, and u32 bin_len + binary when the JSON's with_binary is truthy). A frame
// that contains the separator is altered before it is written: every occurrence becomes
// "#@@PERSISTENCE_SEPARATOR@@#" (same length). A valid file therefore always starts with the
// separator.
//
// The package uses only the standard library and starts no goroutines. Store serialises its
// own methods with a mutex (safe for concurrent use); Load, LoadAndRemove and DeleteRemains
// are plain functions that make blocking file-system calls and must not run on an event
// loop's hot path. A Store and a Load/LoadAndRemove of the same path must not overlap: close
// (or at least Flush) the Store first; LoadAndRemove may delete or replace the file, and a
// Store that still holds the old descriptor would write into an unlinked file (Close makes
// the next Append reopen the path).
package persist
