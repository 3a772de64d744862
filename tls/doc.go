// Package tls holds aioconn's TLS security modes and the certificate workflow of aioconnectors
// 1.0.33 (PEER-PROTOCOL §10), implemented with crypto/x509, crypto/rsa and encoding/asn1: no
// openssl binary is run. The standard crypto/tls package is imported as gotls. Event-loop
// integration (handshakes on connections) belongs to the connector package.
//
// # Certificates tree (create_certificates)
//
//	CreateCertificates(baseDir string, log io.Writer) error
//	NewPaths(baseDir string) Paths; DefaultBaseDir() string
//	GenerateSelfSigned(conf *Conf, now time.Time, rnd io.Reader) (*Generated, error)
//	ParseConf(text []byte) (*Conf, error); BuildConf(template []byte, org string) []byte
//	DefaultTemplate
//
// Certificates are what `openssl req -new -newkey rsa -nodes -x509 -days 3650 -config
// csr_details.conf` makes on OpenSSL 3.0 with 1.0.33's configuration, i.e. what the golden
// captures show: X.509 v1 (no version field, no extensions), RSA-2048 (default_bits), SHA-256
// (default_md), 159-bit random serial, notBefore = now, notAfter = now + 3650 days, issuer =
// subject = the [dn] section of the template followed by "O = <org>" (C as PrintableString, O
// as UTF8String, exactly OpenSSL's encoding). crypto/x509.CreateCertificate can only emit v3,
// so the TBSCertificate is built with encoding/asn1 and signed with crypto/rsa; crypto/x509
// parses the result. Keys are PKCS#8 PEM, mode 0600.
//
// # OpenSSL subject hash
//
//	SubjectHash(cert *x509.Certificate) (string, error)
//	NameHash(rawName []byte) (uint32, error); CanonicalName(rawName []byte) ([]byte, error)
//
// The <hash>.<n> symlink names Python's capath lookup needs: X509_NAME_hash_ex, SHA-1 of the
// canonical name encoding, first 4 bytes little-endian.
//
// # Serials and the name map
//
//	SerialString(*big.Int) string
//	SourceIDMap, ParseSourceIDMap, ReadSourceIDMap, WriteSourceIDMap, (*SourceIDMap).AppendJSON
//
// source_id_2_cert.json is read and written byte-compatibly with Python's json.dump (two maps,
// dict order, ", "/": " separators, ASCII escapes, no newline).
//
// # Server side
//
//	OpenServerStore(baseDir string) (*ServerStore, error)  // one per tree per process
//	(*ServerStore).Issue(sourceID) (*Issued, error); .Delete(clientID, removeOnlySymlink) (bool, string)
//	(*ServerStore).NameOf(serial), .SerialOf(name), .IsDefault(serial), .DefaultSerial(), .Map(), .Reload()
//	NewIssuer(store, workers, queue) *Issuer; NewIssuerWith(store, IssuerOptions{Workers, Queue, KeyPool}) *Issuer
//	(*Issuer).Submit / Issue / Close; DefaultKeyPool (ready keys made by a nice-19 helper process, keygen.go)
//	DeleteClientCertificateOnServer(baseDir, clientID string, removeOnlySymlink bool) (bool, string)
//	DefaultSerial(baseDir) (string, error); IsDefaultCert(baseDir, serial string) bool
//
// # Client side
//
//	StoreClientCertificate(baseDir, clientName string, certPEM, keyPEM []byte) error
//	ClientCertPaths(baseDir, clientName) (cert, key string, isDefault bool)
//	PinnedServerCertPath(baseDir) string
//	DeleteClientCertificateOnClient(baseDir, clientName string) (bool, string)
//
// # TLS configurations
//
//	ServerConfig(baseDir string, allowAll bool) (*gotls.Config, error)
//	ClientConfig(baseDir, clientName string, allowAll bool) (*gotls.Config, error)
//	VerifyClientCert, VerifyServerCert, PeerSerial(gotls.ConnectionState) string
//
// Strict mode pins certificates by bytes (client certificates reachable through symlinks/,
// the server certificate in server.crt) instead of relying on chain building: the certificates
// are self-signed v1 without names, Python sends no SNI and checks no host name. Pinning by bytes
// is stricter than OpenSSL's capath, which would also accept any certificate signed with the
// (widely distributed) default key, including one carrying another client's serial.
//
// Concurrency: functions without a receiver are safe to call concurrently on different files;
// ServerStore and Issuer are safe for concurrent use; the returned gotls.Config callbacks are
// safe for concurrent handshakes. Nothing here panics on any input; errors wrap the sentinels
// of errors.go.
package tls
