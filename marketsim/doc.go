// Package marketsim simulates market data venues: use it to drive a
// snapshot feed with realistic, reproducible traffic (a demo, a load test,
// an example); use real exchange feed adapters for real data.
//
// A [Script] is the simulation itself: for a seed and a [Config] it yields,
// millisecond by millisecond, each venue's quotes (bid and ask in cents,
// around a mid price per symbol that moves at random) and heartbeats, and
// the faults of the venues that have them: a Lossy venue loses a quote now
// and then, a Late venue holds one back and sends it after later ones, a
// Silent venue stops sending anything for a while. A Script is a pure
// function of its seed: no clock, no I/O, the same events on every run.
//
// A [Market] plays a Script in real time on NATS, one
// [natsfeed.Publisher] per venue, so a [natsfeed.Feed] can subscribe to it:
// the Lossy venue answers resend requests some milliseconds late (the gap
// shows in the cuts meanwhile), and every venue serves images to feeds that
// join late. What reaches the wire depends on scheduling (a late quote may
// overtake or follow a resend); what the venues decide to send does not.
package marketsim
