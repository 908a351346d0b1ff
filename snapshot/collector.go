package snapshot

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Collector sequences updates from many sources and cuts complete and
// consistent snapshots of them. Create one with [New].
//
// The zero value is not usable. All methods are safe for concurrent use.
// Updates of different sources are applied in parallel (each source has its
// own lock); updates of one source are serialized. Readers of a [Cut] never
// block writers; taking a cut holds each source's lock only while that
// source's new updates are folded in (array stores, no lookups). The
// Collector owns no goroutine and needs no Close: a cut that becomes complete
// is taken by the goroutine whose message completed it, before that call
// returns, and deadlines run in the waiting reader's goroutine.
type Collector[K comparable, V any] struct {
	cfg   Config[K, V]
	fixed bool

	regMu sync.Mutex
	reg   atomic.Pointer[registry[K, V]]

	due     atomic.Int64 // earliest time at which a cut becomes due
	subsets atomic.Int32 // waiters for a subset of the sources (AtFor)
	revise  atomic.Bool  // late updates wait for the newest cut to be reissued
	clockA  atomic.Int64 // mirror of clock

	cutMu   sync.Mutex // serializes cuts; guards the fields below
	clock   int64      // time of the newest cut
	cutSeq  uint64
	newest  atomic.Pointer[Cut[K, V]]
	latest  atomic.Pointer[Cut[K, V]]
	hist    []*Cut[K, V]
	waiters []*waiter[K, V]
	chg     []change[V]
	stores  []slotStore[V]
	cands   []int64
	// ivFailed is the latest aligned time found incomplete although every
	// required source had passed it (a resetting hole): Interval cuts wait
	// for the next one.
	ivFailed int64
	revs     uint64

	emu     sync.Mutex // guards epochs and seqCh
	epochs  map[uint64]*epochMark[K, V]
	epochCh chan struct{} // closed and replaced when an epoch is announced

	seqWaiting atomic.Int32  // AtSeq calls waiting
	seqCh      chan struct{} // closed and replaced when a source progresses while they wait
}

type registry[K comparable, V any] struct {
	list   []*source[K, V]
	byName map[string]*source[K, V]
}

type waiter[K comparable, V any] struct {
	t    int64
	done chan struct{}
	cut  *Cut[K, V]
	only []*source[K, V] // AtFor: the sources waited for (nil: every required one)
}

// epochMark is an announced epoch: its time, and its cut once taken (missed
// if a later cut was taken first).
type epochMark[K comparable, V any] struct {
	t      int64
	cut    *Cut[K, V]
	missed bool
}

type slotStore[V any] struct {
	slot *atomic.Pointer[V]
	p    *V
}

// now reads the wall clock (Config.Now).
func (c *Collector[K, V]) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// maxKept bounds the cuts kept for as-of reads, whatever the horizon.
const maxKept = 4096

// maxEpochs bounds the epochs remembered for AtEpoch.
const maxEpochs = 64

// New returns a Collector configured by cfg (nil: every default). The error
// joins every problem found in cfg.
func New[K comparable, V any](cfg *Config[K, V]) (*Collector[K, V], error) {
	conf, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	c := &Collector[K, V]{
		cfg:      conf,
		fixed:    len(conf.Sources) > 0,
		clock:    minTime,
		ivFailed: minTime,
		epochs:   make(map[uint64]*epochMark[K, V]),
		epochCh:  make(chan struct{}),
		seqCh:    make(chan struct{}),
	}
	c.clockA.Store(minTime)
	r := &registry[K, V]{byName: make(map[string]*source[K, V], len(conf.Sources))}
	for i, sc := range conf.Sources {
		s := newSource(c, sc, i, minTime)
		r.list = append(r.list, s)
		r.byName[sc.Name] = s
	}
	c.reg.Store(r)
	c.recomputeDue()
	return c, nil
}

// source returns the named source, adding it if sources are not fixed.
func (c *Collector[K, V]) source(name, opName string, seq uint64) (*source[K, V], error) {
	r := c.reg.Load()
	if len(r.list) <= 8 {
		for _, s := range r.list {
			if s.name == name {
				return s, nil
			}
		}
	} else if s, ok := r.byName[name]; ok {
		return s, nil
	}
	if c.fixed {
		names := make([]string, len(r.list))
		for i, s := range r.list {
			names[i] = s.name
		}
		return nil, inputErr(opName, name, seq, ErrUnknownSource, "not one of the configured sources (%s)", strings.Join(names, ", "))
	}
	if name == "" {
		return nil, inputErr(opName, name, seq, ErrUnknownSource, "a message needs a source name")
	}
	c.regMu.Lock()
	defer c.regMu.Unlock()
	r = c.reg.Load()
	if s, ok := r.byName[name]; ok {
		return s, nil
	}
	s := newSource(c, Source{Name: name}, len(r.list), c.clockA.Load())
	nr := &registry[K, V]{list: append(slices.Clip(r.list), s), byName: make(map[string]*source[K, V], len(r.list)+1)}
	for _, x := range nr.list {
		nr.byName[x.name] = x
	}
	c.reg.Store(nr)
	return s, nil
}

// Apply applies updates, in order. Updates of one source are sequenced by
// their Seq whatever order they arrive in: a gap holds the source back and
// later updates wait in a bounded buffer; a duplicate is ignored and counted.
//
// Apply stops at the first update it refuses and returns an [*InputError]
// saying which (its Index) and why; the refused update changes nothing, and
// the updates before it stay applied. An update that completes a cut that is
// due (a waiting [Collector.At], an aligned [Config.Interval] time, an epoch)
// takes that cut before Apply returns.
//
// Applying an update in sequence does not allocate; a run of updates of one
// source takes its lock once. Apply may be called from any goroutine.
func (c *Collector[K, V]) Apply(us ...Update[K, V]) error {
	for i := 0; i < len(us); {
		s, err := c.source(us[i].Source, "apply", us[i].Seq)
		if err != nil {
			return indexed(err, i, len(us))
		}
		j := i + 1
		for j < len(us) && us[j].Source == s.name {
			j++
		}
		if n, err := c.applyRun(s, us[i:j]); err != nil {
			return indexed(err, i+n, len(us))
		}
		i = j
	}
	return nil
}

func indexed(err error, i, n int) error {
	if ie, ok := err.(*InputError); ok && n > 1 {
		cp := *ie
		cp.Index = i
		cp.batch = n
		return &cp
	}
	return err
}

// applyRun applies updates of one source and returns how many it applied.
func (c *Collector[K, V]) applyRun(s *source[K, V], us []Update[K, V]) (int, error) {
	nv, verr := len(us), error(nil)
	if o := c.cfg.Order; o != nil && o.Side != nil {
		for k := range us {
			if sd := o.Side(us[k].Key); sd < 0 || sd >= o.sides() {
				nv, verr = k, badSide(us[k].Key, sd, o.sides())
				break
			}
		}
	}
	if c.cfg.Verify != nil {
		for k := range us[:nv] {
			if e := c.cfg.Verify(us[k]); e != nil {
				nv, verr = k, e
				break
			}
		}
	}
	s.mu.Lock()
	old := s.passed
	var err error
	k := 0
	for ; k < nv; k++ {
		u := &us[k]
		t, ok := nanos(u.Time)
		if !ok {
			err = inputErr("apply", s.name, u.Seq, ErrTime, "%s", badTime("an update", u.Time))
			break
		}
		if err = s.update(u, t); err != nil {
			break
		}
	}
	if err == nil && verr != nil {
		if ke, ok := verr.(*keyError); ok {
			err = inputErr("apply", s.name, us[nv].Seq, ErrKey, "%s", ke.msg)
		} else {
			err = s.refuseInvalid(&us[nv], verr)
		}
	}
	c.unlock(s, old, false)
	return k, err
}

// unlock finishes a call that changed s: folds late updates, reports gaps,
// releases s.mu, and takes the cuts the call made due.
func (c *Collector[K, V]) unlock(s *source[K, V], old int64, always bool) {
	s.stamp(always)
	if s.lateDue {
		s.foldLate()
	}
	revised := s.revised
	s.revised = false
	var gapFirst, gapLast uint64
	callGap := false
	if s.gapDue && c.cfg.GapFill != nil {
		if now := c.now().UnixNano(); now >= s.gapNext {
			s.gapDue = false
			if gapFirst, gapLast, callGap = s.gapSpan(); callGap {
				s.gapTold = gapLast
				s.gapNext = now + int64(c.cfg.GapFillInterval)
			}
		}
	} else {
		s.gapDue = false
	}
	overfull := s.pending() > c.cfg.MaxPending
	p := s.passed
	var resync error
	if s.resyncDue {
		s.resyncDue = false
		if s.invalid != nil {
			resync = s.invalid
		} else if s.overflow != nil {
			resync = s.overflow
		}
	}
	s.mu.Unlock()

	if callGap {
		c.cfg.GapFill(s.name, gapFirst, gapLast)
	}
	if resync != nil && c.cfg.Resync != nil {
		c.cfg.Resync(s.name, resync)
	}
	if c.seqWaiting.Load() > 0 {
		c.seqProgress()
	}
	if revised {
		c.revise.Store(true)
		if n := c.newest.Load(); n != nil && !n.complete {
			c.lowerDue(n.t)
		}
	}
	if d := c.due.Load(); p >= d && (old < d || revised || (p > old && c.subsets.Load() > 0)) {
		c.advance()
	}
	if overfull {
		c.relieve(s)
	}
}

func (c *Collector[K, V]) lowerDue(t int64) {
	for {
		d := c.due.Load()
		if t >= d || c.due.CompareAndSwap(d, t) {
			return
		}
	}
}

// Heartbeat records a source's announcement of its progress (see
// [Heartbeat]). It is refused with an [*InputError], changing nothing, if it
// contradicts updates already received (one after its Seq with an event time
// at or before its Time), or closes an epoch at another time than other
// sources did. A heartbeat that completes a due cut takes it before Heartbeat
// returns. It reads the wall clock once (for silence detection).
func (c *Collector[K, V]) Heartbeat(h Heartbeat) error {
	s, err := c.source(h.Source, "heartbeat", h.Seq)
	if err != nil {
		return err
	}
	t, ok := nanos(h.Time)
	if !ok {
		return inputErr("heartbeat", s.name, h.Seq, ErrTime, "%s", badTime("a heartbeat", h.Time))
	}
	var register func() error
	var mark *epochMark[K, V]
	if h.Epoch != 0 {
		register = func() error {
			c.emu.Lock()
			defer c.emu.Unlock()
			if m, ok := c.epochs[h.Epoch]; ok {
				if m.t != t {
					return inputErr("heartbeat", s.name, h.Seq, ErrTime, "closes epoch %d at %s, but it was closed at %s",
						h.Epoch, fmtTime(t), fmtTime(m.t))
				}
				return nil
			}
			mark = &epochMark[K, V]{t: t}
			c.epochs[h.Epoch] = mark
			if h.Epoch > maxEpochs {
				for e := range c.epochs {
					if e <= h.Epoch-maxEpochs {
						delete(c.epochs, e)
					}
				}
			}
			close(c.epochCh)
			c.epochCh = make(chan struct{})
			return nil
		}
	}
	s.mu.Lock()
	old := s.passed
	if err := s.heartbeat(&h, t, register); err != nil {
		s.mu.Unlock()
		return err
	}
	if mark != nil {
		c.lowerDue(t)
		old = minTime // make sure the new epoch is looked at
	}
	c.unlock(s, old, true)
	return nil
}

// Reset installs a full image of a source's state, current to img.Seq at
// img.Time, atomically: the state is replaced from img.Time on, buffered
// updates and messages that end at or below img.Seq are dropped and the rest
// applied (the first message may straddle img.Seq+1, see
// [Collector.ApplyMessage]), and a gap, an overflow, an invalid mark or the
// wait for a first image ([Source.StartWithImage]) is cleared. This is the
// recovery step of a snapshot-and-incremental feed.
//
// Cuts between the source's last progress and img.Time report the source as
// resetting, since the updates the image replaced were never seen (for an
// [Image.Untimed], until the next update dates it). An image behind the
// applied sequence, without a sequence, or older than the updates around it
// is refused with an [*InputError], changing nothing. With [Config.Check],
// the image's state is checked first; a refused image leaves the source
// invalid (the error wraps [ErrInvalid]) and calls [Config.Resync]. Reset
// copies img.Entries; it costs O(keys of the source).
func (c *Collector[K, V]) Reset(img Image[K, V]) error {
	s, err := c.source(img.Source, "reset", img.Seq)
	if err != nil {
		return err
	}
	t, ok := nanos(img.Time)
	switch {
	case img.Untimed && !img.Time.IsZero():
		return inputErr("reset", s.name, img.Seq, ErrTime, "an Untimed image must have a zero Time, not %s", img.Time.UTC().Format(time.RFC3339Nano))
	case img.Untimed:
		t = undatedT
	case img.Time.IsZero():
		return inputErr("reset", s.name, img.Seq, ErrTime, "an image needs the event time it is current to (or Untimed, if the source gives none)")
	case !ok:
		return inputErr("reset", s.name, img.Seq, ErrTime, "%s", badTime("an image", img.Time))
	}
	if err := c.checkSides(s, "reset", img.Seq, img.Entries); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.passed
	if err := s.reset(&img, t); err != nil {
		if s.resyncDue { // the Check hook refused the image
			c.unlock(s, old, true)
		} else {
			s.mu.Unlock()
		}
		return err
	}
	c.unlock(s, old, true)
	return nil
}

// frontier returns the latest time every required source has passed, ignoring
// resetting holes (the cutter checks those). With no required source, the
// latest time any source has passed.
func (c *Collector[K, V]) frontier() int64 {
	g, any := int64(math.MaxInt64), false
	hi := int64(minTime)
	for _, s := range c.reg.Load().list {
		p := s.passedA.Load()
		hi = max(hi, p)
		if s.required {
			any = true
			g = min(g, p)
		}
	}
	if !any {
		return hi
	}
	return g
}

// passedBy reports whether every source of only has passed t.
func passedBy[K comparable, V any](t int64, only []*source[K, V]) bool {
	for _, s := range only {
		s.mu.Lock()
		ok := s.passedAt(t)
		s.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// completeAt reports whether every required source has passed t.
func (c *Collector[K, V]) completeAt(t int64) bool {
	for _, s := range c.reg.Load().list {
		if !s.required {
			continue
		}
		s.mu.Lock()
		ok := s.passedAt(t)
		s.mu.Unlock()
		if !ok {
			return false
		}
	}
	return true
}

// advance takes every cut that is due and complete.
func (c *Collector[K, V]) advance() {
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	c.advanceLocked()
}

// Triggers work on crossings: a writer advances when its source's progress
// crosses the due time. Sources that crossed the next due time while a cut
// was being taken would never cross it again, so after each round the
// frontier is compared with the new due time and the round repeats while it
// takes cuts.
func (c *Collector[K, V]) advanceLocked() {
	for c.advanceOnce() {
		if c.frontier() < c.due.Load() {
			return
		}
	}
}

// advanceOnce takes the due and complete cuts the frontier allows, updates
// the due time and reports whether it took any.
func (c *Collector[K, V]) advanceOnce() (took bool) {
	defer c.recomputeDue()
	g := c.frontier()
	cands := c.cands[:0]
	var forced []int64 // wanted by waiters for a subset of the sources, complete or not
	for _, w := range c.waiters {
		if w.only != nil {
			if w.t > c.clock && passedBy(w.t, w.only) {
				cands = append(cands, w.t)
				forced = append(forced, w.t)
			}
		} else if g != minTime && w.t <= g {
			cands = append(cands, w.t)
		}
	}
	if g == minTime && len(forced) == 0 {
		c.cands = cands
		return false
	}
	c.emu.Lock()
	for _, m := range c.epochs {
		if m.cut == nil && !m.missed && m.t > c.clock && m.t <= g {
			cands = append(cands, m.t)
		}
	}
	c.emu.Unlock()
	ivCand := int64(minTime)
	if iv := int64(c.cfg.Interval); iv > 0 && g != minTime {
		if b := alignDown(g, iv); b > c.clock {
			cands = append(cands, b)
			ivCand = b
		}
	}
	n := c.newest.Load()
	if c.revise.Load() && n != nil && !n.complete && n.t <= g {
		cands = append(cands, n.t)
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	c.cands = cands
	for _, t := range cands {
		if t < c.clock || !(slices.Contains(forced, t) || c.completeAt(t)) {
			continue
		}
		if t == c.clock {
			if n := c.newest.Load(); n != nil && n.t == t && !n.complete {
				c.take(t)
				took = true
			}
			continue
		}
		c.cutThrough(t)
		took = true
	}
	// An aligned time that every required source passed but that is still
	// incomplete lies in a source's resetting hole, and stays so: wait for
	// the next aligned time instead (progress triggers cuts only when it
	// crosses the due time).
	if ivCand > c.clock {
		c.ivFailed = max(c.ivFailed, ivCand)
	}
	return took
}

// recomputeDue sets the earliest time at which a cut becomes due; cutMu is held.
func (c *Collector[K, V]) recomputeDue() {
	d := int64(math.MaxInt64)
	for _, w := range c.waiters {
		d = min(d, w.t)
	}
	c.emu.Lock()
	for _, m := range c.epochs {
		if m.cut == nil && !m.missed && m.t > c.clock {
			d = min(d, m.t)
		}
	}
	c.emu.Unlock()
	if iv := int64(c.cfg.Interval); iv > 0 {
		next := int64(minTime + 1)
		if c.clock != minTime {
			next = alignDown(c.clock, iv) + iv
		}
		if c.ivFailed != minTime && c.ivFailed+iv > next {
			next = c.ivFailed + iv
		}
		d = min(d, next)
	}
	if n := c.newest.Load(); c.revise.Load() && n != nil && !n.complete {
		d = min(d, n.t)
	}
	c.due.Store(d)
}

// relieve takes a cut to fold a source whose pending updates exceed
// MaxPending: at the frontier if that is complete and far enough, otherwise
// at a time that folds half of them.
func (c *Collector[K, V]) relieve(s *source[K, V]) {
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	s.mu.Lock()
	n := s.pending()
	var t int64 = minTime
	for i := s.head; i < s.head+n/2 && i < s.ready; i++ {
		t = max(t, s.log[i].t)
	}
	s.mu.Unlock()
	if n <= c.cfg.MaxPending || t == minTime {
		return
	}
	if g := c.frontier(); g >= t && c.completeAt(g) {
		t = g
	}
	if t > c.clock {
		c.cutThrough(t)
	}
	c.recomputeDue()
}

func alignDown(t, iv int64) int64 {
	r := t % iv
	if r < 0 {
		r += iv
	}
	return t - r
}

func alignUp(t, iv int64) int64 {
	d := alignDown(t, iv)
	if d == t {
		return t
	}
	return d + iv
}

// Stats are running totals of a Collector, summed over its sources.
type Stats struct {
	Applied    uint64 // updates, messages and images sequenced
	Duplicates uint64 // duplicates ignored
	Late       uint64 // late updates (revised, dropped or refused per the policy)
	Buffered   int    // updates and messages waiting behind gaps or for a first image now
	Pending    int    // updates sequenced but not yet in a cut now
	Cuts       uint64 // cuts taken, revisions included
	Revisions  uint64 // cuts reissued with late updates
}

// Stats returns running totals. It takes each source's lock briefly.
func (c *Collector[K, V]) Stats() Stats {
	var st Stats
	for _, s := range c.reg.Load().list {
		s.mu.Lock()
		st.Applied += s.applied
		st.Duplicates += s.dups
		st.Late += s.late
		st.Buffered += s.bufN
		st.Pending += s.pending()
		s.mu.Unlock()
	}
	c.cutMu.Lock()
	st.Cuts, st.Revisions = c.cutSeq, c.revs
	c.cutMu.Unlock()
	return st
}

// describe returns a short reason per required source not passed at t.
func (c *Collector[K, V]) describe(t int64) string {
	now := c.now().UnixNano()
	var parts []string
	for _, s := range c.reg.Load().list {
		if !s.required {
			continue
		}
		s.mu.Lock()
		st := s.status(t, now, c.cfg.SilentAfter)
		s.mu.Unlock()
		if st.State != Current {
			parts = append(parts, st.String())
		}
	}
	return strings.Join(parts, "; ")
}

func (e *InputError) suffix() string {
	if e.batch > 1 {
		return fmt.Sprintf(" (update %d of %d)", e.Index, e.batch)
	}
	return ""
}
