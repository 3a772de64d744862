package tls

import (
	"crypto/rand"
	"crypto/rsa"
	"net"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkKeygenLatency: what RSA-2048 key generation does to an established link of the same
// process. A loopback TCP echo (one byte every millisecond, answered by another goroutine, as a
// peer link is served) is timed while 20 keys are made:
//
//	helper          by the pool's helper process (nice 19), taken one after the other
//	inproc          in this process, one goroutine (the in-process fallback)
//	inproc-nice19   in this process on a locked nice-19 thread (the issuer before the helper)
//	idle            no key generation (the floor)
//
// Reports round-trip p50/p99/max in µs. Run with -benchtime 1x; compare interleaved runs.
func BenchmarkKeygenLatency(b *testing.B) {
	for _, mode := range []string{"idle", "helper", "inproc", "inproc-nice19"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				keygenLatency(b, mode, 20)
			}
		})
	}
}

func keygenLatency(b *testing.B, mode string, keys int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			_ = make([]byte, 16<<10) // some garbage per message, as frames make
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		switch mode {
		case "idle":
			time.Sleep(time.Second)
		case "helper":
			p := startKeyPool(2048, 1, 1)
			if p == nil {
				b.Error("no helper")
				return
			}
			defer p.close()
			for i := 0; i < keys; i++ {
				if k, _ := p.take(); k == nil {
					b.Error("no key")
					return
				}
			}
		case "inproc", "inproc-nice19":
			if mode == "inproc-nice19" {
				runtime.LockOSThread()
				syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
				defer runtime.UnlockOSThread()
				defer syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 0)
			}
			for i := 0; i < keys; i++ {
				if _, err := rsa.GenerateKey(rand.Reader, 2048); err != nil {
					b.Error(err)
					return
				}
			}
		}
	}()
	var rtts []time.Duration
	buf := []byte{1}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
		}
		t0 := time.Now()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	if len(rtts) == 0 {
		return
	}
	slices.Sort(rtts)
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	b.ReportMetric(us(rtts[len(rtts)/2]), "p50-µs")
	b.ReportMetric(us(rtts[len(rtts)*99/100]), "p99-µs")
	b.ReportMetric(us(rtts[len(rtts)-1]), "max-µs")
	b.ReportMetric(float64(len(rtts)), "samples")
}
