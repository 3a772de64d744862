package connector

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzALODecoders feeds arbitrary bytes to the decoders of the at_least_once files and ring tags:
// they must never panic, and what they accept must be consistent.
func FuzzALODecoders(f *testing.F) {
	var id [8]byte
	copy(id[:], "streamid")
	f.Add(appendSegHeader(nil, id, 42, "client1"))
	f.Add(appendSegHeader(nil, id, 1, "('127.0.0.1', 10673)"))
	st := append([]byte(nil), aloStateMagic...)
	st = binary.LittleEndian.AppendUint64(st, 3)
	st = binary.LittleEndian.AppendUint32(st, 1)
	st = binary.LittleEndian.AppendUint16(st, 7)
	st = append(st, "client1"...)
	st = append(st, id[:]...)
	st = binary.LittleEndian.AppendUint64(st, 99)
	st = binary.LittleEndian.AppendUint32(st, crc32.Checksum(st, castagnoli))
	f.Add(st)
	fr := fr(`{"message_type": "any"}`, "x")
	f.Add(aloTag{seq: 5, idx: 1, epoch: 2}.appendTo(append([]byte(nil), fr...)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if seg, err := parseSegHeader("p", b); err == nil {
			if seg.hlen > len(b) || seg.last != seg.first-1 {
				t.Fatalf("header %+v of %d bytes", seg, len(b))
			}
			again := appendSegHeader(nil, seg.id, seg.first, seg.peer)
			if string(again) != string(b[:seg.hlen]) {
				t.Fatal("header does not re-encode")
			}
		}
		checkState(b)
		if frame, tag, ok := splitALOTag(b); ok {
			if len(frame)+aloTagLen != len(b) || string(tag.appendTo(append([]byte(nil), frame...))) != string(b) {
				t.Fatal("tag does not re-encode")
			}
		}
	})
}
