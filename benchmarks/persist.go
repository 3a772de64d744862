package benchmarks

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aioconn/aioconn/persist"
)

// persistMax is the replay bound of the connectors (1.0.33 blocks beyond 300 000 records; ours
// loads at most MaxQueueSize = 300 000).
const persistMax = 300_000

// runPersist measures disk_persistence_send: the server application sends o.Count messages to
// a client that is not connected (the server connector spills them to its persistence file:
// phase "spill", timed until the file stops growing at its full size), then that client
// connector starts and the server replays the file to it (phase "replay", from the client's
// start to the last delivery at the client application; loss counted by sequence number).
func runPersist(ctx context.Context, e *env, o *Options, res *Result) error {
	n := min(o.Count, persistMax)
	if n < o.Count {
		res.Notes = append(res.Notes, fmt.Sprintf("persist: count capped at %d (the replay bound of the connectors)", persistMax))
	}
	srv, err := e.startServer(ctx, map[string]any{"disk_persistence_send": true,
		"max_size_persistence_path": jsonNumber("100000000000")}, o.StartupTime)
	if err != nil {
		return err
	}
	clk := &clock{base: time.Now()}
	cl, err := e.prepare("p1", "client", nil)
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("unix", srv.opts.SendToConnectorPath(), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	t := newTmpl(clientHeader("any", srv.opts.SourceID(), cl.name, ""), o.Size)
	e.markCPU()
	cpuSelf0 := selfCPU()
	const batch = 256
	out := make([]byte, 0, batch*len(t.frame))
	recLen := int64(len(persist.Separator) + len(t.frame))
	want := recLen * n
	sized := false
	var size int64
	var shown atomic.Int64
	sendStart := clk.now()
	stop := make(chan struct{})
	go progress(o, stop, func() string {
		return fmt.Sprintf("persist spill: %.1fs, %d bytes on disk", time.Duration(clk.now()-sendStart).Seconds(), shown.Load())
	})
	for i := int64(0); i < n; {
		out = out[:0]
		for k := 0; k < batch && i < n; k++ {
			out = t.add(out, 0, uint64(i), clk.now())
			i++
		}
		if _, err := c.Write(out); err != nil {
			close(stop)
			return err
		}
	}
	sendEnd := clk.now()
	// wait for the file to reach its full size, or to stop growing for o.Drain
	var file string
	lastGrow, deadline := clk.now(), time.Now().Add(2*time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if file == "" {
			file = findPersistFile(e.dir, "connector_disk_persistence_send_from_")
		}
		if file != "" && !sized {
			// the record length as the connector wrote it: aioconn's format (header, mark + CRC
			// per record) or Python's (separator per record)
			if hd, rl, ok := persistLayout(file); ok {
				recLen, want, sized = rl, hd+rl*n, true
			}
		}
		var s int64
		if file != "" {
			if st, err := os.Stat(file); err == nil {
				s = st.Size()
			}
		}
		if s != size {
			size, lastGrow = s, clk.now()
			shown.Store(s)
		}
		if size >= want || time.Duration(clk.now()-lastGrow) > o.Drain {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	spill := Phase{Name: "persist spill", Sent: n}
	if size >= want {
		spill.Delivered = n
	} else {
		spill.Delivered = max(0, size-(want-recLen*n)) / recLen
		spill.Lost = n - spill.Delivered
	}
	conn, self := e.cpuSince(cpuSelf0)
	spill.rates(sendStart, sendEnd, lastGrow, n, 0, conn, self)
	if spill.Elapsed > 0 {
		spill.MBps = float64(size) / spill.Elapsed / 1e6 // bytes written to the file
	}
	res.Phases = append(res.Phases, spill)
	if size < want {
		return fmt.Errorf("benchmarks: persistence file %q has %d of %d bytes", file, size, want)
	}

	// replay: the client application listens first, then its connector starts
	cnt := newCounter(1, false)
	cnt.notify = make(chan struct{}, 1)
	sk, err := newSink(cl.opts.ReceiveFromConnectorPath("any"), clk, cnt)
	if err != nil {
		return err
	}
	sk.start()
	defer sk.close()
	e.markCPU()
	cpuSelf0 = selfCPU()
	start := clk.now()
	if err := e.launch(cl); err != nil {
		return err
	}
	stop = make(chan struct{})
	go progress(o, stop, func() string {
		return fmt.Sprintf("persist replay: %.1fs, %d of %d delivered", time.Duration(clk.now()-start).Seconds(), cnt.unique.Load(), n)
	})
	// the connector takes a moment to start: the drain's no-progress bound starts at the first arrival
	waitUntil(o.StartupTime, ctx.Done(), func() bool { return cnt.unique.Load() > 0 })
	drain(ctx, o, n, cnt.unique.Load)
	close(stop)
	rp := Phase{Name: "persist replay"}
	finish(&rp, clk, start, start, cnt, []int64{n}, o.Size, e, cpuSelf0)
	cnt.mu.Lock()
	first := cnt.firstRecv
	cnt.mu.Unlock()
	res.Phases = append(res.Phases, rp)
	if first > 0 && rp.Delivered > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("persist replay: client start to first delivery %.3fs; first to last delivery %.3fs (%.0f msg/s)",
			time.Duration(first-start).Seconds(), rp.Elapsed-time.Duration(first-start).Seconds(),
			float64(rp.Delivered)/max(1e-9, rp.Elapsed-time.Duration(first-start).Seconds())))
	}
	res.Notes = append(res.Notes, "persist: spill = server app writes to an absent client until the persistence file holds every record "+
		"(elapsed to its last growth); replay = client connector start (process launch, TCP, handshake) to the last delivery at the client app")
	return ctx.Err()
}

// persistLayout reads the start of a send persistence file: the file header length and the
// length of its first record (every record of the run has the same length).
func persistLayout(path string) (header, rec int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	b := make([]byte, 64)
	n, _ := io.ReadFull(f, b)
	b = b[:n]
	switch {
	case bytes.HasPrefix(b, []byte(persist.Magic)) && len(b) >= persist.HeaderLen+persist.RecordOverhead+4:
		fl := binary.LittleEndian.Uint32(b[persist.HeaderLen+persist.RecordOverhead:])
		return int64(persist.HeaderLen), int64(persist.RecordOverhead+4) + int64(fl), true
	case bytes.HasPrefix(b, []byte(persist.Separator)) && len(b) >= len(persist.Separator)+4:
		fl := binary.LittleEndian.Uint32(b[len(persist.Separator):])
		return 0, int64(len(persist.Separator)+4) + int64(fl), true
	}
	return 0, 0, false
}

// findPersistFile finds the first file under dir whose name starts with prefix.
func findPersistFile(dir, prefix string) string {
	var found string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return nil
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found
}
