package tls

import (
	"os"
	"path/filepath"
	"strings"
)

// DefaultBaseDir is 1.0.33's default certificates_directory_path (and create_certificates
// target): /tmp/aioconnectors, or, when /tmp does not exist, the shorter of
// ~/aioconnectors_tmp and ./aioconnectors_tmp (absolute).
func DefaultBaseDir() string {
	if _, err := os.Stat("/tmp"); err == nil {
		return "/tmp/aioconnectors"
	}
	c2, _ := filepath.Abs("aioconnectors_tmp")
	home, err := os.UserHomeDir()
	if err != nil {
		return c2
	}
	c1 := filepath.Join(home, "aioconnectors_tmp")
	if len(c2) < len(c1) {
		return c2
	}
	return c1
}

// Paths names every file of a certificates tree. Build it with NewPaths; it is a plain value.
type Paths struct {
	Base string // <baseDir>/certificates

	ServerDir        string // certificates/server
	TemplateConf     string // server/csr_details_template.conf
	Conf             string // server/csr_details.conf
	ServerCertDir    string // server/server-cert
	ServerPEM        string // server/server-cert/server.pem
	ServerKey        string // server/server-cert/server.key
	ServerClientDir  string // server/client-certs
	SymlinksDir      string // server/client-certs/symlinks
	SourceIDMap      string // server/client-certs/source_id_2_cert.json
	ServerDefaultPEM string // server/client-certs/default.pem

	ClientDir        string // certificates/client
	ClientServerDir  string // client/server-cert
	ClientServerCRT  string // client/server-cert/server.crt (1.0.33 pinned server certificate)
	ClientServerPEM  string // client/server-cert/server.pem (1.6 name of the same file)
	ClientCertsDir   string // client/client-certs
	ClientDefaultPEM string // client/client-certs/default.pem
	ClientDefaultKey string // client/client-certs/default.key
}

// DefaultCertName is the base name of the client default certificate.
const DefaultCertName = "default"

// NewPaths lays out the tree under <baseDir>/certificates (baseDir as given, not normalised).
func NewPaths(baseDir string) Paths {
	b := filepath.Join(baseDir, "certificates")
	s := filepath.Join(b, "server")
	c := filepath.Join(b, "client")
	p := Paths{
		Base:            b,
		ServerDir:       s,
		TemplateConf:    filepath.Join(s, "csr_details_template.conf"),
		Conf:            filepath.Join(s, "csr_details.conf"),
		ServerCertDir:   filepath.Join(s, "server-cert"),
		ServerClientDir: filepath.Join(s, "client-certs"),
		ClientDir:       c,
		ClientServerDir: filepath.Join(c, "server-cert"),
		ClientCertsDir:  filepath.Join(c, "client-certs"),
	}
	p.ServerPEM = filepath.Join(p.ServerCertDir, "server.pem")
	p.ServerKey = filepath.Join(p.ServerCertDir, "server.key")
	p.SymlinksDir = filepath.Join(p.ServerClientDir, "symlinks")
	p.SourceIDMap = filepath.Join(p.ServerClientDir, "source_id_2_cert.json")
	p.ServerDefaultPEM = filepath.Join(p.ServerClientDir, DefaultCertName+".pem")
	p.ClientServerCRT = filepath.Join(p.ClientServerDir, "server.crt")
	p.ClientServerPEM = filepath.Join(p.ClientServerDir, "server.pem")
	p.ClientDefaultPEM = filepath.Join(p.ClientCertsDir, DefaultCertName+".pem")
	p.ClientDefaultKey = filepath.Join(p.ClientCertsDir, DefaultCertName+".key")
	return p
}

// ServerClientCert returns server/client-certs/<sourceID>.pem and .key.
func (p Paths) ServerClientCert(sourceID string) (pem, key string) {
	return filepath.Join(p.ServerClientDir, sourceID+".pem"), filepath.Join(p.ServerClientDir, sourceID+".key")
}

// ClientOwnCert returns client/client-certs/<clientName>.pem and .key.
func (p Paths) ClientOwnCert(clientName string) (pem, key string) {
	return filepath.Join(p.ClientCertsDir, clientName+".pem"), filepath.Join(p.ClientCertsDir, clientName+".key")
}

// ClientCertPaths returns the certificate and key a strict-mode client presents: its own
// client/client-certs/<clientName>.pem|.key when that .pem exists (and clientName is usable as a
// file name), else default.pem|.key; isDefault reports the latter (then the client must ask for
// its own certificate with `_ssl` get_new_certificate).
func ClientCertPaths(baseDir, clientName string) (certPath, keyPath string, isDefault bool) {
	p := NewPaths(baseDir)
	if checkSourceID(clientName) == nil {
		pem, key := p.ClientOwnCert(clientName)
		if _, err := os.Stat(pem); err == nil {
			return pem, key, false
		}
	}
	return p.ClientDefaultPEM, p.ClientDefaultKey, true
}

// PinnedServerCertPath returns the file a strict client pins the server certificate with:
// client/server-cert/server.crt (1.0.33), or server.pem (1.6 trees) when server.crt is absent.
// If neither exists it returns the server.crt path.
func PinnedServerCertPath(baseDir string) string {
	p := NewPaths(baseDir)
	if _, err := os.Stat(p.ClientServerCRT); err == nil {
		return p.ClientServerCRT
	}
	if _, err := os.Stat(p.ClientServerPEM); err == nil {
		return p.ClientServerPEM
	}
	return p.ClientServerCRT
}

// checkSourceID rejects names that cannot be one file name inside client-certs/.
func checkSourceID(s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return ErrBadSourceID
	}
	return nil
}
