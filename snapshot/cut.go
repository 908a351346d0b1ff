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
	base *Cut[K, V]
	over []map[int32]*V
}

// cutSource is one source's part of a cut.
type cutSource[K comparable, V any] struct {
	status SourceStatus[K]
	kt     *keyTable[K]
	kdir   []*keyChunk[K]
	sdir   []*slotChunk[V]
	n      int
	nlive  int
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
		if i >= len(c.base.src) || int(id) >= c.base.src[i].n {
			return nil
		}
		return c.base.load(i, id)
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

// State is a source's condition relative to a cut.
type State uint8

const (
	// Current: the source has passed the cut's time; its part is final.
	Current State = iota
	// Stale: behind the cut's time with no gap; Lag says by how much.
	Stale
	// Silent: behind, and nothing heard for Config.SilentAfter; Since says
	// since when.
	Silent
	// Gapped: sequence numbers are missing below what the source has sent;
	// Missing and Buffered say which and how many wait.
	Gapped
	// Resetting: an image newer than the cut replaced updates that were
	// never seen, so the source's state at the cut's time is unknown.
	Resetting
	// NeverHeard: nothing received from the source yet.
	NeverHeard
	// Invalid: the Verify hook refused an update, or a buffered update
	// became late under LateReject; Err says which. Until a reset.
	Invalid
)

// String returns the state's name in lower case.
func (s State) String() string {
	switch s {
	case Current:
		return "current"
	case Stale:
		return "stale"
	case Silent:
		return "silent"
	case Gapped:
		return "gapped"
	case Resetting:
		return "resetting"
	case NeverHeard:
		return "never heard"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// SeqRange is an inclusive range of sequence numbers.
type SeqRange struct{ First, Last uint64 }

// SourceStatus is one source's condition in a cut. The zero value is not
// useful; statuses come from [Cut.Sources] and [Cut.Status].
type SourceStatus[K comparable] struct {
	Source   string
	Required bool
	State    State
	// Seq is the last sequence number applied in order.
	Seq uint64
	// Passed is the source's progress: every update with event time at or
	// before it has been applied. Zero if the source has shown none.
	Passed time.Time
	// Lag is the cut's time minus Passed, for a source that has not
	// passed the cut but has shown progress.
	Lag time.Duration
	// Since is, for a silent source, the last time it is known to have
	// sent something (heartbeats and images are stamped on arrival,
	// updates at the first after each cut and every 64th). A source is
	// reported silent only once it surely has been for SilentAfter.
	Since time.Time
	// Missing lists the missing sequence numbers of a gapped source (at
	// most 8 ranges, lowest first); MissingCount counts all of them.
	Missing      []SeqRange
	MissingCount uint64
	// Buffered counts the updates waiting behind the gap.
	Buffered int
	// Suspect lists, for a gapped source whose updates carry per-key
	// sequence numbers, the keys that the buffered updates show to have
	// missed an update; the other keys are not known to be affected.
	Suspect []K
	// Err says why the source is invalid, or why it overflowed.
	Err error
	// Duplicates and Late count the duplicates ignored and late updates
	// met since the collector started.
	Duplicates, Late uint64
}

// String describes the status in a few words, e.g. `"B" stale by 250ms`.
func (s SourceStatus[K]) String() string {
	name := fmt.Sprintf("%q ", s.Source)
	switch s.State {
	case Stale:
		return name + "stale by " + s.Lag.String()
	case Silent:
		return name + "silent since " + fmtTime(s.Since.UnixNano())
	case Gapped:
		var rs []string
		for _, r := range s.Missing {
			if r.First == r.Last {
				rs = append(rs, fmt.Sprint(r.First))
			} else {
				rs = append(rs, fmt.Sprintf("%d-%d", r.First, r.Last))
			}
		}
		msg := fmt.Sprintf("gapped: missing %s (%d), %d buffered", strings.Join(rs, ","), s.MissingCount, s.Buffered)
		if s.Err != nil {
			msg += " (overflowed; needs a reset)"
		}
		if len(s.Suspect) > 0 {
			msg += fmt.Sprintf(", %d suspect keys", len(s.Suspect))
		}
		return name + msg
	case Invalid:
		return name + "invalid: " + s.Err.Error()
	}
	return name + s.State.String()
}

// status describes the source at cut time t; mu is held.
func (s *source[K, V]) status(t, now int64, silentAfter time.Duration) SourceStatus[K] {
	st := SourceStatus[K]{
		Source:     s.name,
		Required:   s.required,
		Seq:        s.next - 1,
		Buffered:   s.bufN,
		Duplicates: s.dups,
		Late:       s.late,
	}
	if s.passed != minTime {
		st.Passed = time.Unix(0, s.passed).UTC()
	}
	switch {
	case s.passedAt(t):
		st.State = Current
		return st
	case !s.heard:
		st.State = NeverHeard
	case s.invalid != nil:
		st.State, st.Err = Invalid, s.invalid
	case s.overflow != nil:
		st.State, st.Err = Gapped, s.overflow
		st.Missing, st.MissingCount = s.missing(8)
	case s.inHole(t):
		st.State = Resetting
	case s.topSeq() >= s.next:
		st.State = Gapped
		st.Missing, st.MissingCount = s.missing(8)
		st.Suspect = s.suspects()
	case now-s.lastHeardBy(now) >= int64(silentAfter):
		st.State, st.Since = Silent, time.Unix(0, s.heardAt).UTC()
	default:
		st.State = Stale
	}
	if s.passed != minTime && t > s.passed {
		st.Lag = time.Duration(t - s.passed)
	}
	return st
}

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
