package snapshot

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// minTime stands for "before any event time".
const minTime = math.MinInt64

const (
	opDelete uint8 = 1 << iota
	opEnd          // the last update of its event
	opImage        // a reset image
	opMsg          // a message of many changes (op only)
	opNone         // a message with no change: it only marks its sequence (logged only)
)

// op is one update or image of a source, as received (buffered behind a gap
// or on its way to being sequenced).
type op[K comparable, V any] struct {
	key   K
	val   V
	seq   uint64 // the first sequence number it covers
	last  uint64 // the last (= seq but for a message covering a range)
	kseq  uint64
	t     int64
	flags uint8
	img   *[]Entry[K, V]
	chg   []Change[K, V] // a message's changes (opMsg)
}

// logged is a sequenced op waiting in the log: its key is resolved to the
// source's dense key id, so folding it into the store does no lookup.
type logged[K comparable, V any] struct {
	val   V
	seq   uint64
	kseq  uint64
	t     int64
	id    int32
	flags uint8
	img   *[]Entry[K, V]
}

type heartbeat struct {
	seq uint64
	t   int64
}

// maxPendingHeartbeats bounds the heartbeats kept while their sequence has not
// been applied yet. When full, the one furthest ahead is dropped: progress is
// then announced later than it could have been, never earlier.
const maxPendingHeartbeats = 64

// source sequences one source's messages and holds its state. Everything below
// mu is guarded by it.
type source[K comparable, V any] struct {
	c        *Collector[K, V]
	name     string
	idx      int
	required bool
	disorder int64
	events   bool

	passedA atomic.Int64 // mirror of passed, read without the lock

	mu    sync.Mutex
	heard bool
	msgs  uint64 // messages accepted
	// Silence detection without reading the clock per update: heardAt is
	// stamped (wall clock) by heartbeats and images, by the first update
	// after each cut and every 64 updates, so the last message came at or
	// after it. A cut that finds messages since the stamp notes its own time
	// in laterBy: the last message came at or before it.
	heardAt   int64
	stampMsgs uint64
	stampDue  bool
	laterBy   int64
	laterMsgs uint64
	next      uint64 // next sequence number expected
	maxT      int64  // latest event time sequenced
	wm        int64  // latest watermark whose sequence has been applied
	wmSeq     uint64
	passed    int64 // every update with event time ≤ passed has been sequenced
	// An image without an event time (Image.Untimed) is the last entry of
	// the log until the next update dates it; meanwhile the state after
	// undatedLo is unknown.
	undated   bool
	undatedLo int64
	lv        *live[K, V] // the state at the sequencing frontier, for Config.Check
	// holes are open intervals (lo, hi) in which an image replaced updates
	// that were never seen, so the source's state is unknown (resetting).
	// They are kept while a cut could still be taken or revised in them.
	holes  []hole
	folded int64       // every sequenced update with time ≤ folded is in the store (or was dropped late)
	hbs    []heartbeat // pending: seq ≥ next, ascending
	evOpen bool        // an event is partly sequenced
	evT    int64
	evSeq  uint64

	// Gap buffer (buffer.go): buf[bufHead:] sorted by sequence.
	buf     []op[K, V]
	bufHead int
	bufN    int
	bufMax  uint64 // highest buffered sequence (valid while bufN > 0)
	bufMaxT int64  // an upper bound of buffered event times, ≥ the true maximum

	messages   bool // sequenced per message (Source.Messages)
	awaiting   bool // StartWithImage: no image yet, everything is buffered
	afterImage bool // the last op sequenced was an image
	through    uint64

	overflow  *InputError
	invalid   error
	resyncDue bool   // the source became gapped for good or invalid: call Config.Resync
	gapTold   uint64 // missing sequences up to here were reported to GapFill
	gapNext   int64  // wall time before which GapFill is not called again
	gapDue    bool   // a gap may need reporting

	applied, dups, late uint64

	// log holds sequenced updates not yet folded into the store, in sequence
	// order; log[head:ready] are whole events, log[ready:] is the open event.
	log         []logged[K, V]
	head, ready int
	lateDue     bool // late updates wait in the log to be folded at once
	revised     bool // late updates were folded since the last cut
	// lates records the late updates folded since the kept cuts were last
	// revised (LateRevise with a Horizon), in sequence order; lost is set
	// when more came than maxLateKept.
	lates    []lateOp[K, V]
	lateLost bool

	st store[K, V]
}

func newSource[K comparable, V any](c *Collector[K, V], cfg Source, idx int, folded int64) *source[K, V] {
	s := &source[K, V]{
		c:        c,
		name:     cfg.Name,
		idx:      idx,
		required: !cfg.Optional,
		disorder: int64(cfg.Disorder),
		events:   cfg.Events && !cfg.Messages,
		messages: cfg.Messages,
		awaiting: cfg.StartWithImage,
		next:     1,
		maxT:     minTime,
		wm:       minTime,
		passed:   minTime,
		folded:   folded,
		heardAt:  c.now().UnixNano(),
		stampDue: true,
		st:       newStore[K, V](cfg.Disorder > 0),
	}
	s.st.ord = newOrdered(c.cfg.Order, s.st.key)
	if c.cfg.Check != nil {
		s.lv = newLive[K, V](c.cfg.Order, s.st.key)
	}
	s.passedA.Store(minTime)
	return s
}

// updatePassed recomputes the source's progress: the latest watermark whose
// sequence has been applied, or — from the data itself — just before the
// latest event time applied, less the declared disorder.
func (s *source[K, V]) updatePassed() {
	p := s.wm
	if s.maxT != minTime {
		if q := s.maxT - s.disorder - 1; q > p {
			p = q
		}
	}
	if p > s.passed {
		s.passed = p
		s.passedA.Store(p)
	}
}

// passedAt reports whether the source's contribution to a cut at T is final.
func (s *source[K, V]) passedAt(t int64) bool {
	return t <= s.passed && !s.inHole(t)
}

type hole struct{ lo, hi int64 }

func (s *source[K, V]) inHole(t int64) bool {
	if s.undated && t > s.undatedLo {
		return true
	}
	for _, h := range s.holes {
		if t > h.lo && t < h.hi {
			return true
		}
	}
	return false
}

// addHole records that the state in (lo, hi) is unknown, joining holes
// that overlap.
func (s *source[K, V]) addHole(lo, hi int64) {
	out := s.holes[:0]
	for _, h := range s.holes {
		if h.hi <= lo || h.lo >= hi {
			out = append(out, h)
			continue
		}
		lo, hi = min(lo, h.lo), max(hi, h.hi)
	}
	s.holes = append(out, hole{lo, hi})
}

// pruneHoles drops holes that end at or before from: no cut will be taken or
// revised there again.
func (s *source[K, V]) pruneHoles(from int64) {
	if len(s.holes) > 0 {
		s.holes = slices.DeleteFunc(s.holes, func(h hole) bool { return h.hi <= from })
	}
}

// update handles one update; mu is held.
func (s *source[K, V]) update(u *Update[K, V], t int64) error {
	if u.Seq == s.next && t > s.passed && s.overflow == nil && s.invalid == nil && !s.awaiting && !s.messages &&
		!(s.events && s.evOpen && t != s.evT) &&
		!(t <= s.folded && s.c.cfg.Late == LateReject) {
		s.heard = true
		s.msgs++
		var flags uint8
		if u.Delete {
			flags = opDelete
		}
		if u.EndOfEvent {
			flags |= opEnd
		}
		if !s.sequence(&op[K, V]{key: u.Key, val: u.Value, seq: u.Seq, last: u.Seq, kseq: u.KeySeq, t: t, flags: flags}) {
			return s.invalid
		}
		if s.bufN > 0 {
			s.drain()
		}
		return nil
	}
	return s.updateSlow(u, t)
}

func (s *source[K, V]) updateSlow(u *Update[K, V], t int64) error {
	seq := u.Seq
	fail := func(sentinel error, format string, args ...any) error {
		return inputErr("apply", s.name, seq, sentinel, format, args...)
	}
	switch {
	case s.messages:
		return fail(ErrSequence, "source %q numbers messages (Source.Messages): send it Messages with ApplyMessage", s.name)
	case seq == 0:
		return fail(ErrSequence, "sequence numbers start at 1")
	case seq == math.MaxUint64:
		return fail(ErrSequence, "sequence numbers must be below 2^64-1")
	case s.overflow != nil:
		return fail(ErrOverflow, "the source is gapped until a reset: %s", s.overflow.Reason)
	case seq < s.next:
		return s.duplicate(seq, fail)
	}
	if err := s.checkTime(seq, t, fail); err != nil {
		return err
	}
	if seq == s.next && !s.awaiting && s.invalid == nil {
		if s.events && s.evOpen && t != s.evT {
			return fail(ErrTime, "event time %s differs from %s of the event it continues (begun at seq %d)",
				fmtTime(t), fmtTime(s.evT), s.evSeq)
		}
		if t <= s.folded && s.c.cfg.Late == LateReject {
			return fail(ErrLate, "event time %s is at or before the cut already taken at %s", fmtTime(t), fmtTime(s.folded))
		}
		return s.update(u, t)
	}
	// Out of order, or before the first image: buffer it.
	if s.isBuffered(seq) {
		s.dups++
		s.heard = true
		s.msgs++
		return nil
	}
	if err := s.bufRoom(seq, fail); err != nil {
		return err
	}
	if err := s.checkBuffered(seq, seq, t, u.EndOfEvent, fail); err != nil {
		return err
	}
	if t <= s.folded && s.c.cfg.Late == LateReject {
		return fail(ErrLate, "event time %s is at or before the cut already taken at %s", fmtTime(t), fmtTime(s.folded))
	}
	var flags uint8
	if u.Delete {
		flags = opDelete
	}
	if u.EndOfEvent {
		flags |= opEnd
	}
	s.bufInsert(op[K, V]{key: u.Key, val: u.Value, seq: seq, last: seq, kseq: u.KeySeq, t: t, flags: flags})
	s.heard = true
	s.msgs++
	return nil
}

// duplicate handles an update or message wholly at or below the applied
// sequence: a duplicate within DupWindow, else an error.
func (s *source[K, V]) duplicate(seq uint64, fail func(error, string, ...any) error) error {
	if s.next-seq <= s.c.cfg.DupWindow {
		s.dups++
		s.heard = true
		s.msgs++
		return nil
	}
	return fail(ErrSequence, "sequence went backwards beyond the duplicate window: expected %d, or a duplicate no older than %d",
		s.next, s.next-s.c.cfg.DupWindow)
}

// bufRoom checks that one more op starting at seq fits in the gap buffer, and
// marks the source overflowed if not.
func (s *source[K, V]) bufRoom(seq uint64, fail func(error, string, ...any) error) error {
	max := s.c.cfg.MaxBuffered
	switch {
	case s.awaiting && s.bufN >= max:
		s.overflow = inputErr("apply", s.name, seq, ErrOverflow,
			"more than MaxBuffered (%d) updates or messages arrived before the first image; the source is gapped until a reset", max)
	case s.awaiting:
		return nil
	case !s.messages && seq-s.next >= uint64(max):
		s.overflow = inputErr("apply", s.name, seq, ErrOverflow,
			"%d is %d beyond the next expected %d, more than MaxBuffered (%d) can hold; the source is gapped until a reset",
			seq, seq-s.next, s.next, max)
	case s.messages && s.bufN >= max:
		s.overflow = inputErr("apply", s.name, seq, ErrOverflow,
			"%d messages already wait behind the gap at %d, as many as MaxBuffered (%d) holds; the source is gapped until a reset",
			s.bufN, s.next, max)
	default:
		return nil
	}
	s.resyncDue = s.invalid == nil // an invalid source has asked already
	return s.overflow
}

// checkTime checks an update's event time against what the source has
// already announced or sent in order.
func (s *source[K, V]) checkTime(seq uint64, t int64, fail func(error, string, ...any) error) error {
	if t > s.passed {
		return nil
	}
	if s.maxT != minTime && t < s.maxT-s.disorder {
		if s.disorder == 0 {
			return fail(ErrTime, "event time %s went backwards from %s (seq %d); the source declares no Disorder",
				fmtTime(t), fmtTime(s.maxT), s.next-1)
		}
		return fail(ErrTime, "event time %s is more than the declared Disorder %v behind %s",
			fmtTime(t), time.Duration(s.disorder), fmtTime(s.maxT))
	}
	return fail(ErrTime, "event time %s is at or before %s, which the heartbeat at seq %d announced as complete",
		fmtTime(t), fmtTime(s.wm), s.wmSeq)
}

// sequence takes the next update or image in sequence order. It reports
// false if the Check hook refused the event the update ends: then nothing of
// that event is sequenced and the source is invalid.
func (s *source[K, V]) sequence(o *op[K, V]) bool {
	var id int32
	if o.flags&opImage == 0 {
		id = s.st.id(o.key)
		if s.lv != nil && !s.checkUpdate(o, id) {
			return false
		}
	}
	if s.undated {
		s.date(o)
	}
	s.next = o.last + 1
	s.applied++
	s.afterImage = o.flags&opImage != 0
	if o.t > s.maxT && o.t != undatedT {
		s.maxT = o.t
	}
	if s.events && o.flags&opImage == 0 {
		if !s.evOpen {
			s.evOpen, s.evT, s.evSeq = true, o.t, o.seq
		}
		if o.flags&opEnd != 0 {
			s.evOpen = false
		}
	} else {
		o.flags |= opEnd
	}
	keep := true
	if o.t <= s.folded {
		s.late++
		if s.c.cfg.Late == LateDrop && o.flags&opImage == 0 {
			// The whole event is late (its updates share one event time):
			// its earlier updates, sequenced before the cut, go too.
			keep = false
			clear(s.log[s.ready:])
			s.log = s.log[:s.ready]
		} else {
			s.lateDue = true
		}
	}
	if keep {
		s.log = append(s.log, logged[K, V]{val: o.val, seq: o.last, kseq: o.kseq, t: o.t, id: id, flags: o.flags, img: o.img})
		if o.flags&opEnd != 0 {
			s.ready = len(s.log)
		}
	}
	if len(s.hbs) > 0 && s.hbs[0].seq < s.next {
		s.satisfy()
	}
	s.updatePassed()
	return true
}

// sequenceMsg takes the next message in sequence order; it reports false if
// the Check hook refused it (then it is not sequenced and the source is
// invalid).
func (s *source[K, V]) sequenceMsg(o *op[K, V]) bool {
	if s.lv != nil && !s.checkMsg(o) {
		return false
	}
	if s.undated {
		s.date(o)
	}
	s.next = o.last + 1
	s.applied++
	s.afterImage = false
	if o.t > s.maxT {
		s.maxT = o.t
	}
	keep := true
	if o.t <= s.folded {
		s.late++
		if s.c.cfg.Late == LateDrop {
			keep = false
		} else {
			s.lateDue = true
		}
	}
	if keep {
		if len(o.chg) == 0 {
			s.log = append(s.log, logged[K, V]{seq: o.last, t: o.t, flags: opNone | opEnd})
		}
		for i := range o.chg {
			ch := &o.chg[i]
			var flags uint8
			if ch.Delete {
				flags = opDelete
			}
			if i == len(o.chg)-1 {
				flags |= opEnd
			}
			var id int32
			if s.lv != nil {
				id = s.lv.ids[i]
			} else {
				id = s.st.id(ch.Key)
			}
			s.log = append(s.log, logged[K, V]{val: ch.Value, seq: o.last, kseq: ch.KeySeq, t: o.t, id: id, flags: flags})
		}
		s.ready = len(s.log)
	}
	if len(s.hbs) > 0 && s.hbs[0].seq < s.next {
		s.satisfy()
	}
	s.updatePassed()
	return true
}

// undatedT is the event time of an image without one until it is dated.
const undatedT = math.MaxInt64

// date gives the undated image (the last entry of the log) the event time
// of o, the first update or message sequenced after it; an image supersedes
// it instead. mu is held.
func (s *source[K, V]) date(o *op[K, V]) {
	s.undated = false
	last := len(s.log) - 1
	if o.flags&opImage != 0 {
		s.log = s.log[:last]
		s.ready = len(s.log)
		if o.t == undatedT {
			s.undated = true // o replaces it, and is undated in turn
		} else if o.t-1 > s.undatedLo {
			s.addHole(s.undatedLo, o.t)
		}
		return
	}
	s.log[last].t = o.t
	if o.t-1 > s.undatedLo {
		s.addHole(s.undatedLo, o.t)
	}
	if o.t > s.maxT {
		s.maxT = o.t
	}
	if o.t <= s.folded {
		s.late++
		s.lateDue = true
	}
}

// satisfy turns heartbeats whose sequence has been applied into the watermark.
func (s *source[K, V]) satisfy() {
	i := 0
	for ; i < len(s.hbs) && s.hbs[i].seq < s.next; i++ {
		if h := s.hbs[i]; h.t > s.wm {
			s.wm, s.wmSeq = h.t, h.seq
		}
	}
	s.hbs = append(s.hbs[:0], s.hbs[i:]...)
}

// foldTo moves the sequenced updates with event time ≤ t (whole events only)
// from the log into the store.
func (s *source[K, V]) foldTo(t int64) {
	if t > s.folded {
		s.folded = t
	}
	if s.disorder == 0 {
		i := s.head
		for ; i < s.ready && s.log[i].t <= t; i++ {
			s.st.apply(&s.log[i])
		}
		if i > s.head {
			s.through = s.log[i-1].seq
		}
		s.head = i
	} else {
		w := s.head
		for i := s.head; i < s.ready; i++ {
			if s.log[i].t <= t {
				s.st.apply(&s.log[i])
			} else {
				s.log[w] = s.log[i]
				w++
			}
		}
		n := copy(s.log[w:], s.log[s.ready:])
		clear(s.log[w+n:])
		s.log = s.log[:w+n]
		s.ready = w
	}
	switch {
	case s.head == len(s.log):
		s.log, s.head, s.ready = s.log[:0], 0, 0
	case s.head > 1024 && s.head > len(s.log)/2:
		n := copy(s.log, s.log[s.head:])
		clear(s.log[n:])
		s.log, s.ready, s.head = s.log[:n], s.ready-s.head, 0
	}
}

func (s *source[K, V]) pending() int { return len(s.log) - s.head }

// lastHeardBy returns a time at or after the source's last message; mu is held.
func (s *source[K, V]) lastHeardBy(now int64) int64 {
	switch s.msgs {
	case s.stampMsgs:
		return s.heardAt
	case s.laterMsgs:
		return s.laterBy
	}
	return now
}

// stamp records when the source was last heard from; mu is held. always is
// set for heartbeats and images, which idle sources send to stay alive.
func (s *source[K, V]) stamp(always bool) {
	if s.msgs != s.stampMsgs && (always || s.stampDue || s.msgs-s.stampMsgs >= 64) {
		s.heardAt, s.stampMsgs, s.stampDue = s.c.now().UnixNano(), s.msgs, false
	}
}

// heartbeat handles one heartbeat; mu is held. It validates fully before
// changing anything; register (may be nil) is called last, to record an epoch,
// and may refuse it.
func (s *source[K, V]) heartbeat(h *Heartbeat, t int64, register func() error) error {
	fail := func(sentinel error, format string, args ...any) error {
		return inputErr("heartbeat", s.name, h.Seq, sentinel, format, args...)
	}
	// Heartbeats may arrive in any order: each one's claim is checked on
	// its own against what has been received.
	// The claim: every update after h.Seq has an event time after t.
	useful := !s.undated
	applied := h.Seq < s.next && !s.awaiting
	if applied {
		// While an untimed image is the last thing applied, the times of
		// the updates it covers are unknown: the heartbeat cannot be
		// checked against them, and counts only as a sign of life.
		if t > s.passed && h.Seq < s.next-1 && !s.undated {
			if s.disorder == 0 {
				return fail(ErrTime, "announces %s complete at seq %d, but seq %d (already applied) has event time %s",
					fmtTime(t), h.Seq, s.next-1, fmtTime(s.maxT))
			}
			// Check what is still in the log; if part of (h.Seq, next) is
			// folded already it cannot be checked, and the heartbeat only
			// counts as a sign of life.
			seen := uint64(0)
			for i := s.head; i < len(s.log); i++ {
				if o := &s.log[i]; o.seq > h.Seq {
					seen++
					if o.t <= t {
						return fail(ErrTime, "announces %s complete at seq %d, but seq %d (already applied) has event time %s",
							fmtTime(t), h.Seq, o.seq, fmtTime(o.t))
					}
				}
			}
			// Messages cover ranges of IDs: whether all of them are still
			// in the log cannot be counted.
			useful = useful && !s.messages && seen == s.next-1-h.Seq
		}
		if s.events && s.evOpen && h.Seq >= s.evSeq && t >= s.evT {
			return fail(ErrTime, "announces %s complete inside the event begun at seq %d with event time %s",
				fmtTime(t), s.evSeq, fmtTime(s.evT))
		}
	}
	for _, o := range s.buffered() {
		if o.last > h.Seq && o.t <= t {
			return fail(ErrTime, "announces %s complete at seq %d, but buffered seq %d has event time %s",
				fmtTime(t), h.Seq, o.last, fmtTime(o.t))
		}
	}
	if register != nil {
		if err := register(); err != nil {
			return err
		}
	}
	s.heard = true
	s.msgs++
	if applied {
		if useful && t > s.wm {
			s.wm, s.wmSeq = t, h.Seq
		}
	} else {
		// Keep pending heartbeats sorted by sequence; when full, drop the
		// one furthest ahead (its progress is announced later, if ever).
		i, _ := slices.BinarySearchFunc(s.hbs, h.Seq, func(x heartbeat, seq uint64) int { return cmp.Compare(x.seq, seq) })
		if len(s.hbs) < maxPendingHeartbeats {
			s.hbs = slices.Insert(s.hbs, i, heartbeat{seq: h.Seq, t: t})
		} else if i < len(s.hbs) {
			copy(s.hbs[i+1:], s.hbs[i:len(s.hbs)-1])
			s.hbs[i] = heartbeat{seq: h.Seq, t: t}
		}
		s.gapDue = true
	}
	s.updatePassed()
	return nil
}

// reset installs an image; mu is held. t is undatedT for an image without
// an event time.
func (s *source[K, V]) reset(img *Image[K, V], t int64) error {
	n := img.Seq
	fail := func(sentinel error, format string, args ...any) error {
		return inputErr("reset", s.name, n, sentinel, format, args...)
	}
	if n == 0 {
		return fail(ErrSequence, "an image needs the sequence number it is current to (Seq ≥ 1)")
	}
	if n == math.MaxUint64 {
		return fail(ErrSequence, "sequence numbers must be below 2^64-1")
	}
	if applied := s.next - 1; n < applied && !s.awaiting {
		return fail(ErrSequence, "image at seq %d is behind the applied seq %d", n, applied)
	}
	skipped := s.awaiting || n > s.next-1
	if t == undatedT {
		if s.disorder > 0 {
			return fail(ErrTime, "an image without an event time needs a source without Disorder (its time cannot be inferred within the disorder)")
		}
		if !skipped && s.maxT != minTime && !s.undated {
			t = s.maxT // current to the last update applied, whose time is known
		}
	} else {
		if s.maxT != minTime && t < s.maxT-s.disorder {
			return fail(ErrTime, "image time %s is before %s of the applied seq %d", fmtTime(t), fmtTime(s.maxT), s.next-1)
		}
		for _, o := range s.buffered() {
			if o.last > n && o.t < t-s.disorder {
				return fail(ErrTime, "image time %s is after %s of the buffered seq %d that follows it", fmtTime(t), fmtTime(o.t), o.last)
			}
		}
	}
	entries := slices.Clone(img.Entries)
	if s.lv != nil {
		if err := s.checkImage(n, t, entries); err != nil {
			return err
		}
	}
	s.dropBuffered(n)
	// A partly sequenced event is superseded by the image.
	clear(s.log[s.ready:])
	s.log = s.log[:s.ready]
	s.evOpen = false
	if t == undatedT {
		if !s.undated {
			s.undatedLo = s.passed
		}
	} else if skipped && t-1 > s.passed {
		s.addHole(s.passed, t)
	}
	s.overflow, s.invalid, s.awaiting = nil, nil, false
	s.gapTold = max(s.gapTold, n)
	s.heard = true
	s.msgs++
	s.sequence(&op[K, V]{seq: n, last: n, t: t, flags: opImage | opEnd, img: &entries})
	if t == undatedT {
		s.undated = true
	}
	s.drain()
	return nil
}

// refuseInvalid records a verify failure for u; mu is held.
func (s *source[K, V]) refuseInvalid(u *Update[K, V], cause error) error {
	err := &InputError{Op: "apply", Source: s.name, Seq: u.Seq, Err: ErrInvalid, Cause: cause,
		Reason: "the Verify hook refused it; the source is invalid until a reset"}
	if u.Seq >= s.next && !s.isBuffered(u.Seq) && s.overflow == nil && s.invalid == nil {
		s.invalid = err
		s.resyncDue = true
	}
	return err
}
