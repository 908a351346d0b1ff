package binance

import (
	"fmt"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/snapshot"
)

// Venue returns the venue part of the source names of mk's books:
// "binance" for spot, "binance-usdm" for USDⓈ-M futures.
func (mk Market) Venue() string {
	if mk == USDM {
		return "binance-usdm"
	}
	return "binance"
}

// SourceName returns the collector source of symbol's book on mk, such as
// "binance:BTCUSDT" or "binance-usdm:BTCUSDT".
func SourceName(mk Market, symbol string) string { return exchange.SourceName(mk.Venue(), symbol) }

// Source returns the collector source of symbol's book on mk: numbered by
// the exchange's update IDs, its diff messages buffered until the REST
// image arrives, as Binance documents for building a local book.
func Source(mk Market, symbol string) snapshot.Source {
	return snapshot.Source{Name: SourceName(mk, symbol), Messages: true, StartWithImage: true}
}

// Feed turns Binance's diff depth stream and REST depth images into the
// messages and images of a collector, one source per market and symbol
// (see [Source]); book tickers become checks of a [exchange.Checker].
//
// It follows Binance's documented procedure for a local book: open the
// stream and buffer its events, fetch the REST image (lastUpdateId), drop
// the buffered events the image covers, and apply the rest, the first of
// them straddling the image. On spot, events continue one another (U is
// the previous u + 1); on USDⓈ-M futures each event names the previous
// one's u (pu). The collector does the buffering and the sequencing: the
// Feed passes U..u (spot) or pu (futures) as the message's numbering, and
// a break in it is a gap until a new image. Spot and futures events are
// told apart by the fields only futures send (pu, T). A message's event
// time is its E; images carry none (spot has none, and a futures image's
// E is when the response was made, not a time of the book), so the
// collector dates an image by the message that follows it.
//
// Binance sends no heartbeats, and the Feed invents none. Binance pushes a
// diff per interval (100ms or 1000ms spot, 100ms to 500ms futures) only for
// a book that changed in it: its futures documentation says "if existing",
// and its spot documentation promises no push for an unchanged book. So
// silence on a symbol is the same whether nothing changed or its events are
// late or lost, and nothing proves a quiet book current: each event proves
// the book up to its E, and a cut after a book's last event waits for its
// next one. Mark the sources of quiet books [snapshot.Source] Optional, or
// wait for the books a computation needs with [snapshot.Collector.AtFor].
//
// The zero value is not usable; create one with NewFeed. A Feed is not safe
// for concurrent use: feed it from the connection's reading goroutine, and
// images from the same goroutine or under the same lock.
type Feed struct {
	sink    exchange.Sink
	checker *exchange.Checker
	changes []snapshot.Change[exchange.Key, exchange.Level]
	entries []snapshot.Entry[exchange.Key, exchange.Level]
}

// NewFeed returns a Feed writing to sink and registering book tickers with
// checker (nil: tickers are ignored).
func NewFeed(sink exchange.Sink, checker *exchange.Checker) *Feed {
	return &Feed{sink: sink, checker: checker}
}

// Handle decodes one stream message received at recv and feeds it to the
// collector. Messages it does not use are ignored. The error is the
// decoder's, or the collector's wrapped with the source.
func (f *Feed) Handle(recv time.Time, msg []byte) error {
	m, err := Decode(msg)
	if err != nil {
		return err
	}
	switch m.Kind {
	case Depth:
		d := &m.Depth
		mk := Spot
		if d.HasPrev {
			mk = USDM
		}
		src := SourceName(mk, d.Symbol)
		f.changes = exchange.Changes(f.changes[:0], exchange.Bid, d.Bids)
		f.changes = exchange.Changes(f.changes, exchange.Ask, d.Asks)
		msg := snapshot.Message[exchange.Key, exchange.Level]{Source: src, Seq: d.Last, Time: d.EventTime, Changes: f.changes}
		if mk == USDM {
			msg.Prev = d.Prev
		} else {
			msg.First = d.First
		}
		if err := f.sink.ApplyMessage(msg); err != nil {
			return fmt.Errorf("binance: %s depthUpdate %d..%d: %w", src, d.First, d.Last, err)
		}
	case Ticker:
		if f.checker == nil {
			return nil
		}
		tk := &m.Ticker
		mk := Spot
		if !tk.EventTime.IsZero() {
			mk = USDM
		}
		f.checker.ExpectTicker(SourceName(mk, tk.Symbol), tk.UpdateID, tk.Bid, tk.Ask)
	}
	return nil
}

// HandleImage decodes the body of a REST depth request for url (see
// [ParseDepthURL]) and resets the book's source with it. recv, the receive
// time, does not date the image: the collector dates it by the event that
// follows it (see [snapshot.Image.Untimed]).
func (f *Feed) HandleImage(recv time.Time, url string, body []byte) error {
	mk, symbol, ok := ParseDepthURL(url)
	if !ok {
		return fmt.Errorf("%w: binance: %q is not a depth request (want …/api/v3/depth?symbol=… or …/fapi/v1/depth?symbol=…)", exchange.ErrFormat, url)
	}
	img, err := DecodeImage(body)
	if err != nil {
		return err
	}
	src := SourceName(mk, symbol)
	f.entries = exchange.Entries(f.entries[:0], exchange.Bid, img.Bids)
	f.entries = exchange.Entries(f.entries, exchange.Ask, img.Asks)
	err = f.sink.Reset(snapshot.Image[exchange.Key, exchange.Level]{Source: src, Seq: img.LastUpdateID, Untimed: true, Entries: f.entries})
	if err != nil {
		return fmt.Errorf("binance: %s image %d: %w", src, img.LastUpdateID, err)
	}
	return nil
}
