package tls

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxLinkIndex bounds the <hash>.<n> indexes searched (issuance and verification).
const MaxLinkIndex = 1 << 16

// ServerStore is the server side of one certificates tree in this process: the
// source_id_2_cert.json maps in memory, and every mutation of server/client-certs/
// (per-client .pem/.key, symlinks/, the JSON file, the csr_details.conf scratch file).
//
// There is one ServerStore per tree per process (OpenServerStore returns the shared one), and
// its mutex serialises every read-modify-write of the tree, so concurrent issuances and
// deletions never lose an update: each one changes the in-memory maps and rewrites the whole
// JSON file (temporary file + rename, so readers never see a torn file) while holding the lock.
// Lookups take a read lock and never touch the disk. All methods are safe for concurrent use.
// Other processes sharing the tree are not coordinated with (neither does 1.0.33).
type ServerStore struct {
	paths Paths

	mu            sync.RWMutex
	m             *SourceIDMap
	defaultSerial string
}

var stores sync.Map // absolute base dir -> *ServerStore

// OpenServerStore returns the process-wide ServerStore of <baseDir>/certificates and (re)loads
// its state from disk, as a 1.0.33 server does at start: source_id_2_cert.json (absent =
// empty; unparsable = error) and the serial of server/client-certs/default.pem (absent = "",
// which IsDefault never matches; 1.0.33 refuses to start then, the caller decides).
func OpenServerStore(baseDir string) (*ServerStore, error) {
	abs, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	v, _ := stores.LoadOrStore(abs, &ServerStore{paths: NewPaths(abs), m: &SourceIDMap{}})
	s := v.(*ServerStore)
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads source_id_2_cert.json and default.pem.
func (s *ServerStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := ReadSourceIDMap(s.paths.SourceIDMap)
	if err != nil {
		return err
	}
	s.m = m
	s.defaultSerial, _ = DefaultSerial(filepath.Dir(s.paths.Base))
	return nil
}

// Paths returns the tree's file names.
func (s *ServerStore) Paths() Paths { return s.paths }

// NameOf returns the client name bound to a certificate serial (cert_2_source_id).
func (s *ServerStore) NameOf(serial string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m.Name(serial)
}

// SerialOf returns the serial bound to a client name (source_id_2_cert), for the per-frame
// impersonation check.
func (s *ServerStore) SerialOf(name string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m.Serial(name)
}

// DefaultSerial returns the default certificate's serial loaded by the last (re)load.
func (s *ServerStore) DefaultSerial() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.defaultSerial
}

// IsDefault reports whether serial is the default certificate's serial.
func (s *ServerStore) IsDefault(serial string) bool {
	d := s.DefaultSerial()
	return d != "" && serial == d
}

// Map returns a copy of the current maps.
func (s *ServerStore) Map() *SourceIDMap {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m.Clone()
}

// Issued describes a certificate issued for a client. The slices are the caller's.
type Issued struct {
	SourceID string
	CertPEM  []byte // the "crt" of set_new_certificate
	KeyPEM   []byte // the "key" of set_new_certificate (PKCS#8)
	Serial   string // as SerialString
	Hash     string // subject hash
	Link     string // symlinks/<hash>.<n> created
}

// uuid4Hex returns uuid.uuid4().hex: 32 lower-case hex digits with the version and variant bits.
func uuid4Hex() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return hex.EncodeToString(b[:]), nil
}

// Issue makes the per-client certificate of 1.0.33's create_client_certificate: refuses if
// server/client-certs/<sourceID>.pem exists (*CertExistsError, 1.0.33's text) or if sourceID
// cannot be a file name (ErrBadSourceID); otherwise generates a key pair from
// csr_details_template.conf (DefaultTemplate if the file is missing) + "O = <uuid4 hex>",
// writes <sourceID>.key (0600) and .pem, the csr_details.conf scratch file, the symlink
// symlinks/<hash>.<first free n> -> ../<sourceID>.pem, records name <-> serial and rewrites
// source_id_2_cert.json. Key generation runs outside the lock (so issuances proceed in
// parallel); the file and map updates run under it and are undone if a later step fails.
//
// The key is generated in this process, one at a time process-wide (an Issuer takes it from
// its pool of keys made by a low-priority helper process instead).
func (s *ServerStore) Issue(sourceID string) (*Issued, error) {
	return s.issue(sourceID, nil)
}

// keyBits returns the key size csr_details_template.conf asks for now (DefaultTemplate's if
// the file is missing).
func (s *ServerStore) keyBits() (int, bool) {
	template, err := os.ReadFile(s.paths.TemplateConf)
	if errors.Is(err, fs.ErrNotExist) {
		template = []byte(DefaultTemplate)
	} else if err != nil {
		return 0, false
	}
	conf, err := ParseConf(BuildConf(template, "0"))
	if err != nil {
		return 0, false
	}
	return conf.Bits, true
}

// issue is Issue with the key taken from keys when it holds keys of the configuration's size.
func (s *ServerStore) issue(sourceID string, keys *keyPool) (*Issued, error) {
	if err := checkSourceID(sourceID); err != nil {
		return nil, fmt.Errorf("%w: %q", err, sourceID)
	}
	pemPath, keyPath := s.paths.ServerClientCert(sourceID)
	if _, err := os.Lstat(pemPath); err == nil {
		return nil, &CertExistsError{SourceID: sourceID}
	}
	template, err := os.ReadFile(s.paths.TemplateConf)
	if errors.Is(err, fs.ErrNotExist) {
		template = []byte(DefaultTemplate)
	} else if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	org, err := uuid4Hex()
	if err != nil {
		return nil, err
	}
	confText := BuildConf(template, org)
	conf, err := ParseConf(confText)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.paths.TemplateConf, err)
	}
	var key *rsa.PrivateKey
	var signer crypto.Signer // nil: sign in the server (serialSigner)
	if keys != nil && keys.bits == conf.Bits {
		var id uint32
		if key, id = keys.take(); key != nil {
			signer = keys.signer(key, id) // the helper signs with the key it made
		}
	}
	if key == nil {
		if key, err = generateKeyInProcess(conf.Bits); err != nil {
			return nil, err
		}
	}
	runtime.Gosched()
	g, err := selfSigned(conf, key, signer, time.Now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	runtime.Gosched()

	s.mu.Lock()
	defer s.mu.Unlock()
	var undo []func()
	fail := func(err error) (*Issued, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	// O_EXCL: a concurrent request for the same name that got here first wins.
	if err := writeFile(pemPath, g.CertPEM, 0o666, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, &CertExistsError{SourceID: sourceID}
		}
		return nil, err
	}
	undo = append(undo, func() { os.Remove(pemPath) })
	if err := writeFile(keyPath, g.KeyPEM, 0o600, false); err != nil {
		return fail(err)
	}
	undo = append(undo, func() { os.Remove(keyPath) })
	// the scratch file 1.0.33 leaves behind (never read back: no race on it), rewritten in
	// place like 1.0.33 does, without the temporary file, fsync and rename of an atomic write
	// (kernel time at the server's priority, per issuance, during a storm)
	_ = writeFile(s.paths.Conf, confText, 0o644, false)
	link := ""
	for i := 0; i < MaxLinkIndex; i++ {
		cand := filepath.Join(s.paths.SymlinksDir, g.Hash+"."+strconv.Itoa(i))
		if _, err := os.Lstat(cand); err == nil {
			continue
		}
		if err := os.Symlink("../"+sourceID+".pem", cand); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return fail(fmt.Errorf("tls: %w", err))
		}
		link = cand
		break
	}
	if link == "" {
		return fail(fmt.Errorf("%w: %s", ErrTooManyLinks, g.Hash))
	}
	undo = append(undo, func() { os.Remove(link) })
	next := s.m.Clone()
	next.Set(sourceID, g.Serial)
	if err := WriteSourceIDMap(s.paths.SourceIDMap, next); err != nil {
		return fail(fmt.Errorf("tls: %w", err))
	}
	s.m = next
	return &Issued{SourceID: sourceID, CertPEM: g.CertPEM, KeyPEM: g.KeyPEM, Serial: g.Serial, Hash: g.Hash, Link: link}, nil
}

// Delete is 1.0.33's remove_client_cert_on_server (delete_client_certificate on a server):
// remove the symlink pointing to ../<clientID>.pem and rename the higher-indexed links of the
// same hash down by one (so OpenSSL's capath walk <hash>.0, .1, ... still reaches them); unless
// removeOnlySymlink, delete <clientID>.pem and .key; pop clientID from both maps and rewrite
// the JSON. It returns the status and msg of the JSON reply `{"status": ..., "msg": ...}`:
// (true, "") on success, (false, "remove_client_cert non existing client in
// source_id_2_cert : <clientID>") if the name was not in the map (the files are still
// deleted, as in 1.0.33), or (false, <Python-style OS error text>) on failure.
//
// Differences from 1.0.33, which only make it more robust: entries of symlinks/ that are not
// symlinks or not named <hash>.<n> are skipped (Python fails with an exception), the links
// above a deleted index 0 are renamed too (Python leaves a gap that hides them from OpenSSL),
// and a clientID that cannot be a file name never deletes files.
func (s *ServerStore) Delete(clientID string, removeOnlySymlink bool) (ok bool, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents, err := os.ReadDir(s.paths.SymlinksDir)
	if err != nil {
		return false, pyErrText(err)
	}
	target := "../" + clientID + ".pem"
	for _, e := range ents {
		path := filepath.Join(s.paths.SymlinksDir, e.Name())
		if dst, err := os.Readlink(path); err != nil || dst != target {
			continue
		}
		if err := os.Remove(path); err != nil {
			return false, pyErrText(err)
		}
		if err := renameDown(s.paths.SymlinksDir, e.Name(), ents); err != nil {
			return false, pyErrText(err)
		}
		break
	}
	if !removeOnlySymlink && checkSourceID(clientID) == nil {
		pemPath, keyPath := s.paths.ServerClientCert(clientID)
		if _, err := os.Stat(pemPath); err == nil {
			if err := os.Remove(pemPath); err != nil {
				return false, pyErrText(err)
			}
			if _, err := os.Stat(keyPath); err == nil {
				if err := os.Remove(keyPath); err != nil {
					return false, pyErrText(err)
				}
			}
		}
	}
	next := s.m.Clone()
	if _, found := next.Remove(clientID); !found {
		return false, "remove_client_cert non existing client in source_id_2_cert : " + clientID
	}
	if err := WriteSourceIDMap(s.paths.SourceIDMap, next); err != nil {
		return false, pyErrText(err)
	}
	s.m = next
	return true, ""
}

// splitLink splits "<hash>.<n>" (n a decimal index).
func splitLink(name string) (hash string, idx int, ok bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(name[dot+1:])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return name[:dot], n, true
}

// renameDown renames <hash>.<i> to <hash>.<i-1> for every i above the removed link's index.
func renameDown(dir, removed string, ents []os.DirEntry) error {
	hash, idx, ok := splitLink(removed)
	if !ok {
		return nil
	}
	var others []int
	for _, e := range ents {
		if h, i, ok := splitLink(e.Name()); ok && h == hash && i > idx {
			others = append(others, i)
		}
	}
	sort.Ints(others)
	for _, i := range others {
		from := filepath.Join(dir, hash+"."+strconv.Itoa(i))
		to := filepath.Join(dir, hash+"."+strconv.Itoa(i-1))
		if err := os.Rename(from, to); err != nil {
			return err
		}
	}
	return nil
}

// DeleteClientCertificateOnServer runs ServerStore.Delete on the tree's shared store (see
// there for the results). It is what delete_client_certificate does on a 1.0.33 server.
func DeleteClientCertificateOnServer(baseDir, clientID string, removeOnlySymlink bool) (ok bool, msg string) {
	s, err := OpenServerStore(baseDir)
	if err != nil {
		return false, pyErrText(err)
	}
	return s.Delete(clientID, removeOnlySymlink)
}

// DeleteClientCertificateOnClient is 1.0.33's remove_client_cert_on_client: delete
// client/client-certs/<clientName>.pem and .key. A missing .pem is not an error (1.0.33 only
// logs a warning): (true, ""). Failures give (false, <Python-style OS error text>). The caller
// then falls back to the default certificate and reconnects (asking for a new certificate).
func DeleteClientCertificateOnClient(baseDir, clientName string) (ok bool, msg string) {
	if checkSourceID(clientName) != nil {
		return true, ""
	}
	pemPath, keyPath := NewPaths(baseDir).ClientOwnCert(clientName)
	if _, err := os.Stat(pemPath); err != nil {
		return true, ""
	}
	if err := os.Remove(pemPath); err != nil {
		return false, pyErrText(err)
	}
	if _, err := os.Stat(keyPath); err == nil {
		if err := os.Remove(keyPath); err != nil {
			return false, pyErrText(err)
		}
	}
	return true, ""
}
