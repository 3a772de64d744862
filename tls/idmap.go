package tls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aioconn/aioconn/codec"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// omap is a string->string map that keeps Python dict order: insertion order, a re-assigned
// key keeps its place, a deleted key is gone.
type omap struct {
	keys []string
	m    map[string]string
}

func (o *omap) get(k string) (string, bool) { v, ok := o.m[k]; return v, ok }

func (o *omap) set(k, v string) {
	if o.m == nil {
		o.m = map[string]string{}
	}
	if _, ok := o.m[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.m[k] = v
}

func (o *omap) del(k string) {
	if _, ok := o.m[k]; !ok {
		return
	}
	delete(o.m, k)
	for i, x := range o.keys {
		if x == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			return
		}
	}
}

func (o *omap) clone() omap {
	c := omap{keys: append([]string(nil), o.keys...), m: make(map[string]string, len(o.m))}
	for k, v := range o.m {
		c.m[k] = v
	}
	return c
}

// SourceIDMap is the content of server/client-certs/source_id_2_cert.json: the two maps
// name -> serial ("source_id_2_cert") and serial -> name ("cert_2_source_id"), each in Python
// dict order (file order, then insertion order). The zero value is an empty map. A
// SourceIDMap is not safe for concurrent mutation; ServerStore guards the one it owns.
type SourceIDMap struct {
	byName   omap
	bySerial omap
}

// Serial returns the serial recorded for a client name.
func (m *SourceIDMap) Serial(name string) (string, bool) { return m.byName.get(name) }

// Name returns the client name recorded for a serial (OpenSSL text, see SerialString).
func (m *SourceIDMap) Name(serial string) (string, bool) { return m.bySerial.get(serial) }

// Len is the number of names in source_id_2_cert.
func (m *SourceIDMap) Len() int { return len(m.byName.keys) }

// Names returns the names of source_id_2_cert in order (a new slice).
func (m *SourceIDMap) Names() []string { return append([]string(nil), m.byName.keys...) }

// Set records name <-> serial in both maps (as 1.0.33's create_client_certificate does; an old
// serial of name stays in cert_2_source_id, like in Python).
func (m *SourceIDMap) Set(name, serial string) {
	m.byName.set(name, serial)
	m.bySerial.set(serial, name)
}

// Remove pops name from source_id_2_cert and its serial from cert_2_source_id; it returns the
// serial and whether name was present with a non-empty serial (Python's `if cert:`).
func (m *SourceIDMap) Remove(name string) (string, bool) {
	serial, ok := m.byName.get(name)
	m.byName.del(name)
	if !ok || serial == "" {
		return serial, false
	}
	m.bySerial.del(serial)
	return serial, true
}

// Clone returns a deep copy.
func (m *SourceIDMap) Clone() *SourceIDMap {
	return &SourceIDMap{byName: m.byName.clone(), bySerial: m.bySerial.clone()}
}

// AppendJSON appends the map exactly as Python's json.dump with default arguments writes it:
// `{"source_id_2_cert": {"<name>": "<serial>"}, "cert_2_source_id": {"<serial>": "<name>"}}`,
// separators ", " and ": ", ASCII only (\uXXXX escapes, lower-case hex), no trailing newline.
func (m *SourceIDMap) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"source_id_2_cert": `...)
	dst = appendOmap(dst, &m.byName)
	dst = append(dst, `, "cert_2_source_id": `...)
	dst = appendOmap(dst, &m.bySerial)
	return append(dst, '}')
}

func appendOmap(dst []byte, o *omap) []byte {
	dst = append(dst, '{')
	for i, k := range o.keys {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = codec.AppendPyString(dst, k)
		dst = append(dst, ": "...)
		dst = codec.AppendPyString(dst, o.m[k])
	}
	return append(dst, '}')
}

// ParseSourceIDMap decodes source_id_2_cert.json as json.load + 1.0.33 would use it: a JSON
// object with the objects "source_id_2_cert" and "cert_2_source_id" whose values are strings;
// a missing one is empty, other top-level keys are ignored, key order is kept (a duplicated key
// keeps its first place and its last value, like a Python dict). Errors wrap ErrMap. data is
// only read.
func ParseSourceIDMap(data []byte) (*SourceIDMap, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrMap)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMap, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrMap)
	}
	m := &SourceIDMap{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMap, err)
		}
		key, _ := tok.(string)
		var dst *omap
		switch key {
		case "source_id_2_cert":
			dst = &m.byName
		case "cert_2_source_id":
			dst = &m.bySerial
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrMap, err)
			}
			continue
		}
		*dst = omap{} // a repeated top-level key replaces the whole inner dict, like Python
		if err := decodeStringObject(dec, dst, key); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, fmt.Errorf("%w: %v", ErrMap, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: trailing data", ErrMap)
	}
	return m, nil
}

func decodeStringObject(dec *json.Decoder, dst *omap, name string) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMap, name, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("%w: %s is not an object", ErrMap, name)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMap, name, err)
		}
		k, _ := tok.(string)
		tok, err = dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMap, name, err)
		}
		v, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%w: %s[%q] is not a string", ErrMap, name, k)
		}
		dst.set(k, v)
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMap, name, err)
	}
	return nil
}

// ReadSourceIDMap loads the map file; a missing file is an empty map (like 1.0.33).
func ReadSourceIDMap(path string) (*SourceIDMap, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &SourceIDMap{}, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := ParseSourceIDMap(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// WriteSourceIDMap writes the map to path atomically (temporary file in the same directory,
// fsync, rename; mode 0644), so a reader never sees a half-written file. Callers that
// read-modify-write must serialise themselves (ServerStore does).
func WriteSourceIDMap(path string, m *SourceIDMap) error {
	return writeFileAtomic(path, m.AppendJSON(nil), 0o644)
}

// writeFileAtomic writes data to a temporary file next to path, syncs, chmods and renames it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
