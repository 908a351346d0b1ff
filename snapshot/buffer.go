package snapshot

import (
	"sort"
	"time"
)

// The gap buffer holds the updates and messages that arrived ahead of the
// next expected sequence number, sorted by the first sequence number they
// cover; their ranges never overlap. It grows with what is buffered (never
// up front) and holds at most Config.MaxBuffered ops. Everything here runs
// with the source's lock held.

// buffered returns the buffered ops, in sequence order.
func (s *source[K, V]) buffered() []op[K, V] { return s.buf[s.bufHead:] }

// bufSearch returns the index in buffered() of the first op whose range ends
// at or after q.
func (s *source[K, V]) bufSearch(q uint64) int {
	b := s.buffered()
	return sort.Search(len(b), func(i int) bool { return b[i].last >= q })
}

// bufAt returns the buffered op covering q, if any.
func (s *source[K, V]) bufAt(q uint64) *op[K, V] {
	if s.bufN == 0 {
		return nil
	}
	b := s.buffered()
	if i := s.bufSearch(q); i < len(b) && b[i].seq <= q {
		return &b[i]
	}
	return nil
}

func (s *source[K, V]) isBuffered(q uint64) bool { return s.bufAt(q) != nil }

// bufInsert adds o, whose range the caller has checked to overlap no
// buffered op.
func (s *source[K, V]) bufInsert(o op[K, V]) {
	i := s.bufHead + s.bufSearch(o.seq)
	s.buf = append(s.buf, op[K, V]{})
	copy(s.buf[i+1:], s.buf[i:])
	s.buf[i] = o
	if s.bufN == 0 || o.last > s.bufMax {
		s.bufMax = o.last
	}
	if s.bufN == 0 || o.t > s.bufMaxT {
		s.bufMaxT = o.t
	}
	s.bufN++
	s.gapDue = true
}

// bufPop removes and returns the first buffered op.
func (s *source[K, V]) bufPop() op[K, V] {
	o := s.buf[s.bufHead]
	s.buf[s.bufHead] = op[K, V]{}
	s.bufHead++
	s.bufN--
	switch {
	case s.bufN == 0:
		s.buf, s.bufHead = s.buf[:0], 0
	case s.bufHead >= 64 && s.bufHead > s.bufN:
		n := copy(s.buf, s.buf[s.bufHead:])
		clear(s.buf[n:])
		s.buf, s.bufHead = s.buf[:n], 0
	}
	return o
}

// bufOverlap returns a buffered op whose range overlaps first..last.
func (s *source[K, V]) bufOverlap(first, last uint64) *op[K, V] {
	if s.bufN == 0 {
		return nil
	}
	b := s.buffered()
	if i := s.bufSearch(first); i < len(b) && b[i].seq <= last {
		return &b[i]
	}
	return nil
}

// checkBuffered checks an out-of-order update or message against the
// buffered and pending messages around it, so that the sequence, once
// gap-free, is valid.
func (s *source[K, V]) checkBuffered(seq, last uint64, t int64, end bool, fail func(error, string, ...any) error) error {
	b := s.buffered()
	at := s.bufSearch(seq) // the buffered ops before at come earlier in sequence
	// Every earlier update: t ≥ its time − disorder.
	predMax, predSeq := s.maxT, s.next-1
	if at == len(b) && s.bufN > 0 {
		if s.bufMaxT > predMax {
			predMax, predSeq = s.bufMaxT, s.bufMax
		}
	} else {
		for i := range b[:at] {
			if b[i].t > predMax {
				predMax, predSeq = b[i].t, b[i].last
			}
		}
	}
	if predMax != minTime && t < predMax-s.disorder {
		return fail(ErrTime, "event time %s is before %s of seq %d beyond the declared Disorder %v",
			fmtTime(t), fmtTime(predMax), predSeq, time.Duration(s.disorder))
	}
	// Every later buffered update: its time ≥ t − disorder.
	for i := at; i < len(b); i++ {
		if b[i].t < t-s.disorder {
			return fail(ErrTime, "event time %s is after %s of the later seq %d beyond the declared Disorder %v",
				fmtTime(t), fmtTime(b[i].t), b[i].seq, time.Duration(s.disorder))
		}
	}
	// Heartbeats announced for earlier sequence numbers.
	for _, h := range s.hbs {
		if h.seq < seq && t <= h.t {
			return fail(ErrTime, "event time %s is at or before %s, which the heartbeat at seq %d announced as complete",
				fmtTime(t), fmtTime(h.t), h.seq)
		}
	}
	if !s.events {
		return nil
	}
	// Events share one event time with their neighbours inside the event.
	if prev := seq - 1; prev == s.next-1 {
		if s.evOpen && t != s.evT {
			return fail(ErrTime, "event time %s differs from %s of the event it continues (begun at seq %d)", fmtTime(t), fmtTime(s.evT), s.evSeq)
		}
	} else if p := s.bufAt(prev); p != nil && p.flags&opEnd == 0 && p.t != t {
		return fail(ErrTime, "event time %s differs from %s of seq %d in the same event", fmtTime(t), fmtTime(p.t), prev)
	}
	if nx := s.bufAt(last + 1); !end && nx != nil && nx.t != t {
		return fail(ErrTime, "event time %s differs from %s of seq %d in the same event", fmtTime(t), fmtTime(nx.t), last+1)
	}
	return nil
}

// drain sequences buffered updates and messages that have become contiguous.
func (s *source[K, V]) drain() {
	for s.bufN > 0 && s.invalid == nil {
		o := &s.buf[s.bufHead]
		if o.seq > s.next {
			return
		}
		if o.last < s.next || (o.seq < s.next && !s.afterImage) {
			// Covered by what was applied: only an image can do that,
			// and reset drops those; kept for safety.
			s.bufPop()
			s.dups++
			continue
		}
		op := s.bufPop()
		if op.t <= s.folded && s.c.cfg.Late == LateReject {
			s.late++
			s.invalid = inputErr("apply", s.name, op.last, ErrLate,
				"buffered update became late (event time %s, cut taken at %s) and was refused; the source is invalid until a reset",
				fmtTime(op.t), fmtTime(s.folded))
			s.resyncDue = true
			return
		}
		if op.flags&opMsg != 0 {
			s.sequenceMsg(&op)
		} else {
			s.sequence(&op)
		}
	}
}

// dropBuffered removes buffered ops that end at or below seq (those an image
// current to seq covers).
func (s *source[K, V]) dropBuffered(seq uint64) {
	for s.bufN > 0 && s.buf[s.bufHead].last <= seq {
		s.bufPop()
	}
	s.bufMaxT = minTime
	for _, o := range s.buffered() {
		s.bufMaxT = max(s.bufMaxT, o.t)
	}
}

// topSeq is the highest sequence number the source is known to have sent.
func (s *source[K, V]) topSeq() uint64 {
	top := s.next - 1
	if s.bufN > 0 && s.bufMax > top {
		top = s.bufMax
	}
	if n := len(s.hbs); n > 0 && s.hbs[n-1].seq > top {
		top = s.hbs[n-1].seq
	}
	return top
}

// gaps calls yield with each range of missing sequence numbers, lowest first,
// until it returns false. A source awaiting its first image has none.
func (s *source[K, V]) gaps(yield func(first, last uint64) bool) {
	if s.awaiting {
		return
	}
	top := s.topSeq()
	q := s.next
	for _, o := range s.buffered() {
		if o.seq > q && !yield(q, o.seq-1) {
			return
		}
		q = max(q, o.last+1)
	}
	if q <= top {
		yield(q, top)
	}
}

// missing lists the missing sequence numbers, at most max ranges, and counts them.
func (s *source[K, V]) missing(max int) ([]SeqRange, uint64) {
	var out []SeqRange
	var count uint64
	s.gaps(func(first, last uint64) bool {
		count += last - first + 1
		if len(out) < max {
			out = append(out, SeqRange{First: first, Last: last})
		}
		return true
	})
	return out, count
}

// gapSpan returns the missing sequence numbers not yet reported to GapFill.
func (s *source[K, V]) gapSpan() (first, last uint64, ok bool) {
	from := max(s.next, s.gapTold+1)
	s.gaps(func(f, l uint64) bool {
		if l >= from {
			if !ok {
				first, ok = max(f, from), true
			}
			last = l
		}
		return true
	})
	return first, last, ok
}

// suspects lists keys that the buffered updates show, by their per-key
// sequence numbers, to have missed an update in the gap.
func (s *source[K, V]) suspects() []K {
	if s.bufN == 0 || s.awaiting {
		return nil
	}
	last := make(map[K]uint64)
	known := func(k K) uint64 {
		if v, ok := last[k]; ok {
			return v
		}
		if id, ok := s.st.ids[k]; ok {
			return s.st.kseq[id]
		}
		return 0
	}
	for i := s.head; i < len(s.log); i++ {
		o := &s.log[i]
		if o.flags&opImage != 0 {
			for _, e := range *o.img {
				last[e.Key] = e.KeySeq
			}
		} else if o.kseq != 0 && o.flags&opNone == 0 {
			last[s.st.key(o.id)] = o.kseq
		}
	}
	var out []K
	seen := make(map[K]bool)
	check := func(key K, kseq uint64) {
		if kseq == 0 {
			return
		}
		if kseq > known(key)+1 && !seen[key] {
			seen[key] = true
			out = append(out, key)
		}
		last[key] = kseq
	}
	for _, o := range s.buffered() {
		if o.flags&opMsg != 0 {
			for i := range o.chg {
				check(o.chg[i].Key, o.chg[i].KeySeq)
			}
		} else {
			check(o.key, o.kseq)
		}
	}
	return out
}
