package snapshot

import (
	"fmt"
	"iter"
)

// Order orders a collector's keys, per side, for the ordered reads of cuts
// and views: [Cut.First], [Cut.Last], [Cut.Top] and [Cut.Ascend].
//
// For an order book keyed by side and price, Sides is 2, Side returns a key's
// side, and Compare puts the best price first on each side (bids
// descending, asks ascending): First(source, 0) is then the best bid and
// Top(source, 1, 10, buf) the ten best asks.
//
// The order is kept per source and side in a B+ tree that changes only when
// a key appears or disappears (a value change costs nothing more), updated
// as a cut folds the updates in; each cut holds its own version, shared
// with the cuts before it where nothing changed, so reading never scans and
// never blocks a writer. Compare and Side are called with a source's lock
// held, as keys arrive and as cuts are taken: they must be cheap, must not
// call the Collector, and must give the same answer for a key every time.
// The zero value is not valid: Compare is required.
type Order[K any] struct {
	// Compare returns a negative number when a comes before b on their
	// side, zero when they are the same key, a positive number otherwise.
	// It must be a strict total order consistent with key equality.
	Compare func(a, b K) int
	// Sides is the number of sides, 1 to 16; zero means one.
	Sides int
	// Side returns a key's side, in [0, Sides). Nil: every key is on side 0.
	// A key whose side is out of range is refused when it arrives.
	Side func(k K) int
}

const maxSides = 16

func (o *Order[K]) sides() int { return max(o.Sides, 1) }

func (o *Order[K]) side(k K) int {
	if o.Side == nil {
		return 0
	}
	return o.Side(k)
}

// keyError is a key whose side is out of range.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

func badSide[K any](k K, side, sides int) error {
	return &keyError{fmt.Sprintf("key %v is on side %d; Order.Sides is %d, so sides are 0 to %d", k, side, sides, sides-1)}
}

// checkSides refuses keys whose side is out of range, before anything
// changes; keys is a []Change or an []Entry.
func (c *Collector[K, V]) checkSides(s *source[K, V], opName string, seq uint64, keys any) error {
	o := c.cfg.Order
	if o == nil || o.Side == nil {
		return nil
	}
	n := o.sides()
	var err error
	switch ks := keys.(type) {
	case []Change[K, V]:
		for i := range ks {
			if sd := o.Side(ks[i].Key); sd < 0 || sd >= n {
				err = badSide(ks[i].Key, sd, n)
				break
			}
		}
	case []Entry[K, V]:
		for i := range ks {
			if sd := o.Side(ks[i].Key); sd < 0 || sd >= n {
				err = badSide(ks[i].Key, sd, n)
				break
			}
		}
	}
	if err != nil {
		return inputErr(opName, s.name, seq, ErrKey, "%s", err.Error())
	}
	return nil
}

// ordered is the order of one source's live keys, one tree per side; key
// gives the key of one of the source's key ids.
type ordered[K any] struct {
	o     *Order[K]
	key   func(int32) K
	sides []btree[K]
}

func newOrdered[K any](o *Order[K], key func(int32) K) *ordered[K] {
	if o == nil {
		return nil
	}
	d := &ordered[K]{o: o, key: key, sides: make([]btree[K], o.sides())}
	for i := range d.sides {
		d.sides[i] = newBtree(o.Compare, key)
	}
	return d
}

func (d *ordered[K]) add(k K, id int32) { d.sides[d.o.side(k)].insert(k, id) }
func (d *ordered[K]) del(k K)           { d.sides[d.o.side(k)].remove(k) }

// clear empties every side.
func (d *ordered[K]) clear() {
	for i := range d.sides {
		d.sides[i].root, d.sides[i].n, d.sides[i].wrote = nil, 0, true
	}
}

// share returns the version of every side for a cut to hold.
func (d *ordered[K]) share() []ordSide[K] {
	out := make([]ordSide[K], len(d.sides))
	for i := range d.sides {
		out[i] = sideOf(d.sides[i].share(), d.sides[i].n, d.key)
	}
	return out
}

// reorder derives, for a revised kept cut, the order of its keys from the
// order of the cut it revises: the trees are shared, and the keys that late
// updates added or removed copy only the nodes on their paths.
type reorder[K any] = ordered[K]

func newReorder[K any](o *Order[K], from []ordSide[K], key func(int32) K) *reorder[K] {
	d := newOrdered(o, key)
	for i := range min(len(from), len(d.sides)) {
		d.sides[i].root, d.sides[i].n = from[i].root, from[i].n
	}
	return d
}

// ordSide is one side of a source as a cut holds it: an immutable tree, with
// its ends found once so that First and Last cost O(1).
type ordSide[K any] struct {
	root        *bnode[K]
	n           int
	first, last ordEntry[K]
}

func sideOf[K any](root *bnode[K], n int, key func(int32) K) ordSide[K] {
	sd := ordSide[K]{root: root, n: n}
	sd.first, _ = first(root, key)
	sd.last, _ = last(root, key)
	return sd
}

// orderedRead is what the ordered reads of a cut or view need: the sides,
// and a value by key id.
func orderedFirst[K comparable, V any](sides []ordSide[K], side int, load func(int32) *V, fromEnd bool) (K, V, bool) {
	var k K
	var v V
	if side < 0 || side >= len(sides) || sides[side].n == 0 {
		return k, v, false
	}
	e := sides[side].first
	if fromEnd {
		e = sides[side].last
	}
	if p := load(e.id); p != nil {
		return e.k, *p, true
	}
	return k, v, false
}

func orderedTop[K comparable, V any](sides []ordSide[K], side, n int, key func(int32) K, load func(int32) *V, dst []Entry[K, V]) []Entry[K, V] {
	if side < 0 || side >= len(sides) || n <= 0 {
		return dst
	}
	walk(sides[side].root, func(id int32) bool {
		if p := load(id); p != nil {
			dst = append(dst, Entry[K, V]{Key: key(id), Value: *p})
			n--
		}
		return n > 0
	})
	return dst
}

func orderedAscend[K comparable, V any](sides []ordSide[K], side int, key func(int32) K, load func(int32) *V) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if side < 0 || side >= len(sides) {
			return
		}
		walk(sides[side].root, func(id int32) bool {
			if p := load(id); p != nil {
				return yield(key(id), *p)
			}
			return true
		})
	}
}

// keyOf returns the key of id in cut source cs.
func (cs *cutSource[K, V]) keyOf(id int32) K { return cs.kdir[id>>chunkBits][id&chunkMask] }

// First returns the first key of a side of a source in the cut, in
// [Config.Order]'s order, and its value: the best bid or offer of a book.
// It costs O(1). It returns false if the side is empty, the source unknown,
// or the collector has no Order.
func (c *Cut[K, V]) First(source string, side int) (K, V, bool) {
	i := c.index(source)
	if i < 0 {
		var k K
		var v V
		return k, v, false
	}
	return orderedFirst(c.src[i].ord, side, func(id int32) *V { return c.load(i, id) }, false)
}

// Last returns the last key of a side of a source in the cut, in
// [Config.Order]'s order, and its value, as [Cut.First] does.
func (c *Cut[K, V]) Last(source string, side int) (K, V, bool) {
	i := c.index(source)
	if i < 0 {
		var k K
		var v V
		return k, v, false
	}
	return orderedFirst(c.src[i].ord, side, func(id int32) *V { return c.load(i, id) }, true)
}

// Top appends to dst the first n keys of a side of a source in the cut, in
// [Config.Order]'s order, with their values (KeySeq is zero), and returns
// the extended slice; fewer if the side holds fewer. It costs O(log keys + n)
// and allocates only if dst lacks room.
func (c *Cut[K, V]) Top(source string, side, n int, dst []Entry[K, V]) []Entry[K, V] {
	i := c.index(source)
	if i < 0 {
		return dst
	}
	return orderedTop(c.src[i].ord, side, n, c.src[i].keyOf, func(id int32) *V { return c.load(i, id) }, dst)
}

// Ascend yields the keys of a side of a source in the cut in
// [Config.Order]'s order, with their values. It may be ranged over more than
// once; each step costs O(1) amortized.
func (c *Cut[K, V]) Ascend(source string, side int) iter.Seq2[K, V] {
	i := c.index(source)
	if i < 0 {
		return func(func(K, V) bool) {}
	}
	return orderedAscend(c.src[i].ord, side, c.src[i].keyOf, func(id int32) *V { return c.load(i, id) })
}
