package snapshot

import (
	"maps"
	"time"
)

// reviseIfPending reissues the newest cut if late updates wait for it.
func (c *Collector[K, V]) reviseIfPending() {
	if !c.revise.Load() {
		return
	}
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	if c.revise.Load() && c.newest.Load() != nil {
		c.take(c.clock)
		c.recomputeDue()
	}
}

// reviseKept reissues the kept cuts older than the newest with the late
// updates recorded since (LateRevise with a Horizon); cutMu is held and the
// newest cut, just taken, has published every key the late updates use. A
// late image replaces a source's whole state in the cuts at or after it.
func (c *Collector[K, V]) reviseKept(lates [][]lateOp[K, V]) {
	now := c.now()
	latest := c.latest.Load()
	for j := range c.hist[:len(c.hist)-1] {
		h := c.hist[j]
		over := c.overlay(h, lates)
		if over == nil {
			continue
		}
		r := c.reissue(h, over, now)
		c.hist[j] = r
		if r.complete && (latest == nil || r.t > latest.t) {
			latest = r
			c.latest.Store(r)
		}
	}
}

// overlay returns the values that the late updates at or before h's time
// change in h, per source, laid over the overlay h already has (nil: none
// of them is that old). cutMu is held.
func (c *Collector[K, V]) overlay(h *Cut[K, V], lates [][]lateOp[K, V]) []map[int32]*V {
	newest := c.newest.Load()
	n := len(c.reg.Load().list)
	var over []map[int32]*V
	for i := range lates {
		for _, l := range lates[i] {
			if l.t > h.t {
				continue
			}
			if over == nil {
				over = make([]map[int32]*V, n)
				for k := range min(len(h.over), n) {
					over[k] = maps.Clone(h.over[k])
				}
			}
			if l.img != nil {
				ns := &newest.src[i]
				ov := make(map[int32]*V, ns.n)
				for id := range ns.n {
					ov[int32(id)] = nil
				}
				for _, e := range *l.img {
					if id, ok := ns.kt.lookup(e.Key); ok {
						v := e.Value
						ov[id] = &v
					}
				}
				over[i] = ov
				continue
			}
			if over[i] == nil {
				over[i] = make(map[int32]*V)
			}
			over[i][l.id] = l.p
		}
	}
	return over
}

// reissue returns the revision of the kept cut h with over laid over its
// base, with every source's status brought up to date. cutMu is held.
func (c *Collector[K, V]) reissue(h *Cut[K, V], over []map[int32]*V, now time.Time) *Cut[K, V] {
	srcs := c.reg.Load().list
	newest := c.newest.Load()
	base := h
	if h.base != nil {
		base = h.base
	}
	c.cutSeq++
	c.revs++
	r := &Cut[K, V]{t: h.t, taken: now, seq: c.cutSeq, rev: h.rev + 1, base: base, over: over,
		src: make([]cutSource[K, V], len(srcs)), complete: true}
	for i, s := range srcs {
		cs := &r.src[i]
		if i < len(h.src) {
			*cs = h.src[i]
		}
		through := cs.status.Through
		s.mu.Lock()
		cs.status = s.status(h.t, now.UnixNano(), c.cfg.SilentAfter)
		s.mu.Unlock()
		cs.status.Through = through
		if len(over[i]) > 0 {
			cs.status.Through = 0 // late updates laid over it: not a prefix
		}
		if s.required && cs.status.State != Current {
			r.complete = false
		}
		if len(over[i]) == 0 {
			continue
		}
		// Keys may be new since h: take the newest key tables, and
		// count the keys that came or went.
		ns := &newest.src[i]
		cs.kt, cs.kdir, cs.sdir, cs.n = ns.kt, ns.kdir, ns.sdir, ns.n
		var ro *reorder[K]
		if o := c.cfg.Order; o != nil {
			ro = newReorder(o, cs.ord, cs.keyOf)
		}
		for id, p := range over[i] {
			was := false
			if q, ok := h.over0(i, id); ok {
				was = q != nil
			} else if i < len(base.src) && int(id) < base.src[i].n {
				was = base.load(i, id) != nil
			}
			switch {
			case was && p == nil:
				cs.nlive--
				if ro != nil {
					ro.del(ns.kdir[id>>chunkBits][id&chunkMask])
				}
			case !was && p != nil:
				cs.nlive++
				if ro != nil {
					ro.add(ns.kdir[id>>chunkBits][id&chunkMask], id)
				}
			}
		}
		if ro != nil {
			cs.ord = ro.share()
		}
	}
	return r
}

// lateOp is a late update folded into the store, kept to revise the kept
// cuts at or after its time.
type lateOp[K comparable, V any] struct {
	t   int64
	id  int32
	p   *V             // nil: deleted
	img *[]Entry[K, V] // an image: it replaces the whole state
}

// maxLateKept bounds the late updates recorded per source between reads that
// revise the kept cuts; beyond it the kept cuts are left as they are.
const maxLateKept = 1 << 16

// foldLate folds late updates into the store at once.
func (s *source[K, V]) foldLate() {
	if s.lateDue {
		s.lateDue = false
		before := s.st.ndirty
		if s.c.cfg.Late == LateRevise && s.c.cfg.Horizon > 0 {
			s.recordLate()
		}
		s.foldTo(s.folded)
		if s.st.ndirty != before || s.c.cfg.Late == LateRevise {
			s.revised = true
		}
	}
}

// recordLate notes the late updates that foldTo(s.folded) is about to fold.
func (s *source[K, V]) recordLate() {
	for i := s.head; i < s.ready; i++ {
		o := &s.log[i]
		if o.t > s.folded {
			if s.disorder == 0 {
				break
			}
			continue
		}
		if len(s.lates) >= maxLateKept {
			s.lateLost = true
			return
		}
		l := lateOp[K, V]{t: o.t, id: o.id}
		if o.flags&opImage != 0 {
			l.img = o.img
		} else if o.flags&opDelete == 0 {
			v := o.val
			l.p = &v
		}
		s.lates = append(s.lates, l)
	}
}
