// Package benchmarks is the end-to-end harness behind `aioconn bench` and the Go benchmarks of
// whole paths. It starts real connector processes (aioconn, or the Python aioconnectors 1.0.33
// for comparison) on 127.0.0.1 with short temp directories, drives them through their unix
// sockets exactly as applications do, counts every message by its sequence number at the
// receiver and stops exactly the processes it started (by PID).
//
// Concurrency: Run may be called from several goroutines; each run has its own processes,
// directory and ports.
package benchmarks

import (
	"encoding/binary"
	"io"
	"net"
	"time"

	"github.com/aioconn/aioconn/codec"
)

// Command sends one commander request (JSON text) to the commander socket at path and
// returns the reply; bounded by 5 s.
func Command(path, req string) (string, error) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(codec.AppendCommand(nil, []byte(req))); err != nil {
		return "", err
	}
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint32(h[:])
	if n > 1<<24 {
		return "", io.ErrUnexpectedEOF
	}
	b := make([]byte, n)
	_, err = io.ReadFull(c, b)
	return string(b), err
}
