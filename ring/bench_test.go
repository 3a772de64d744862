package ring

// Measured on a shared 2-core AMD EPYC VM (GOMAXPROCS=2, Go 1.26.8), best of 6 runs of 1s,
// ns per item, 0 allocs everywhere:
//
//	MPSCPushPop (one goroutine)      26    PrioPushPop                  36
//	MPSCPopBatch (64, one goroutine) 21    PrioPopBatch                 20
//	MPSC1Producer (Pop)              49    MPSC4Producers (Pop)         43–53
//	MPSC1ProducerBatch               39    MPSC4ProducersBatch          42–46
//	Prio1ProducerBatch (mutex)       35    Prio4ProducersBatch (mutex)  23
//	PrioLockFree1ProducerBatch       44    PrioLockFree4ProducersBatch  26
//
// Contended numbers swing 2–4x when other processes load the machine; compare only
// interleaved runs. With only two cores the mutex queue is as fast as the lock-free one;
// re-measure on the target machine before choosing.
//
// 26 Nov, same machine under a load average of 40–60 (other benchmarks), so wall-clock ns/op
// meant nothing; process CPU time per item instead (getrusage around 3 M items, one producer
// goroutine, the consumer polling PopBatch(64) as in BenchmarkPrioSendPath, 5 runs each):
//
//	Prio, per item Len + Bytes + Push (the peer send path), Bytes taking the mutex   65–135 ns (median 74)
//	  the same with Bytes a lock-free read (current)                                 55–61 ns (median 58)
//	  lock-free Prio (producers CAS into an MPSC inbox, consumer sorts; not kept)    56–210 ns (median 62)
//	  PushBatch of 16 / 64 items                                                     17–23 / 15–22 ns
//	MPSC, Push per item                                                              30–179 ns (median 43)
//	  PushBatch of 16 / 64 items                                                     26–37 / 20–41 ns

import (
	"runtime"
	"sync"
	"testing"
)

// One goroutine pushes then pops: the uncontended cost of a Push+Pop pair.
func BenchmarkMPSCPushPop(b *testing.B) {
	q := NewMPSC[*int](300000, 1<<30)
	x := 1
	b.ReportAllocs()
	for b.Loop() {
		q.Push(&x, 100)
		q.Pop()
	}
}

// One producer goroutine, the benchmark goroutine consumes with Pop; ns/op per item.
func BenchmarkMPSC1Producer(b *testing.B) { benchProducers(b, 1, false) }

// Four producer goroutines, one consumer with Pop.
func BenchmarkMPSC4Producers(b *testing.B) { benchProducers(b, 4, false) }

// One producer, consumer with PopBatch(64).
func BenchmarkMPSC1ProducerBatch(b *testing.B) { benchProducers(b, 1, true) }

// Four producers, consumer with PopBatch(64).
func BenchmarkMPSC4ProducersBatch(b *testing.B) { benchProducers(b, 4, true) }

func benchProducers(b *testing.B, producers int, batch bool) {
	q := NewMPSC[*int](16384, 0)
	x := 1
	b.ReportAllocs()
	b.ResetTimer()
	per := b.N / producers
	total := per * producers
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				for !q.Push(&x, 100) {
					runtime.Gosched()
				}
			}
		}()
	}
	buf := make([]*int, 0, 64)
	for got := 0; got < total; {
		if batch {
			buf = q.PopBatch(buf[:0], 64)
			got += len(buf)
			if len(buf) == 0 {
				runtime.Gosched()
			}
		} else if _, ok := q.Pop(); ok {
			got++
		} else {
			runtime.Gosched()
		}
	}
	wg.Wait()
}

// Push 64 then PopBatch 64 on one goroutine; ns/op per item.
func BenchmarkMPSCPopBatch(b *testing.B) {
	q := NewMPSC[*int](300000, 0)
	x := 1
	buf := make([]*int, 0, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i += 64 {
		for j := 0; j < 64; j++ {
			q.Push(&x, 100)
		}
		buf = q.PopBatch(buf[:0], 64)
	}
}

func BenchmarkPrioPushPop(b *testing.B) {
	q := NewPrio[*int](300000, 1<<30)
	x := 1
	buf := make([]*int, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		q.Push(&x, 100, 0)
		buf = q.PopBatch(buf[:0], 1, 0)
	}
}

// Push 64 over 3 priorities then PopBatch 64 on one goroutine; ns/op per item.
func BenchmarkPrioPopBatch(b *testing.B) {
	q := NewPrio[*int](300000, 0)
	x := 1
	buf := make([]*int, 0, 64)
	b.ReportAllocs()
	for i := 0; i < b.N; i += 64 {
		for j := 0; j < 64; j++ {
			q.Push(&x, 100, j%3)
		}
		buf = q.PopBatch(buf[:0], 64, 0)
	}
}

// Producers on the mutex queue (two priorities), consumer with PopBatch(64): compare with
// BenchmarkMPSC1Producer / BenchmarkMPSC4ProducersBatch (lock-free).
func BenchmarkPrio1ProducerBatch(b *testing.B)  { benchPrio(b, 1) }
func BenchmarkPrio4ProducersBatch(b *testing.B) { benchPrio(b, 4) }

func benchPrio(b *testing.B, producers int) {
	q := NewPrio[*int](16384, 0)
	x := 1
	b.ReportAllocs()
	b.ResetTimer()
	per := b.N / producers
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				for !q.Push(&x, 100, p%2) {
					runtime.Gosched()
				}
			}
		}(p)
	}
	buf := make([]*int, 0, 64)
	for got := 0; got < per*producers; {
		buf = q.PopBatch(buf[:0], 64, 0)
		got += len(buf)
		if len(buf) == 0 {
			runtime.Gosched()
		}
	}
	wg.Wait()
}

// The peer send path of connector/api.go: per item Len and Bytes (the backpressure check),
// then Push at priority 0, from one producer; the consumer drains with PopBatch(64, 256 KiB)
// and yields when it finds nothing, like a link goroutine polling. ns/op per item.
func BenchmarkPrioSendPath(b *testing.B) {
	q := NewPrio[*int](300000, 256<<20)
	x := 1
	benchPrioSendPath(b, q, func() {
		for i := 0; i < b.N; i++ {
			for q.Len() >= 300000 || q.Bytes()+100 > 256<<20 || !q.Push(&x, 100, 0) {
				runtime.Gosched()
			}
		}
	})
}

// benchPrioSendPath times produce, run once on its own goroutine to hand b.N items to q, with
// this goroutine draining them with PopBatch(64, 256 KiB) and yielding when it finds nothing.
func benchPrioSendPath(b *testing.B, q *Prio[*int], produce func()) {
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		produce()
	}()
	buf := make([]*int, 0, 64)
	for got := 0; got < b.N; {
		buf = q.PopBatch(buf[:0], 64, 256<<10)
		got += len(buf)
		if len(buf) == 0 {
			runtime.Gosched()
		}
	}
	<-done
}

// One producer hands items over in batches of 16 with PushBatch (compare with
// BenchmarkMPSC1ProducerBatch, one Push per item); the consumer uses PopBatch(64).
func BenchmarkMPSC1ProducerPushBatch16(b *testing.B) {
	q := NewMPSC[*int](16384, 0)
	x := 1
	vs, sizes := make([]*int, 16), make([]int, 16)
	for i := range vs {
		vs[i], sizes[i] = &x, 100
	}
	b.ReportAllocs()
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < b.N; {
			k := min(16, b.N-i)
			n := q.PushBatch(vs[:k], sizes[:k])
			if i += n; n < k {
				runtime.Gosched()
			}
		}
	}()
	buf := make([]*int, 0, 64)
	for got := 0; got < b.N; {
		buf = q.PopBatch(buf[:0], 64)
		got += len(buf)
		if len(buf) == 0 {
			runtime.Gosched()
		}
	}
	<-done
}

// BenchmarkPrioSendPath with the producer handing over 16 items per PushBatch.
func BenchmarkPrioSendPathPushBatch16(b *testing.B) {
	q := NewPrio[*int](300000, 256<<20)
	x := 1
	vs, sizes := make([]*int, 16), make([]int, 16)
	for i := range vs {
		vs[i], sizes[i] = &x, 100
	}
	benchPrioSendPath(b, q, func() {
		for i := 0; i < b.N; {
			k := min(16, b.N-i)
			n := q.PushBatch(vs[:k], sizes[:k], 0)
			if i += n; n < k {
				runtime.Gosched()
			}
		}
	})
}
