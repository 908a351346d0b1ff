package snapshot

import "slices"

// btree is an ordered set of keys (with their ids) of one side of one
// source: a B+ tree whose nodes are copied on write once a cut holds them.
// A tree hands out its root to a cut with share, after which its next
// changes copy the nodes on their path instead of changing them in place,
// so every cut keeps the version it was given without a copy of the whole.
//
// Only keys that appear or disappear change the tree. Nodes hold key ids
// (the source's dense ids, four bytes each, no pointers for the collector to
// scan), so that the copies are small; the key of an id is read through key.
// Deletions do not rebalance: a leaf is dropped when empty, so the height
// stays that of the largest size the tree had, and a node never holds fewer
// than one entry.
type btree[K any] struct {
	cmp   func(a, b K) int
	key   func(id int32) K
	root  *bnode[K]
	tok   *cowToken // nodes owned by tok may be changed in place
	wrote bool      // changed since the last share
	n     int
}

type cowToken struct{ _ byte }

// bnode is a leaf (kids == nil: ents are the ids of its keys, in order) or
// an inner node (ents[i] is the id of the least key under kids[i]).
type bnode[K any] struct {
	own  *cowToken
	ents []int32
	kids []*bnode[K]
}

// A leaf holds at most leafMax entries, an inner node innerMax children.
// With four-byte entries the bytes a cut's copies on write take hardly
// depend on the node size (about 100 an update for uniformly random changes
// to a book of 10,000 levels a side, for sizes from 16 to 64); wide inner
// nodes keep the tree shallow and the copies few.
const (
	leafMax  = 32
	innerMax = 64
)

// nodeMax returns the most entries n may hold.
func nodeMax[K any](n *bnode[K]) int {
	if n.kids == nil {
		return leafMax
	}
	return innerMax
}

func newBtree[K any](cmp func(a, b K) int, key func(int32) K) btree[K] {
	return btree[K]{cmp: cmp, key: key, tok: new(cowToken)}
}

// share returns the root for a cut to hold; later changes copy what it holds.
func (t *btree[K]) share() *bnode[K] {
	if t.wrote {
		t.tok, t.wrote = new(cowToken), false
	}
	return t.root
}

// mut returns n itself if the tree owns it, else a copy that the tree owns.
func (t *btree[K]) mut(n *bnode[K]) *bnode[K] {
	t.wrote = true
	if n.own == t.tok {
		return n
	}
	// Room for one more than a node holds, so that an insert before the
	// split never grows the copy.
	c := &bnode[K]{own: t.tok, ents: make([]int32, len(n.ents), nodeMax(n)+1)}
	copy(c.ents, n.ents)
	if n.kids != nil {
		c.kids = make([]*bnode[K], len(n.kids), innerMax+1)
		copy(c.kids, n.kids)
	}
	return c
}

// search returns the number of entries of n before k, and whether the
// entry there is k.
func (t *btree[K]) search(n *bnode[K], k K) (int, bool) {
	lo, hi := 0, len(n.ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.cmp(t.key(n.ents[m]), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(n.ents) && t.cmp(t.key(n.ents[lo]), k) == 0
}

// child returns the index of the child of inner node n that holds k, or
// would: the last whose least entry is at or before k (0 if none).
func (t *btree[K]) child(n *bnode[K], k K) int {
	// The first entry after k, less one.
	lo, hi := 1, len(n.ents)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.cmp(t.key(n.ents[m]), k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// insert adds k with id; k must not be in the tree.
func (t *btree[K]) insert(k K, id int32) {
	if t.root == nil {
		t.root = &bnode[K]{own: t.tok, ents: []int32{id}}
		t.wrote = true
		t.n = 1
		return
	}
	t.root = t.mut(t.root)
	if split := t.ins(t.root, k, id); split != nil {
		t.root = &bnode[K]{own: t.tok, ents: []int32{t.root.ents[0], split.ents[0]}, kids: []*bnode[K]{t.root, split}}
	}
	t.n++
}

// ins adds key k (id) under the owned node n and returns n's new right
// sibling if n split.
func (t *btree[K]) ins(n *bnode[K], k K, id int32) *bnode[K] {
	if n.kids == nil {
		i, _ := t.search(n, k)
		n.ents = slices.Insert(n.ents, i, id)
	} else {
		i := t.child(n, k)
		kid := t.mut(n.kids[i])
		n.kids[i] = kid
		split := t.ins(kid, k, id)
		n.ents[i] = kid.ents[0]
		if split != nil {
			n.ents = slices.Insert(n.ents, i+1, split.ents[0])
			n.kids = slices.Insert(n.kids, i+1, split)
		}
	}
	if len(n.ents) <= nodeMax(n) {
		return nil
	}
	h := len(n.ents) / 2
	r := &bnode[K]{own: t.tok, ents: append(make([]int32, 0, nodeMax(n)+1), n.ents[h:]...)}
	clear(n.ents[h:])
	n.ents = n.ents[:h]
	if n.kids != nil {
		r.kids = append(make([]*bnode[K], 0, innerMax+1), n.kids[h:]...)
		clear(n.kids[h:])
		n.kids = n.kids[:h]
	}
	return r
}

// remove deletes k, which callers know to be in the tree (a key that was
// live); were it not, nothing but the copies on its path would change.
func (t *btree[K]) remove(k K) {
	if t.root == nil {
		return
	}
	t.root = t.mut(t.root)
	if !t.rem(t.root, k) {
		return
	}
	t.n--
	for len(t.root.kids) == 1 {
		t.root = t.root.kids[0]
	}
	if len(t.root.ents) == 0 {
		t.root = nil
	}
}

// rem deletes k under the owned node n and reports whether it was there.
func (t *btree[K]) rem(n *bnode[K], k K) bool {
	if n.kids == nil {
		i, ok := t.search(n, k)
		if ok {
			n.ents = slices.Delete(n.ents, i, i+1)
		}
		return ok
	}
	i := t.child(n, k)
	kid := t.mut(n.kids[i])
	n.kids[i] = kid
	if !t.rem(kid, k) {
		return false
	}
	if len(kid.ents) == 0 {
		n.ents = slices.Delete(n.ents, i, i+1)
		n.kids = slices.Delete(n.kids, i, i+1)
		return true
	}
	n.ents[i] = kid.ents[0]
	return true
}

// ordEntry is a key of a tree with its id.
type ordEntry[K any] struct {
	k  K
	id int32
}

// first and last return the least and greatest keys under n; key gives the
// key of an id.
func first[K any](n *bnode[K], key func(int32) K) (ordEntry[K], bool) {
	if n == nil {
		return ordEntry[K]{}, false
	}
	for n.kids != nil {
		n = n.kids[0]
	}
	return ordEntry[K]{key(n.ents[0]), n.ents[0]}, true
}

func last[K any](n *bnode[K], key func(int32) K) (ordEntry[K], bool) {
	if n == nil {
		return ordEntry[K]{}, false
	}
	for n.kids != nil {
		n = n.kids[len(n.kids)-1]
	}
	id := n.ents[len(n.ents)-1]
	return ordEntry[K]{key(id), id}, true
}

// walk calls yield with the ids under n in order until it returns false,
// and reports whether it went to the end.
func walk[K any](n *bnode[K], yield func(id int32) bool) bool {
	if n == nil {
		return true
	}
	if n.kids == nil {
		for _, id := range n.ents {
			if !yield(id) {
				return false
			}
		}
		return true
	}
	for _, kid := range n.kids {
		if !walk(kid, yield) {
			return false
		}
	}
	return true
}
