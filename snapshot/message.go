package snapshot

import (
	"math"
	"slices"
	"time"
)

// Change is one key's change in a [Message]: the key set to a value, or
// deleted. The zero value sets the zero key to the zero value.
type Change[K comparable, V any] struct {
	Key    K
	Value  V
	Delete bool // removes Key; Value is ignored
	// KeySeq, if not zero, is the key's own sequence number, as in
	// [Update.KeySeq].
	KeySeq uint64
}

// Message is one message of a source that numbers messages rather than
// updates ([Source.Messages]): one exchange event that changes any number of
// keys at once, covering the sequence numbers (the exchange's update IDs)
// First to Seq.
//
// A source expects next the message whose First is the previous message's
// Seq + 1. Three numbering schemes map onto that:
//
//   - one number per message (OKX seqId, a counter): set Seq, leave First
//     and Prev zero (First is then Seq);
//   - a range of IDs per message, continuing from the previous message's
//     last (Binance spot's U and u): First = U, Seq = u;
//   - a chain naming the previous message's ID, with IDs that need not be
//     dense (Binance futures' pu, Deribit's prev_change_id): Seq = u,
//     Prev = pu; the message is taken as covering Prev+1 to Seq.
//
// The zero value is not valid: Source, Seq (≥ 1) and Time are required.
type Message[K comparable, V any] struct {
	Source string
	// Seq is the message's ID, or the last ID of the range it covers.
	Seq uint64
	// First is the first ID the message covers; zero means Seq.
	First uint64
	// Prev is the previous message's Seq, for chained numbering; zero
	// means the message is not chained. With Prev set, First must be zero
	// or Prev+1.
	Prev uint64
	// Time is the event time; every change of the message has it.
	Time time.Time
	// Changes may be empty: the message still advances the sequence.
	Changes []Change[K, V]
}

// first returns the first ID the message covers, or a reason it is not valid.
func (m *Message[K, V]) first() (uint64, string) {
	first := m.First
	if m.Prev != 0 {
		if m.Prev >= m.Seq {
			return 0, "Prev must be below Seq (a chain's IDs increase)"
		}
		if first != 0 && first != m.Prev+1 {
			return 0, "First and Prev disagree: a chained message covers Prev+1 to Seq"
		}
		first = m.Prev + 1
	}
	switch {
	case m.Seq == 0:
		return 0, "sequence numbers start at 1"
	case m.Seq == math.MaxUint64:
		return 0, "sequence numbers must be below 2^64-1"
	case first == 0:
		first = m.Seq
	case first > m.Seq:
		return 0, "First is after Seq: a message covers First to Seq"
	}
	return first, ""
}

// ApplyMessage applies messages of sources with [Source.Messages], in order.
// Each message is one event: a cut holds all of its changes or none.
//
// Per source, a message whose Seq is below the next expected ID is a
// duplicate, ignored and counted (within [Config.DupWindow] IDs; further back
// it is an error wrapping [ErrSequence]). One whose First is the next
// expected ID is applied. One whose First is beyond it waits in the gap
// buffer (at most [Config.MaxBuffered] messages; one more overflows the
// source until a reset) and the IDs in between are reported missing. One
// that straddles the next expected ID (First below it, Seq at or above it)
// is applied only right after an image (the rule for the first update after
// an exchange's REST snapshot); otherwise it overlaps what was applied and
// is refused with ErrSequence.
//
// Like [Collector.Apply], ApplyMessage stops at the first message it refuses
// and returns an [*InputError] saying which (its Index) and why, and takes the
// cuts the messages complete before it returns. Changes are copied only when
// a message has to wait in the gap buffer: the caller may reuse them once
// ApplyMessage returns. A message in sequence costs one key lookup and one
// append per change.
func (c *Collector[K, V]) ApplyMessage(ms ...Message[K, V]) error {
	for i := range ms {
		m := &ms[i]
		s, err := c.source(m.Source, "apply", m.Seq)
		if err != nil {
			return indexed(err, i, len(ms))
		}
		if err := c.applyMessage(s, m); err != nil {
			return indexed(err, i, len(ms))
		}
	}
	return nil
}

func (c *Collector[K, V]) applyMessage(s *source[K, V], m *Message[K, V]) error {
	t, ok := nanos(m.Time)
	if !ok {
		return inputErr("apply", s.name, m.Seq, ErrTime, "%s", badTime("a message", m.Time))
	}
	if err := c.checkSides(s, "apply", m.Seq, m.Changes); err != nil {
		return err
	}
	s.mu.Lock()
	old := s.passed
	err := s.message(m, t)
	c.unlock(s, old, false)
	return err
}

// message handles one message; mu is held.
func (s *source[K, V]) message(m *Message[K, V], t int64) error {
	first, bad := m.first()
	fail := func(sentinel error, format string, args ...any) error {
		return inputErr("apply", s.name, m.Seq, sentinel, format, args...)
	}
	switch {
	case bad != "":
		return fail(ErrSequence, "%s", bad)
	case !s.messages:
		return fail(ErrSequence, "source %q numbers updates: send it Updates with Apply, or set Source.Messages", s.name)
	case s.overflow != nil:
		return fail(ErrOverflow, "the source is gapped until a reset: %s", s.overflow.Reason)
	}
	held := s.awaiting || s.invalid != nil
	if !s.awaiting && m.Seq < s.next {
		return s.duplicate(m.Seq, fail)
	}
	if err := s.checkTime(first, t, fail); err != nil {
		return err
	}
	if !held && first <= s.next {
		if first < s.next && !s.afterImage {
			return fail(ErrSequence, "covers %d to %d, overlapping what was applied (up to %d); only the first message after an image may straddle it",
				first, m.Seq, s.next-1)
		}
		if o := s.bufOverlap(first, m.Seq); o != nil {
			return fail(ErrSequence, "covers %d to %d, overlapping the buffered message %d to %d", first, m.Seq, o.seq, o.last)
		}
		if t <= s.folded && s.c.cfg.Late == LateReject {
			return fail(ErrLate, "event time %s is at or before the cut already taken at %s", fmtTime(t), fmtTime(s.folded))
		}
		s.heard = true
		s.msgs++
		if !s.sequenceMsg(&op[K, V]{seq: first, last: m.Seq, t: t, flags: opMsg, chg: m.Changes}) {
			return s.invalid
		}
		if s.bufN > 0 {
			s.drain()
		}
		return nil
	}
	// Ahead of a gap, or before the first image: buffer it.
	if o := s.bufOverlap(first, m.Seq); o != nil {
		if o.seq == first && o.last == m.Seq {
			s.dups++
			s.heard = true
			s.msgs++
			return nil
		}
		return fail(ErrSequence, "covers %d to %d, overlapping the buffered message %d to %d", first, m.Seq, o.seq, o.last)
	}
	if err := s.bufRoom(first, fail); err != nil {
		return err
	}
	if err := s.checkBuffered(first, m.Seq, t, true, fail); err != nil {
		return err
	}
	if t <= s.folded && s.c.cfg.Late == LateReject {
		return fail(ErrLate, "event time %s is at or before the cut already taken at %s", fmtTime(t), fmtTime(s.folded))
	}
	s.bufInsert(op[K, V]{seq: first, last: m.Seq, t: t, flags: opMsg, chg: slices.Clone(m.Changes)})
	s.heard = true
	s.msgs++
	return nil
}
