// Package kraken decodes Kraken's spot WebSocket v1 book channel and checks
// its CRC32 book checksum.
package kraken
