package okx_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/okx"
)

const ms = 1597026383085

// FuzzFeed feeds the Feed any sequence of messages (the input split at
// newlines): none may panic or wedge the book. After them, a snapshot
// numbered past anything before resets the book: when the Feed takes it,
// the cut after it shows exactly the snapshot's best levels.
func FuzzFeed(f *testing.F) {
	bids, asks := lv("3366.1", "7", "3366", "6"), lv("3366.8", "9", "3368", "8")
	f.Add([]byte(push("snapshot", asks, bids, ms, -1881014294, -1, 1000) + "\n" +
		push("update", lv("3366.8", "0", "3367", "2"), nil, ms+100, okx.Checksum(bids, lv("3367", "2", "3368", "8")), 1000, 1007) + "\n" +
		push("update", nil, nil, ms+1100, 0, 1007, 1007)))
	f.Add([]byte(push("update", asks, nil, ms, 5, 7, 3) + "\n" + push("snapshot", nil, bids, ms-5, 0, -1, 2)))
	// A books50-l2-tbt book pushed past its depth, then thinned.
	f.Add([]byte(pushOn("books50-l2-tbt", "snapshot", levels(101, 50, 1), levels(100, 51, -1), ms, -1, 5) + "\n" +
		pushOn("books50-l2-tbt", "update", nil, lv("100.5", "1", "99.5", "2"), ms+1, 5, 6) + "\n" +
		pushOn("books50-l2-tbt", "update", lv("101", "0"), lv("100.5", "0", "100", "0"), ms+2, 6, 7)))
	f.Add([]byte(`{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["1","1","0","1"]],"bids":[["2","1","0","1"]],"ts":"1","seqId":9}]}` + "\n" + `{"event":"subscribe"}`))
	f.Fuzz(fuzzFeedBody)
}

func fuzzFeedBody(t *testing.T, data []byte) {
	{
		fd, c, _ := newFeed(t)
		msgs := bytes.Split(data[:min(len(data), 16<<10)], []byte("\n"))
		t0 := time.UnixMilli(ms)
		for i, m := range msgs[:min(len(msgs), 64)] {
			_ = fd.Handle(t0.Add(time.Duration(i)*time.Millisecond), m) // any error, no panic
		}
		// Year 2100, and a seqId past any an input can reach with the
		// Feed's restart shift (at most 2^63 + 2^63).
		const late = 4102444800000
		fb, fa := lv("10", "1", "9", "2"), lv("11", "3", "12", "4")
		final := push("snapshot", fa, fb, late, okx.Checksum(fb, fa), -1, 1<<62)
		quiet := push("update", nil, nil, late+1, 0, 1<<62, 1<<62) // a cut at late is complete once the source passed it
		if err := fd.Handle(time.UnixMilli(late), []byte(final)); err != nil {
			return // refused (a time that went backwards, say): an error is enough
		}
		if err := fd.Handle(time.UnixMilli(late+1), []byte(quiet)); err != nil {
			t.Fatalf("the quiet push after the snapshot: %v", err)
		}
		cut, err := c.Cut(time.UnixMilli(late))
		if err != nil {
			t.Fatalf("cut after the snapshot: %v", err)
		}
		if !cut.Complete() {
			return // the source is invalid or gapped by what came before: said, not silent
		}
		_, b, ok1 := cut.First(src, exchange.BidSide)
		_, a, ok2 := cut.First(src, exchange.AskSide)
		if !ok1 || !ok2 || b.String() != fb[0].String() || a.String() != fa[0].String() {
			t.Fatalf("after the snapshot: best bid %v, ask %v; want %v, %v", b, a, fb[0], fa[0])
		}
	}
}
