package persist

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aioconn/aioconn/uds"
)

// SendPath is the send-persistence file of one peer (LOCAL-API.md §1.4):
// dir/connector_disk_persistence_send_from_<alnumSource>_to_peer_<alnum(peerName)>, the peer
// part being plain alnum (no "_" between host and port: "('127.0.0.1', 10673)" gives
// "12700110673"). dir is used as given (normalise it once with uds.NormalizeDir).
func SendPath(dir, alnumSource, peerName string) string {
	return uds.PersistSendPath(dir, alnumSource, peerName)
}

// RecvPath is the receive-persistence file of one message type:
// dir/connector_disk_persistence_recv_by_<alnumSource>_<msgType> (type used raw).
func RecvPath(dir, alnumSource, msgType string) string {
	return uds.PersistRecvPath(dir, alnumSource, msgType)
}

// DeleteRemains is delete_previous_persistence_remains (LOCAL-API.md §9.3): it removes every
// entry of dir whose name starts with the send prefix
// "connector_disk_persistence_send_from_<alnumSource>_to_peer_" or the receive prefix
// "connector_disk_persistence_recv_by_<alnumSource>_", calling warn(path) before each
// removal (Python logs "Deleting old persistent file : <path>" as a warning). Like Python it
// matches by prefix only, so it can hit another connector's files whose alnum source id
// extends this one after "_" (client "127001" vs server "127001_10673").
//
// Python stops at the first failure (one exception log); we try every file and return the
// failures joined (nil when all went well; a missing dir is a failure). warn may be nil. Not
// for hot paths (reads the directory).
func DeleteRemains(dir, alnumSource string, warn func(path string)) error {
	sendPrefix := filepath.Base(SendPath("d", alnumSource, ""))
	recvPrefix := filepath.Base(RecvPath("d", alnumSource, ""))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("persist: delete remains in %s: %w", dir, err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, sendPrefix) && !strings.HasPrefix(name, recvPrefix) {
			continue
		}
		p := filepath.Join(dir, name)
		if warn != nil {
			warn(p)
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("persist: delete remains: %w", err))
		}
	}
	return errors.Join(errs...)
}
