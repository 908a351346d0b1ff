package kraken_test

import (
	"testing"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/kraken"
)

func levels(qty string, prices ...string) []exchange.Level {
	out := make([]exchange.Level, len(prices))
	for i, p := range prices {
		out[i] = exchange.Level{Price: exchange.MustDecimal(p), Qty: exchange.MustDecimal(qty)}
	}
	return out
}

// docAsks and docBids are the book of Kraken's published v1 checksum example,
// whose checksum the documentation gives as 974947235.
var (
	docAsks = levels("0.00000500", "0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
		"0.05030", "0.05035", "0.05040", "0.05045", "0.05050")
	docBids = levels("0.00000500", "0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
		"0.04970", "0.04965", "0.04960", "0.04955", "0.04950")
)

func TestChecksumPublishedExample(t *testing.T) {
	t.Parallel()
	if got := kraken.Checksum(docAsks, docBids); got != 974947235 {
		t.Fatalf("Checksum(documented book) = %d, want 974947235", got)
	}
}

func TestChecksumDependsOnWrittenScaleOrderAndDepth(t *testing.T) {
	t.Parallel()
	want := kraken.Checksum(docAsks, docBids)
	// The same values written with another scale give another checksum:
	// Kraken's checksum is over the digits as written.
	rescaled := append([]exchange.Level(nil), docAsks...)
	rescaled[0].Qty = exchange.MustDecimal("0.000005")
	if kraken.Checksum(rescaled, docBids) == want {
		t.Error("checksum ignores the written scale of a quantity")
	}
	// Asks come first: swapping the sides changes it.
	if kraken.Checksum(docBids, docAsks) == want {
		t.Error("checksum does not depend on which side comes first")
	}
	// Levels beyond the tenth are ignored.
	more := append(append([]exchange.Level(nil), docAsks...), levels("1", "0.06")...)
	if got := kraken.Checksum(more, docBids); got != want {
		t.Errorf("an 11th ask changed the checksum: %d, want %d", got, want)
	}
	// Dropping the tenth changes it.
	if kraken.Checksum(docAsks[:9], docBids) == want {
		t.Error("checksum ignores the tenth ask")
	}
}

func TestChecksumDoesNotAllocate(t *testing.T) {
	if a := testing.AllocsPerRun(100, func() { kraken.Checksum(docAsks, docBids) }); a != 0 {
		t.Fatalf("Checksum allocates %v times, want 0", a)
	}
}

func BenchmarkChecksum(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		kraken.Checksum(docAsks, docBids)
	}
}
