// Package exchange holds what the exchange feed adapters share: prices and
// quantities as the exchanges write them ([Decimal]), the key and value of a
// price level in a [snapshot.Collector] ([Key], [Level]), and the errors
// their decoders return.
//
// Use the venue packages (exchange/binance, exchange/kraken, exchange/okx)
// to decode a venue's messages and check its checksums, and their Feed types
// to turn a venue's messages into images, updates and heartbeats of a
// collector; use exchange/replay to replay captured messages through them.
//
// A book is one collector source per venue and symbol ("binance:BTCUSDT");
// its keys are price levels ([Key]: side and price), its values the levels
// as the venue sent them ([Level]), so checksums can be recomputed from a
// cut. Prices and quantities are exact decimals, never floats: a level's
// identity, its order and the checksums all depend on the exact digits.
//
// [snapshot.Collector]: https://pkg.go.dev/github.com/gather-go/gather/snapshot#Collector
package exchange
