package kraken

import (
	"errors"
	"fmt"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
	"github.com/gather-go/gather/snapshot"
)

// Venue is the venue part of the source names of Kraken's books.
const Venue = "kraken"

// SourceName returns the collector source of pair's book: "kraken:XBT/USD".
func SourceName(pair string) string { return exchange.SourceName(Venue, pair) }

// Source returns the collector source of pair's book: numbered by message,
// waiting for its first image.
func Source(pair string) snapshot.Source {
	return snapshot.Source{Name: SourceName(pair), Messages: true, StartWithImage: true}
}

// Feed turns Kraken v1 book messages into images, messages and heartbeats of
// a collector, one source per pair (see [Source]), and registers each
// update's checksum with a [exchange.Checker] that the collector calls.
//
// Kraken's v1 book messages carry no sequence numbers: the Feed numbers each
// pair's messages itself (the snapshot and every update one number each),
// so a lost message shows only through the next checksum, which is why
// Kraken sends one with every update. They carry no message time either
// (each level has the time it last changed, and republished levels keep
// theirs): the event time of a message is its receive time, never earlier
// than the previous one's. A heartbeat announces every pair of the
// connection at its receive time.
//
// Kraken does not send the deletion of a level that falls below the
// subscribed depth; the Feed keeps the prices of each pair's book (at most
// the depth per side) to delete such levels itself, in the same message.
//
// Subscribe to one depth per pair: the book of a pair is one source,
// whatever its channel ID.
//
// The zero value is not usable; create one with NewFeed. A Feed is not safe
// for concurrent use: feed it from the connection's reading goroutine.
type Feed struct {
	sink    exchange.Sink
	checker *exchange.Checker
	books   map[string]*book
	changes []snapshot.Change[exchange.Key, exchange.Level]
	entries []snapshot.Entry[exchange.Key, exchange.Level]
	levels  []exchange.Level // scratch: one side's levels of a message
}

type book struct {
	source string
	seq    uint64
	depth  int
	last   time.Time
	// Prices in the book, at most depth on each side.
	sides [2]wire.DepthSide
}

// NewFeed returns a Feed writing to sink and registering checksums with
// checker (nil: checksums are not checked).
func NewFeed(sink exchange.Sink, checker *exchange.Checker) *Feed {
	return &Feed{sink: sink, checker: checker, books: make(map[string]*book)}
}

// Pairs returns the pairs the Feed has seen a snapshot of, in no order.
func (f *Feed) Pairs() []string {
	out := make([]string, 0, len(f.books))
	for p := range f.books {
		out = append(out, p)
	}
	return out
}

// Handle decodes one WebSocket message received at recv and feeds it to the
// collector. Messages it does not use are ignored. The error is the
// decoder's, or the collector's (wrapped with the pair), such as a checksum
// mismatch wrapping [exchange.ErrMismatch] and [snapshot.ErrInvalid].
func (f *Feed) Handle(recv time.Time, msg []byte) error {
	m, err := Decode(msg)
	if err != nil {
		return err
	}
	switch m.Kind {
	case Heartbeat:
		var errs []error
		for _, b := range f.books {
			t := later(recv, b.last)
			if err := f.sink.Heartbeat(snapshot.Heartbeat{Source: b.source, Seq: b.seq, Time: t}); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case Snapshot:
		return f.snapshot(recv, &m)
	case Update:
		return f.update(recv, &m)
	}
	return nil
}

func later(t, u time.Time) time.Time {
	if t.Before(u) {
		return u
	}
	return t
}

func (f *Feed) snapshot(recv time.Time, m *Message) error {
	b := f.books[m.Pair]
	if b == nil {
		b = &book{source: SourceName(m.Pair)}
		f.books[m.Pair] = b
	}
	b.depth = m.Depth
	b.seq++
	b.last = later(recv, b.last)
	f.entries = f.entries[:0]
	for s, ls := range [2][]Level{exchange.Bid: m.Bids, exchange.Ask: m.Asks} {
		side := exchange.Side(s)
		// A snapshot deeper than the subscription is cut to it, as the
		// book will be after every update.
		b.sides[s].Reset(side, f.exchangeLevels(ls), b.depth)
		for _, l := range ls {
			if l.Volume.IsZero() {
				continue
			}
			key := exchange.KeyOf(side, l.Price)
			if b.sides[s].Has(side, key.Price) {
				f.entries = append(f.entries, snapshot.Entry[exchange.Key, exchange.Level]{
					Key: key, Value: exchange.Level{Price: l.Price, Qty: l.Volume},
				})
			}
		}
	}
	err := f.sink.Reset(snapshot.Image[exchange.Key, exchange.Level]{Source: b.source, Seq: b.seq, Time: b.last, Entries: f.entries})
	if err != nil {
		return fmt.Errorf("kraken: %s snapshot: %w", m.Pair, err)
	}
	return nil
}

// exchangeLevels returns ls as exchange levels, in a buffer of the Feed.
func (f *Feed) exchangeLevels(ls []Level) []exchange.Level {
	f.levels = f.levels[:0]
	for _, l := range ls {
		f.levels = append(f.levels, exchange.Level{Price: l.Price, Qty: l.Volume})
	}
	return f.levels
}

func (f *Feed) update(recv time.Time, m *Message) error {
	b := f.books[m.Pair]
	if b == nil {
		return fmt.Errorf("%w: kraken: update for %s before its snapshot", exchange.ErrFormat, m.Pair)
	}
	f.changes = f.changes[:0]
	// Levels apply in the order sent; asks and bids are independent.
	for s, ls := range [2][]Level{exchange.Bid: m.Bids, exchange.Ask: m.Asks} {
		side := exchange.Side(s)
		for _, l := range ls {
			f.changes = append(f.changes, snapshot.Change[exchange.Key, exchange.Level]{
				Key:    exchange.KeyOf(side, l.Price),
				Value:  exchange.Level{Price: l.Price, Qty: l.Volume},
				Delete: l.Volume.IsZero(),
			})
		}
		// Levels pushed below the subscribed depth leave the book.
		b.sides[s].Apply(side, f.exchangeLevels(ls), b.depth, func(p exchange.Decimal) {
			f.changes = append(f.changes, snapshot.Change[exchange.Key, exchange.Level]{
				Key: exchange.Key{Side: side, Price: p}, Delete: true,
			})
		})
	}
	b.seq++
	b.last = later(recv, b.last)
	if m.HasChecksum && f.checker != nil {
		f.checker.ExpectChecksum(b.source, b.seq, m.Checksum, BookChecksum)
	}
	err := f.sink.ApplyMessage(snapshot.Message[exchange.Key, exchange.Level]{
		Source: b.source, Seq: b.seq, Time: b.last, Changes: f.changes,
	})
	if err != nil {
		return fmt.Errorf("kraken: %s update: %w", m.Pair, err)
	}
	return nil
}

// BookChecksum computes Kraken's checksum (see [Checksum]) of the book v
// shows: an [exchange.ChecksumFunc].
func BookChecksum(v *snapshot.View[exchange.Key, exchange.Level]) uint32 {
	var askBuf, bidBuf [ChecksumDepth]snapshot.Entry[exchange.Key, exchange.Level]
	asks := v.Top(exchange.AskSide, ChecksumDepth, askBuf[:0])
	bids := v.Top(exchange.BidSide, ChecksumDepth, bidBuf[:0])
	// As Checksum, over the entries in place.
	s := wire.GetScratch()
	for _, side := range [2][]snapshot.Entry[exchange.Key, exchange.Level]{asks, bids} {
		for _, e := range side {
			s.B = appendDigits(s.B, e.Value.Price)
			s.B = appendDigits(s.B, e.Value.Qty)
		}
	}
	return finish(s)
}
