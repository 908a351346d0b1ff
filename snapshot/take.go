package snapshot

import (
	"slices"
)

// slabSize is how many published values share one allocation. A slab stays
// in memory while any of its values is still current (or held by a kept cut),
// so it bounds the memory wasted on superseded values to slabSize−1 per
// current one, while cutting allocations per changed key by as much.
const slabSize = 16

// take folds every source to t and publishes the cut at t (a revision when t
// is the newest cut's time). cutMu is held and t ≥ c.clock.
func (c *Collector[K, V]) take(t int64) *Cut[K, V] {
	c.revise.Store(false)
	srcs := c.reg.Load().list
	now := c.now()
	nowNs := now.UnixNano()
	prev := c.newest.Load()
	c.cutSeq++
	cut := &Cut[K, V]{t: t, taken: now, seq: c.cutSeq, src: make([]cutSource[K, V], len(srcs))}
	if prev != nil && prev.t == t {
		cut.rev = prev.rev + 1
		c.revs++
	}
	var tr *transition[K, V]
	if prev != nil {
		tr = &transition[K, V]{to: cut, old: make([][]oldValue[V], len(srcs))}
	}
	complete := true
	stores := c.stores[:0]
	var lates [][]lateOp[K, V]
	lost := false
	for i, s := range srcs {
		cs := &cut.src[i]
		s.mu.Lock()
		if len(s.lates) > 0 || s.lateLost {
			if lates == nil {
				lates = make([][]lateOp[K, V], len(srcs))
			}
			lates[i], s.lates = s.lates, nil
			lost, s.lateLost = lost || s.lateLost, false
		}
		s.foldTo(t)
		s.pruneHoles(c.keptFrom(t))
		s.revised = false
		if s.msgs != s.stampMsgs && s.msgs != s.laterMsgs { // heard since: by now at the latest
			s.laterBy, s.laterMsgs = nowNs, s.msgs
		}
		s.stampDue = true
		cs.status = s.status(t, nowNs, c.cfg.SilentAfter)
		prevN := s.st.pubN
		chg := s.st.collect(c.chg[:0])
		cs.kt = s.st.publishKeys()
		cs.kdir, cs.sdir, cs.n, cs.nlive = s.st.kdir, s.st.sdir, s.st.n, s.st.nlive
		if s.st.ord != nil {
			cs.ord = s.st.ord.share()
		}
		s.mu.Unlock()
		if s.required && cs.status.State != Current {
			complete = false
		}
		var olds []oldValue[V]
		if tr != nil && len(chg) > 0 {
			olds = make([]oldValue[V], 0, len(chg))
		}
		var slab []V
		for j := range chg {
			ch := &chg[j]
			slot := &cs.sdir[ch.id>>chunkBits][ch.id&chunkMask]
			old := slot.Load()
			var p *V
			if ch.live {
				if len(slab) == 0 {
					slab = make([]V, min(slabSize, len(chg)-j))
				}
				slab[0] = ch.v
				p = &slab[0]
				slab = slab[1:]
			} else if old == nil {
				continue
			}
			if tr != nil && int(ch.id) < prevN {
				olds = append(olds, oldValue[V]{id: ch.id, p: old})
			}
			stores = append(stores, slotStore[V]{slot: slot, p: p})
		}
		if tr != nil {
			tr.old[i] = olds
		}
		clear(chg)
		c.chg = chg[:0]
	}
	cut.complete = complete
	// Link first, then overwrite the slots: a reader of the previous cut
	// that sees a new value also sees the transition holding the old one.
	if prev != nil {
		prev.next.Store(tr)
	}
	for _, st := range stores {
		st.slot.Store(st.p)
	}
	clear(stores)
	c.stores = stores[:0]
	c.newest.Store(cut)
	if complete {
		c.latest.Store(cut)
	}
	c.clock = t
	c.clockA.Store(t)
	c.remember(cut)
	if lates != nil && !lost && len(c.hist) > 1 {
		c.reviseKept(lates)
	}
	c.settle(cut)
	c.unpin(cut)
	return cut
}

// freezeAfter is how many cuts the collector's own references (Latest, epoch
// cuts) may fall behind the newest before they are replaced by frozen copies,
// so that a long run of incomplete cuts does not keep every change since the
// last complete one in memory, and reads of them stay cheap.
const freezeAfter = 256

// freeze returns a copy of old that no longer depends on the cuts taken after
// it: one pointer per key, values shared. It costs O(keys + changes since old).
// cutMu is held, so the transitions and slots do not move.
func (c *Collector[K, V]) freeze(old *Cut[K, V]) *Cut[K, V] {
	if old.flat != nil {
		return old
	}
	if old.base != nil { // a revision: freeze its base, then lay the late updates over it
		fb := c.freeze(old.base)
		f := &Cut[K, V]{t: old.t, taken: old.taken, seq: old.seq, rev: old.rev, complete: old.complete,
			src: old.src, flat: make([][]*V, len(old.src))}
		for i := range old.src {
			f.flat[i] = make([]*V, old.src[i].n)
			if i < len(fb.flat) {
				copy(f.flat[i], fb.flat[i])
			}
			if i < len(old.over) {
				for id, p := range old.over[i] {
					f.flat[i][id] = p
				}
			}
		}
		return f
	}
	f := &Cut[K, V]{t: old.t, taken: old.taken, seq: old.seq, rev: old.rev, complete: old.complete,
		src: old.src, flat: make([][]*V, len(old.src))}
	filled := make([][]bool, len(old.src))
	for i := range old.src {
		f.flat[i] = make([]*V, old.src[i].n)
		filled[i] = make([]bool, old.src[i].n)
	}
	// The value at old of a key is the one overwritten by the first later
	// cut that changed it, or the current one if none did.
	for tr := old.next.Load(); tr != nil; tr = tr.to.next.Load() {
		for i := range min(len(tr.old), len(f.flat)) {
			for _, o := range tr.old[i] {
				if int(o.id) < len(f.flat[i]) && !filled[i][o.id] {
					f.flat[i][o.id], filled[i][o.id] = o.p, true
				}
			}
		}
	}
	for i := range f.flat {
		sdir := old.src[i].sdir
		for id := range f.flat[i] {
			if !filled[i][id] {
				f.flat[i][id] = sdir[id>>chunkBits][id&chunkMask].Load()
			}
		}
	}
	return f
}

// unpin freezes the collector's own references to cuts that have fallen far
// behind the newest; cutMu is held.
func (c *Collector[K, V]) unpin(newest *Cut[K, V]) {
	if l := c.latest.Load(); l != nil && l.flat == nil && newest.seq-l.seq >= freezeAfter {
		c.latest.Store(c.freeze(l))
	}
	c.emu.Lock()
	defer c.emu.Unlock()
	for _, m := range c.epochs {
		if m.cut != nil && m.cut.flat == nil && newest.seq-m.cut.seq >= freezeAfter {
			m.cut = c.freeze(m.cut)
		}
	}
}

// keptFrom is the oldest time at which a cut may still be taken or revised,
// once the cut at t is taken; cutMu is held.
func (c *Collector[K, V]) keptFrom(t int64) int64 {
	if len(c.hist) > 0 && c.cfg.Horizon > 0 {
		return min(c.hist[0].t, t)
	}
	return t
}

// remember keeps cut for as-of reads and drops cuts beyond the horizon.
func (c *Collector[K, V]) remember(cut *Cut[K, V]) {
	if n := len(c.hist); n > 0 && c.hist[n-1].t == cut.t {
		c.hist[n-1] = cut
	} else {
		c.hist = append(c.hist, cut)
	}
	drop := 0
	for drop < len(c.hist)-1 && (c.hist[drop].t < cut.t-int64(c.cfg.Horizon) || len(c.hist)-drop > maxKept) {
		drop++
	}
	if drop > 0 {
		n := copy(c.hist, c.hist[drop:])
		clear(c.hist[n:])
		c.hist = c.hist[:n]
	}
}

// settle hands the cut to the waiters and epochs at its time.
func (c *Collector[K, V]) settle(cut *Cut[K, V]) {
	w := c.waiters[:0]
	for _, x := range c.waiters {
		if x.t == cut.t {
			x.cut = cut
			close(x.done)
		} else {
			w = append(w, x)
		}
	}
	clear(c.waiters[len(w):])
	c.waiters = w
	c.emu.Lock()
	for _, m := range c.epochs {
		if m.cut != nil || m.missed {
			continue
		}
		switch {
		case m.t == cut.t:
			m.cut = cut
		case m.t < cut.t:
			m.missed = true
		}
	}
	c.emu.Unlock()
}

// cutThrough takes the cuts that waiters and epochs want before t, then the
// cut at t. cutMu is held and t > c.clock.
func (c *Collector[K, V]) cutThrough(t int64) *Cut[K, V] {
	var before []int64
	for _, w := range c.waiters {
		if w.t < t && w.t > c.clock {
			before = append(before, w.t)
		}
	}
	c.emu.Lock()
	for _, m := range c.epochs {
		if m.cut == nil && !m.missed && m.t < t && m.t > c.clock {
			before = append(before, m.t)
		}
	}
	c.emu.Unlock()
	slices.Sort(before)
	for _, b := range slices.Compact(before) {
		c.take(b)
	}
	return c.take(t)
}
