// Package okx decodes OKX's v5 WebSocket order book channels (books,
// books-l2-tbt, books50-l2-tbt, bbo-tbt) and checks their CRC32 checksum.
package okx
