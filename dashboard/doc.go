// Package dashboard is gather's web dashboard: use it to watch a queue and
// its batches, dead letters, workers and snapshot collectors live in a
// browser; use package httpapi alone for programs, and queue/metrics for
// Prometheus. gather serve mounts it at /.
//
// The page is a few committed files (HTML, CSS and plain JavaScript, in
// web/) embedded in the binary with go:embed: no build step, no CDN, no
// dependency; it works offline. It is live by server-sent events, never by
// polling from the page: one stream, /dashboard/events, pushes what changed
// (see the stream's sections in events.go), and the page calls the HTTP API
// for everything else (batch status, cancel, dead letters, re-drive).
//
// How the pieces find each other:
//
//   - A Dashboard is a queue.Observer: give it to the server's client and
//     workers, and it counts every event per queue with atomic adds (no lock,
//     no allocation) and keeps one point a second over the last minutes in
//     ring buffers, for the throughput and latency charts. No Prometheus
//     server is needed.
//   - Config.Inspector (the broker, when it is a queue.Inspector) gives the
//     queues' depth per priority level and in flight, the batches with their
//     progress, and one batch's per-task states; when it is also a
//     queue.Pauser, whether each queue is paused (a read per queue, with the
//     queues' read). The dashboard reads it only
//     while a page is open, at most twice a second for the queues and four
//     times for the batches, and once a second when nothing happens.
//   - Workers report themselves: each worker process (gather serve's own and
//     every gather worker) runs an Announcer, which publishes a heartbeat on
//     NATS every HeartbeatInterval with its running and processed counts; the
//     dashboard listens on Config.NATS.
//   - Snapshot collectors are shown through SnapshotSource, a small interface
//     (CutView builds its view from a snapshot.Cut).
//
// Security: mount the Dashboard as httpapi.Config.UI. The page's files are
// public (they hold no secret); the event stream requires what the API
// requires. With a token, the page asks for it once, keeps it in the tab's
// session storage and sends it as a bearer header; since an EventSource
// cannot send headers, it opens its streams with a short-lived ticket from
// POST /v1/tickets (see httpapi's ticket.go for why not a cookie). The page
// is served with a Content-Security-Policy that allows only its own files.
package dashboard
