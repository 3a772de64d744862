// Command chain measures lossless throughput of app → client connector → TCP → server connector → app
// with two aioconn processes. Usage: go run ./benchmarks/cmd/chain -bin bin/aioconn -n 2000000
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aioconn/aioconn/benchmarks"
)

func main() {
	bin := flag.String("bin", "bin/aioconn", "aioconn binary")
	n := flag.Int64("n", 1_000_000, "messages")
	size := flag.Int("size", 100, "data bytes per message")
	window := flag.Int64("window", 16000, "in-flight window")
	flag.Parse()
	ch, err := benchmarks.StartChain(*bin, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer ch.Stop()
	fmt.Println("pids", ch.PIDs())
	res, err := ch.Throughput(*n, *size, *window, 30*time.Second)
	fmt.Println(res)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
