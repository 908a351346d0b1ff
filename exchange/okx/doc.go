// Package okx decodes OKX's v5 WebSocket order book channels (books,
// books-l2-tbt, books50-l2-tbt, bbo-tbt), checks their CRC32 checksum, and
// feeds the books into a snapshot collector.
//
// Use [Feed] to keep books in a collector: create the collector with
// [exchange.NewConfig] and a [Source] per instrument, and hand the Feed
// every message. Pushes are chained by seqId/prevSeqId, so a lost push is a
// gap the collector reports until the next snapshot (resubscribe to get
// one); a checksum that disagrees with the collector's book marks it
// invalid. Use [Decode] and [Checksum] alone to keep a book of your own.
//
// The checksum is OKX's documented one: the top 25 bids and asks
// interleaved, "bid:ask:bid:ask:…", each level "price:size" as sent, CRC32
// as a signed integer. OKX announced that the field is always 0 from June
// 2026; a zero checksum is therefore taken for none, and the seqId chain is
// what detects loss.
package okx
