package tls

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"sort"
	"unicode/utf8"
)

// ASN.1 universal tags of the string types OpenSSL canonicalises (ASN1_MASK_CANON).
const (
	tagUTF8      = 12
	tagPrintable = 19
	tagT61       = 20
	tagIA5       = 22
	tagVisible   = 26
	tagUniversal = 28
	tagBMP       = 30
	tagSet       = 17
	tagSequence  = 16
	tagOID       = 6
)

// SubjectHash returns OpenSSL's subject hash of cert (what `openssl x509 -hash -noout` prints
// and what capath looks up: the name of the <hash>.<n> symlink) as 8 lower-case hex digits.
func SubjectHash(cert *x509.Certificate) (string, error) {
	h, err := NameHash(cert.RawSubject)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%08x", h), nil
}

// NameHash computes OpenSSL's X509_NAME_hash_ex (OpenSSL >= 1.0) of a DER-encoded Name
// (RDNSequence): SHA-1 over the canonical encoding (CanonicalName), first 4 bytes read as a
// little-endian uint32. rawName is only read.
func NameHash(rawName []byte) (uint32, error) {
	canon, err := CanonicalName(rawName)
	if err != nil {
		return 0, err
	}
	sum := sha1.Sum(canon)
	return binary.LittleEndian.Uint32(sum[:4]), nil
}

// CanonicalName returns OpenSSL's canonical encoding of a DER Name (x509_name_canon in
// crypto/x509/x_name.c): each RDN is re-encoded as a DER SET OF AttributeTypeAndValue, the
// SETs are concatenated WITHOUT the outer SEQUENCE header, empty RDNs vanish, and every value
// whose type is UTF8String, PrintableString, T61String, IA5String, VisibleString,
// UniversalString or BMPString becomes a UTF8String converted to UTF-8 (one-byte types as
// Latin-1), with leading/trailing ASCII whitespace removed, inner whitespace runs collapsed to
// one space and ASCII letters lower-cased. Other value types are copied unchanged. The result is
// a new slice; rawName is only read.
func CanonicalName(rawName []byte) ([]byte, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(rawName, &seq)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrName, err)
	}
	if len(rest) != 0 || seq.Class != asn1.ClassUniversal || seq.Tag != tagSequence || !seq.IsCompound {
		return nil, fmt.Errorf("%w: not a SEQUENCE", ErrName)
	}
	var out []byte
	body := seq.Bytes
	for len(body) > 0 {
		var set asn1.RawValue
		body, err = asn1.Unmarshal(body, &set)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrName, err)
		}
		if set.Class != asn1.ClassUniversal || set.Tag != tagSet || !set.IsCompound {
			return nil, fmt.Errorf("%w: RDN is not a SET", ErrName)
		}
		var elems [][]byte
		sb := set.Bytes
		for len(sb) > 0 {
			var atv asn1.RawValue
			sb, err = asn1.Unmarshal(sb, &atv)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrName, err)
			}
			if atv.Class != asn1.ClassUniversal || atv.Tag != tagSequence || !atv.IsCompound {
				return nil, fmt.Errorf("%w: attribute is not a SEQUENCE", ErrName)
			}
			e, err := canonATV(atv.Bytes)
			if err != nil {
				return nil, err
			}
			elems = append(elems, e)
		}
		if len(elems) == 0 {
			continue
		}
		// DER SET OF: elements sorted by their encodings (OpenSSL der_cmp: memcmp over the
		// common length, then shorter first, which is bytes.Compare).
		sort.Slice(elems, func(i, j int) bool { return bytes.Compare(elems[i], elems[j]) < 0 })
		n := 0
		for _, e := range elems {
			n += len(e)
		}
		out = appendTLV(out, 0x31, n)
		for _, e := range elems {
			out = append(out, e...)
		}
	}
	return out, nil
}

// canonATV canonicalises the body of one AttributeTypeAndValue SEQUENCE and returns the whole
// re-encoded SEQUENCE.
func canonATV(b []byte) ([]byte, error) {
	var oid, val asn1.RawValue
	rest, err := asn1.Unmarshal(b, &oid)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrName, err)
	}
	if oid.Class != asn1.ClassUniversal || oid.Tag != tagOID || oid.IsCompound {
		return nil, fmt.Errorf("%w: attribute type is not an OID", ErrName)
	}
	rest, err = asn1.Unmarshal(rest, &val)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrName, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing data in attribute", ErrName)
	}
	var v []byte
	if val.Class == asn1.ClassUniversal && !val.IsCompound && canonTag(val.Tag) {
		u, err := toUTF8(val.Tag, val.Bytes)
		if err != nil {
			return nil, err
		}
		c := canonString(u)
		v = appendTLV(nil, tagUTF8, len(c))
		v = append(v, c...)
	} else {
		v = val.FullBytes
	}
	out := appendTLV(nil, 0x30, len(oid.FullBytes)+len(v))
	out = append(out, oid.FullBytes...)
	return append(out, v...), nil
}

func canonTag(tag int) bool {
	switch tag {
	case tagUTF8, tagPrintable, tagT61, tagIA5, tagVisible, tagUniversal, tagBMP:
		return true
	}
	return false
}

// toUTF8 mirrors ASN1_STRING_to_UTF8: UTF8String is validated, one-byte types are Latin-1,
// BMPString is UCS-2 and UniversalString UCS-4 (both big-endian).
func toUTF8(tag int, b []byte) ([]byte, error) {
	switch tag {
	case tagUTF8:
		if !utf8.Valid(b) {
			return nil, fmt.Errorf("%w: invalid UTF8String", ErrName)
		}
		return b, nil
	case tagBMP, tagUniversal:
		w := 2
		if tag == tagUniversal {
			w = 4
		}
		if len(b)%w != 0 {
			return nil, fmt.Errorf("%w: odd-length wide string", ErrName)
		}
		out := make([]byte, 0, len(b))
		for i := 0; i < len(b); i += w {
			var r rune
			if w == 2 {
				r = rune(b[i])<<8 | rune(b[i+1])
			} else {
				u := uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
				if u > utf8.MaxRune {
					return nil, fmt.Errorf("%w: code point out of range", ErrName)
				}
				r = rune(u)
			}
			if r >= 0xD800 && r <= 0xDFFF {
				return nil, fmt.Errorf("%w: surrogate in wide string", ErrName)
			}
			out = utf8.AppendRune(out, r)
		}
		return out, nil
	default: // PrintableString, T61String, IA5String, VisibleString: bytes as Latin-1
		out := make([]byte, 0, len(b))
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return out, nil
	}
}

func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// canonString applies asn1_string_canon's whitespace and case rules to UTF-8 text.
func canonString(s []byte) []byte {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= 0x80:
			out = append(out, c)
			i++
		case isSpace(c):
			out = append(out, ' ')
			for i < len(s) && isSpace(s[i]) {
				i++
			}
		default:
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			out = append(out, c)
			i++
		}
	}
	return out
}

// appendTLV appends a DER tag byte and definite length.
func appendTLV(dst []byte, tag byte, n int) []byte {
	dst = append(dst, tag)
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x100:
		return append(dst, 0x81, byte(n))
	case n < 0x10000:
		return append(dst, 0x82, byte(n>>8), byte(n))
	case n < 0x1000000:
		return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
