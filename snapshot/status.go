package snapshot

import (
	"fmt"
	"strings"
	"time"
)

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
	// Invalid: the Verify or Check hook refused an update, or a buffered
	// update became late under LateReject; Err says which. Until a reset.
	Invalid
	// AwaitingImage: the source starts with an image
	// (Source.StartWithImage) and none has come yet; its updates wait in
	// the buffer (Buffered counts them; Err is set if they overflowed it).
	AwaitingImage
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
	case AwaitingImage:
		return "awaiting image"
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
	// Seq is the last sequence number applied in order (for a source
	// numbering messages, the last message's Seq).
	Seq uint64
	// Through is the sequence number of the last update or message of the
	// source that the cut holds: the source's part of the cut is exactly
	// its state right after Through (compare an exchange's ticker or
	// checksum for that update ID with it). Zero if the cut holds nothing
	// of the source, for a source with Disorder, whose part of a cut need
	// not be a prefix of its sequence, and in a kept cut that late updates
	// of the source revised.
	Through uint64
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
	// most 8 ranges, lowest first); MissingCount counts all of them (for a
	// source numbering messages, the IDs, not the messages, missing).
	Missing      []SeqRange
	MissingCount uint64
	// Buffered counts the updates or messages waiting behind the gap (or
	// for the first image, or for a reset of an invalid source).
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
		Through:    s.through,
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
	case s.awaiting:
		st.State = AwaitingImage
		if s.overflow != nil {
			st.Err = s.overflow
		}
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
