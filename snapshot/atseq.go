package snapshot

import (
	"context"
	"fmt"
)

// AtSeq returns a cut of one source holding exactly its state right after
// its update or message seq: what an exchange's ticker or checksum for that
// update ID describes. It waits until seq has been applied in sequence
// order, or ctx ends (then it returns ctx's error, with the source's status).
//
// The cut holds only that source. Its Time is the event time of seq, its
// status is Current with Through = seq, it is complete, and it is not one of
// the collector's cuts (Seq is 0; Latest, AsOf and the history never return
// it). Ordered reads work on it as on any cut.
//
// seq must end an update or message of the source (for Source.Events, the
// last update of an event) that is not yet folded into the collector's
// newest cut, or is exactly where that cut holds the source (Through); for
// older sequence numbers AtSeq returns the kept cut whose Through is seq if
// there is one, and otherwise an error wrapping [ErrTooOld]. A source with
// Disorder gets an error wrapping [ErrSequence]: its cuts are not prefixes
// of its sequence. It costs O(updates sequenced since the newest cut), and
// holds the collector's cut lock and the source's lock meanwhile.
func (c *Collector[K, V]) AtSeq(ctx context.Context, source string, seq uint64) (*Cut[K, V], error) {
	s, ok := c.reg.Load().byName[source]
	if !ok {
		return nil, fmt.Errorf("%w: AtSeq: no source %q (yet)", ErrUnknownSource, source)
	}
	if s.disorder > 0 {
		return nil, inputErr("atseq", source, seq, ErrSequence, "the source has Disorder: a cut of it is not the state after one sequence number")
	}
	c.seqWaiting.Add(1)
	defer c.seqWaiting.Add(-1)
	for {
		c.emu.Lock()
		ch := c.seqCh
		c.emu.Unlock()
		s.mu.Lock()
		applied := s.next-1 >= seq && !s.awaiting
		s.mu.Unlock()
		if applied {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			st := s.status(undatedT-1, c.now().UnixNano(), c.cfg.SilentAfter)
			s.mu.Unlock()
			return nil, fmt.Errorf("snapshot: AtSeq %q seq %d: not applied yet (applied to %d, %s): %w", source, seq, st.Seq, st, ctx.Err())
		}
	}
	c.reviseIfPending()
	c.cutMu.Lock()
	defer c.cutMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	newest := c.newest.Load()
	i := s.idx
	var through uint64
	if newest != nil && i < len(newest.src) {
		through = newest.src[i].status.Through
	}
	if seq < through {
		for j := len(c.hist) - 1; j >= 0; j-- {
			if h := c.hist[j]; i < len(h.src) && h.src[i].status.Through == seq {
				return h, nil
			}
		}
		return nil, fmt.Errorf("%w: AtSeq %q seq %d: the newest cut already holds the source through %d, and no kept cut holds it through exactly %d",
			ErrTooOld, source, seq, through, seq)
	}
	// The log entries after the newest cut, up to seq.
	end := -1
	t := int64(minTime)
	if seq == through && newest != nil {
		t = newest.t
	}
	for j := s.head; j < s.ready; j++ {
		if s.log[j].seq > seq {
			break
		}
		end = j
	}
	if seq > through {
		if end < 0 || s.log[end].seq != seq || s.log[end].flags&opEnd == 0 {
			return nil, inputErr("atseq", source, seq, ErrSequence,
				"no update or message of the source ends at %d (it may lie inside a range, an event, or have been dropped late)", seq)
		}
		t = s.log[end].t
		if t == undatedT {
			return nil, inputErr("atseq", source, seq, ErrTime, "seq %d is an image without an event time, not yet dated", seq)
		}
	}
	over := map[int32]*V{}
	for j := s.head; j <= end; j++ {
		o := &s.log[j]
		switch {
		case o.flags&opImage != 0:
			clear(over)
			for id := range s.st.n {
				over[int32(id)] = nil
			}
			for _, e := range *o.img {
				v := e.Value
				over[s.st.id(e.Key)] = &v
			}
		case o.flags&opNone != 0:
		case o.flags&opDelete != 0:
			over[o.id] = nil
		default:
			v := o.val
			over[o.id] = &v
		}
	}
	now := c.now()
	st := s.status(t, now.UnixNano(), c.cfg.SilentAfter)
	st.State, st.Through, st.Lag, st.Missing, st.MissingCount, st.Suspect, st.Err = Current, seq, 0, nil, 0, nil, nil
	cut := &Cut[K, V]{t: t, taken: now, complete: true, base: newest, shift: i,
		src: []cutSource[K, V]{{status: st, kt: s.st.publishKeys(), kdir: s.st.kdir, sdir: s.st.sdir, n: s.st.n}}}
	if newest == nil {
		cut.base = &Cut[K, V]{t: minTime}
		cut.shift = 0
	}
	cut.over = []map[int32]*V{over}
	cs := &cut.src[0]
	var base *cutSource[K, V]
	if newest != nil && i < len(newest.src) {
		base = &newest.src[i]
		cs.nlive = base.nlive
	}
	var ro *reorder[K]
	if o := c.cfg.Order; o != nil {
		var from []ordSide[K]
		if base != nil {
			from = base.ord
		}
		ro = newReorder(o, from, s.st.key)
	}
	for id, p := range over {
		was := base != nil && int(id) < base.n && newest.load(i, id) != nil
		switch {
		case was && p == nil:
			cs.nlive--
			if ro != nil {
				ro.del(s.st.key(id))
			}
		case !was && p != nil:
			cs.nlive++
			if ro != nil {
				ro.add(s.st.key(id), id)
			}
		}
	}
	if ro != nil {
		cs.ord = ro.share()
	}
	return cut, nil
}

// seqProgress wakes AtSeq calls waiting for a source to apply a sequence
// number; it is called after a call that changed a source, when any wait.
func (c *Collector[K, V]) seqProgress() {
	c.emu.Lock()
	close(c.seqCh)
	c.seqCh = make(chan struct{})
	c.emu.Unlock()
}
