package tls

import (
	"errors"
	"os"
	"syscall"
)

// Sentinel errors. Errors returned by this package wrap one of these (test with errors.Is) and
// name the file, key or client at fault.
var (
	// ErrNotEmpty: create_certificates found a non-empty server/server-cert, server/client-certs or
	// client directory. The wrapping *NotEmptyError carries the 1.0.33 message text.
	ErrNotEmpty = errors.New("tls: directory should be empty before starting this process")
	// ErrConf: csr_details_template.conf (or the text built from it) cannot be used.
	ErrConf = errors.New("tls: bad csr details configuration")
	// ErrName: an X.509 distinguished name cannot be parsed or canonicalised.
	ErrName = errors.New("tls: bad distinguished name")
	// ErrCert: a certificate or key file holds no usable PEM certificate / private key.
	ErrCert = errors.New("tls: bad certificate or key")
	// ErrMap: source_id_2_cert.json is not in the two-map format.
	ErrMap = errors.New("tls: bad source_id_2_cert.json")
	// ErrCertExists: a certificate already exists for the client (the wrapping *CertExistsError
	// carries the 1.0.33 text).
	ErrCertExists = errors.New("tls: certificate already exists")
	// ErrBadSourceID: a source_id cannot be used as a file name (empty, ".", "..", or containing
	// '/' or NUL). 1.0.33 would build paths outside client-certs/ from such names.
	ErrBadSourceID = errors.New("tls: source_id cannot name a certificate file")
	// ErrQueueFull: the Issuer's bounded queue is full; try again later (or close the peer).
	ErrQueueFull = errors.New("tls: certificate issuance queue is full")
	// ErrIssuerClosed: the Issuer was closed before the request ran.
	ErrIssuerClosed = errors.New("tls: certificate issuer closed")
	// ErrPeerRejected: the peer's certificate is not trusted (strict mode pinning / symlinks).
	ErrPeerRejected = errors.New("tls: peer certificate rejected")
	// ErrTooManyLinks: no free <hash>.<n> symlink index below the bound.
	ErrTooManyLinks = errors.New("tls: too many symlinks with the same subject hash")
)

// Crypto helper errors (helper.go), internal: the server then signs or makes the key itself.
var (
	// errHelperGone: the helper's pipe ended.
	errHelperGone = errors.New("tls: crypto helper gone")
	// errHelperRefused: the helper answered with an error (its text follows), e.g. "busy".
	errHelperRefused = errors.New("tls: crypto helper refused the request")
	// errHelperTimeout: no reply within the caller's bound.
	errHelperTimeout = errors.New("tls: crypto helper did not answer in time")
)

// NotEmptyError is returned by CreateCertificates when it refuses to overwrite a tree. Error()
// reads "<Dir> should be empty before starting this process" (the text 1.0.33 logs).
type NotEmptyError struct{ Dir string }

func (e *NotEmptyError) Error() string {
	return e.Dir + " should be empty before starting this process"
}

// Unwrap returns ErrNotEmpty.
func (e *NotEmptyError) Unwrap() error { return ErrNotEmpty }

// CertExistsError is returned when issuing a certificate for a source_id whose
// client-certs/<source_id>.pem exists. Error() is the 1.0.33 text.
type CertExistsError struct{ SourceID string }

func (e *CertExistsError) Error() string {
	return "A certificate already exists for client " + e.SourceID + ". Use delete_client_certificate to delete it"
}

// Unwrap returns ErrCertExists.
func (e *CertExistsError) Unwrap() error { return ErrCertExists }

// pyErrText renders an error the way Python's str(OSError) would ("[Errno 2] No such file or
// directory: '/x'"), so the msg of the deletion replies resembles 1.0.33's; other errors keep
// their Go text.
func pyErrText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		var no syscall.Errno
		if errors.As(pe.Err, &no) {
			return "[Errno " + itoa(int(no)) + "] " + capFirst(no.Error()) + ": '" + pe.Path + "'"
		}
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		var no syscall.Errno
		if errors.As(le.Err, &no) {
			return "[Errno " + itoa(int(no)) + "] " + capFirst(no.Error()) + ": '" + le.Old + "' -> '" + le.New + "'"
		}
	}
	return err.Error()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// capFirst upper-cases an initial ASCII letter (Go's errno texts are lower-case, glibc's are not).
func capFirst(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
