package snapshot

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Cut is a consistent snapshot of every source at one event time: for each
// source, exactly the updates with event time at or before [Cut.Time] of a
// gap-free prefix of its sequence, and never part of an event. Complete
// reports whether every required source had passed that time; otherwise
// [Cut.Sources] and [Cut.Err] say which did not and why.
//
// A Cut is immutable and safe for concurrent use; it stays valid however many
// updates and cuts follow. Reads of the newest cut cost one key lookup and an
// atomic load; a cut that has been superseded also walks the changes made
// since, so readers should not hold on to old cuts for long. The zero value is
// not useful; cuts come from a [Collector].
type Cut[K comparable, V any] struct {
	t        int64
	taken    time.Time
	seq      uint64
	rev      int
	complete bool
	src      []cutSource[K, V]
	next     atomic.Pointer[transition[K, V]]
	flat     [][]*V // per source, values by key id: set in a frozen copy, which has no next
	// A revision of a kept cut older than the newest: base's values with
	// late updates laid over them (nil: deleted). It has no next either.
	base  *Cut[K, V]
	over  []map[int32]*V
	shift int // the base's index of source i is i+shift (a cut of one source, from AtSeq)
}

// cutSource is one source's part of a cut.
type cutSource[K comparable, V any] struct {
	status SourceStatus[K]
	kt     *keyTable[K]
	kdir   []*keyChunk[K]
	sdir   []*slotChunk[V]
	n      int
	nlive  int
	ord    []ordSide[K] // per side, with Config.Order
}

// transition records, per source, the values that the next cut overwrote, so
// that older cuts can still read theirs (ids ascending).
type transition[K comparable, V any] struct {
	to  *Cut[K, V]
	old [][]oldValue[V]
}

type oldValue[V any] struct {
	id int32
	p  *V
}

// Time returns the cut's event time (in UTC).
func (c *Cut[K, V]) Time() time.Time { return time.Unix(0, c.t).UTC() }

// Taken returns the wall-clock time at which the cut was taken.
func (c *Cut[K, V]) Taken() time.Time { return c.taken }

// Seq numbers the cuts of a Collector: 1, 2, 3, … in the order taken,
// revisions included.
func (c *Cut[K, V]) Seq() uint64 { return c.seq }

// Revision is 0 for a cut as first taken and counts its reissues with late
// updates (see [LateRevise]).
func (c *Cut[K, V]) Revision() int { return c.rev }

// Complete reports whether every required source had passed the cut's time.
func (c *Cut[K, V]) Complete() bool { return c.complete }

// Sources returns the status of every source, in the order of
// [Config.Sources] (or of first message). The slice is the caller's.
func (c *Cut[K, V]) Sources() []SourceStatus[K] {
	out := make([]SourceStatus[K], len(c.src))
	for i := range c.src {
		out[i] = c.src[i].status
	}
	return out
}

// Status returns the status of one source.
func (c *Cut[K, V]) Status(source string) (SourceStatus[K], bool) {
	if i := c.index(source); i >= 0 {
		return c.src[i].status, true
	}
	return SourceStatus[K]{}, false
}

func (c *Cut[K, V]) index(source string) int {
	for i := range c.src {
		if c.src[i].status.Source == source {
			return i
		}
	}
	return -1
}

// Get returns a source's value for key in the cut. On the newest cut it costs
// a map lookup and an atomic load; on an older one, also a binary search per
// cut taken since.
func (c *Cut[K, V]) Get(source string, key K) (V, bool) {
	var zero V
	i := c.index(source)
	if i < 0 {
		return zero, false
	}
	cs := &c.src[i]
	id, ok := cs.kt.lookup(key)
	if !ok || int(id) >= cs.n {
		return zero, false
	}
	if p := c.load(i, id); p != nil {
		return *p, true
	}
	return zero, false
}

// Len returns the number of keys a source holds in the cut.
func (c *Cut[K, V]) Len(source string) int {
	if i := c.index(source); i >= 0 {
		return c.src[i].nlive
	}
	return 0
}

// All yields a source's keys and values in the cut, in the order the keys
// first appeared. It may be ranged over more than once.
func (c *Cut[K, V]) All(source string) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		i := c.index(source)
		if i < 0 {
			return
		}
		cs := &c.src[i]
		for id := range cs.n {
			p := c.load(i, int32(id))
			if p == nil {
				continue
			}
			if !yield(cs.kdir[id>>chunkBits][id&chunkMask], *p) {
				return
			}
		}
	}
}

// over0 returns key id's value in this revision's overlay, if it has one.
func (c *Cut[K, V]) over0(i int, id int32) (*V, bool) {
	if i < len(c.over) {
		p, ok := c.over[i][id]
		return p, ok
	}
	return nil, false
}

// load returns the published value of key id of source i as of this cut.
func (c *Cut[K, V]) load(i int, id int32) *V {
	if c.flat != nil {
		if int(id) >= len(c.flat[i]) {
			return nil
		}
		return c.flat[i][id]
	}
	if c.base != nil {
		if p, ok := c.over0(i, id); ok {
			return p
		}
		bi := i + c.shift
		if bi >= len(c.base.src) || int(id) >= c.base.src[bi].n {
			return nil
		}
		return c.base.load(bi, id)
	}
	slot := &c.src[i].sdir[id>>chunkBits][id&chunkMask]
	cur := c
	for {
		tr := cur.next.Load()
		if tr == nil {
			p := slot.Load()
			if cur.next.Load() == nil {
				return p
			}
			continue
		}
		if i < len(tr.old) {
			olds := tr.old[i]
			if j, ok := slices.BinarySearchFunc(olds, id, func(o oldValue[V], id int32) int { return int(o.id - id) }); ok {
				return olds[j].p
			}
		}
		cur = tr.to
	}
}

// Err returns nil for a complete cut, and otherwise an error wrapping
// [ErrIncomplete] that names each required source holding the cut back and
// why.
func (c *Cut[K, V]) Err() error {
	if c.complete {
		return nil
	}
	var parts []string
	for i := range c.src {
		if st := &c.src[i].status; st.Required && st.State != Current {
			parts = append(parts, st.String())
		}
	}
	return fmt.Errorf("%w at %s: %s", ErrIncomplete, fmtTime(c.t), strings.Join(parts, "; "))
}

// String summarizes the cut: its time, whether complete, and every source
// that has not passed it.
func (c *Cut[K, V]) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cut %s", fmtTime(c.t))
	if c.rev > 0 {
		fmt.Fprintf(&b, " rev %d", c.rev)
	}
	if c.complete {
		b.WriteString(" complete")
	} else {
		b.WriteString(" incomplete")
	}
	sep := ": "
	for i := range c.src {
		if st := &c.src[i].status; st.State != Current {
			b.WriteString(sep)
			b.WriteString(st.String())
			sep = "; "
		}
	}
	return b.String()
}
