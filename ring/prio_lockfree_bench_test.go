package ring

import (
	"runtime"
	"sync"
	"testing"
)

// lfPrio is a measurement stand-in for a lock-free priority queue: one MPSC per priority
// level (fixed levels 0..n-1, caps per level instead of shared). It exists only to compare
// against the mutex-based Prio; see BenchmarkPrioLockFree*.
type lfPrio[T any] struct{ levels []*MPSC[T] }

func newLFPrio[T any](levels, maxCount int) *lfPrio[T] {
	q := &lfPrio[T]{}
	for i := 0; i < levels; i++ {
		q.levels = append(q.levels, NewMPSC[T](maxCount, 0))
	}
	return q
}

func (q *lfPrio[T]) Push(v T, size, prio int) bool { return q.levels[prio].Push(v, size) }

func (q *lfPrio[T]) PopBatch(dst []T, max int) []T {
	for _, l := range q.levels {
		if len(dst) >= max {
			break
		}
		dst = l.PopBatch(dst, max-len(dst))
	}
	return dst
}

func BenchmarkPrioLockFree1ProducerBatch(b *testing.B)  { benchLFPrio(b, 1) }
func BenchmarkPrioLockFree4ProducersBatch(b *testing.B) { benchLFPrio(b, 4) }

func benchLFPrio(b *testing.B, producers int) {
	q := newLFPrio[*int](2, 16384)
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
		buf = q.PopBatch(buf[:0], 64)
		got += len(buf)
		if len(buf) == 0 {
			runtime.Gosched()
		}
	}
	wg.Wait()
}
