// Command chain measures lossless throughput of app → client connector → TCP → server connector → app
// with two aioconn processes; it is `aioconn bench --mode throughput` with the flags of the first
// harness. Usage: go run ./benchmarks/cmd/chain -bin bin/aioconn -n 2000000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/aioconn/aioconn/benchmarks"
)

func main() {
	bin := flag.String("bin", "bin/aioconn", "aioconn binary")
	n := flag.Int64("n", 1_000_000, "messages")
	size := flag.Int("size", 100, "data bytes per message")
	window := flag.Int64("window", 16000, "in-flight window")
	dur := flag.Duration("duration", 30*time.Second, "cap on sending time")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o := benchmarks.DefaultOptions()
	o.Mode, o.Bin, o.Count, o.Size, o.Window, o.Duration = benchmarks.ModeThroughput, *bin, *n, *size, *window, *dur
	res, err := benchmarks.Run(ctx, o)
	if res != nil {
		benchmarks.WriteTable(os.Stdout, res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
