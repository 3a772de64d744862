package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/aioconn/aioconn/connector"
)

// runBenchHost is the child process of `aioconn bench --host-clients N`: it runs one connector
// per config file given, side by side in this process (each with its own sockets, TCP connection
// and identity, as create_connector runs it, without create_connector's telemetry: no
// detailed_stats, metrics_listen or SIGHUP reload), until ctx ends (SIGINT, SIGTERM) or one
// connector fails to start. Each hosted connector runs one event loop; the process keeps Go's
// default of one P per CPU (create_connector's single P is not applied). Measured on 2 CPUs, 100 connectors at 40 msg/s each: with
// 2 Ps the rate p99 was 0.36 - 0.39 ms and the host's CPU 70 µs per message, against 0.41 -
// 0.42 ms and 83 µs with one P per loop (101), 0.61 - 0.62 ms with 1 P, 0.39 - 0.44 ms with 8
// (benchmarks/RESULTS.md).
func runBenchHost(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: aioconn bench_host CONFIG.json [CONFIG.json ...]")
		return 2
	}
	if os.Getenv("AIOCONN_LOOPS") == "" {
		os.Setenv("AIOCONN_LOOPS", "1")
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
