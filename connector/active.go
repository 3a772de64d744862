package connector

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/aioconn/aioconn/codec"
)

// resolveInterface maps an interface name (a host without '.') to its first IPv4 address, as
// aioconnectors does with `ip addr show`; "" when host is not an interface name.
func resolveInterface(host string) string {
	if host == "" || strings.Contains(host, ".") || host == "localhost" {
		return ""
	}
	ifi, err := net.InterfaceByName(host)
	if err != nil {
		return ""
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	return ""
}

var activeMu sync.Mutex // serialises this process's edits of active_connectors.json

// activeName is this connector's entry in active_connectors.json: "<host> <port>" or client_name.
func (c *Connector) activeName() string {
	if c.cfg.IsServer {
		return c.cfg.ServerHost + " " + strconv.Itoa(c.cfg.ServerPort)
	}
	return c.cfg.ClientName
}

func (c *Connector) editActive(add bool) {
	activeMu.Lock()
	defer activeMu.Unlock()
	path := filepath.Join(c.cfg.ConnectorFilesDirpath, "active_connectors.json")
	var names []string
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &names)
	}
	name := c.activeName()
	out := names[:0:0]
	for _, n := range names {
		if n != name && !contains(out, n) {
			out = append(out, n)
		}
	}
	if add {
		out = append(out, name)
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, n := range out {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(codec.AppendPyString(nil, n))
	}
	b.WriteByte(']')
	// Written to a temporary file and renamed, so a reader (the cli) never sees half a file.
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		c.log.Warnf("could not write %s : %v", path, err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		c.log.Warnf("could not write %s : %v", path, err)
	}
}

func (c *Connector) registerActive()   { c.editActive(true) }
func (c *Connector) unregisterActive() { c.editActive(false) }

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
