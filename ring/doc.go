// Package ring holds the bounded queues of the message path (ARCHITECTURE.md): MPSC, a
// lock-free many-producer single-consumer queue (receive side, hand-off between loops), and
// Prio, a priority queue for a peer's send side (PEER-PROTOCOL.md §7.3).
//
// Every queue is bounded twice — by a count of items and by a sum of caller-declared sizes
// (bytes) — and says no (Push returns false) instead of blocking or growing past its caps.
// Storage grows on demand by doubling from 64 slots up to the smallest power of two holding
// the count cap; it is never preallocated at the cap and is not shrunk.
//
// Memory ownership: the queues store values of T as given (typically pointers to pooled
// frame buffers). A successful Push transfers ownership of the value to the queue; Pop and
// PopBatch transfer it to the caller. The queue clears its slot after handing a value out,
// so it keeps no reference to popped values.
package ring
