package transfer

import (
	"hash"
	"sync"
)

// asyncHash feeds a hash on its own goroutine, so that hashing overlaps the
// reads and writes of a copy; at most n buffers are in flight, so memory
// stays n × size.
type asyncHash struct {
	h    hash.Hash
	full chan []byte
	free chan []byte
	done chan struct{}
	once sync.Once
}

func newAsyncHash(h hash.Hash, n, size int) *asyncHash {
	a := &asyncHash{h: h, full: make(chan []byte, n), free: make(chan []byte, n), done: make(chan struct{})}
	for range n {
		a.free <- make([]byte, 0, size)
	}
	go func() {
		defer close(a.done)
		for b := range a.full {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}()
	return a
}

// Write queues a copy of p (the caller reuses its buffer).
func (a *asyncHash) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		b := <-a.free
		k := min(len(p), cap(b))
		a.full <- append(b, p[:k]...)
		p = p[k:]
	}
	return total, nil
}

// Close waits until everything written has been hashed. Safe to call twice.
func (a *asyncHash) Close() { a.once.Do(func() { close(a.full); <-a.done }) }
