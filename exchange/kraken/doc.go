// Package kraken decodes Kraken's spot WebSocket v1 book channel
// ("book-10", "book-100", …), checks its CRC32 book checksum, and feeds the
// books into a snapshot collector.
//
// Use [Feed] to keep books in a collector from a live connection or a
// capture: create the collector with [exchange.NewConfig] and a [Source] per
// pair, hand the Feed every message with its receive time, and read best
// prices and top levels from the collector's cuts. Every update's checksum
// is compared with the collector's book right after it; a mismatch marks
// the book invalid until Kraken's next snapshot (resubscribe to get one).
// Use [Decode] and [Checksum] alone to keep a book of your own.
//
// The checksum is Kraken's documented one: the top 10 asks then the top 10
// bids, each price and volume with the point and leading zeros removed, as
// Kraken wrote them. That is why levels keep the scale they were sent with
// (see [exchange.Decimal]).
package kraken
