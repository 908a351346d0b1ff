package binance_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/binance"
)

// FuzzFeed feeds the Feed any sequence of messages (the input split at
// newlines; a line starting with "I " is a REST depth image, the others
// WebSocket messages): none may panic or wedge the book. After them, an
// image numbered past anything before and the diff that follows it reset
// the book: when the Feed takes both, the cut after them shows exactly
// their best levels.
func FuzzFeed(f *testing.F) {
	base := t0.UnixMilli()
	f.Add([]byte(spotDiff(101, 104, base+100, `[["0.0024","10"]]`, `[]`) + "\n" +
		`I {"lastUpdateId":102,"bids":[["0.0023","1"]],"asks":[["0.0026","50"]]}` + "\n" +
		spotDiff(105, 110, base+200, `[["0.0024","10"]]`, `[["0.0026","100"]]`)))
	f.Add([]byte(`I {"lastUpdateId":10,"bids":[["1","1"]],"asks":[["2","1"]]}` + "\n" + spotDiff(12, 13, base, `[]`, `[]`)))
	f.Add([]byte(`{"e":"bookTicker","u":400900217,"s":"BNBBTC","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := binance.SourceName(binance.Spot, "BNBBTC")
		fd, c, _ := newFeed(t, binance.Source(binance.Spot, "BNBBTC"))
		msgs := bytes.Split(data[:min(len(data), 16<<10)], []byte("\n"))
		for i, m := range msgs[:min(len(msgs), 64)] {
			recv := t0.Add(time.Duration(i) * time.Millisecond)
			if img, ok := bytes.CutPrefix(m, []byte("I ")); ok {
				_ = fd.HandleImage(recv, spotURL, img) // any error, no panic
			} else {
				_ = fd.Handle(recv, m)
			}
		}
		const late = 4102444800000 // year 2100
		const id = 1 << 62
		if err := fd.HandleImage(time.UnixMilli(late), spotURL, []byte(`{"lastUpdateId":4611686018427387904,"bids":[["1","1"]],"asks":[["2","1"]]}`)); err != nil {
			return // refused: an error is enough
		}
		if err := fd.Handle(time.UnixMilli(late), []byte(spotDiff(id+1, id+1, late, `[["1","3"]]`, `[]`))); err != nil {
			return
		}
		// A cut at late is complete once the source passed it.
		if err := fd.Handle(time.UnixMilli(late+1), []byte(spotDiff(id+2, id+2, late+1, `[]`, `[]`))); err != nil {
			t.Fatalf("the diff after the image: %v", err)
		}
		cut, err := c.Cut(time.UnixMilli(late))
		if err != nil {
			t.Fatalf("cut after the image: %v", err)
		}
		if !cut.Complete() {
			return // invalid or gapped by what came before: said, not silent
		}
		_, b, ok1 := cut.First(src, exchange.BidSide)
		_, a, ok2 := cut.First(src, exchange.AskSide)
		if !ok1 || !ok2 || b.Price.String() != "1" || b.Qty.String() != "3" || a.Price.String() != "2" {
			t.Fatalf("after the image: best bid %v, ask %v; want 3 at 1, 1 at 2", b, a)
		}
	})
}
