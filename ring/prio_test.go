package ring

import (
	"runtime"
	"sync"
	"testing"
)

type item struct {
	prio, seq int
}

func TestPrioOrder(t *testing.T) {
	q := NewPrio[item](100, 0)
	// Interleave priorities; expect smallest number first, FIFO within a level.
	prios := []int{5, 0, -3, 5, 0, 7, -3, 0, 5, 1 << 40, -(1 << 40)}
	for i, p := range prios {
		if !q.Push(item{p, i}, 1, p) {
			t.Fatal("refused")
		}
	}
	got := q.PopBatch(nil, 100, 0)
	want := []item{{-(1 << 40), 10}, {-3, 2}, {-3, 6}, {0, 1}, {0, 4}, {0, 7}, {5, 0}, {5, 3}, {5, 8}, {7, 5}, {1 << 40, 9}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("item %d = %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	// A higher-priority item pushed later overtakes queued lower-priority ones.
	q.Push(item{1, 0}, 1, 1)
	q.Push(item{1, 1}, 1, 1)
	first := q.PopBatch(nil, 1, 0)
	q.Push(item{0, 2}, 1, 0)
	rest := q.PopBatch(nil, 10, 0)
	if first[0] != (item{1, 0}) || len(rest) != 2 || rest[0] != (item{0, 2}) || rest[1] != (item{1, 1}) {
		t.Fatalf("first %v rest %v", first, rest)
	}
}

func TestPrioCaps(t *testing.T) {
	q := NewPrio[int](3, 10)
	steps := []struct {
		v, size, prio int
		ok            bool
	}{
		{1, 4, 0, true}, {2, 4, 1, true}, {3, 3, 0, false}, {4, 2, 2, true},
		{5, 0, 0, false}, // count cap
	}
	for _, s := range steps {
		if got := q.Push(s.v, s.size, s.prio); got != s.ok {
			t.Fatalf("Push(%d) = %v", s.v, got)
		}
	}
	if q.Len() != 3 || q.Bytes() != 10 {
		t.Fatalf("Len %d Bytes %d", q.Len(), q.Bytes())
	}
	if q.Push(6, 100, 0) {
		t.Fatal("item above byte cap accepted")
	}
	// Byte budget: 4 fits, 4+4 > 6 stops; first item always taken even if too big.
	got := q.PopBatch(nil, 10, 6)
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("got %v", got)
	}
	got = q.PopBatch(nil, 10, 1)
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("got %v", got)
	}
	if got = q.PopBatch(nil, 0, 0); len(got) != 0 {
		t.Fatal("max 0 returned items")
	}
	got = q.PopBatch(nil, 10, 0)
	if len(got) != 1 || got[0] != 4 || q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("got %v Len %d Bytes %d", got, q.Len(), q.Bytes())
	}
	if got = q.PopBatch(got[:0], 10, 0); len(got) != 0 {
		t.Fatal("empty queue returned items")
	}
	// Negative sizes count as zero; zero count cap means 1.
	z := NewPrio[int](0, 1)
	if !z.Push(1, -4, 0) || z.Push(2, 0, 0) || z.Bytes() != 0 {
		t.Fatal("zero-cap / negative size")
	}
}

func TestPrioGrowth(t *testing.T) {
	q := NewPrio[int](1000, 0)
	for i := 0; i < 1000; i++ {
		if !q.Push(i, 1, i%2) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.Push(0, 1, 0) {
		t.Fatal("over cap")
	}
	if n := len(q.levels[0].q.buf); n != 512 {
		t.Fatalf("level buffer %d, want 512", n)
	}
	// Wrap around the ring while it grows: pop half, push more, check order.
	got := q.PopBatch(nil, 250, 0)
	for i, v := range got {
		if v != 2*i {
			t.Fatalf("got[%d] = %d", i, v)
		}
	}
	for i := 1000; i < 1250; i++ {
		q.Push(i, 1, 0)
	}
	got = q.PopBatch(got[:0], 2000, 0)
	if len(got) != 1000 {
		t.Fatalf("len %d", len(got))
	}
	for i := 0; i < 250; i++ {
		if got[i] != 500+2*i {
			t.Fatalf("got[%d] = %d", i, got[i])
		}
	}
	for i := 250; i < 500; i++ {
		if got[i] != 1000+i-250 {
			t.Fatalf("got[%d] = %d", i, got[i])
		}
	}
}

// Producers push (producer, priority, seq) items; the consumer checks that within each
// (producer, priority) the sequence is in order, every item arrives once, and within each
// batch priorities never decrease.
func TestPrioStress(t *testing.T) {
	const producers, levels = 4, 3
	n := 100000
	if raceEnabled || testing.Short() {
		n = 10000
	}
	q := NewPrio[[3]int](200, 0)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			seq := make([]int, levels)
			for i := 0; i < n; i++ {
				l := (i * 7 / 3) % levels
				for tries := 0; !q.Push([3]int{p, l, seq[l]}, 1, l); tries++ {
					if tries > 1e8 {
						t.Error("producer stuck")
						return
					}
					runtime.Gosched()
				}
				seq[l]++
			}
		}(p)
	}
	next := make([][levels]int, producers)
	buf := make([][3]int, 0, 32)
	for got, idle := 0, 0; got < producers*n; {
		buf = q.PopBatch(buf[:0], 32, 0)
		if len(buf) == 0 {
			if idle++; idle > 1e8 {
				t.Fatal("consumer starved")
			}
			runtime.Gosched()
			continue
		}
		idle = 0
		for i, v := range buf {
			if i > 0 && v[1] < buf[i-1][1] {
				t.Fatalf("priority order broken in batch %v", buf)
			}
			if v[2] != next[v[0]][v[1]] {
				t.Fatalf("producer %d level %d: seq %d want %d", v[0], v[1], v[2], next[v[0]][v[1]])
			}
			next[v[0]][v[1]]++
			got++
		}
	}
	wg.Wait()
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d", q.Len(), q.Bytes())
	}
}

func TestPrioPushBatch(t *testing.T) {
	q := NewPrio[int](5, 10)
	if got := q.PushBatch(nil, nil, 0); got != 0 {
		t.Fatalf("empty: %d", got)
	}
	if got := q.PushBatch([]int{1, 2}, []int{3, 3}, 1); got != 2 {
		t.Fatalf("took %d", got)
	}
	if got := q.PushBatch([]int{3, 4, 5}, []int{3, 3, 3}, 0); got != 1 { // byte cap 10
		t.Fatalf("byte cap: took %d", got)
	}
	if got := q.PushBatch([]int{6, 7, 8}, []int{0, -1, 0}, 2); got != 2 { // count cap 5
		t.Fatalf("count cap: took %d", got)
	}
	if q.Len() != 5 || q.Bytes() != 9 {
		t.Fatalf("Len %d Bytes %d", q.Len(), q.Bytes())
	}
	got := q.PopBatch(nil, 10, 0)
	want := []int{3, 1, 2, 6, 7}
	for i := range want {
		if len(got) != len(want) || got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d", q.Len(), q.Bytes())
	}
}

// TestPrioClose: a closed queue refuses every push (Push and PushBatch) and says so, while what
// it held can still be popped.
func TestPrioClose(t *testing.T) {
	q := NewPrio[int](10, 0)
	q.Push(1, 1, 0)
	q.Close()
	if !q.Closed() || q.Push(2, 1, 0) || q.PushBatch([]int{3, 4}, []int{1, 1}, 0) != 0 {
		t.Fatal("a closed queue took an item")
	}
	if got := q.PopBatch(nil, 10, 100); len(got) != 1 || got[0] != 1 || q.Len() != 0 {
		t.Fatalf("popped %v, Len %d", got, q.Len())
	}
}
