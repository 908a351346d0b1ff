package okx_test

import (
	"testing"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/okx"
)

func lv(pairs ...string) []exchange.Level {
	out := make([]exchange.Level, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, exchange.Level{Price: exchange.MustDecimal(pairs[i]), Qty: exchange.MustDecimal(pairs[i+1])})
	}
	return out
}

// The two examples of OKX's checksum documentation: with as many bids as
// asks the string is "3366.1:7:3366.8:9:3366:6:3368:8"; with fewer bids the
// remaining asks follow alone, "3366.1:7:3366.8:9:3368:8:3372:8". The
// checksums are those OKX published with these examples.
func TestChecksumPublishedExamples(t *testing.T) {
	t.Parallel()
	even := okx.Checksum(lv("3366.1", "7", "3366", "6"), lv("3366.8", "9", "3368", "8"))
	if even != -1881014294 {
		t.Errorf("even example: checksum %d, want -1881014294", even)
	}
	odd := okx.Checksum(lv("3366.1", "7"), lv("3366.8", "9", "3368", "8", "3372", "8"))
	if odd != 831078360 {
		t.Errorf("odd example: checksum %d, want 831078360", odd)
	}
}

func TestChecksumCoversTop25Only(t *testing.T) {
	t.Parallel()
	var bids, asks []exchange.Level
	for i := range 30 {
		bids = append(bids, exchange.Level{Price: exchange.Decimal{Units: uint64(1000 - i)}, Qty: exchange.MustDecimal("1.5")})
		asks = append(asks, exchange.Level{Price: exchange.Decimal{Units: uint64(1001 + i)}, Qty: exchange.MustDecimal("2")})
	}
	want := okx.Checksum(bids, asks)
	if got := okx.Checksum(bids[:25], asks[:25]); got != want {
		t.Errorf("levels beyond 25 changed the checksum: %d, want %d", got, want)
	}
	if okx.Checksum(bids[:24], asks[:25]) == want {
		t.Error("the 25th bid does not count")
	}
	if okx.Checksum(asks, bids) == want {
		t.Error("swapping the sides does not change the checksum")
	}
	if okx.Checksum(nil, nil) != 0 {
		t.Errorf("empty book checksum %d, want CRC32 of nothing, 0", okx.Checksum(nil, nil))
	}
}

func TestChecksumDoesNotAllocate(t *testing.T) {
	bids, asks := lv("3366.1", "7", "3366", "6"), lv("3366.8", "9", "3368", "8")
	if a := testing.AllocsPerRun(100, func() { okx.Checksum(bids, asks) }); a != 0 {
		t.Fatalf("Checksum allocates %v times, want 0", a)
	}
}

// BenchmarkChecksum25 checksums a book's top 25 levels per side, as OKX's
// books channel asks for on every update.
func BenchmarkChecksum25(b *testing.B) {
	var bids, asks []exchange.Level
	for i := range 25 {
		bids = append(bids, exchange.Level{Price: exchange.Decimal{Units: 9876540 - uint64(i), Scale: 1}, Qty: exchange.MustDecimal("0.12345678")})
		asks = append(asks, exchange.Level{Price: exchange.Decimal{Units: 9876541 + uint64(i), Scale: 1}, Qty: exchange.MustDecimal("1.5")})
	}
	b.ReportAllocs()
	for b.Loop() {
		okx.Checksum(bids, asks)
	}
}
