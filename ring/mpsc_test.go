package ring

import (
	"runtime"
	"sync"
	"testing"
)

func TestMPSCTable(t *testing.T) {
	type op struct {
		push   bool
		v, sz  int
		wantOK bool
		wantV  int // for pops
	}
	cases := []struct {
		name     string
		maxCount int
		maxBytes int64
		ops      []op
	}{
		{"fifo", 10, 0, []op{
			{true, 1, 5, true, 0}, {true, 2, 5, true, 0}, {true, 3, 5, true, 0},
			{false, 0, 0, true, 1}, {false, 0, 0, true, 2}, {false, 0, 0, true, 3}, {false, 0, 0, false, 0},
		}},
		{"count cap", 2, 0, []op{
			{true, 1, 1, true, 0}, {true, 2, 1, true, 0}, {true, 3, 1, false, 0},
			{false, 0, 0, true, 1}, {true, 4, 1, true, 0}, {true, 5, 1, false, 0},
			{false, 0, 0, true, 2}, {false, 0, 0, true, 4}, {false, 0, 0, false, 0},
		}},
		{"byte cap", 100, 10, []op{
			{true, 1, 4, true, 0}, {true, 2, 4, true, 0}, {true, 3, 3, false, 0}, {true, 4, 2, true, 0},
			{true, 5, 0, true, 0}, {true, 6, 1, false, 0},
			{false, 0, 0, true, 1}, {true, 7, 4, true, 0}, {true, 8, 1, false, 0},
		}},
		{"item above byte cap", 100, 10, []op{
			{true, 1, 11, false, 0}, {false, 0, 0, false, 0}, {true, 2, 10, true, 0}, {false, 0, 0, true, 2},
		}},
		{"negative size is zero", 3, 1, []op{
			{true, 1, -5, true, 0}, {true, 2, 1, true, 0}, {false, 0, 0, true, 1}, {false, 0, 0, true, 2},
		}},
		{"zero count cap means 1", 0, 0, []op{
			{true, 1, 1, true, 0}, {true, 2, 1, false, 0}, {false, 0, 0, true, 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := NewMPSC[int](c.maxCount, c.maxBytes)
			n, b := 0, int64(0)
			var sizes []int64
			for i, o := range c.ops {
				if o.push {
					if got := q.Push(o.v, o.sz); got != o.wantOK {
						t.Fatalf("op %d: Push(%d,%d) = %v", i, o.v, o.sz, got)
					}
					if o.wantOK {
						n++
						b += max(int64(o.sz), 0)
						sizes = append(sizes, max(int64(o.sz), 0))
					}
				} else {
					v, ok := q.Pop()
					if ok != o.wantOK || (ok && v != o.wantV) {
						t.Fatalf("op %d: Pop = %d,%v want %d,%v", i, v, ok, o.wantV, o.wantOK)
					}
					if ok {
						n--
						b -= sizes[0]
						sizes = sizes[1:]
					}
				}
				if q.Len() != n || q.Bytes() != b {
					t.Fatalf("op %d: Len %d Bytes %d, want %d %d", i, q.Len(), q.Bytes(), n, b)
				}
			}
		})
	}
}

func TestMPSCGrowth(t *testing.T) {
	q := NewMPSC[int](1000, 0)
	if q.slots() != 64 {
		t.Fatalf("initial slots %d", q.slots())
	}
	// Steady push/pop never grows.
	for i := 0; i < 100000; i++ {
		if !q.Push(i, 1) {
			t.Fatal("push refused")
		}
		if v, ok := q.Pop(); !ok || v != i {
			t.Fatalf("pop %d,%v want %d", v, ok, i)
		}
	}
	if q.slots() != 64 {
		t.Fatalf("grew without need: %d", q.slots())
	}
	// Fill to the cap: exactly 1000 accepted, storage 1024 at most, FIFO across segments.
	for i := 0; i < 1000; i++ {
		if !q.Push(i, 1) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.Push(-1, 1) {
		t.Fatal("push over cap accepted")
	}
	if q.slots() != 1024 {
		t.Fatalf("slots %d, want 1024", q.slots())
	}
	var got []int
	got = q.PopBatch(got, 300)
	got = q.PopBatch(got, 2000)
	if len(got) != 1000 {
		t.Fatalf("popped %d", len(got))
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d = %d", i, v)
		}
	}
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d after drain", q.Len(), q.Bytes())
	}
	// At the largest segment, cycling the full cap does not grow any more.
	for r := 0; r < 5; r++ {
		for i := 0; i < 1000; i++ {
			if !q.Push(i, 1) {
				t.Fatalf("round %d push %d refused", r, i)
			}
		}
		if got = q.PopBatch(got[:0], 1000); len(got) != 1000 {
			t.Fatalf("round %d popped %d", r, len(got))
		}
	}
	if q.slots() != 1024 {
		t.Fatalf("slots %d", q.slots())
	}
	if got := q.PopBatch(nil, 0); len(got) != 0 {
		t.Fatal("PopBatch max 0 returned items")
	}
}

// Popped slots are cleared so the queue keeps no reference to handed-out values.
func TestMPSCClearsSlots(t *testing.T) {
	q := NewMPSC[*int](4, 0)
	x := 1
	q.Push(&x, 1)
	q.Pop()
	q.Push(&x, 1)
	q.PopBatch(nil, 1)
	for i := range q.headSeg.cells {
		if q.headSeg.cells[i].v != nil {
			t.Fatalf("slot %d still holds a pointer", i)
		}
	}
}

// stress runs producers pushing n items each (value = producer<<32 | seq) and one consumer
// checking that every item arrives exactly once and in per-producer order.
func stress(t *testing.T, producers, n, maxCount int, maxBytes int64, batch, late bool) {
	stressPush(t, producers, n, maxCount, maxBytes, batch, late, false)
}

// stressPush is stress with producers using PushBatch (batches of 1 to 97 items) when
// pushBatch is set.
func stressPush(t *testing.T, producers, n, maxCount int, maxBytes int64, batch, late, pushBatch bool) {
	q := NewMPSC[uint64](maxCount, maxBytes)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			if pushBatch {
				vs, sizes := make([]uint64, 0, 97), make([]int, 0, 97)
				for i, tries := 0, 0; i < n; {
					k := min(1+(i*13+p)%97, n-i)
					vs, sizes = vs[:0], sizes[:0]
					for j := 0; j < k; j++ {
						vs = append(vs, uint64(p)<<32|uint64(i+j))
						sizes = append(sizes, 1+(i+j)%7)
					}
					got := q.PushBatch(vs, sizes)
					i += got
					if got < k {
						if tries++; tries > 1e8 {
							t.Error("producer stuck")
							return
						}
						runtime.Gosched()
					}
				}
				return
			}
			for i := 0; i < n; i++ {
				v := uint64(p)<<32 | uint64(i)
				for tries := 0; !q.Push(v, 1+i%7); tries++ {
					if tries > 1e8 {
						t.Error("producer stuck")
						return
					}
					runtime.Gosched()
				}
			}
		}(p)
	}
	if late { // all pushes race each other through every segment growth
		wg.Wait()
		if q.Len() != producers*n {
			t.Fatalf("Len %d before draining, want %d", q.Len(), producers*n)
		}
	}
	next := make([]uint64, producers)
	total := producers * n
	buf := make([]uint64, 0, 64)
	idle := 0
	for got := 0; got < total; {
		buf = buf[:0]
		if batch {
			buf = q.PopBatch(buf, 64)
		} else if v, ok := q.Pop(); ok {
			buf = append(buf, v)
		}
		if len(buf) == 0 {
			if idle++; idle > 1e8 {
				t.Fatalf("consumer starved at %d/%d", got, total)
			}
			runtime.Gosched()
			continue
		}
		idle = 0
		for _, v := range buf {
			p, i := v>>32, v&0xffffffff
			if int(p) >= producers || i != next[p] {
				t.Fatalf("producer %d: got seq %d, want %d", p, i, next[p])
			}
			next[p]++
			got++
		}
	}
	wg.Wait()
	if v, ok := q.Pop(); ok {
		t.Fatalf("extra item %x", v)
	}
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d at end", q.Len(), q.Bytes())
	}
}

func TestMPSCStress(t *testing.T) {
	n := 200000
	if testing.Short() || raceEnabled {
		n = 20000
	}
	for _, c := range []struct {
		name      string
		producers int
		maxCount  int
		maxBytes  int64
		batch     bool
		late      bool
	}{
		{"4p small cap pop", 4, 100, 0, false, false},
		{"4p small cap batch", 4, 100, 0, true, false},
		{"8p byte cap batch", 8, 1 << 20, 200, true, false},
		{"4p growth batch", 4, 1 << 16, 0, true, false},
		{"1p growth pop", 1, 1 << 16, 0, false, false},
		{"3p cap 1", 3, 1, 0, false, false},
		{"4p all growth then drain", 4, 1 << 20, 0, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			stress(t, c.producers, n, c.maxCount, c.maxBytes, c.batch, c.late)
		})
		t.Run(c.name+" PushBatch", func(t *testing.T) {
			stressPush(t, c.producers, n, c.maxCount, c.maxBytes, c.batch, c.late, true)
		})
	}
}

func TestMPSCPushBatch(t *testing.T) {
	q := NewMPSC[int](10, 20)
	if got := q.PushBatch(nil, nil); got != 0 {
		t.Fatalf("empty batch: %d", got)
	}
	if got := q.PushBatch([]int{1, 2, 3}, []int{1, 1}); got != 2 { // sizes shorter: 2 items
		t.Fatalf("got %d", got)
	}
	// count cap: 8 of 10 left, so a batch of 9 takes 8
	if got := q.PushBatch([]int{3, 4, 5, 6, 7, 8, 9, 10, 11}, []int{1, 1, 1, 1, 1, 1, 1, 1, 1}); got != 8 {
		t.Fatalf("count cap: took %d", got)
	}
	if q.Len() != 10 || q.Bytes() != 10 {
		t.Fatalf("Len %d Bytes %d", q.Len(), q.Bytes())
	}
	got := q.PopBatch(nil, 100)
	for i, v := range got {
		if v != i+1 {
			t.Fatalf("order: %v", got)
		}
	}
	// byte cap 20: 8+8 fit, the next 8 does not; an item above the cap stops the batch
	if got := q.PushBatch([]int{1, 2, 3}, []int{8, 8, 8}); got != 2 {
		t.Fatalf("byte cap: took %d", got)
	}
	q.PopBatch(nil, 100)
	if got := q.PushBatch([]int{1, 2, 3}, []int{1, 21, 1}); got != 1 {
		t.Fatalf("oversized item: took %d", got)
	}
	if got := q.PushBatch([]int{1, 2}, []int{-5, 0}); got != 2 || q.Bytes() != 1 {
		t.Fatalf("negative sizes: took %d, Bytes %d", got, q.Bytes())
	}
	q.PopBatch(nil, 100)
	if q.Len() != 0 || q.Bytes() != 0 {
		t.Fatalf("Len %d Bytes %d after drain", q.Len(), q.Bytes())
	}
	// batches larger than a segment, across growth and wrap-around, stay in order
	big := NewMPSC[int](1000, 0)
	vs, sizes := make([]int, 300), make([]int, 300)
	for i := range vs {
		vs[i], sizes[i] = i, 1
	}
	next := 0
	var out []int
	for r := 0; r < 10; r++ {
		if got := big.PushBatch(vs, sizes); got != 300 {
			t.Fatalf("round %d: took %d", r, got)
		}
		out = big.PopBatch(out[:0], 250+r)
		for _, v := range out {
			if v != next%300 {
				t.Fatalf("round %d: got %d want %d", r, v, next%300)
			}
			next++
		}
	}
}

// The caps are never exceeded, even with many producers racing at the cap.
func TestMPSCCapExact(t *testing.T) {
	const cap = 50
	q := NewMPSC[int](cap, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := 0
			for i := 0; i < 1000; i++ {
				if q.Push(i, 1) {
					k++
				}
			}
			mu.Lock()
			accepted += k
			mu.Unlock()
		}()
	}
	wg.Wait()
	if accepted != cap || q.Len() != cap {
		t.Fatalf("accepted %d, Len %d, want %d", accepted, q.Len(), cap)
	}
	if q.slots() > 64 {
		t.Fatalf("slots %d", q.slots())
	}
}
