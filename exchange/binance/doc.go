// Package binance decodes Binance's spot and USDⓈ-M futures order book
// messages (the diff depth stream's depthUpdate, the REST depth image and
// the book ticker stream) and feeds the books into a snapshot collector.
//
// Use [Feed] to keep books in a collector: create the collector with
// [exchange.NewConfig] and a [Source] per market and symbol, open the diff
// stream and hand the Feed every message, then fetch the REST image and
// hand it to [Feed.HandleImage]. The collector buffers the events that
// arrive before the image, drops those the image covers and applies the
// rest, as Binance documents; a lost event is a gap until the next image,
// so fetch one from [snapshot.Config.GapFill] (called once per gap) and from
// [snapshot.Config.Resync] (called when a book overflowed its buffer or
// failed a check).
// Book tickers, with [exchange.Checker.Tickers] set, are compared with the
// book right after the event that ends at their update ID.
package binance
