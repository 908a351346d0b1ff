package kraken_test

import (
	"fmt"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/kraken"
	"github.com/gather-go/gather/snapshot"
)

// The book of Kraken's documented checksum example.
func ExampleChecksum() {
	fmt.Println(kraken.Checksum(docAsks, docBids))
	// Output: 974947235
}

// A collector kept by the feed: a snapshot, an update whose checksum the
// collector's book must match, and a heartbeat that completes the cut.
func ExampleFeed() {
	checker := &exchange.Checker{}
	c, err := snapshot.New(exchange.NewConfig(checker, kraken.Source("XBT/USD")))
	if err != nil {
		panic(err)
	}
	feed := kraken.NewFeed(c, checker)
	t := time.Unix(1700000000, 0)
	for i, msg := range []string{
		`[42,{"as":[["5541.30000","2.50700000","1534614248.123678"]],"bs":[["5541.20000","1.52900000","1534614248.765567"]]},"book-10","XBT/USD"]`,
		`[42,{"b":[["5541.25000","0.50000000","1534614249.000000"]],"c":"1892432707"},"book-10","XBT/USD"]`,
		`{"event":"heartbeat"}`,
	} {
		if err := feed.Handle(t.Add(time.Duration(i)*time.Second), []byte(msg)); err != nil {
			fmt.Println(err)
		}
	}
	cut, _ := c.Cut(t.Add(2 * time.Second))
	_, bid, _ := cut.First(kraken.SourceName("XBT/USD"), exchange.BidSide)
	_, ask, _ := cut.First(kraken.SourceName("XBT/USD"), exchange.AskSide)
	matched, mismatched, _ := checker.Counts()
	fmt.Println("complete:", cut.Complete())
	fmt.Println("bid", bid.Price, "x", bid.Qty, "ask", ask.Price, "x", ask.Qty)
	fmt.Println("checksums:", matched, "matched,", mismatched, "mismatched")
	// Output:
	// complete: true
	// bid 5541.25000 x 0.50000000 ask 5541.30000 x 2.50700000
	// checksums: 1 matched, 0 mismatched
}
