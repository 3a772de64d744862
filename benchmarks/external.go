package benchmarks

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/aioconn/aioconn/config"
)

// external is a server connector the bench did not start (--config): its config, and its PID
// when a `create_connector <config>` process could be found in /proc (for CPU and RSS).
type external struct {
	path string
	full *config.Options
	p    *proc
}

func (x *external) note() string {
	pid := "its process was not found in /proc (CPU and RSS of the server not measured)"
	if x.p.pid > 0 {
		pid = "PID " + strconv.Itoa(x.p.pid)
	}
	return fmt.Sprintf("server: already running connector of %s (%s), %s", x.path, x.full.SourceID(), pid)
}

// loadExternal reads the config of a running server connector and points the run at it: the
// clients the bench starts connect to its server_sockaddr with its TLS mode and certificates
// directory, and the bench's applications use its unix sockets.
func (e *env) loadExternal(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	full, err := config.Load(abs)
	if err != nil {
		return fmt.Errorf("%w: --config %s: %v", ErrBadOptions, path, err)
	}
	api, err := config.LoadAPI(abs)
	if err != nil {
		return fmt.Errorf("%w: --config %s: %v", ErrBadOptions, path, err)
	}
	if !full.IsServer || !full.HasServerSockaddr {
		return fmt.Errorf("%w: --config %s is not a server connector with a server_sockaddr", ErrBadOptions, path)
	}
	e.host, e.port, e.server = full.ServerHost, full.ServerPort, api.SourceID()
	switch {
	case !full.UseSSL:
		e.tls = TLSOff
	case full.SSLAllowAll:
		e.tls = TLSAllowAll
	default:
		e.tls = TLSStrict
	}
	e.certDir = full.CertificatesDirectoryPath
	done := make(chan struct{}) // never closed: the bench does not own the process
	p := &proc{name: "", role: "server (external)", done: done, opts: api, pid: findConnectorPID(abs)}
	e.ext = &external{path: abs, full: full, p: p}
	e.procs = append(e.procs, p)
	return nil
}

// findConnectorPID looks for one process whose command line holds "create_connector" followed
// by the config file: the one given by absolute path, else the only one by base name (a
// relative path); 0 when none or several match.
func findConnectorPID(abs string) int {
	ents, _ := os.ReadDir("/proc")
	base := filepath.Base(abs)
	var found, exact []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte("create_connector")) {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if a := args[i+1]; args[i] == "create_connector" && (a == abs || filepath.Base(a) == base) {
				found = append(found, pid)
				if a == abs {
					exact = append(exact, pid)
				}
				break
			}
		}
	}
	if len(exact) == 1 {
		return exact[0]
	}
	sort.Ints(found)
	if len(found) != 1 {
		return 0
	}
	return found[0]
}

// createCertificates makes the run's certificates tree (create_certificates of the target
// implementation) in <dir>/c.
func (e *env) createCertificates() error {
	e.certDir = filepath.Join(e.dir, "c")
	var cmd *exec.Cmd
	if e.target == TargetPython {
		cmd = exec.Command(e.python, "-m", "aioconnectors", "create_certificates", e.certDir)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+e.pyPath)
	} else {
		cmd = exec.Command(e.bin, "create_certificates", e.certDir)
	}
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: create_certificates %s: %v: %s", ErrStart, e.certDir, err, bytes.TrimSpace(out))
	}
	return nil
}
