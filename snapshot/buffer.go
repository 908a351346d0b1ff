package snapshot

import (
	"time"
)

// checkBuffered checks an out-of-order update against the buffered and
// pending messages around it, so that the sequence, once gap-free, is valid.
func (s *source[K, V]) checkBuffered(seq uint64, t int64, end bool, fail func(error, string, ...any) error) error {
	mask := uint64(len(s.buf) - 1)
	// Every earlier update: t ≥ its time − disorder.
	predMax, predSeq := s.maxT, s.next-1
	if s.bufN > 0 {
		if seq > s.bufMax {
			if s.bufMaxT > predMax {
				predMax, predSeq = s.bufMaxT, s.bufMax
			}
		} else {
			for q := s.next; q < seq; q++ {
				if s.bufOK[q&mask] && s.buf[q&mask].t > predMax {
					predMax, predSeq = s.buf[q&mask].t, q
				}
			}
		}
	}
	if predMax != minTime && t < predMax-s.disorder {
		return fail(ErrTime, "event time %s is before %s of seq %d beyond the declared Disorder %v",
			fmtTime(t), fmtTime(predMax), predSeq, time.Duration(s.disorder))
	}
	// Every later buffered update: its time ≥ t − disorder.
	if s.bufN > 0 && seq < s.bufMax {
		for q := seq + 1; q <= s.bufMax; q++ {
			if s.bufOK[q&mask] && s.buf[q&mask].t < t-s.disorder {
				return fail(ErrTime, "event time %s is after %s of the later seq %d beyond the declared Disorder %v",
					fmtTime(t), fmtTime(s.buf[q&mask].t), q, time.Duration(s.disorder))
			}
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
	} else if p := &s.buf[prev&mask]; s.bufOK[prev&mask] && p.flags&opEnd == 0 && p.t != t {
		return fail(ErrTime, "event time %s differs from %s of seq %d in the same event", fmtTime(t), fmtTime(p.t), prev)
	}
	if nx := &s.buf[(seq+1)&mask]; !end && s.bufOK[(seq+1)&mask] && nx.seq == seq+1 && nx.t != t {
		return fail(ErrTime, "event time %s differs from %s of seq %d in the same event", fmtTime(t), fmtTime(nx.t), seq+1)
	}
	return nil
}

// drain sequences buffered updates that have become contiguous.
func (s *source[K, V]) drain() {
	mask := uint64(len(s.buf) - 1)
	for s.bufN > 0 {
		i := s.next & mask
		if !s.bufOK[i] || s.buf[i].seq != s.next {
			return
		}
		o := s.buf[i]
		s.buf[i] = op[K, V]{}
		s.bufOK[i] = false
		s.bufN--
		if o.t <= s.folded && s.c.cfg.Late == LateReject {
			s.late++
			s.invalid = inputErr("apply", s.name, o.seq, ErrLate,
				"buffered update became late (event time %s, cut taken at %s) and was refused; the source is invalid until a reset",
				fmtTime(o.t), fmtTime(s.folded))
			return
		}
		s.sequence(&o)
	}
}

// dropBuffered removes buffered updates at or below seq.
func (s *source[K, V]) dropBuffered(seq uint64) {
	if s.bufN == 0 {
		return
	}
	s.bufMaxT = minTime
	for i := range s.buf {
		if !s.bufOK[i] {
			continue
		}
		if s.buf[i].seq <= seq {
			s.buf[i] = op[K, V]{}
			s.bufOK[i] = false
			s.bufN--
		} else if s.buf[i].t > s.bufMaxT {
			s.bufMaxT = s.buf[i].t
		}
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

func (s *source[K, V]) isBuffered(q uint64) bool {
	if s.bufN == 0 {
		return false
	}
	i := q & uint64(len(s.buf)-1)
	return s.bufOK[i] && s.buf[i].seq == q
}

// missing lists the missing sequence numbers, at most max ranges, and counts them.
func (s *source[K, V]) missing(max int) ([]SeqRange, uint64) {
	top := s.topSeq()
	var out []SeqRange
	var count uint64
	for q := s.next; q <= top; q++ {
		if s.isBuffered(q) {
			continue
		}
		first := q
		for q < top && !s.isBuffered(q+1) {
			q++
		}
		count += q - first + 1
		if len(out) < max {
			out = append(out, SeqRange{First: first, Last: q})
		}
	}
	return out, count
}

// gapSpan returns the missing sequence numbers not yet reported to GapFill.
func (s *source[K, V]) gapSpan() (first, last uint64, ok bool) {
	top := s.topSeq()
	for top >= s.next && s.isBuffered(top) {
		top--
	}
	first = max(s.next, s.gapTold+1)
	if top < first {
		return 0, 0, false
	}
	return first, top, true
}

// suspects lists keys that the buffered updates show, by their per-key
// sequence numbers, to have missed an update in the gap.
func (s *source[K, V]) suspects() []K {
	if s.bufN == 0 {
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
		} else if o.kseq != 0 {
			last[s.st.key(o.id)] = o.kseq
		}
	}
	var out []K
	seen := make(map[K]bool)
	mask := uint64(len(s.buf) - 1)
	for q := s.next; q <= s.bufMax; q++ {
		if !s.bufOK[q&mask] || s.buf[q&mask].seq != q {
			continue
		}
		o := &s.buf[q&mask]
		if o.kseq == 0 {
			continue
		}
		if o.kseq > known(o.key)+1 && !seen[o.key] {
			seen[o.key] = true
			out = append(out, o.key)
		}
		last[o.key] = o.kseq
	}
	return out
}
