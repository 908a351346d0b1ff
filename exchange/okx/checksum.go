package okx

import (
	"hash/crc32"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
)

// ChecksumDepth is how many levels per side OKX's book checksum covers.
const ChecksumDepth = 25

// Checksum returns the checksum OKX sends with its order book channels: the
// CRC32 (IEEE), as a signed 32-bit integer, of the top ChecksumDepth bids
// (highest first) and asks (lowest first) interleaved, each level written
// "price:size" as sent and all joined by ':' — "bid1:ask1:bid2:ask2:…"; once
// one side runs out the other continues alone. Levels beyond ChecksumDepth
// are ignored. The levels must carry the scale OKX wrote them with (see
// [exchange.Decimal]). It does not allocate.
func Checksum(bids, asks []exchange.Level) int32 {
	bids = bids[:min(len(bids), ChecksumDepth)]
	asks = asks[:min(len(asks), ChecksumDepth)]
	s := wire.GetScratch()
	b := s.B
	for i := range max(len(bids), len(asks)) {
		if i < len(bids) {
			b = appendLevel(b, bids[i])
		}
		if i < len(asks) {
			b = appendLevel(b, asks[i])
		}
	}
	return int32(finish(s, b))
}

// finish returns the CRC32 of b, the input built in s, without its last
// ':', and returns s to the pool.
func finish(s *wire.Scratch, b []byte) uint32 {
	if len(b) > 0 {
		b = b[:len(b)-1]
	}
	sum := crc32.ChecksumIEEE(b)
	s.B = b
	wire.PutScratch(s)
	return sum
}

func appendLevel(b []byte, l exchange.Level) []byte {
	b, _ = l.Price.AppendText(b)
	b = append(b, ':')
	b, _ = l.Qty.AppendText(b)
	return append(b, ':')
}
