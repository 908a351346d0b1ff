package snapshot

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"
	"time"
)

// At returns the cut at t, waiting until it is complete or ctx ends.
//
// If t is later than the newest cut, At waits; the cut is taken the moment
// the last required source passes t (by the goroutine applying that message),
// or when ctx ends, incomplete. A cut at a later time taken meanwhile (by
// [Collector.Cut], a deadline, or another reader) settles the wait first,
// with the cut at t as it then stood. If t is not later than the newest cut,
// At returns the kept cut at exactly t (see [Config.Horizon]) or an error
// wrapping [ErrTooOld].
//
// The returned cut is never nil unless the error wraps ErrTooOld. If it is
// incomplete, the error wraps [ErrIncomplete] naming what held it back (and
// ctx's error if ctx ended), so `cut, err := c.At(ctx, t)` reads naturally;
// the cut is usable either way.
func (c *Collector[K, V]) At(ctx context.Context, t time.Time) (*Cut[K, V], error) {
	tt, err := requestTime(t)
	if err != nil {
		return nil, err
	}
	cut, err := c.await(ctx, tt, 0, false, true, nil)
	if err != nil || cut.complete {
		return cut, err
	}
	if ctx.Err() != nil {
		return cut, fmt.Errorf("%w (%w)", cut.Err(), ctx.Err())
	}
	return cut, cut.Err()
}

// await returns the cut at t: a kept one if t is not later than the newest
// cut, else the one taken when it completes, when the wall clock reaches
// deadline (if hasDeadline), or when ctx ends (taken incomplete if
// cutOnCancel, else nil and ctx's error).
func (c *Collector[K, V]) await(ctx context.Context, t, deadline int64, hasDeadline, cutOnCancel bool, only []*source[K, V]) (*Cut[K, V], error) {
	c.reviseIfPending()
	c.cutMu.Lock()
	if c.newest.Load() != nil && t <= c.clock {
		defer c.cutMu.Unlock()
		return c.pastLocked(t)
	}
	if (only == nil && c.completeAt(t)) || (only != nil && passedBy(t, only)) {
		defer c.cutMu.Unlock()
		cut := c.cutThrough(t)
		c.recomputeDue()
		return cut, nil
	}
	w := &waiter[K, V]{t: t, done: make(chan struct{}), only: only}
	if only != nil {
		c.subsets.Add(1)
		defer c.subsets.Add(-1)
	}
	c.waiters = append(c.waiters, w)
	c.recomputeDue()
	c.cutMu.Unlock()
	// A source may have passed t between the check and the registration.
	c.advance()

	var timer <-chan time.Time
	if hasDeadline {
		tm := time.NewTimer(time.Duration(deadline - c.now().UnixNano()))
		defer tm.Stop()
		timer = tm.C
	}
	canceled := false
	select {
	case <-w.done:
		return w.cut, nil
	case <-ctx.Done():
		canceled = true
	case <-timer:
	}
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	if w.cut == nil {
		if canceled && !cutOnCancel {
			c.waiters = slices.DeleteFunc(c.waiters, func(x *waiter[K, V]) bool { return x == w })
			c.recomputeDue()
			return nil, ctx.Err()
		}
		c.cutThrough(t) // settles w
		c.recomputeDue()
	}
	return w.cut, nil
}

// pastLocked returns the kept cut at exactly t ≤ c.clock; cutMu is held.
func (c *Collector[K, V]) pastLocked(t int64) (*Cut[K, V], error) {
	if t == c.clock {
		if c.revise.Load() {
			c.take(t)
			c.recomputeDue()
		}
		return c.newest.Load(), nil
	}
	i := sort.Search(len(c.hist), func(i int) bool { return c.hist[i].t >= t })
	if i < len(c.hist) && c.hist[i].t == t {
		return c.hist[i], nil
	}
	return nil, fmt.Errorf("%w: no cut at %s: cuts are taken in time order, the newest is at %s, and the kept ones (from %s) do not include that time; AsOf gives the newest cut before it",
		ErrTooOld, fmtTime(t), fmtTime(c.clock), fmtTime(c.hist[0].t))
}

// Cut takes the cut at t now, complete or not, without waiting. It settles
// waiting At calls for earlier times first. If t is not later than the newest
// cut, it returns the kept cut at exactly t, or an error wrapping [ErrTooOld].
// Taking a cut costs O(keys changed since the previous cut) and holds each
// source's lock only while its new updates are folded in.
func (c *Collector[K, V]) Cut(t time.Time) (*Cut[K, V], error) {
	tt, err := requestTime(t)
	if err != nil {
		return nil, err
	}
	c.reviseIfPending()
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	if c.newest.Load() != nil && tt <= c.clock {
		return c.pastLocked(tt)
	}
	cut := c.cutThrough(tt)
	c.recomputeDue()
	return cut, nil
}

// Latest returns the newest complete cut, or nil if there is none yet. It
// does not block (it reissues the newest cut first if late updates wait for
// it, see [LateRevise]). Successive calls never go backwards in time.
func (c *Collector[K, V]) Latest() *Cut[K, V] {
	c.reviseIfPending()
	return c.latest.Load()
}

// Fresh returns the newest complete cut whose time is no more than maxAge
// before the wall clock now, taking one at the sources' common progress if
// that is fresh enough and newer than the last. Otherwise it returns at once
// an error wrapping [ErrStale] that names the sources behind.
func (c *Collector[K, V]) Fresh(maxAge time.Duration) (*Cut[K, V], error) {
	c.reviseIfPending()
	oldest := c.now().Add(-maxAge).UnixNano()
	if l := c.latest.Load(); l != nil && l.t >= oldest {
		return l, nil
	}
	if g := c.frontier(); g >= oldest {
		c.cutMu.Lock()
		if g > c.clock && c.completeAt(g) {
			cut := c.cutThrough(g)
			c.recomputeDue()
			c.cutMu.Unlock()
			return cut, nil
		}
		c.cutMu.Unlock()
		if l := c.latest.Load(); l != nil && l.t >= oldest {
			return l, nil
		}
	}
	newest := "there is none"
	if l := c.latest.Load(); l != nil {
		newest = "the newest is at " + fmtTime(l.t)
	}
	return nil, fmt.Errorf("%w: none within %v (%s): %s", ErrStale, maxAge, newest, c.describe(oldest))
}

// AsOf returns the newest kept cut at or before t (its Time says when), or an
// error wrapping [ErrTooOld] if t is before every kept cut. It does not block.
func (c *Collector[K, V]) AsOf(t time.Time) (*Cut[K, V], error) {
	c.reviseIfPending()
	tt := clampTime(t)
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	i := sort.Search(len(c.hist), func(i int) bool { return c.hist[i].t > tt })
	if i == 0 {
		if len(c.hist) == 0 {
			return nil, fmt.Errorf("%w: no cut has been taken", ErrTooOld)
		}
		return nil, fmt.Errorf("%w: %s is before the oldest kept cut at %s (horizon %v)", ErrTooOld, fmtTime(tt), fmtTime(c.hist[0].t), c.cfg.Horizon)
	}
	return c.hist[i-1], nil
}

// Every returns an iterator over cuts at the multiples of interval (since the
// Unix epoch) from now on. Each cut is yielded as soon as it is complete, or
// incomplete once the wall clock is grace past its time. The second value
// counts the aligned times skipped since the previous cut: a reader slower
// than interval gets the newest due cut (complete, or past its grace; never
// one ahead of the wall clock), never a backlog.
//
// The iterator is single-use and runs in the caller's goroutine; it ends when
// ctx ends or the loop breaks, and leaves nothing running. It panics if
// interval is not positive or grace is negative.
func (c *Collector[K, V]) Every(ctx context.Context, interval, grace time.Duration) iter.Seq2[*Cut[K, V], int] {
	if interval <= 0 || grace < 0 {
		panic(fmt.Sprintf("snapshot: Every needs a positive interval and a grace ≥ 0, got %v and %v", interval, grace))
	}
	iv, gr := int64(interval), int64(grace)
	return func(yield func(*Cut[K, V], int) bool) {
		next := alignUp(c.now().UnixNano(), iv)
		skipped := 0
		for ctx.Err() == nil {
			cut, err := c.await(ctx, next, next+gr, true, false, nil)
			if ctx.Err() != nil {
				return
			}
			if err != nil { // passed by a later cut and not kept
				nb := alignDown(c.clockA.Load(), iv) + iv
				skipped += int((nb - next) / iv)
				next = nb
				continue
			}
			if !yield(cut, skipped) {
				return
			}
			next += iv
			skipped = 0
			// The newest due time: past its grace, or complete and not
			// ahead of the wall clock.
			now := c.now().UnixNano()
			due := alignDown(now-gr, iv)
			if g := c.frontier(); g != minTime {
				due = max(due, alignDown(min(g, now), iv))
			}
			if due > next {
				skipped = int((due - next) / iv)
				next = due
			}
		}
	}
}

// AtFor returns the cut at t once each of the named sources has passed t,
// or when ctx ends: [Collector.At] for a subset of the sources (one
// symbol's venues, say), where the other sources may lag. The cut is taken
// for every source then, like any other: its Complete and Err still refer to
// every required source, and taking it moves the collector's newest cut to t
// (a later At for an earlier time gets a kept cut or ErrTooOld).
//
// The error is nil when every named source is Current in the cut, and
// otherwise wraps [ErrIncomplete] naming those that are not (and ctx's error
// if ctx ended); the cut is usable either way. Naming no source, or one the
// collector does not know (AtFor never adds a source), is an error wrapping
// [ErrUnknownSource], with a nil cut.
func (c *Collector[K, V]) AtFor(ctx context.Context, t time.Time, sources ...string) (*Cut[K, V], error) {
	tt, err := requestTime(t)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("%w: AtFor needs at least one source name", ErrUnknownSource)
	}
	r := c.reg.Load()
	only := make([]*source[K, V], 0, len(sources))
	for _, name := range sources {
		s, ok := r.byName[name]
		if !ok {
			return nil, fmt.Errorf("%w: AtFor: no source %q (yet)", ErrUnknownSource, name)
		}
		only = append(only, s)
	}
	cut, err := c.await(ctx, tt, 0, false, true, only)
	if err != nil {
		return cut, err
	}
	var parts []string
	for _, name := range sources {
		if st, _ := cut.Status(name); st.State != Current {
			parts = append(parts, st.String())
		}
	}
	if len(parts) == 0 {
		return cut, nil
	}
	err = fmt.Errorf("%w at %s for the sources asked: %s", ErrIncomplete, fmtTime(tt), strings.Join(parts, "; "))
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return cut, err
}

// AtEpoch returns the cut that closes epoch (the cut at the time the
// sources' barrier heartbeats gave it), waiting until every required source
// has passed it or ctx ends; it waits first for a barrier of that epoch to
// arrive. Like [Collector.At], an incomplete cut comes with an error wrapping
// [ErrIncomplete]. Only the last 64 epochs are remembered.
func (c *Collector[K, V]) AtEpoch(ctx context.Context, epoch uint64) (*Cut[K, V], error) {
	var m *epochMark[K, V]
	for {
		c.emu.Lock()
		m = c.epochs[epoch]
		ch := c.epochCh
		c.emu.Unlock()
		if m != nil {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("snapshot: epoch %d: no barrier has closed it (%w)", epoch, ctx.Err())
		}
	}
	c.emu.Lock()
	cut := m.cut
	c.emu.Unlock()
	if cut != nil {
		return cut, cut.Err()
	}
	return c.At(ctx, time.Unix(0, m.t))
}
