// Package natsfeed carries snapshot updates over NATS: use it when the
// sources of a [snapshot.Collector] publish on NATS subjects (a market data
// venue, a replica, a sensor gateway), and feed the collector directly with
// [snapshot.Collector.Apply] when they live in the same process.
//
// A [Publisher] is the sending side of one source: it numbers updates,
// publishes them and heartbeats, and answers the feeds' requests for
// resends and images. A [Feed] is the receiving side: it subscribes to a set
// of sources, applies what arrives to its collector, asks for a resend when
// the collector finds a gap (its GapFill hook), and starts from an image when
// it joins a source late or the source cannot resend. Any program that
// speaks the protocol below can stand in for a Publisher; nothing else has
// to agree between the processes than the prefix and the source names.
//
// # Wire protocol
//
// With prefix P (default "gather.feed") and source S, one subject token:
//
//   - P.q.S.u.<key>: an update of key (the key may hold dots). Headers
//     Gather-Seq (the source's sequence number, 1, 2, 3, … with no gaps)
//     and Gather-Time (the event time, Unix nanoseconds); Gather-Delete: 1
//     for a delete, Gather-End-Of-Event: 1 to close an exchange event,
//     Gather-Resent: 1 on an update sent again. The body is the value
//     (JSON by default).
//   - P.q.S.hb: a heartbeat, no body: Gather-Seq (the last update sent, 0 if
//     none) and Gather-Time (every update with event time at or before it
//     has been sent); Gather-Epoch to close a barrier epoch.
//   - P.resend.S: a request (with a reply subject) to send the updates
//     Gather-First to Gather-Last again on their subjects. The reply carries
//     Gather-Count, or Gather-Error when they are no longer kept.
//   - P.image.S: a request for the source's current state. The reply
//     carries Gather-Seq and Gather-Time (the sequence number and event
//     time the image is current to; Gather-Seq 0 and no body if nothing was
//     sent yet) and a body of entries, each the key's length (uvarint), the
//     key, the value's length (uvarint) and the value.
//
// A feed subscribes to P.q.S.> for each source, so it receives a source's
// updates and heartbeats in the order they were published on one
// connection. Core NATS delivers at most once; the sequence numbers make a lost message
// a gap, which the feed fills by a resend, or by an image when the resend is
// refused or unanswered. Silence is never inferred from a quiet subject:
// sources that have nothing to say send heartbeats, and the collector
// reports a source silent once nothing at all has come from it for
// [snapshot.Config.SilentAfter].
package natsfeed
