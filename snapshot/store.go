package snapshot

import (
	"math/bits"
	"sync/atomic"
)

// Key ids are dense per source. Values are published in fixed-size chunks of
// atomic slots that never move, so a cut can hold the chunk directory as it
// was and later cuts only append chunks.
const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

type slotChunk[V any] [chunkSize]atomic.Pointer[V]

type keyChunk[K comparable] [chunkSize]K

// store is one source's keyed state. The writer side (ids, vals, live, dirty)
// is guarded by the source's mutex; the published side (slot contents) is
// written only by the goroutine taking a cut, under the collector's cut lock.
type store[K comparable, V any] struct {
	ids      map[K]int32
	kdir     []*keyChunk[K]
	sdir     []*slotChunk[V]
	vals     []V
	live     []bool
	wseq     []uint64 // source sequence that last wrote each key; only with trackSeq
	kseq     []uint64 // per-key sequence of the last write
	dirty    []uint64 // bitset of ids changed since the last cut
	ndirty   int
	nlive    int
	n        int
	trackSeq bool // disorder: ops may fold out of sequence order

	pubN int          // ids published in key tables
	kt   *keyTable[K] // published key table

	ord *ordered[K] // the live keys in Config.Order; nil without one
}

func newStore[K comparable, V any](trackSeq bool) store[K, V] {
	return store[K, V]{ids: make(map[K]int32), trackSeq: trackSeq}
}

func (st *store[K, V]) id(k K) int32 {
	if id, ok := st.ids[k]; ok {
		return id
	}
	return st.add(k)
}

func (st *store[K, V]) add(k K) int32 {
	id := int32(st.n)
	if st.n&chunkMask == 0 {
		st.kdir = append(st.kdir, new(keyChunk[K]))
		st.sdir = append(st.sdir, new(slotChunk[V]))
	}
	if st.n&63 == 0 {
		st.dirty = append(st.dirty, 0)
	}
	st.kdir[id>>chunkBits][id&chunkMask] = k
	st.ids[k] = id
	var zero V
	st.vals = append(st.vals, zero)
	st.live = append(st.live, false)
	st.kseq = append(st.kseq, 0)
	if st.trackSeq {
		st.wseq = append(st.wseq, 0)
	}
	st.n++
	return id
}

func (st *store[K, V]) mark(id int32) {
	w := &st.dirty[id>>6]
	if b := uint64(1) << (uint(id) & 63); *w&b == 0 {
		*w |= b
		st.ndirty++
	}
}

// apply folds one sequenced op into the writer state; o.id was resolved when
// it was sequenced, so that a cut does no key lookups.
func (st *store[K, V]) apply(o *logged[K, V]) {
	if o.flags&(opImage|opNone) != 0 {
		if o.flags&opImage != 0 {
			st.image(o)
		}
		return
	}
	id := o.id
	if st.trackSeq {
		if st.wseq[id] > o.seq {
			return // a later update of this key already folded
		}
		st.wseq[id] = o.seq
	}
	st.kseq[id] = o.kseq
	if o.flags&opDelete != 0 {
		if !st.live[id] {
			return
		}
		var zero V
		st.vals[id] = zero
		st.live[id] = false
		st.nlive--
		if st.ord != nil {
			st.ord.del(st.key(id))
		}
	} else {
		if !st.live[id] {
			st.live[id] = true
			st.nlive++
			if st.ord != nil {
				st.ord.add(st.key(id), id)
			}
		}
		st.vals[id] = o.val
	}
	st.mark(id)
}

// image replaces the state with an image current to sequence o.seq. With
// trackSeq, keys written by later sequences (folded earlier because their
// event times were earlier) are kept.
func (st *store[K, V]) image(o *logged[K, V]) {
	var zero V
	for id := range st.n {
		if st.trackSeq {
			if st.wseq[id] > o.seq {
				continue
			}
			st.wseq[id] = o.seq
		}
		if st.live[id] {
			st.vals[id] = zero
			st.live[id] = false
			st.nlive--
			st.mark(int32(id))
		}
	}
	img := *o.img
	for i := range img {
		e := &img[i]
		id := st.id(e.Key)
		if st.trackSeq {
			if st.wseq[id] > o.seq {
				continue
			}
			st.wseq[id] = o.seq
		}
		if !st.live[id] {
			st.live[id] = true
			st.nlive++
		}
		st.vals[id] = e.Value
		st.kseq[id] = e.KeySeq
		st.mark(int32(id))
	}
	if st.ord != nil {
		st.ord.clear()
		for id := range st.n {
			if st.live[id] {
				st.ord.add(st.key(int32(id)), int32(id))
			}
		}
	}
}

// change is one key id to publish.
type change[V any] struct {
	id   int32
	live bool
	v    V
}

// collect appends the changed ids (ascending) with their values and clears
// the dirty set.
func (st *store[K, V]) collect(buf []change[V]) []change[V] {
	if st.ndirty == 0 {
		return buf
	}
	for wi, w := range st.dirty {
		if w == 0 {
			continue
		}
		st.dirty[wi] = 0
		for w != 0 {
			id := wi<<6 | bits.TrailingZeros64(w)
			w &= w - 1
			buf = append(buf, change[V]{id: int32(id), live: st.live[id], v: st.vals[id]})
		}
	}
	st.ndirty = 0
	return buf
}

func (st *store[K, V]) key(id int32) K { return st.kdir[id>>chunkBits][id&chunkMask] }

// publishKeys returns a key table holding every id assigned so far.
func (st *store[K, V]) publishKeys() *keyTable[K] {
	if st.pubN == st.n {
		return st.kt
	}
	m := make(map[K]int32, st.n-st.pubN)
	for id := st.pubN; id < st.n; id++ {
		m[st.key(int32(id))] = int32(id)
	}
	st.kt = st.kt.with(m)
	st.pubN = st.n
	return st.kt
}

// keyTable maps keys to ids for readers: immutable levels, largest first,
// merged when a newer level grows to half of the one below it, so a key is
// copied O(log n) times in all and a lookup visits O(log n) maps (in practice
// one or two).
type keyTable[K comparable] struct {
	levels []map[K]int32
}

func (kt *keyTable[K]) with(m map[K]int32) *keyTable[K] {
	var levels []map[K]int32
	if kt != nil {
		levels = append(levels, kt.levels...)
	}
	levels = append(levels, m)
	for len(levels) > 1 {
		last, prev := levels[len(levels)-1], levels[len(levels)-2]
		if 2*len(last) < len(prev) {
			break
		}
		merged := make(map[K]int32, len(prev)+len(last))
		for k, v := range prev {
			merged[k] = v
		}
		for k, v := range last {
			merged[k] = v
		}
		levels = append(levels[:len(levels)-2], merged)
	}
	return &keyTable[K]{levels: levels}
}

func (kt *keyTable[K]) lookup(k K) (int32, bool) {
	if kt == nil {
		return 0, false
	}
	for i := len(kt.levels) - 1; i >= 0; i-- {
		if id, ok := kt.levels[i][k]; ok {
			return id, true
		}
	}
	return 0, false
}
