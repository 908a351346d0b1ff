package snapshot

import (
	"fmt"
	"iter"
	"slices"
	"time"
)

// View is read access to one source's state at its sequencing frontier,
// handed to [Config.Check] after each event: everything sequenced so far,
// the event included, whether or not a cut holds it yet.
//
// A View is valid only during the Check call it is passed to, and must not
// be kept or used from another goroutine. The zero value is not useful.
type View[K comparable, V any] struct {
	s   *source[K, V]
	seq uint64
	t   int64
}

// Source returns the source's name.
func (v *View[K, V]) Source() string { return v.s.name }

// Seq returns the sequence number of the event just applied (a message's
// Seq, an update's Seq, an image's Seq).
func (v *View[K, V]) Seq() uint64 { return v.seq }

// Time returns the event time of the event just applied, or the zero time
// for an image without one.
func (v *View[K, V]) Time() time.Time {
	if v.t == undatedT {
		return time.Time{}
	}
	return time.Unix(0, v.t).UTC()
}

// Get returns the value of key.
func (v *View[K, V]) Get(key K) (V, bool) {
	lv := v.s.lv
	if id, ok := v.s.st.ids[key]; ok && int(id) < len(lv.on) && lv.on[id] {
		return lv.vals[id], true
	}
	var zero V
	return zero, false
}

// Len returns the number of keys.
func (v *View[K, V]) Len() int { return v.s.lv.n }

func (v *View[K, V]) side(side int) *btree[K] {
	lv := v.s.lv
	if lv.ord == nil || side < 0 || side >= len(lv.ord.sides) {
		return nil
	}
	return &lv.ord.sides[side]
}

func (v *View[K, V]) end(side int, fromEnd bool) (K, V, bool) {
	var k K
	var val V
	t := v.side(side)
	if t == nil {
		return k, val, false
	}
	e, ok := first(t.root, t.key)
	if fromEnd {
		e, ok = last(t.root, t.key)
	}
	if !ok {
		return k, val, false
	}
	return e.k, v.s.lv.vals[e.id], true
}

// First returns the first key of a side in [Config.Order]'s order and its
// value, as [Cut.First]; it costs O(log keys).
func (v *View[K, V]) First(side int) (K, V, bool) { return v.end(side, false) }

// Last returns the last key of a side in [Config.Order]'s order and its
// value.
func (v *View[K, V]) Last(side int) (K, V, bool) { return v.end(side, true) }

// Top appends to dst the first n keys of a side in [Config.Order]'s order,
// with their values, as [Cut.Top]: enough for an exchange's checksum of the
// top of its book.
func (v *View[K, V]) Top(side, n int, dst []Entry[K, V]) []Entry[K, V] {
	t := v.side(side)
	if t == nil || t.root == nil || n <= 0 {
		return dst
	}
	// Room for all of them first, so that the walk writes in place.
	n = min(n, t.n)
	at := len(dst)
	dst = slices.Grow(dst, n)[:at+n]
	got := topEntries(t.root, dst[at:], v.s.st.kdir, v.s.lv.vals)
	return dst[:at+got]
}

// topEntries fills dst with the first len(dst) entries under node n, with
// their values, and returns how many it filled.
func topEntries[K comparable, V any](n *bnode[K], dst []Entry[K, V], kdir []*keyChunk[K], vals []V) int {
	if n.kids == nil {
		ents := n.ents[:min(len(dst), len(n.ents))]
		for i, id := range ents {
			e := &dst[i]
			e.Key, e.Value, e.KeySeq = kdir[id>>chunkBits][id&chunkMask], vals[id], 0
		}
		return len(ents)
	}
	k := 0
	for _, kid := range n.kids {
		if k == len(dst) {
			break
		}
		k += topEntries(kid, dst[k:], kdir, vals)
	}
	return k
}

// Changed reports whether the event just applied may have changed the
// first n keys of a side in [Config.Order]'s order, or their values. False
// means that they and their values are what they were before the event, so
// that a checksum of the top of a book computed after the source's previous
// event still holds and need not be computed again (keep it per source: the
// hook sees every source's events). It is true after an image, when a key
// the event set or removed is among the first n keys after it (a value set
// to the value it had counts), when the side holds n keys or fewer after
// the event and the event changed a key of it, and always without an
// Order; false for n ≤ 0 and for a side out of range. It costs O(keys the
// event changed + log keys + n).
func (v *View[K, V]) Changed(side, n int) bool {
	lv := v.s.lv
	if n <= 0 {
		return false
	}
	if lv.whole || lv.ord == nil {
		return true
	}
	t := v.side(side)
	if t == nil {
		return false
	}
	// A key after the n-th key that follows the event leaves the first n as
	// they were: the keys up to that n-th key, and their values, are the
	// same before and after, and there were n of them before too.
	var nth K
	full, found := false, false
	o := v.s.c.cfg.Order
	for i := range lv.undo {
		k := v.s.st.key(lv.undo[i].id)
		if o.side(k) != side {
			continue
		}
		if !found { // found once, and only for an event that changed this side
			found = true
			if t.root != nil && t.n > n {
				nth, _, full = nthKey(t.root, n, v.s.st.kdir)
			}
		}
		if !full || t.cmp(k, nth) <= 0 {
			return true
		}
	}
	return false
}

// nthKey returns the n-th key (from 1) under nd and true, or, if nd holds
// fewer than n keys, how many it holds and false.
func nthKey[K comparable](nd *bnode[K], n int, kdir []*keyChunk[K]) (K, int, bool) {
	var zero K
	if nd.kids == nil {
		if n <= len(nd.ents) {
			id := nd.ents[n-1]
			return kdir[id>>chunkBits][id&chunkMask], 0, true
		}
		return zero, len(nd.ents), false
	}
	seen := 0
	for _, kid := range nd.kids {
		k, c, ok := nthKey(kid, n-seen, kdir)
		if ok {
			return k, 0, true
		}
		seen += c
	}
	return zero, seen, false
}

// Ascend yields the keys of a side in [Config.Order]'s order, with their
// values. It must not be used after the Check call returns.
func (v *View[K, V]) Ascend(side int) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		t := v.side(side)
		if t == nil {
			return
		}
		vals := v.s.lv.vals
		walk(t.root, func(id int32) bool { return yield(t.key(id), vals[id]) })
	}
}

// live is a source's state at its sequencing frontier, kept for
// Config.Check: values by key id, and the order of the live keys. The
// changes of the event being checked are recorded so that a refused event
// can be rolled back.
type live[K comparable, V any] struct {
	vals []V
	on   []bool
	n    int
	ord  *ordered[K] // never shared, so changed in place
	undo []undoRec[V]
	ids  []int32 // scratch: the key ids of a message's changes
	// whole: the event being checked is an image, which changed everything
	// (its changes are not in undo).
	whole bool
	view  View[K, V]
}

type undoRec[V any] struct {
	id int32
	on bool
	v  V
}

func newLive[K comparable, V any](o *Order[K], key func(int32) K) *live[K, V] {
	return &live[K, V]{ord: newOrdered(o, key)}
}

// set changes key id (of key k) and records how to undo it.
func (lv *live[K, V]) set(k K, id int32, del bool, v V) {
	for int(id) >= len(lv.vals) {
		var zero V
		lv.vals = append(lv.vals, zero)
		lv.on = append(lv.on, false)
	}
	lv.undo = append(lv.undo, undoRec[V]{id: id, on: lv.on[id], v: lv.vals[id]})
	lv.put(k, id, !del, v)
}

func (lv *live[K, V]) put(k K, id int32, on bool, v V) {
	was := lv.on[id]
	lv.on[id] = on
	if on {
		lv.vals[id] = v
	} else {
		var zero V
		lv.vals[id] = zero
	}
	switch {
	case on && !was:
		lv.n++
		if lv.ord != nil {
			lv.ord.add(k, id)
		}
	case !on && was:
		lv.n--
		if lv.ord != nil {
			lv.ord.del(k)
		}
	}
}

// rollback undoes the changes recorded since the last committed event.
func (lv *live[K, V]) rollback(key func(int32) K) {
	for i := len(lv.undo) - 1; i >= 0; i-- {
		u := &lv.undo[i]
		lv.put(key(u.id), u.id, u.on, u.v)
	}
	clear(lv.undo)
	lv.undo = lv.undo[:0]
}

func (lv *live[K, V]) commit() {
	clear(lv.undo)
	lv.undo = lv.undo[:0]
}

// runCheck calls Config.Check with the state after the event seq at t; mu is
// held. A panic in the hook is a failed check, so that the lock is released.
func (s *source[K, V]) runCheck(seq uint64, t int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the Check hook panicked: %v", r)
		}
	}()
	s.lv.view = View[K, V]{s: s, seq: seq, t: t}
	return s.c.cfg.Check(&s.lv.view)
}

// refuseChecked marks the source invalid after a failed check of the event
// seq at t and returns the error; mu is held. The event came in sequence, so
// every update before its time had been applied: the source's progress
// moves to it as if it had been applied, exactly as an event whose earlier
// updates were sequenced before its last one was refused does.
func (s *source[K, V]) refuseChecked(opName string, seq uint64, t int64, cause error) *InputError {
	if t > s.maxT && t != undatedT {
		s.maxT = t
		s.updatePassed()
	}
	err := &InputError{Op: opName, Source: s.name, Seq: seq, Err: ErrInvalid, Cause: cause,
		Reason: "the Check hook refused the state after it; the source is invalid until a reset"}
	s.invalid = err
	s.resyncDue = true
	return err
}

// checkUpdate applies an update (key id) to the live state and, if it ends
// an event, checks the state; a refused event is rolled back, with its
// updates already sequenced. It reports whether the update may be sequenced.
func (s *source[K, V]) checkUpdate(o *op[K, V], id int32) bool {
	lv := s.lv
	lv.set(o.key, id, o.flags&opDelete != 0, o.val)
	if s.events && o.flags&opEnd == 0 {
		return true
	}
	err := s.runCheck(o.last, o.t)
	if err == nil {
		lv.commit()
		return true
	}
	lv.rollback(s.st.key)
	if s.events && s.evOpen {
		n := len(s.log) - s.ready
		clear(s.log[s.ready:])
		s.log = s.log[:s.ready]
		s.applied -= uint64(n)
		s.next = s.evSeq
		s.evOpen = false
	}
	s.refuseChecked("apply", o.last, o.t, err)
	return false
}

// checkMsg applies a message to the live state and checks it; a refused
// message is rolled back. The changes' key ids are left in lv.ids.
func (s *source[K, V]) checkMsg(o *op[K, V]) bool {
	lv := s.lv
	lv.ids = lv.ids[:0]
	for i := range o.chg {
		ch := &o.chg[i]
		id := s.st.id(ch.Key)
		lv.ids = append(lv.ids, id)
		lv.set(ch.Key, id, ch.Delete, ch.Value)
	}
	err := s.runCheck(o.last, o.t)
	if err == nil {
		lv.commit()
		return true
	}
	lv.rollback(s.st.key)
	s.refuseChecked("apply", o.last, o.t, err)
	return false
}

// checkImage replaces the live state with an image and checks it. A refused
// image marks the source invalid (its live state is then the image's, and
// only a later image replaces it).
func (s *source[K, V]) checkImage(seq uint64, t int64, entries []Entry[K, V]) error {
	lv := s.lv
	for id := range lv.on {
		if lv.on[id] {
			lv.put(s.st.key(int32(id)), int32(id), false, lv.vals[id])
		}
	}
	for i := range entries {
		e := &entries[i]
		lv.set(e.Key, s.st.id(e.Key), false, e.Value)
	}
	lv.commit()
	lv.whole = true
	err := s.runCheck(seq, t)
	lv.whole = false
	if err != nil {
		return s.refuseChecked("reset", seq, undatedT, err)
	}
	return nil
}
