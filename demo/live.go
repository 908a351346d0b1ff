package demo

import (
	"sync/atomic"
	"time"

	"github.com/gather-go/gather/marketsim"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// Live gives a dashboard the demo's running parts. Its methods are safe for
// concurrent use.
type Live struct {
	server *natsserver.Server
	broker *natsbroker.Broker
	feed   *natsfeed.Feed[marketsim.Quote]
	market *marketsim.Market
	latest atomic.Pointer[Round]
}

// Server returns the embedded NATS server (to connect more clients to it).
func (l *Live) Server() *natsserver.Server { return l.server }

// Broker returns the client's broker; it implements queue.Inspector.
func (l *Live) Broker() *natsbroker.Broker { return l.broker }

// Collector returns the snapshot collector the feed fills.
func (l *Live) Collector() *snapshot.Collector[string, marketsim.Quote] { return l.feed.Collector() }

// Feed returns the feed's running totals.
func (l *Live) Feed() natsfeed.Stats { return l.feed.Stats() }

// Venues returns every venue's running totals.
func (l *Live) Venues() []marketsim.VenueStats { return l.market.Stats() }

// Symbols returns the symbols, in the order of Round.Quotes. Do not modify it.
func (l *Live) Symbols() []string { return l.market.Symbols() }

// Latest returns the latest round, or nil before the first.
func (l *Live) Latest() *Round { return l.latest.Load() }

// Round is one cut and its results.
type Round struct {
	// Cut is the snapshot the round computed on.
	Cut *snapshot.Cut[string, marketsim.Quote]
	// Quotes are the symbols' NBBOs, in symbol order.
	Quotes []NBBO
	// Latency is from the cut being taken to every result gathered.
	Latency time.Duration
	// Skipped counts the cuts passed over since the previous round because
	// the previous round took longer than the interval.
	Skipped int
}
