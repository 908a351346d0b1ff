package snapshot

import (
	"errors"
	"fmt"
	"time"
)

// LatePolicy says what happens to an update whose event time is at or before
// a cut already taken. Such an update can only come from a source that had not
// passed that cut (the cut said so: stale, gapped, ...) or from an optional
// source; a source that had passed it gets [ErrTime] instead.
//
// The zero value is [LateRevise].
type LatePolicy uint8

const (
	// LateRevise applies the update from the newest cut on, and revises
	// the cuts it belongs to: the newest cut, and every cut kept within
	// [Config.Horizon] at or after the update's time, is reissued at the
	// same time with [Cut.Revision] one higher and its statuses brought up
	// to date (it may become complete). They are reissued lazily on the
	// next read or cut, or at once if the update completes the newest. A
	// kept cut that no late update changes keeps its status as taken. Late updates are counted in
	// [SourceStatus.Late].
	LateRevise LatePolicy = iota
	// LateDrop discards the update's data (its sequence number is consumed)
	// and counts it in [SourceStatus.Late]; no cut ever holds it.
	LateDrop
	// LateReject refuses the update: Apply returns an error wrapping
	// [ErrLate] and changes nothing. A buffered update that becomes late
	// before its gap is filled marks its source invalid until a reset.
	LateReject
)

// String returns "revise", "drop" or "reject".
func (p LatePolicy) String() string {
	switch p {
	case LateRevise:
		return "revise"
	case LateDrop:
		return "drop"
	case LateReject:
		return "reject"
	}
	return fmt.Sprintf("LatePolicy(%d)", uint8(p))
}

// Source describes one source of updates in [Config.Sources].
//
// The zero value (with a Name) is a required source whose event times never
// go backwards and whose every update is an event of its own.
type Source struct {
	// Name identifies the source in updates, heartbeats and images.
	Name string
	// Optional sources never hold a cut back: a cut is complete without
	// them, and reports their status all the same.
	Optional bool
	// Disorder is how far an update's event time may fall behind the latest
	// event time already sent by the source. Zero: event times never go
	// backwards. A source with disorder passes T only once its event times
	// are Disorder beyond T, or a heartbeat says so.
	Disorder time.Duration
	// Events says the source groups updates into exchange events: updates
	// up to and including one with EndOfEvent set form one event, carry the
	// same event time, and a cut holds all of them or none.
	Events bool
	// Messages says the source numbers messages, not updates: it is fed
	// with [Collector.ApplyMessage], each [Message] is one event covering
	// a range of sequence numbers (IDs), and Apply refuses its updates.
	// Events is implied.
	Messages bool
	// StartWithImage says the source's state starts with an image: until
	// the first [Collector.Reset], its updates or messages are buffered
	// (at most MaxBuffered of them; one more overflows the source), and
	// its status is [AwaitingImage]. The image then drops those it covers
	// and the rest are applied in order, as exchanges document for
	// starting a book from a diff stream and a REST snapshot. Without it a
	// source starts at sequence number 1.
	StartWithImage bool
}

// Config configures a [Collector]. A nil *Config means every default.
//
// The zero value of every field is its documented default. Config is read by
// [New] and not retained; changing it afterwards has no effect.
type Config[K comparable, V any] struct {
	// Sources fixes the set of sources; an update from another source is
	// refused with [ErrUnknownSource]. Empty: sources are added on their
	// first message, each required.
	Sources []Source
	// Interval makes the collector cut at every multiple of Interval (since
	// the Unix epoch) as soon as that cut is complete, conflating multiples
	// that complete together; [Collector.Latest] then moves in these steps.
	// Zero (the default): cuts are taken only when asked for.
	Interval time.Duration
	// Horizon keeps cuts this far behind the newest one for
	// [Collector.AsOf] and past [Collector.At] requests. Zero (the
	// default): only the newest cut is kept.
	Horizon time.Duration
	// MaxBuffered bounds, per source, the updates or messages buffered:
	// behind a gap, before the first image (Source.StartWithImage), or
	// while the source is invalid. For sources numbering updates it is
	// also how far beyond a gap an update may be, in sequence numbers. One
	// more overflows: the source is gapped until a reset. The buffer grows
	// with what it holds. Default 4096, at most 1<<24.
	MaxBuffered int
	// DupWindow is how far behind the applied sequence an update is still
	// taken for a harmless duplicate (ignored and counted); further back it
	// is an error. Default 65536. For sources numbering messages it counts
	// IDs, which exchanges advance by many per message: raise it if old
	// messages may be replayed (after a reconnect, say).
	DupWindow uint64
	// MaxPending bounds, per source, the updates sequenced but not yet in a
	// cut (those with event times after the newest cut). Beyond it the
	// collector takes a cut by itself to fold them, complete if possible.
	// Default 1<<20.
	MaxPending int
	// Late is the late-update policy. Default [LateRevise].
	Late LatePolicy
	// SilentAfter reports a source that is behind a cut as silent once
	// nothing has been heard from it for this long. Default one second.
	SilentAfter time.Duration
	// GapFill, if set, is called once per gap with its source and the span
	// of missing sequence numbers (some of which may already be buffered),
	// so an adapter can ask for a resend. It is called on the goroutine
	// whose message revealed the gap, with no lock held, at most once per
	// GapFillInterval per source (gaps found meanwhile are reported on the
	// next message after the interval); it must not block for long.
	GapFill func(source string, first, last uint64)
	// GapFillInterval rate-limits GapFill per source. Default 100ms.
	GapFillInterval time.Duration
	// Now, if set, replaces time.Now wherever the collector reads the wall
	// clock: silence, Fresh, Cut.Taken, Every's alignment, the GapFill rate
	// limit. A simulation can pass its own clock. Timers (At and Every
	// deadlines) still run on the runtime's clock. It may be called with
	// a source's lock held: it must be cheap and must not call the
	// Collector. Default time.Now.
	Now func() time.Time
	// Verify, if set, checks every update on arrival (a price band, a
	// field's range). An error refuses the update and marks its source
	// invalid until a reset; Apply returns an error wrapping [ErrInvalid]
	// and the hook's error. It is called with no lock held and must not
	// call the Collector. It is not called for Messages (their changes
	// are checked as a whole by Check). Checks that need the source's
	// state (an exchange's checksum of the top of its book) belong in
	// Check.
	Verify func(Update[K, V]) error
	// Check, if set, checks the source's state after every event applied
	// in sequence order, with the event's Seq and time: a message, an
	// update ending an event (Source.Events), any other update, and the
	// image of a Reset. The [View] holds everything sequenced so far (not
	// a cut). An error rolls the event back (it is not applied, its
	// sequence numbers stay missing), marks the source [Invalid] until a
	// reset (cuts before the event's time, whose updates were all applied
	// and checked, stay complete), calls Resync, and makes the call that
	// applied it return an error wrapping [ErrInvalid] and the hook's
	// error. A panic in the hook counts as an error. It runs with the
	// source's lock held: it must be quick and must not call the
	// Collector; the View is valid only during the call. Setting it makes
	// each source keep a second copy of its state at the sequencing
	// frontier: a slice store per change, and with Order an ordered-index
	// update per key added or removed.
	Check func(v *View[K, V]) error
	// Resync, if set, is called when a source needs a new image to go on:
	// it overflowed its buffer, or Check or Verify refused one of its
	// events. It is called once per such episode, on the goroutine whose
	// call found it, with no lock held; it must not block for long (start
	// the image's fetch elsewhere), and may call the Collector.
	Resync func(source string, err error)
	// Order, if set, orders every source's keys for the ordered reads of
	// cuts and views (First, Last, Top, Ascend), maintained as keys
	// appear and disappear. Nil: keys are unordered and ordered reads
	// find nothing.
	Order *Order[K]
}

const (
	defaultMaxBuffered     = 4096
	defaultDupWindow       = 1 << 16
	defaultMaxPending      = 1 << 20
	defaultSilentAfter     = time.Second
	defaultGapFillInterval = 100 * time.Millisecond
	maxMaxBuffered         = 1 << 24
	maxMaxPending          = 1 << 30
)

// withDefaults validates cfg and returns a copy with defaults filled in. The
// error joins every problem found.
func withDefaults[K comparable, V any](cfg *Config[K, V]) (Config[K, V], error) {
	var c Config[K, V]
	if cfg != nil {
		c = *cfg
		c.Sources = append([]Source(nil), cfg.Sources...)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("snapshot: config: "+format, args...))
	}
	seen := make(map[string]bool, len(c.Sources))
	for i, s := range c.Sources {
		switch {
		case s.Name == "":
			bad("Sources[%d] has no name", i)
		case seen[s.Name]:
			bad("Sources[%d]: source %q listed twice", i, s.Name)
		}
		seen[s.Name] = true
		if s.Disorder < 0 {
			bad("source %q: Disorder %v is negative", s.Name, s.Disorder)
		}
	}
	if c.Interval < 0 {
		bad("Interval %v is negative", c.Interval)
	}
	if c.Horizon < 0 {
		bad("Horizon %v is negative", c.Horizon)
	}
	if c.MaxBuffered < 0 || c.MaxBuffered > maxMaxBuffered {
		bad("MaxBuffered %d is outside 0 (the default, %d) to %d", c.MaxBuffered, defaultMaxBuffered, maxMaxBuffered)
	}
	if c.MaxPending < 0 || c.MaxPending > maxMaxPending {
		bad("MaxPending %d is outside 0 (the default, %d) to %d", c.MaxPending, defaultMaxPending, maxMaxPending)
	}
	if o := c.Order; o != nil {
		if o.Compare == nil {
			bad("Order.Compare is nil; an Order needs it")
		}
		if o.Sides < 0 || o.Sides > maxSides {
			bad("Order.Sides %d is outside 0 (one side) to %d", o.Sides, maxSides)
		}
		if o.Sides > 1 && o.Side == nil {
			bad("Order.Sides is %d but Order.Side is nil; it must say each key's side", o.Sides)
		}
	}
	if c.Late > LateReject {
		bad("Late %v is not a LatePolicy", c.Late)
	}
	if c.SilentAfter < 0 {
		bad("SilentAfter %v is negative", c.SilentAfter)
	}
	if c.GapFillInterval < 0 {
		bad("GapFillInterval %v is negative", c.GapFillInterval)
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = defaultMaxBuffered
	}
	if c.DupWindow == 0 {
		c.DupWindow = defaultDupWindow
	}
	if c.MaxPending == 0 {
		c.MaxPending = defaultMaxPending
	}
	if c.SilentAfter == 0 {
		c.SilentAfter = defaultSilentAfter
	}
	if c.GapFillInterval == 0 {
		c.GapFillInterval = defaultGapFillInterval
	}
	return c, errors.Join(errs...)
}
