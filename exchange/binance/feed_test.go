package binance_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/binance"
	"github.com/gather-go/gather/snapshot"
)

const (
	spotURL = "https://api.binance.com/api/v3/depth?symbol=BNBBTC&limit=1000"
	futURL  = "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
)

var t0 = time.UnixMilli(1672515782000)

func newFeed(t *testing.T, sources ...snapshot.Source) (*binance.Feed, *exchange.Collector, *exchange.Checker) {
	t.Helper()
	checker := &exchange.Checker{Tickers: true}
	c, err := snapshot.New(exchange.NewConfig(checker, sources...))
	if err != nil {
		t.Fatal(err)
	}
	return binance.NewFeed(c, checker), c, checker
}

func spotDiff(first, last uint64, ms int64, bids, asks string) string {
	return fmt.Sprintf(`{"e":"depthUpdate","E":%d,"s":"BNBBTC","U":%d,"u":%d,"b":%s,"a":%s}`, ms, first, last, bids, asks)
}

func handle(t *testing.T, f *binance.Feed, msgs ...string) {
	t.Helper()
	for _, m := range msgs {
		if err := f.Handle(t0, []byte(m)); err != nil {
			t.Fatalf("Handle(%s): %v", m, err)
		}
	}
}

func best(t *testing.T, c *exchange.Collector, src string, at time.Time) (bid, ask string) {
	t.Helper()
	cut, err := c.Cut(at)
	if err != nil {
		t.Fatal(err)
	}
	_, b, ok := cut.First(src, exchange.BidSide)
	_, a, ok2 := cut.First(src, exchange.AskSide)
	if !ok || !ok2 {
		t.Fatalf("cut at %v has no best bid or ask for %s: %v", at, src, cut.Err())
	}
	return b.String(), a.String()
}

// The documented procedure: events buffered before the image, those the
// image covers dropped, the one straddling it applied, the rest in order.
func TestSpotBookFromDiffsAndImage(t *testing.T) {
	t.Parallel()
	src := binance.SourceName(binance.Spot, "BNBBTC")
	f, c, checker := newFeed(t, binance.Source(binance.Spot, "BNBBTC"))
	base := t0.UnixMilli()
	handle(t, f,
		spotDiff(100, 104, base+100, `[["0.0020","5"]]`, `[]`),                  // covered by the image
		spotDiff(105, 110, base+200, `[["0.0024","10"]]`, `[["0.0026","100"]]`), // straddles lastUpdateId 107
		spotDiff(111, 111, base+300, `[]`, `[["0.0026","0"],["0.0027","3"]]`),
	)
	img := `{"lastUpdateId":107,"bids":[["0.0023","1"],["0.0020","7"]],"asks":[["0.0026","50"],["0.0028","2"]]}`
	if err := f.HandleImage(t0, spotURL, []byte(img)); err != nil {
		t.Fatal(err)
	}
	// A ticker at update 112, then the event that ends at 112.
	handle(t, f,
		`{"u":112,"s":"BNBBTC","b":"0.0024","B":"10","a":"0.0027","A":"4"}`,
		spotDiff(112, 112, base+400, `[]`, `[["0.0027","4"]]`),
	)
	if m, mm, _ := checker.Counts(); m != 1 || mm != 0 {
		t.Fatalf("ticker checks: %d matched, %d mismatched; want 1, 0", m, mm)
	}
	bid, ask := best(t, c, src, time.UnixMilli(base+400))
	if bid != "10@0.0024" || ask != "4@0.0027" {
		t.Errorf("best bid %s ask %s, want 10@0.0024 and 4@0.0027", bid, ask)
	}
	// The image's own level 0.0020 (7) stands: the event covered by the
	// image (which set 5) was dropped.
	cut, _ := c.Cut(time.UnixMilli(base + 500))
	if v, ok := cut.Get(src, exchange.KeyOf(exchange.Bid, exchange.MustDecimal("0.002"))); !ok || v.Qty.String() != "7" {
		t.Errorf("bid 0.0020 = %v %v, want 7 from the image", v, ok)
	}
	// A ticker that disagrees with the book marks it invalid.
	handle(t, f, `{"u":113,"s":"BNBBTC","b":"0.0024","B":"11","a":"0.0027","A":"4"}`)
	err := f.Handle(t0, []byte(spotDiff(113, 113, base+600, `[]`, `[]`)))
	if !errors.Is(err, exchange.ErrMismatch) || !errors.Is(err, snapshot.ErrInvalid) {
		t.Fatalf("ticker mismatch: %v", err)
	}
}

func TestSpotGapWaitsForANewImage(t *testing.T) {
	t.Parallel()
	src := binance.SourceName(binance.Spot, "BNBBTC")
	f, c, _ := newFeed(t, binance.Source(binance.Spot, "BNBBTC"))
	base := t0.UnixMilli()
	if err := f.HandleImage(t0, spotURL, []byte(`{"lastUpdateId":10,"bids":[["1","1"]],"asks":[["2","1"]]}`)); err != nil {
		t.Fatal(err)
	}
	handle(t, f,
		spotDiff(11, 12, base+100, `[["1","2"]]`, `[]`),
		spotDiff(15, 16, base+200, `[["1","3"]]`, `[]`), // 13..14 lost
	)
	cut, _ := c.Cut(time.UnixMilli(base + 200))
	st, _ := cut.Status(src)
	if st.State != snapshot.Gapped || st.Seq != 12 {
		t.Fatalf("status after a lost event: %v seq %d, want gapped at 12", st.State, st.Seq)
	}
	if err := f.HandleImage(t0, spotURL, []byte(`{"lastUpdateId":15,"bids":[["1","9"]],"asks":[["2","1"]]}`)); err != nil {
		t.Fatal(err)
	}
	handle(t, f, spotDiff(17, 17, base+300, `[]`, `[["2","5"]]`))
	bid, ask := best(t, c, src, time.UnixMilli(base+300))
	if bid != "3@1" || ask != "5@2" {
		t.Errorf("after the new image: bid %s ask %s, want 3@1 (the buffered 15..16) and 5@2", bid, ask)
	}
}

func futDiff(first, last, prev uint64, ms int64, bids, asks string) string {
	return fmt.Sprintf(`{"e":"depthUpdate","E":%d,"T":%d,"s":"BTCUSDT","U":%d,"u":%d,"pu":%d,"b":%s,"a":%s}`, ms, ms-1, first, last, prev, bids, asks)
}

func TestFuturesBookFollowsThePuChain(t *testing.T) {
	t.Parallel()
	src := binance.SourceName(binance.USDM, "BTCUSDT")
	f, c, _ := newFeed(t, binance.Source(binance.USDM, "BTCUSDT"))
	base := t0.UnixMilli()
	handle(t, f,
		futDiff(90, 95, 80, base+100, `[["100.0","1"]]`, `[]`),    // covered
		futDiff(120, 160, 95, base+200, `[["100.0","2"]]`, `[]`),  // straddles 150
		futDiff(170, 180, 160, base+300, `[]`, `[["101.5","4"]]`), // IDs not dense
	)
	img := `{"lastUpdateId":150,"E":1672515782150,"T":1672515782149,"bids":[["100.0","9"],["99.5","1"]],"asks":[["101.5","1"],["102","1"]]}`
	if err := f.HandleImage(t0, futURL, []byte(img)); err != nil {
		t.Fatal(err)
	}
	bid, ask := best(t, c, src, time.UnixMilli(base+300))
	if bid != "2@100.0" || ask != "4@101.5" {
		t.Errorf("bid %s ask %s, want 2@100.0 and 4@101.5", bid, ask)
	}
	// An event whose pu is not the previous u is a break in the chain.
	handle(t, f, futDiff(200, 210, 190, base+400, `[]`, `[]`))
	cut, _ := c.Cut(time.UnixMilli(base + 400))
	if st, _ := cut.Status(src); st.State != snapshot.Gapped || st.Seq != 180 {
		t.Fatalf("after a broken chain: %v seq %d, want gapped at 180", st.State, st.Seq)
	}
}

func TestHandleImageRefusesOtherURLs(t *testing.T) {
	t.Parallel()
	f, _, _ := newFeed(t)
	if err := f.HandleImage(t0, "https://api.binance.com/api/v3/trades?symbol=X", []byte(`{}`)); !errors.Is(err, exchange.ErrFormat) {
		t.Fatalf("HandleImage(trades URL) = %v, want ErrFormat", err)
	}
}

// Binance says nothing of a book that does not change (its futures streams
// push "if existing"), so the Feed announces no progress of its own: a cut
// after a book's last event waits for it, and the next event, even one
// with no levels, completes the cut up to its event time.
func TestQuietBookWaitsForItsNextEvent(t *testing.T) {
	t.Parallel()
	src := binance.SourceName(binance.Spot, "BNBBTC")
	f, c, _ := newFeed(t, binance.Source(binance.Spot, "BNBBTC"))
	base := t0.UnixMilli()
	if err := f.HandleImage(t0, spotURL, []byte(`{"lastUpdateId":10,"bids":[["1","1"]],"asks":[["2","1"]]}`)); err != nil {
		t.Fatal(err)
	}
	handle(t, f, spotDiff(11, 11, base+100, `[["1","2"]]`, `[]`))
	cut, err := c.Cut(time.UnixMilli(base + 1000))
	if err != nil {
		t.Fatal(err)
	}
	if cut.Complete() {
		t.Fatalf("a cut after the book's last event is complete: %v", cut)
	}
	if st, _ := cut.Status(src); st.Seq != 11 {
		t.Fatalf("status %v, want the book at 11", st)
	}
	handle(t, f, spotDiff(12, 12, base+1100, `[]`, `[]`))
	cut, err = c.Cut(time.UnixMilli(base + 1050))
	if err != nil {
		t.Fatal(err)
	}
	if !cut.Complete() {
		t.Fatalf("after an event at +1.1s, the cut at +1.05s is incomplete: %v", cut.Err())
	}
}
