package tls

import (
	gotls "crypto/tls"
	"fmt"
	"os"
)

// StoreClientCertificate saves the certificate a server sent in set_new_certificate as
// client/client-certs/<clientName>.pem and .key under baseDir (the key with mode 0600), each
// written atomically (temporary file + rename). Unlike 1.0.33 it first checks that the pair
// parses and matches (crypto/tls.X509KeyPair: PKCS#8 or PKCS#1 keys), so a garbled reply cannot
// replace a working setup; errors wrap ErrCert or ErrBadSourceID. The directory is created if
// missing. Safe for concurrent use on different client names.
func StoreClientCertificate(baseDir, clientName string, certPEM, keyPEM []byte) error {
	if err := checkSourceID(clientName); err != nil {
		return fmt.Errorf("%w: %q", err, clientName)
	}
	if err := checkClientPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("%w: certificate for %s: %v", ErrCert, clientName, err)
	}
	p := NewPaths(baseDir)
	if err := os.MkdirAll(p.ClientCertsDir, 0o777); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	pemPath, keyPath := p.ClientOwnCert(clientName)
	// key first: once the .pem exists the client selects this pair
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if err := writeFileAtomic(pemPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}

// checkClientPair accepts a certificate/key pair a client may store: the key matches the leaf
// (X509KeyPair, which reads only the first block) and every CERTIFICATE block parses (what the
// client reads back at each handshake).
func checkClientPair(certPEM, keyPEM []byte) error {
	if _, err := gotls.X509KeyPair(certPEM, keyPEM); err != nil {
		return err
	}
	_, err := ParseCertsPEM(certPEM)
	return err
}
