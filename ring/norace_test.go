//go:build !race

package ring

import "testing"

const raceEnabled = false

// Steady-state zero allocation (not meaningful under -race).
func TestZeroAlloc(t *testing.T) {
	q := NewMPSC[*int](1000, 1<<20)
	x := 1
	buf := make([]*int, 0, 16)
	if a := testing.AllocsPerRun(1000, func() {
		q.Push(&x, 100)
		q.Pop()
		for i := 0; i < 16; i++ {
			q.Push(&x, 100)
		}
		buf = q.PopBatch(buf[:0], 16)
	}); a != 0 {
		t.Errorf("MPSC: %v allocs per run", a)
	}
	vs, sizes := make([]*int, 16), make([]int, 16)
	for i := range vs {
		vs[i], sizes[i] = &x, 100
	}
	if a := testing.AllocsPerRun(1000, func() {
		q.PushBatch(vs, sizes)
		buf = q.PopBatch(buf[:0], 16)
	}); a != 0 {
		t.Errorf("MPSC PushBatch: %v allocs per run", a)
	}
	p := NewPrio[*int](1000, 1<<20)
	if a := testing.AllocsPerRun(1000, func() {
		for i := 0; i < 16; i++ {
			p.Push(&x, 100, i%3)
		}
		buf = p.PopBatch(buf[:0], 16, 0)
	}); a != 0 {
		t.Errorf("Prio: %v allocs per run", a)
	}
	if a := testing.AllocsPerRun(1000, func() {
		p.PushBatch(vs, sizes, 1)
		buf = p.PopBatch(buf[:0], 16, 0)
	}); a != 0 {
		t.Errorf("Prio PushBatch: %v allocs per run", a)
	}
}
