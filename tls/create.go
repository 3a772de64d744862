package tls

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CreateCertificates makes the <baseDir>/certificates/ tree as 1.0.33's `python3 -m
// aioconnectors create_certificates <baseDir>` does, without running openssl:
//
//	server/csr_details_template.conf        written (DefaultTemplate) only when absent
//	server/csr_details.conf                 template + "O = <org>" of the last certificate made
//	server/server-cert/server.pem|.key      self-signed, O=company
//	server/client-certs/default.pem         copy of the client default certificate
//	server/client-certs/symlinks/<hash>.0   -> ../default.pem
//	client/server-cert/server.crt           copy of server.pem (the pinned server certificate)
//	client/client-certs/default.pem|.key    self-signed, O=<random number below 10^8>
//
// Certificates are made by GenerateSelfSigned from the template (+ O line): by default X.509
// v1, RSA-2048, sha256WithRSAEncryption, 3650 days, 159-bit random serial, subject C=US,O=<org>.
// Keys are PKCS#8 PEM written with mode 0600; certificates and directories follow the umask.
//
// log receives the lines 1.0.33 logs (bare messages, one per line; nil discards them):
// "Certificates will be created under directory : <dir>/certificates", "Using preexisting
// <template>" when the template exists, "Finished create_certificates". It refuses, logging
// "<dir> should be empty before starting this process" and returning a *NotEmptyError
// (errors.Is ErrNotEmpty), when server/server-cert, server/client-certs or client exists and is
// not empty. ("Starting create_certificates" is the caller's line in 1.0.33's __main__.)
// Safe to call concurrently only on different trees.
func CreateCertificates(baseDir string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	p := NewPaths(baseDir)
	logln(log, "Certificates will be created under directory : "+p.Base)
	for _, d := range []string{p.ServerCertDir, p.ServerClientDir, p.ClientDir} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tls: create_certificates: %w", err)
		}
		if len(ents) > 0 {
			e := &NotEmptyError{Dir: d}
			logln(log, e.Error())
			return e
		}
	}
	for _, d := range []string{p.ServerCertDir, p.SymlinksDir, p.ClientServerDir, p.ClientCertsDir} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return fmt.Errorf("tls: create_certificates: %w", err)
		}
	}
	template, err := os.ReadFile(p.TemplateConf)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		template = []byte(DefaultTemplate)
		if err := os.WriteFile(p.TemplateConf, template, 0o666); err != nil {
			return fmt.Errorf("tls: create_certificates: %w", err)
		}
	case err != nil:
		return fmt.Errorf("tls: create_certificates: %w", err)
	default:
		logln(log, "Using preexisting "+p.TemplateConf)
	}

	// 1) server certificate, copied to the client side as the pinned server.crt
	srv, err := generateWithConf(p.Conf, template, "company")
	if err != nil {
		return err
	}
	if err := writeKeyPair(p.ServerPEM, p.ServerKey, srv, false); err != nil {
		return err
	}
	if err := writeFile(p.ClientServerCRT, srv.CertPEM, 0o666, false); err != nil {
		return err
	}

	// 2) client default certificate, copied (without key) to the server side
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		return err
	}
	def, err := generateWithConf(p.Conf, template, n.String())
	if err != nil {
		return err
	}
	if err := writeKeyPair(p.ClientDefaultPEM, p.ClientDefaultKey, def, false); err != nil {
		return err
	}
	if err := writeFile(p.ServerDefaultPEM, def.CertPEM, 0o666, false); err != nil {
		return err
	}

	// 3) + 4) symlinks/<hash>.0 -> ../default.pem
	link := filepath.Join(p.SymlinksDir, def.Hash+".0")
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tls: create_certificates: %w", err)
	}
	if err := os.Symlink("../"+DefaultCertName+".pem", link); err != nil {
		return fmt.Errorf("tls: create_certificates: %w", err)
	}
	logln(log, "Finished create_certificates")
	return nil
}

func logln(w io.Writer, s string) { io.WriteString(w, s+"\n") }

// generateWithConf writes the scratch csr_details.conf (template + O line), parses it and
// generates a certificate from it.
func generateWithConf(confPath string, template []byte, org string) (*Generated, error) {
	text := BuildConf(template, org)
	if err := writeFile(confPath, text, 0o666, false); err != nil {
		return nil, err
	}
	conf, err := ParseConf(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", confPath, err)
	}
	return GenerateSelfSigned(conf, time.Now(), nil)
}

// writeKeyPair writes the key (0600) then the certificate. excl refuses existing files.
func writeKeyPair(pemPath, keyPath string, g *Generated, excl bool) error {
	if err := writeFile(keyPath, g.KeyPEM, 0o600, excl); err != nil {
		return err
	}
	return writeFile(pemPath, g.CertPEM, 0o666, excl)
}

// writeFile writes data with mode (umask applies at creation; a key file is chmod-ed to 0600
// whatever the umask or a previous mode). excl fails if the file exists.
func writeFile(path string, data []byte, mode os.FileMode, excl bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if excl {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	if mode == 0o600 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("tls: %w", err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tls: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	return nil
}
