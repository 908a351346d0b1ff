package okx

import (
	"fmt"
	"math"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
	"github.com/gather-go/gather/snapshot"
)

// Venue is the venue part of the source names of OKX's books.
const Venue = "okx"

// SourceName returns the collector source of instID's book: "okx:BTC-USDT".
func SourceName(instID string) string { return exchange.SourceName(Venue, instID) }

// Source returns the collector source of instID's book: numbered by
// message, waiting for its first image.
func Source(instID string) snapshot.Source {
	return snapshot.Source{Name: SourceName(instID), Messages: true, StartWithImage: true}
}

// Feed turns OKX order book pushes (books, books-l2-tbt, books50-l2-tbt)
// into the images and messages of a collector, one source per instrument
// (see [Source]), registers their checksums with a [exchange.Checker], and
// bbo-tbt pushes as ticker checks.
//
// Each push names the previous push's seqId (prevSeqId), so the Feed passes
// the chain to the collector, which finds a break as a gap. A push with no
// levels whose seqId equals its prevSeqId is OKX's sign of life on a quiet
// book: a heartbeat. When OKX restarts a book's numbering (a push whose
// seqId is below its prevSeqId, after maintenance) the Feed shifts the new
// numbers past the old ones, so the collector's sequence keeps rising. The
// event time of a push is its ts. A checksum of 0 is taken for none: OKX
// sends 0 since it deprecated the field in 2026.
//
// Each channel keeps a book of a fixed depth per side (books and
// books-l2-tbt 400 levels, books50-l2-tbt 50; see [Depth]): a level pushed
// out of it by better ones is not deleted by OKX, and no longer updated.
// The Feed keeps the prices of each book (at most the depth per side) and
// deletes such levels itself, in the same message, so the collector's book
// is OKX's. Subscribe to one book channel per instrument.
//
// The zero value is not usable; create one with NewFeed. A Feed is not safe
// for concurrent use: feed it from the connection's reading goroutine.
type Feed struct {
	sink    exchange.Sink
	checker *exchange.Checker
	books   map[string]*book
	changes []snapshot.Change[exchange.Key, exchange.Level]
	entries []snapshot.Entry[exchange.Key, exchange.Level]
}

type book struct {
	source string
	offset uint64 // added to OKX's seqIds, raised when OKX restarts them
	last   uint64 // the collector Seq of the last push passed on
	// Prices in the book, at most the channel's depth on each side.
	sides [2]wire.DepthSide
}

// Depth returns the levels per side that an order book channel keeps: 400
// for books and books-l2-tbt, 50 for books50-l2-tbt, 0 for other channels.
func Depth(channel string) int {
	switch channel {
	case "books", "books-l2-tbt":
		return 400
	case "books50-l2-tbt":
		return 50
	}
	return 0
}

// NewFeed returns a Feed writing to sink and registering checksums and
// bbo-tbt tickers with checker (nil: nothing is checked).
func NewFeed(sink exchange.Sink, checker *exchange.Checker) *Feed {
	return &Feed{sink: sink, checker: checker, books: make(map[string]*book)}
}

// Handle decodes one WebSocket message received at recv and feeds it to the
// collector. Messages it does not use are ignored. The error is the
// decoder's, or the collector's wrapped with the source.
func (f *Feed) Handle(recv time.Time, msg []byte) error {
	m, err := Decode(msg)
	if err != nil {
		return err
	}
	if m.Kind == Other {
		return nil
	}
	b := f.books[m.InstID]
	if b == nil {
		b = &book{source: SourceName(m.InstID)}
		f.books[m.InstID] = b
	}
	for i := range m.Books {
		if err := f.push(b, m.Kind, Depth(m.Channel), &m.Books[i]); err != nil {
			return fmt.Errorf("okx: %s %s seqId %d: %w", b.source, m.Channel, m.Books[i].SeqID, err)
		}
	}
	return nil
}

// Seq returns the collector sequence number of OKX's seqId for instID's
// book: seqId itself, unless OKX restarted the book's numbering, which the
// Feed shifts past the old numbers.
func (f *Feed) Seq(instID string, seqID int64) uint64 {
	var off uint64
	if b := f.books[instID]; b != nil {
		off = b.offset
	}
	return uint64(seqID) + off
}

func (f *Feed) push(b *book, kind Kind, depth int, bk *Book) error {
	if depth <= 0 {
		depth = math.MaxInt // a channel of unknown depth: nothing is cut
	}
	seq := uint64(bk.SeqID) + b.offset
	switch kind {
	case BBO:
		if f.checker != nil && len(bk.Bids) > 0 && len(bk.Asks) > 0 {
			f.checker.ExpectTicker(b.source, seq, bk.Bids[0], bk.Asks[0])
		}
		return nil
	case Snapshot:
		if seq <= b.last && b.last > 0 {
			// A new snapshot numbered below what was applied: OKX restarted
			// its numbering in between.
			b.offset = b.last + 1 - uint64(bk.SeqID)
			seq = b.last + 1
		}
		f.entries = f.entries[:0]
		for s, ls := range [2][]exchange.Level{exchange.Bid: bk.Bids, exchange.Ask: bk.Asks} {
			side := exchange.Side(s)
			// A snapshot deeper than the channel is cut to it, as the book
			// will be after every update.
			b.sides[s].Reset(side, ls, depth)
			for _, l := range ls {
				if key := exchange.KeyOf(side, l.Price); !l.Qty.IsZero() && b.sides[s].Has(side, key.Price) {
					f.entries = append(f.entries, snapshot.Entry[exchange.Key, exchange.Level]{Key: key, Value: l})
				}
			}
		}
		if bk.HasChecksum && f.checker != nil {
			f.checker.ExpectChecksum(b.source, seq, uint32(bk.Checksum), BookChecksum)
		}
		b.last = seq
		return f.sink.Reset(snapshot.Image[exchange.Key, exchange.Level]{Source: b.source, Seq: seq, Time: bk.Time, Entries: f.entries})
	}
	prev := uint64(bk.PrevSeqID) + b.offset
	if bk.SeqID < bk.PrevSeqID {
		// OKX restarted the numbering: this push follows prevSeqId and
		// starts the new numbers, which are shifted to continue from it.
		b.offset = prev + 1 - uint64(bk.SeqID)
		seq = prev + 1
	}
	if bk.SeqID == bk.PrevSeqID && len(bk.Bids) == 0 && len(bk.Asks) == 0 {
		return f.sink.Heartbeat(snapshot.Heartbeat{Source: b.source, Seq: seq, Time: bk.Time})
	}
	f.changes = exchange.Changes(f.changes[:0], exchange.Bid, bk.Bids)
	f.changes = exchange.Changes(f.changes, exchange.Ask, bk.Asks)
	// Levels pushed out of the channel's depth leave the book.
	for s, ls := range [2][]exchange.Level{exchange.Bid: bk.Bids, exchange.Ask: bk.Asks} {
		side := exchange.Side(s)
		b.sides[s].Apply(side, ls, depth, func(p exchange.Decimal) {
			f.changes = append(f.changes, snapshot.Change[exchange.Key, exchange.Level]{Key: exchange.Key{Side: side, Price: p}, Delete: true})
		})
	}
	if bk.HasChecksum && f.checker != nil {
		f.checker.ExpectChecksum(b.source, seq, uint32(bk.Checksum), BookChecksum)
	}
	b.last = max(b.last, seq)
	return f.sink.ApplyMessage(snapshot.Message[exchange.Key, exchange.Level]{
		Source: b.source, Seq: seq, Prev: prev, Time: bk.Time, Changes: f.changes,
	})
}

// BookChecksum computes OKX's checksum (see [Checksum]) of the book v shows,
// as the unsigned bits of the signed value OKX sends: an
// [exchange.ChecksumFunc].
func BookChecksum(v *snapshot.View[exchange.Key, exchange.Level]) uint32 {
	var bidBuf, askBuf [ChecksumDepth]snapshot.Entry[exchange.Key, exchange.Level]
	bids := v.Top(exchange.BidSide, ChecksumDepth, bidBuf[:0])
	asks := v.Top(exchange.AskSide, ChecksumDepth, askBuf[:0])
	// As Checksum, over the entries in place (about a tenth faster than
	// copying their levels out first).
	s := wire.GetScratch()
	b := s.B
	for i := range max(len(bids), len(asks)) {
		if i < len(bids) {
			b = appendLevel(b, bids[i].Value)
		}
		if i < len(asks) {
			b = appendLevel(b, asks[i].Value)
		}
	}
	return finish(s, b)
}
