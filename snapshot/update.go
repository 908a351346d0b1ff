package snapshot

import "time"

// Update is one change from a source: a key set to a value, or deleted.
//
// The zero value is not a valid update: Source, Seq (from 1) and Time are
// required.
type Update[K comparable, V any] struct {
	// Source names the source.
	Source string
	// Seq is the per-source sequence number: 1, 2, 3, … with no gaps.
	Seq uint64
	// Time is the event time: when the change happened at the source.
	Time time.Time
	// Key and Value are the change; Value is ignored when Delete is set.
	Key   K
	Value V
	// Delete removes Key.
	Delete bool
	// KeySeq, if not zero, is a per-key sequence number (1, 2, 3, … for
	// each key). While the source has a gap, keys whose buffered updates
	// skip a KeySeq are reported in [SourceStatus.Suspect].
	KeySeq uint64
	// EndOfEvent marks the last update of an exchange event, for sources
	// with [Source.Events]; it is ignored otherwise.
	EndOfEvent bool
}

// Heartbeat is a source's announcement of its progress: every update with
// event time at or before Time has been sent, and the last update sent has
// sequence number Seq (0 if none yet; for a source numbering messages, the
// last message's Seq). A source passes a cut at T once it has
// been applied up to Seq with no gap and announced T (or sent an update later
// than T).
//
// Heartbeats may arrive in any order and on another channel than the
// updates: each one's claim is checked on its own against what has been
// received, and one whose Seq is not applied yet waits for it.
//
// A heartbeat with Epoch set is also a barrier: it closes epoch Epoch at Time,
// and [Collector.AtEpoch] returns the cut at that time. Every source closing
// the same epoch must give the same Time.
//
// The zero value is not valid: Source and Time are required.
type Heartbeat struct {
	Source string
	Seq    uint64
	Time   time.Time
	Epoch  uint64
}

// Entry is one key and value of an [Image].
type Entry[K comparable, V any] struct {
	Key    K
	Value  V
	KeySeq uint64 // the key's per-key sequence number, if the source has them
}

// Image is a full image of one source's state, current to sequence Seq at
// event time Time: the recovery snapshot of a snapshot-and-incremental feed.
// [Collector.Reset] installs it atomically.
//
// An image without an event time (Binance's REST depth has none) sets
// Untimed and leaves Time zero. It is dated by the first update or message
// sequenced after it, whose event time it takes (or, if it is current to
// exactly the update or message applied last, by that one's time). Until it
// is dated it is part of the source's state (the Check hook sees it) but no
// cut holds it: cuts after the source's last progress report the source
// Resetting, since its state there is unknown. A source with Disorder
// refuses untimed images.
//
// The zero value is not valid: Source, Seq (≥ 1) and Time (or Untimed) are
// required.
type Image[K comparable, V any] struct {
	Source  string
	Seq     uint64
	Time    time.Time
	Untimed bool
	Entries []Entry[K, V]
}
