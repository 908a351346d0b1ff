package exchange

import (
	"github.com/gather-go/gather/snapshot"
)

// Collector is the collector the feed adapters feed: one source per venue
// and symbol, price levels as keys. Create it with [Config] (or a Config of
// your own with [Order] and the venues' sources) so that cuts give the best
// bid and offer and the top levels in order.
type Collector = snapshot.Collector[Key, Level]

// Sink is what a feed adapter writes to; a *[Collector] is one. A Sink
// must be safe for the adapter's use from one goroutine.
type Sink interface {
	ApplyMessage(ms ...snapshot.Message[Key, Level]) error
	Reset(img snapshot.Image[Key, Level]) error
	Heartbeat(h snapshot.Heartbeat) error
}

// Side numbers of the collector's order: [Bid] is side 0, [Ask] side 1.
const (
	BidSide = int(Bid)
	AskSide = int(Ask)
)

// Order returns the order of a book's keys for [snapshot.Config.Order]: two
// sides, bids best (highest) first and asks best (lowest) first, so that a
// cut's First(source, BidSide) is the best bid and Top(source, AskSide, 10,
// …) the best ten asks.
func Order() *snapshot.Order[Key] {
	return &snapshot.Order[Key]{
		Compare: Compare,
		Sides:   2,
		Side:    func(k Key) int { return int(k.Side) },
	}
}

// SourceName names the collector source of a venue's book for symbol:
// "venue:symbol", such as "binance:BTCUSDT".
func SourceName(venue, symbol string) string { return venue + ":" + symbol }

// Changes appends to dst the changes that set each level of ls on side, a
// zero quantity deleting the level.
func Changes(dst []snapshot.Change[Key, Level], side Side, ls []Level) []snapshot.Change[Key, Level] {
	for _, l := range ls {
		dst = append(dst, snapshot.Change[Key, Level]{
			Key:    KeyOf(side, l.Price),
			Value:  l,
			Delete: l.Qty.IsZero(),
		})
	}
	return dst
}

// Entries appends to dst the image entries of the levels of ls on side,
// skipping levels with a zero quantity.
func Entries(dst []snapshot.Entry[Key, Level], side Side, ls []Level) []snapshot.Entry[Key, Level] {
	for _, l := range ls {
		if l.Qty.IsZero() {
			continue
		}
		dst = append(dst, snapshot.Entry[Key, Level]{Key: KeyOf(side, l.Price), Value: l})
	}
	return dst
}

// NewConfig returns a collector configuration for books: the sources (from
// the venues' Source functions), the book order, and checker's Check hook
// (nil: nothing is checked). Adjust the rest before passing it to
// [snapshot.New].
func NewConfig(checker *Checker, sources ...snapshot.Source) *snapshot.Config[Key, Level] {
	cfg := &snapshot.Config[Key, Level]{Sources: sources, Order: Order()}
	if checker != nil {
		cfg.Check = checker.Check
	}
	return cfg
}
