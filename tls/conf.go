package tls

import (
	"encoding/asn1"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultTemplate is the csr_details_template.conf that create_certificates writes when the
// file is absent (note the leading empty line), byte for byte as 1.0.33 writes it.
const DefaultTemplate = "\n[req]\nprompt = no\ndefault_bits = 2048\ndefault_md = sha256\ndistinguished_name = dn\n\n[ dn ]\nC = US\n"

// Conf is what this package uses from an OpenSSL `req` configuration (csr_details.conf).
type Conf struct {
	// Bits is default_bits of the [req] section (2048 when absent).
	Bits int
	// MD is default_md of the [req] section: "sha256" (default), "sha384" or "sha512".
	MD string
	// Subject holds the attributes of the distinguished_name section in file order; an entry
	// whose type had a '+' prefix joins the previous RDN (multi-valued RDN).
	Subject []NameAttr
}

// NameAttr is one subject attribute of the dn section.
type NameAttr struct {
	Type  asn1.ObjectIdentifier
	Tag   int    // ASN.1 string tag OpenSSL would use (PrintableString for C, UTF8String mostly)
	Value string // UTF-8
	Join  bool   // '+' prefix: same RDN as the previous attribute
}

// BuildConf returns the text 1.0.33's update_conf produces: the template followed by one
// "O = <org>\n" line (appended verbatim, so it lands in whatever section ends the template).
func BuildConf(template []byte, org string) []byte {
	out := make([]byte, 0, len(template)+len(org)+5)
	out = append(out, template...)
	out = append(out, "O = "...)
	out = append(out, org...)
	return append(out, '\n')
}

// attribute names OpenSSL knows (short and long names, OBJ_txt2nid), with the string type the
// req command gives them under the default "utf8only" string mask.
var knownAttrs = map[string]struct {
	oid asn1.ObjectIdentifier
	tag int
}{
	"C": {asn1.ObjectIdentifier{2, 5, 4, 6}, tagPrintable}, "countryName": {asn1.ObjectIdentifier{2, 5, 4, 6}, tagPrintable},
	"ST": {asn1.ObjectIdentifier{2, 5, 4, 8}, tagUTF8}, "stateOrProvinceName": {asn1.ObjectIdentifier{2, 5, 4, 8}, tagUTF8},
	"L": {asn1.ObjectIdentifier{2, 5, 4, 7}, tagUTF8}, "localityName": {asn1.ObjectIdentifier{2, 5, 4, 7}, tagUTF8},
	"O": {asn1.ObjectIdentifier{2, 5, 4, 10}, tagUTF8}, "organizationName": {asn1.ObjectIdentifier{2, 5, 4, 10}, tagUTF8},
	"OU": {asn1.ObjectIdentifier{2, 5, 4, 11}, tagUTF8}, "organizationalUnitName": {asn1.ObjectIdentifier{2, 5, 4, 11}, tagUTF8},
	"CN": {asn1.ObjectIdentifier{2, 5, 4, 3}, tagUTF8}, "commonName": {asn1.ObjectIdentifier{2, 5, 4, 3}, tagUTF8},
	"street": {asn1.ObjectIdentifier{2, 5, 4, 9}, tagUTF8}, "streetAddress": {asn1.ObjectIdentifier{2, 5, 4, 9}, tagUTF8},
	"postalCode":   {asn1.ObjectIdentifier{2, 5, 4, 17}, tagUTF8},
	"serialNumber": {asn1.ObjectIdentifier{2, 5, 4, 5}, tagPrintable},
	"title":        {asn1.ObjectIdentifier{2, 5, 4, 12}, tagUTF8},
	"description":  {asn1.ObjectIdentifier{2, 5, 4, 13}, tagUTF8},
	"name":         {asn1.ObjectIdentifier{2, 5, 4, 41}, tagUTF8},
	"SN":           {asn1.ObjectIdentifier{2, 5, 4, 4}, tagUTF8}, "surname": {asn1.ObjectIdentifier{2, 5, 4, 4}, tagUTF8},
	"GN": {asn1.ObjectIdentifier{2, 5, 4, 42}, tagUTF8}, "givenName": {asn1.ObjectIdentifier{2, 5, 4, 42}, tagUTF8},
	"initials":               {asn1.ObjectIdentifier{2, 5, 4, 43}, tagUTF8},
	"generationQualifier":    {asn1.ObjectIdentifier{2, 5, 4, 44}, tagUTF8},
	"dnQualifier":            {asn1.ObjectIdentifier{2, 5, 4, 46}, tagPrintable},
	"pseudonym":              {asn1.ObjectIdentifier{2, 5, 4, 65}, tagUTF8},
	"emailAddress":           {asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, tagIA5},
	"DC":                     {asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, tagIA5},
	"domainComponent":        {asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, tagIA5},
	"UID":                    {asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, tagUTF8},
	"userId":                 {asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, tagUTF8},
	"organizationIdentifier": {asn1.ObjectIdentifier{2, 5, 4, 97}, tagUTF8},
}

type confLine struct{ name, value string }

// ParseConf reads the subset of OpenSSL's config syntax that `openssl req -config` needs here:
// "[ section ]" headers, "name = value" lines, '#' comments, blank lines. Values are taken
// literally (no $variable expansion, quoting or .include). It requires "prompt = no" in [req]
// (1.0.33's template has it; with prompting OpenSSL would read the subject from the terminal),
// finds the distinguished_name section, and maps its entries to subject attributes the way
// `openssl req` does (prefix up to the first '.', ',' or ':' dropped, '+' starts a multi-valued
// RDN, C must be 2 printable characters, input bytes are Latin-1 unless "utf8 = yes").
// It never panics; errors wrap ErrConf and name the line or field at fault.
func ParseConf(text []byte) (*Conf, error) {
	sections := map[string][]confLine{}
	cur := "default"
	for i, raw := range strings.Split(string(text), "\n") {
		line := raw
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("%w: line %d: missing close square bracket", ErrConf, i+1)
			}
			cur = strings.TrimSpace(line[1:end])
			continue
		}
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			return nil, fmt.Errorf("%w: line %d: missing equal sign", ErrConf, i+1)
		}
		name := strings.TrimSpace(line[:eq])
		if name == "" {
			return nil, fmt.Errorf("%w: line %d: empty name", ErrConf, i+1)
		}
		sections[cur] = append(sections[cur], confLine{name, strings.TrimSpace(line[eq+1:])})
	}
	get := func(sec, name string) (string, bool) {
		// last assignment wins, then the default section (NCONF_get_string)
		for _, s := range []string{sec, "default"} {
			l := sections[s]
			for k := len(l) - 1; k >= 0; k-- {
				if l[k].name == name {
					return l[k].value, true
				}
			}
		}
		return "", false
	}
	c := &Conf{Bits: 2048, MD: "sha256"}
	if v, ok := get("req", "default_bits"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1024 || n > 16384 {
			return nil, fmt.Errorf("%w: default_bits %q (want 1024..16384)", ErrConf, v)
		}
		c.Bits = n
	}
	if v, ok := get("req", "default_md"); ok {
		switch v {
		case "sha256", "sha384", "sha512":
			c.MD = v
		default:
			return nil, fmt.Errorf("%w: default_md %q (want sha256, sha384 or sha512)", ErrConf, v)
		}
	}
	if v, _ := get("req", "prompt"); v != "no" {
		return nil, fmt.Errorf("%w: [req] prompt must be \"no\"", ErrConf)
	}
	latin1 := true
	if v, _ := get("req", "utf8"); v == "yes" {
		latin1 = false
	}
	dn, ok := get("req", "distinguished_name")
	if !ok {
		return nil, fmt.Errorf("%w: no distinguished_name in [req]", ErrConf)
	}
	entries, ok := sections[dn]
	if !ok {
		return nil, fmt.Errorf("%w: no section [%s]", ErrConf, dn)
	}
	for _, e := range entries {
		typ := e.name
		if j := strings.IndexAny(typ, ".,:"); j >= 0 && j+1 < len(typ) {
			typ = typ[j+1:]
		}
		join := false
		if strings.HasPrefix(typ, "+") {
			typ, join = typ[1:], true
		}
		ka, ok := knownAttrs[typ]
		if !ok {
			return nil, fmt.Errorf("%w: [%s] unknown subject field %q", ErrConf, dn, e.name)
		}
		val := e.value
		if latin1 {
			b := make([]byte, 0, len(val))
			for i := 0; i < len(val); i++ {
				b = utf8.AppendRune(b, rune(val[i]))
			}
			val = string(b)
		} else if !utf8.ValidString(val) {
			return nil, fmt.Errorf("%w: [%s] %s: invalid UTF-8", ErrConf, dn, e.name)
		}
		if val == "" {
			return nil, fmt.Errorf("%w: [%s] %s: empty value", ErrConf, dn, e.name)
		}
		switch ka.tag {
		case tagPrintable:
			if !isPrintableString(val) {
				return nil, fmt.Errorf("%w: [%s] %s: %q is not a PrintableString", ErrConf, dn, e.name, val)
			}
			if ka.oid.Equal(knownAttrs["C"].oid) && len(val) != 2 {
				return nil, fmt.Errorf("%w: [%s] %s: %q must be 2 characters", ErrConf, dn, e.name, val)
			}
		case tagIA5:
			for i := 0; i < len(val); i++ {
				if val[i] >= 0x80 {
					return nil, fmt.Errorf("%w: [%s] %s: %q is not an IA5String", ErrConf, dn, e.name, val)
				}
			}
		}
		if len(c.Subject) == 0 {
			join = false
		}
		c.Subject = append(c.Subject, NameAttr{Type: ka.oid, Tag: ka.tag, Value: val, Join: join})
	}
	if len(c.Subject) == 0 {
		return nil, fmt.Errorf("%w: [%s] has no subject fields", ErrConf, dn)
	}
	return c, nil
}

func isPrintableString(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
			continue
		}
		switch b {
		case ' ', '\'', '(', ')', '+', ',', '-', '.', '/', ':', '=', '?':
			continue
		}
		return false
	}
	return true
}

// MarshalSubject returns the DER Name for the subject, with the string types OpenSSL's req
// uses (Go's pkix would pick PrintableString for "company"; OpenSSL writes UTF8String).
func (c *Conf) MarshalSubject() ([]byte, error) {
	type atv struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	var rdns [][]byte
	var cur []atv
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		b, err := asn1.MarshalWithParams(cur, "set")
		if err != nil {
			return err
		}
		rdns = append(rdns, b)
		cur = nil
		return nil
	}
	for _, a := range c.Subject {
		if !a.Join {
			if err := flush(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrConf, err)
			}
		}
		cur = append(cur, atv{a.Type, asn1.RawValue{Class: asn1.ClassUniversal, Tag: a.Tag, Bytes: []byte(a.Value)}})
	}
	if err := flush(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConf, err)
	}
	n := 0
	for _, r := range rdns {
		n += len(r)
	}
	out := appendTLV(make([]byte, 0, n+4), 0x30, n)
	for _, r := range rdns {
		out = append(out, r...)
	}
	return out, nil
}
