package cli

import "testing"

// Expected strings are what CPython 3.11 prints (repr of json.loads(...) / repr(bytes)).
func TestPyReprJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"message_type": "any", "source_id": "client1", "request_id": 1, "await_response": true}`, `{'message_type': 'any', 'source_id': 'client1', 'request_id': 1, 'await_response': True}`},
		{`{"a": null, "b": false, "c": [1, 2.5, "x"], "d": {"e": 1e16}}`, `{'a': None, 'b': False, 'c': [1, 2.5, 'x'], 'd': {'e': 1e+16}}`},
		{`{"s": "('127.0.0.1', 10673)"}`, `{'s': "('127.0.0.1', 10673)"}`},
		{`{"f": 1.0, "g": 0.0001, "h": 0.00001, "i": 123456789012345678901234567890}`, `{'f': 1.0, 'g': 0.0001, 'h': 1e-05, 'i': 123456789012345678901234567890}`},
		{`{"u": "\u00e9\n"}`, `{'u': 'é\n'}`},
	}
	for _, c := range cases {
		if got := pyReprJSON([]byte(c.in)); got != c.want {
			t.Errorf("pyReprJSON(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestPyBytesRepr(t *testing.T) {
	cases := []struct {
		in   []byte
		want string
	}{
		{[]byte("PING 11111"), `b'PING 11111'`},
		{[]byte{0, 1, 2, 'r', 'a', 'w', 0xff}, `b'\x00\x01\x02raw\xff'`},
		{[]byte("it's"), `b"it's"`},
		{[]byte(`a'b"c\`), `b'a\'b"c\\'`},
		{[]byte("\t\r\n"), `b'\t\r\n'`},
	}
	for _, c := range cases {
		if got := pyBytesRepr(c.in); got != c.want {
			t.Errorf("pyBytesRepr(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
