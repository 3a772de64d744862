//go:build !race

package codec

import "testing"

// TestZeroAllocs pins the allocation-free hot paths (the race detector
// allocates, hence the build tag).
func TestZeroAllocs(t *testing.T) {
	buf := benchFrame()
	withFile := AppendFrame(nil, []byte(`{"message_type": "any", "with_file": {"src_path": "/a", "delete": false}, "with_binary": true, "src\u005fid": "x\u00e9"}`), []byte("d"), []byte("bin"), true)
	dst := make([]byte, 0, 512)
	var h Header
	var d Decoder
	stream := append(append([]byte{}, buf...), withFile...)
	for name, fn := range map[string]func(){
		"DecodeAndScan": func() {
			if _, err := decodeAndScan(buf, &h); err != nil {
				t.Fatal(err)
			}
		},
		"DecodeAndScanWithFile": func() {
			if _, err := decodeAndScan(withFile, &h); err != nil {
				t.Fatal(err)
			}
		},
		"ParseBodyHeader": func() {
			if _, err := decodeAndScanOnePass(withFile, &h); err != nil {
				t.Fatal(err)
			}
		},
		"AppendFrame": func() { dst = AppendFrame(dst[:0], benchJSON, benchJSON, benchJSON, true) },
		"SetKey": func() {
			var err error
			if dst, err = SetKey(dst[:0], benchJSON, KeyTransportID, []byte("1")); err != nil {
				t.Fatal(err)
			}
		},
		"SetKeyReplace": func() {
			var err error
			if dst, err = SetKey(dst[:0], benchJSON, KeySourceID, []byte(`"me"`)); err != nil {
				t.Fatal(err)
			}
		},
		"DeleteKey": func() {
			var err error
			if dst, err = DeleteKey(dst[:0], benchJSON, KeyRequestID); err != nil {
				t.Fatal(err)
			}
		},
		"Lookup": func() {
			if _, err := Lookup(benchJSON, "request_id"); err != nil {
				t.Fatal(err)
			}
		},
		"AppendStr": func() { dst, _ = h.SourceID.AppendStr(dst[:0]) },
		"Obj": func() {
			var o Obj
			o.Begin(dst[:0])
			o.Int(KeyTransportID, 7)
			o.Str(KeyMessageType, "_ack")
			o.Str(KeySourceID, "client1")
			dst = o.End()
		},
		"Decoder": func() {
			d.Feed(stream[:7])
			d.Feed(stream[7:])
			for {
				_, ok, err := d.Next()
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
			}
		},
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}
