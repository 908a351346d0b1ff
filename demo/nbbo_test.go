package demo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gather-go/gather/demo"
	"github.com/gather-go/gather/queue"
)

func ExampleConsolidate() {
	n, _ := demo.Consolidate(context.Background(), demo.Book{Symbol: "AAPL", Quotes: []demo.VenueQuote{
		{Venue: "XNAS", Bid: 19001, Ask: 19003},
		{Venue: "ARCX", Bid: 19002, Ask: 19004},
		{Venue: "BATS", Bid: 19000, Ask: 19002},
	}})
	fmt.Println(n, n.Spread, n.MidX2)
	crossed, _ := demo.Consolidate(context.Background(), demo.Book{Symbol: "MSFT", Quotes: []demo.VenueQuote{
		{Venue: "XNAS", Bid: 5001, Ask: 5002},
		{Venue: "EDGX", Bid: 4999, Ask: 5000},
	}})
	fmt.Println(crossed)
	none, _ := demo.Consolidate(context.Background(), demo.Book{Symbol: "GOOG"})
	fmt.Println(none)
	// Output:
	// 190.02 ARCX x 190.02 BATS LOCKED 0 38004
	// 50.01 XNAS x 50.00 EDGX CROSSED
	// no quote
}

func TestConsolidateRefusesBadPrices(t *testing.T) {
	t.Parallel()
	_, err := demo.Consolidate(context.Background(), demo.Book{Symbol: "X", Quotes: []demo.VenueQuote{{Venue: "V", Bid: -1, Ask: 2}}})
	if !errors.Is(err, queue.ErrPermanent) {
		t.Errorf("error %v, want a permanent one", err)
	}
}
