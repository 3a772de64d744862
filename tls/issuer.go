package tls

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Issuer issues per-client certificates (the server's answer to `_ssl` get_new_certificate) on
// a bounded pool of worker goroutines, so an RSA key generation (tens of milliseconds) never
// runs on an event loop and a burst of first-time clients cannot make the server spawn
// unbounded work.
//
// Requests wait in a queue of fixed capacity; Submit says no (ErrQueueFull) instead of
// blocking when it is full, and the caller closes that peer (it will reconnect and ask again).
//
// Why no certificate is lost when many clients enrol at once: 1.0.33 generates each
// certificate by rewriting the one shared csr_details.conf and then running openssl on it, with
// an await in between, so concurrent requests overwrite each other's configuration (openssl
// then reads a truncated or foreign file: the request fails, or two clients get the same
// subject). Here the subject is built in memory for each request and key generation runs in
// parallel without shared state; the short commit step (write .pem/.key with O_EXCL, pick the
// first free <hash>.<n>, update both maps, rewrite source_id_2_cert.json via temporary file +
// rename) runs under the ServerStore's mutex, one request at a time. Every request therefore
// gets a distinct certificate, a distinct symlink and an entry in a JSON file that always holds
// all of them.
//
// Keys come from a pool of ready keys made by a low-priority helper process (see keygen.go):
// an issuance then costs the server one RSA signature and a few small file writes, and key
// generation only uses CPU that established links do not want.
type Issuer struct {
	store  *ServerStore
	keys   *keyPool // nil: keys made in-process at issuance
	jobs   chan issueJob
	mu     sync.Mutex // guards sends on jobs against close
	closed atomic.Bool
	wg     sync.WaitGroup
}

type issueJob struct {
	sourceID string
	done     func(*Issued, error)
}

// IssuerOptions configures NewIssuerWith.
type IssuerOptions struct {
	// Workers is the number of issuance goroutines (<= 0: runtime.NumCPU()). A worker spends
	// its time waiting for a key, signing (~2 ms for RSA-2048) and writing files; whatever the
	// count, at most one key is generated at a time in this process.
	Workers int
	// Queue is the number of pending requests held (0: accept only when a worker is idle).
	Queue int
	// KeyPool is the number of ready keys kept (0: DefaultKeyPool). Keys are made by a helper
	// process at nice 19, started at once, for the key size of csr_details_template.conf as it
	// is now (requests for another size generate their key in-process). < 0: no helper and no
	// pool; each issuance generates its key in-process, one at a time.
	KeyPool int
}

// NewIssuer is NewIssuerWith(store, IssuerOptions{Workers: workers, Queue: queue}).
func NewIssuer(store *ServerStore, workers, queue int) *Issuer {
	return NewIssuerWith(store, IssuerOptions{Workers: workers, Queue: queue})
}

// NewIssuerWith starts the workers (and the key helper, see IssuerOptions). With a nil store
// every request fails with ErrIssuerClosed. Close releases everything.
func NewIssuerWith(store *ServerStore, o IssuerOptions) *Issuer {
	workers, queue := o.Workers, o.Queue
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if queue < 0 {
		queue = 0
	}
	is := &Issuer{store: store, jobs: make(chan issueJob, queue)}
	if store != nil && o.KeyPool >= 0 {
		size := o.KeyPool
		if size == 0 {
			size = DefaultKeyPool
		}
		if bits, ok := store.keyBits(); ok {
			is.keys = startKeyPool(bits, size, workers)
		}
	}
	is.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go is.work()
	}
	return is
}

func (is *Issuer) work() {
	defer is.wg.Done()
	for j := range is.jobs {
		if is.closed.Load() || is.store == nil {
			j.done(nil, ErrIssuerClosed)
			continue
		}
		iss, err := is.store.issue(j.sourceID, is.keys)
		j.done(iss, err)
	}
}

// Submit queues an issuance for sourceID. done is called exactly once, on a worker goroutine,
// with the result of ServerStore.Issue (or ErrIssuerClosed); it must not block for long. Submit
// never blocks: it returns ErrQueueFull when the queue is full and ErrIssuerClosed after Close
// (done is not called then).
func (is *Issuer) Submit(sourceID string, done func(*Issued, error)) error {
	if done == nil {
		done = func(*Issued, error) {}
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.closed.Load() {
		return ErrIssuerClosed
	}
	select {
	case is.jobs <- issueJob{sourceID, done}:
		return nil
	default:
		return ErrQueueFull
	}
}

// Issue submits a request and waits for it: the PEM texts to send in set_new_certificate.
func (is *Issuer) Issue(sourceID string) (certPEM, keyPEM []byte, err error) {
	ch := make(chan struct{})
	var res *Issued
	var resErr error
	if err := is.Submit(sourceID, func(i *Issued, e error) { res, resErr = i, e; close(ch) }); err != nil {
		return nil, nil, err
	}
	<-ch
	if resErr != nil {
		return nil, nil, resErr
	}
	return res.CertPEM, res.KeyPEM, nil
}

// Close stops accepting requests, fails the queued ones with ErrIssuerClosed, stops the key
// helper (unused keys are dropped) and waits for the running requests. Safe to call more than once.
func (is *Issuer) Close() {
	is.mu.Lock()
	if !is.closed.Swap(true) {
		close(is.jobs)
	}
	is.mu.Unlock()
	if is.keys != nil {
		is.keys.close() // a worker waiting for a key makes it in-process instead
	}
	is.wg.Wait()
}

// pooled reports how many ready keys the pool holds (for tests).
func (is *Issuer) pooled() int {
	if is.keys == nil {
		return -1
	}
	return len(is.keys.ready)
}
