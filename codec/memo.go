package codec

import "bytes"

// MaxMemoJSON is the longest transport JSON a HeaderMemo remembers; longer headers are scanned
// every time (they are rare, and copying them would cost what the memo saves).
const MaxMemoJSON = 512

// MemoStoreNow is the replacement rule of header memos (this package's and the Go API's
// encoded-header memo): of the headers that miss the memo (misses counts them, from 1), the
// 2nd, 10th, 18th... replace it. A stream of headers that never repeat (a request id in each)
// then pays a comparison, not a copy, per frame; a connection that carries one message (an
// await request, Python's non-preserve mode) copies nothing; a sender that settles on one
// header is remembered within eight frames.
func MemoStoreNow(misses uint32) bool { return misses >= 2 && (misses-2)%8 == 0 }

// nHeaderFields is the number of Values in a Header.
const nHeaderFields = 11

// HeaderMemo remembers the last transport JSON that ScanHeader accepted and where its routing
// keys lie, so that a stream of frames with the same header (a telemetry producer sending one
// message type to one destination: the usual case) is validated by one byte comparison instead
// of a scan. The Header it fills aliases the JSON passed in, exactly as ScanHeader's does, so a
// caller cannot tell a remembered header from a scanned one. The memo owns a copy of at most
// MaxMemoJSON bytes, replaced as MemoStoreNow says. Not safe for concurrent use: keep one per
// reader (a connection, a peer). The zero value is ready to use; a nil *HeaderMemo scans.
type HeaderMemo struct {
	json []byte                   // copy of the last accepted JSON (nil: nothing remembered)
	pos  [nHeaderFields][2]uint16 // start, end of each Value's Raw in json
	kind [nHeaderFields]Kind
	// misses counts the accepted headers short enough to remember that differed from json
	misses uint32
}

// fields lists h's Values in a fixed order.
func (h *Header) fields() [nHeaderFields]*Value {
	return [nHeaderFields]*Value{&h.MessageType, &h.SourceID, &h.DestinationID, &h.RequestID,
		&h.ResponseID, &h.WithBinary, &h.AwaitResponse, &h.WaitForAck, &h.TransportID,
		&h.WithFile, &h.MessageTypePublish}
}

// Scan is ScanHeader(json, h), answered from the memo when json holds the same bytes as the
// last JSON it accepted. Errors are ScanHeader's, and an error leaves the memo as it was.
func (m *HeaderMemo) Scan(json []byte, h *Header) error {
	if m == nil {
		return ScanHeader(json, h)
	}
	if m.json != nil && bytes.Equal(m.json, json) {
		*h = Header{}
		for i, f := range h.fields() {
			if k := m.kind[i]; k != KindAbsent {
				*f = Value{Raw: json[m.pos[i][0]:m.pos[i][1]], Kind: k}
			}
		}
		return nil
	}
	if err := ScanHeader(json, h); err != nil {
		return err
	}
	if len(json) > MaxMemoJSON {
		return nil
	}
	if m.misses++; !MemoStoreNow(m.misses) {
		return nil
	}
	var pos [nHeaderFields][2]uint16
	var kind [nHeaderFields]Kind
	for i, f := range h.fields() {
		kind[i] = f.Kind
		if f.Kind == KindAbsent {
			continue
		}
		// f.Raw is json[a:b] (ScanHeader slices its input): its capacity runs to the end of
		// json's capacity. Anything else is not remembered.
		a := cap(json) - cap(f.Raw)
		if len(f.Raw) == 0 || a < 0 || a+len(f.Raw) > len(json) || &json[a] != &f.Raw[0] {
			return nil
		}
		pos[i] = [2]uint16{uint16(a), uint16(a + len(f.Raw))}
	}
	m.json = append(m.json[:0], json...)
	m.pos, m.kind = pos, kind
	return nil
}

// ParseBodyHeaderMemo is ParseBodyHeader with the JSON scanned through m (nil: no memo).
func ParseBodyHeaderMemo(body []byte, h *Header, m *HeaderMemo) (f Frame, err error) {
	if err = parseSections(body, &f); err != nil {
		*h = Header{}
		return Frame{}, err
	}
	if err = m.Scan(f.JSON, h); err != nil {
		return Frame{}, err
	}
	if err = finishBody(&f, h.WithBinary.Truthy()); err != nil {
		*h = Header{}
		return Frame{}, err
	}
	return f, nil
}
