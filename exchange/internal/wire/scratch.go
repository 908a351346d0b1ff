package wire

import "sync"

// Scratch is a buffer for building a checksum's input without allocating:
// hash/crc32 keeps its argument reachable (it dispatches to the fastest
// implementation through a function value), so a stack buffer would escape
// to the heap on every call. Take one with [GetScratch] and return it with
// [PutScratch].
type Scratch struct{ B []byte }

var scratchPool = sync.Pool{New: func() any { return &Scratch{B: make([]byte, 0, 4096)} }}

// GetScratch returns an empty buffer from a pool; it is safe for concurrent
// use.
func GetScratch() *Scratch {
	s := scratchPool.Get().(*Scratch)
	s.B = s.B[:0]
	return s
}

// PutScratch returns s to the pool; s must not be used afterwards. Buffers
// that grew beyond 64 KiB are dropped rather than kept.
func PutScratch(s *Scratch) {
	if cap(s.B) > 64<<10 {
		return
	}
	scratchPool.Put(s)
}
