package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/aioconn/aioconn/benchmarks"
	"github.com/aioconn/aioconn/connector"
	"github.com/aioconn/aioconn/loop"
)

// runBenchHost is the child process of `aioconn bench --host-clients N`: it runs one connector
// per config file given, side by side in this process (each with its own sockets, TCP connection
// and identity, as create_connector runs it, without create_connector's telemetry: no
// detailed_stats, metrics_listen or SIGHUP reload), until ctx ends (SIGINT, SIGTERM) or one
// connector fails to start. Two or more connectors share one group of event loops
// (loop.Group; one loop per P, AIOCONN_HOST_LOOPS=N for N, 0 for one engine and loop per
// connector as before 27 Nov) and the process keeps Go's default of one P per CPU. Measured on 2
// CPUs, 100 connectors at 40 msg/s each (benchmarks/RESULTS.md, 27 Nov 10:05): the shared loops
// cost the process 18 - 27 µs of CPU per message against 70 - 73 with a loop per connector (one
// thread woken per message and per connector), rate p99 258 - 316 µs against 317 - 347; with
// each connector on one loop of the group (the present code), p99 median 223 µs.
func runBenchHost(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: aioconn bench_host CONFIG.json [CONFIG.json ...]")
		return 2
	}
	if os.Getenv("AIOCONN_LOOPS") == "" {
		os.Setenv("AIOCONN_LOOPS", "1")
	}
	var grp *loop.Group
	if n, share := benchmarks.HostLoops(len(args)); share {
		var err error
		if grp, err = loop.NewGroup(n); err != nil {
			fmt.Fprintf(stderr, "aioconn: %v\n", err)
			return 1
		}
		defer grp.Close(5 * time.Second)
	}
	cns := make([]*connector.Connector, 0, len(args))
	defer func() { // on an error: stop the ones made (Close is idempotent)
		for _, cn := range cns {
			cn.Close()
		}
	}()
	for _, path := range args {
		cfg, code := loadConnectorConfig(path, stderr)
		if cfg == nil {
			return code
		}
		cn, err := connector.New(cfg, io.Discard)
		if err != nil {
			fmt.Fprintf(stderr, "aioconn: %s: %v\n", path, err)
			return 1
		}
		if grp != nil {
			cn.SetLoopGroup(grp)
		}
		cns = append(cns, cn)
	}
	defer startCPUProfile()()
	// One connector that fails to start stops them all, so that the bench sees the process exit
	// at once instead of waiting for sockets that will not appear.
	for i, cn := range cns {
		if err := cn.Start(); err != nil {
			fmt.Fprintf(stderr, "aioconn: %s: %v\n", args[i], err)
			return 1
		}
	}
	<-ctx.Done()
	for _, cn := range cns {
		cn.Close()
	}
	fmt.Fprintln(stdout, strconv.Itoa(len(cns))+" connectors stopped")
	return 0
}
