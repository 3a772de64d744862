package tls

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// Validity of every certificate (`openssl req -x509 -days 3650`).
const Validity = 3650 * 24 * time.Hour

// SerialString formats a serial number as OpenSSL prints it (`openssl x509 -serial`,
// i2a_ASN1_INTEGER) and as Python's getpeercert()['serialNumber'] gives it: upper-case hex, two
// digits per byte of the minimal big-endian magnitude, leading zero nibble kept, "00" for zero
// or nil. A negative serial (invalid in X.509 but parseable) gets a leading "-" like OpenSSL.
func SerialString(n *big.Int) string {
	if n == nil || n.Sign() == 0 {
		return "00"
	}
	s := strings.ToUpper(hex.EncodeToString(n.Bytes()))
	if n.Sign() < 0 {
		return "-" + s
	}
	return s
}

// newSerial returns what OpenSSL 3's `req -x509` picks: 159 random bits (so at most 20 bytes,
// top bit clear), never zero.
func newSerial(r io.Reader) (*big.Int, error) {
	var b [20]byte
	for i := 0; i < 8; i++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		b[0] &= 0x7f
		n := new(big.Int).SetBytes(b[:])
		if n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, fmt.Errorf("tls: random source returns zeros")
}

var (
	oidRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
)

type algID struct {
	Algorithm  asn1.ObjectIdentifier
	Parameters asn1.RawValue
}

type validity struct {
	NotBefore, NotAfter time.Time
}

// tbsV1 is an X.509 v1 TBSCertificate: the version field is absent (DEFAULT v1), no
// extensions, as `openssl req -x509` makes it when the config has no x509_extensions.
type tbsV1 struct {
	Serial    *big.Int
	SigAlg    algID
	Issuer    asn1.RawValue
	Validity  validity
	Subject   asn1.RawValue
	PublicKey asn1.RawValue
}

type certificate struct {
	TBS    asn1.RawValue
	SigAlg algID
	Sig    asn1.BitString
}

// Generated is a freshly made key pair: PEM texts as written to disk, and the parsed
// certificate. The slices are owned by the caller.
type Generated struct {
	CertPEM []byte // "-----BEGIN CERTIFICATE-----" block
	KeyPEM  []byte // PKCS#8 "-----BEGIN PRIVATE KEY-----" block
	Cert    *x509.Certificate
	Serial  string // SerialString(Cert.SerialNumber)
	Hash    string // SubjectHash(Cert)
}

// GenerateSelfSigned makes what `openssl req -new -newkey rsa -nodes -x509 -days 3650 -config
// <conf>` makes with 1.0.33's configuration on OpenSSL 3.0: an RSA key of conf.Bits (e=65537),
// an X.509 v1 self-signed certificate (issuer = subject = conf.Subject, no extensions) signed
// with conf.MD+RSA (PKCS#1 v1.5), a random 159-bit serial, notBefore = now (whole seconds, UTC),
// notAfter = now + 3650 days. rnd nil means crypto/rand.Reader.
func GenerateSelfSigned(conf *Conf, now time.Time, rnd io.Reader) (*Generated, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if conf == nil {
		return nil, fmt.Errorf("%w: nil configuration", ErrConf)
	}
	if _, err := conf.MarshalSubject(); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rnd, conf.Bits)
	if err != nil {
		return nil, fmt.Errorf("tls: generating RSA-%d key: %w", conf.Bits, err)
	}
	return selfSigned(conf, key, nil, now, rnd)
}

// selfSigned is GenerateSelfSigned with a key made beforehand, which must be an RSA key of
// conf.Bits bits that is used for nothing else. The signature is made by signer (key's; nil:
// in this process, under signSem). rnd must not be nil.
func selfSigned(conf *Conf, key *rsa.PrivateKey, signer crypto.Signer, now time.Time, rnd io.Reader) (*Generated, error) {
	if key == nil || key.N.BitLen() != conf.Bits {
		return nil, fmt.Errorf("%w: key is not RSA-%d", ErrConf, conf.Bits)
	}
	subject, err := conf.MarshalSubject()
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial(rnd)
	if err != nil {
		return nil, err
	}
	var oid asn1.ObjectIdentifier
	var h crypto.Hash
	switch conf.MD {
	case "sha384":
		oid, h = oidSHA384, crypto.SHA384
	case "sha512":
		oid, h = oidSHA512, crypto.SHA512
	default:
		oid, h = oidSHA256, crypto.SHA256
	}
	alg := algID{oid, asn1.NullRawValue}
	now = now.UTC().Truncate(time.Second)
	tbs, err := asn1.Marshal(tbsV1{
		Serial:    serial,
		SigAlg:    alg,
		Issuer:    asn1.RawValue{FullBytes: subject},
		Validity:  validity{now, now.Add(Validity)},
		Subject:   asn1.RawValue{FullBytes: subject},
		PublicKey: asn1.RawValue{FullBytes: spki},
	})
	if err != nil {
		return nil, fmt.Errorf("tls: encoding certificate: %w", err)
	}
	hh := h.New()
	hh.Write(tbs)
	if signer == nil {
		signer = &serialSigner{k: key} // one signature at a time with the handshakes (config.go)
	}
	sig, err := signer.Sign(rnd, hh.Sum(nil), h)
	if err != nil {
		return nil, fmt.Errorf("tls: signing certificate: %w", err)
	}
	der, err := asn1.Marshal(certificate{asn1.RawValue{FullBytes: tbs}, alg, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		return nil, fmt.Errorf("tls: encoding certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tls: parsing generated certificate: %w", err)
	}
	pk8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	hash, err := SubjectHash(cert)
	if err != nil {
		return nil, err
	}
	return &Generated{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk8}),
		Cert:    cert,
		Serial:  SerialString(cert.SerialNumber),
		Hash:    hash,
	}, nil
}

// ParseCertsPEM returns every CERTIFICATE block of a PEM file, parsed (other blocks are
// skipped). It fails with ErrCert if there is none or one does not parse.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCert, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrCert)
	}
	return out, nil
}
