package kraken

import (
	"hash/crc32"
	"strconv"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/internal/wire"
)

// ChecksumDepth is how many levels per side Kraken's book checksum covers,
// whatever the subscribed depth.
const ChecksumDepth = 10

// Checksum returns the CRC32 (IEEE) that Kraken's v1 book channel sends in
// "c": over the top ChecksumDepth asks, lowest price first, then the top
// ChecksumDepth bids, highest price first, each level written as its price
// then its volume, each with the point and leading zeros removed ("0.05000"
// → "5000"). Levels beyond ChecksumDepth are ignored; a side may be shorter.
// The levels must carry the scale Kraken wrote them with (see
// [exchange.Decimal]). It does not allocate; it costs a CRC32 of about 30
// bytes a level.
func Checksum(asks, bids []exchange.Level) uint32 {
	s := wire.GetScratch()
	for _, side := range [2][]exchange.Level{asks, bids} {
		for _, l := range side[:min(len(side), ChecksumDepth)] {
			s.B = appendDigits(s.B, l.Price)
			s.B = appendDigits(s.B, l.Qty)
		}
	}
	return finish(s)
}

func finish(s *wire.Scratch) uint32 {
	sum := crc32.ChecksumIEEE(s.B)
	wire.PutScratch(s)
	return sum
}

// appendDigits appends d's digits with the point and leading zeros removed:
// the decimal form of its units ("" for zero, as stripping every zero of
// "0.000" leaves nothing).
func appendDigits(b []byte, d exchange.Decimal) []byte {
	if d.Units == 0 {
		return b
	}
	return strconv.AppendUint(b, d.Units, 10)
}
