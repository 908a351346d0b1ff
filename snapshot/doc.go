// Package snapshot cuts complete and consistent snapshots of updates that
// arrive asynchronously from many sources.
//
// Use snapshot when updates stream in from several sources at their own pace
// (market data venues, replicas, sensors) and a calculation needs one moment in
// time across all of them; use package gather when you have N calls to wait
// for, and package queue when the work itself must be distributed.
//
// # Model
//
// An [Update] carries a source, a per-source sequence number (1, 2, 3, …), an
// event time, a key and a value or a delete. Sources announce their own
// progress with a [Heartbeat] ("every update with event time ≤ t has been
// sent, the last one was sequence n"): idleness is explicit and never inferred
// from silence. A [Collector] sequences each source (buffering out-of-order
// updates, ignoring duplicates, holding its frontier at a gap) and keeps the
// state of every source.
//
// A [Cut] at time T holds, for every source, exactly the updates with event
// time ≤ T of a gap-free prefix of its sequence, applied in sequence order,
// whatever order they arrived in; it never holds part of an exchange event
// (see [Source.Events]). A cut is complete when every required source has
// passed T; otherwise each source's [SourceStatus] says why not: stale (with
// its lag), gapped (which sequence numbers are missing, how many are
// buffered), silent (since when), resetting, never heard, invalid, or
// awaiting its first image. There is never a silent partial cut.
//
// # Exchange feeds
//
// Exchanges number messages, not key changes. A source with
// [Source.Messages] takes [Message] values through [Collector.ApplyMessage]:
// each is one event changing many keys, covering a range of update IDs
// (First to Seq, continuing from the previous message's Seq; Binance's U and
// u) or naming the previous message's ID (Prev; Binance futures' pu,
// Deribit's prev_change_id), with gaps, duplicates and buffering as for
// updates. [Source.StartWithImage] buffers everything until the first
// [Collector.Reset], which drops what its image covers and applies the rest:
// the documented way to start a book from a diff stream and a REST snapshot,
// whose image may be [Image.Untimed]. [Config.Check] sees the source's state
// after every event (to compare an exchange's checksum of the top of its
// book); a mismatch rolls the event back, marks the source invalid and calls
// [Config.Resync] until a new image arrives. [Config.Order] keeps each
// source's keys ordered per side, so that [Cut.First] gives a best bid or
// offer in O(1) and [Cut.Top] the top levels without scanning.
// [SourceStatus.Through] says which message a cut holds a source through,
// and [Collector.AtSeq] gives a source's state right after any one of its
// messages.
//
// # Taking cuts
//
//   - [Collector.At] blocks until the cut at T is complete or the context
//     ends, and returns it either way.
//   - [Collector.Latest] returns the newest complete cut without blocking;
//     [Collector.Fresh] returns one no older than a bound, or an error at once.
//   - [Collector.Every] yields cuts at aligned times as an iterator; a slow
//     reader skips to the newest and is told how many it skipped.
//   - [Collector.AtFor] is At for a subset of the sources (one symbol's
//     venues), the others may lag.
//   - [Collector.AtEpoch] returns the cut that closes an epoch announced by
//     barrier heartbeats; [Config.Interval] makes the collector cut at aligned
//     times by itself the moment they complete.
//
// Cuts are immutable values that are safe to read from any goroutine while
// updates keep arriving. Taking one costs O(keys changed since the previous
// cut), not O(all keys); reading the newest cut costs one key lookup and one
// atomic load per key.
//
// # Cost and goroutines
//
// The Collector starts no goroutine. Cuts that become complete are taken by
// the goroutine whose update completed them, before Apply returns, so a
// waiting reader sees them with no scheduling delay; deadlines are timers in
// the waiting reader's goroutine. Applying an update in sequence costs about
// as much as a map assignment and does not allocate.
package snapshot
