// Package snapshotapi hosts named snapshot collectors over HTTP: use it to
// let programs that do not link Go (curl, Python, a shell script) feed
// updates to a [snapshot.Collector] and read complete and consistent cuts
// of them; use package snapshot directly from Go, and package natsfeed when
// the sources publish on NATS.
//
// A [Service] holds the collectors its [Spec]s name (cmd/gather's serve
// command reads them from --snapshots) and is mounted on an
// [httpapi.Server], which serves its routes behind the same token, host
// and origin checks, with errors as the same RFC 9457 problem+json:
//
//   - POST /v1/snapshots/{name}/updates: records as a JSON array or JSON
//     lines, each an update {"source", "seq", "time", "key", "value"} (or
//     "delete": true), a heartbeat {"type": "heartbeat", "source", "seq",
//     "time"} or an image {"type": "image", "source", "seq", "time",
//     "entries": [{"key", "value"}]} that resets the source. Times are RFC
//     3339 or Unix nanoseconds; values any JSON. Applied in order; a
//     refused record (422) stops the request, the ones before it stay
//     applied, and resending them is harmless (duplicates are ignored).
//   - GET /v1/snapshots/{name}/latest: the newest complete cut.
//   - GET /v1/snapshots/{name}?at=T&wait=2s: the cut at T, 200 once
//     complete, or 202 when the wait ends with each source's state and
//     reason (stale by how much, gapped with the missing range, silent
//     since when). The 202's cut is then taken as it stood: its sources'
//     later updates before T are late and revise it, so asking again
//     gives the revised cut (200 once complete) while it is kept.
//   - GET /v1/snapshots/{name}/events: server-sent "cut" events at every
//     multiple of the collector's interval.
//   - GET /v1/snapshots: the collectors and their specs.
//
// A collector with a NATS spec is fed by a [natsfeed.Feed] instead of
// POST requests (which it refuses with 409).
package snapshotapi
