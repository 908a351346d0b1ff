// Package demo is `gather demo`: the whole system on embedded defaults in
// one call. Use it to see gather work, or as the reference for wiring the
// pieces together; use the pieces themselves (snapshot, snapshot/natsfeed,
// queue, queue/natsbroker, marketsim) to build on.
//
// [Run] starts an embedded NATS server in a temporary directory, a
// simulated market ([marketsim.Market]: venues publishing quotes and
// heartbeats per venue and symbol, one losing quotes, one sending some
// late, one falling silent for a while, reproducibly for a seed), a
// [natsfeed.Feed] that joins late from the venues' images and fills gaps by
// resend requests, and a queue worker. On every cut, each symbol's
// consolidated best bid and offer ([Kind], [Consolidate]) is computed
// through the queue on the embedded server and gathered back in symbol
// order with Batch.Await. A terminal gets a live view redrawn in place; any
// other output gets a plain line a second. After --duration (or when ctx
// ends) it prints a summary: cuts taken and complete, each venue's state,
// tasks run, p50 and p99 cut-to-result latency.
//
// [RunConfig] takes hooks for a dashboard: the parts are handed over as a
// [Live], and the dashboard's URL is printed first.
package demo
