package okx_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/okx"
	"github.com/gather-go/gather/snapshot"
)

const inst = "BTC-USDT"

var src = okx.SourceName(inst)

func newFeed(t *testing.T) (*okx.Feed, *exchange.Collector, *exchange.Checker) {
	t.Helper()
	checker := &exchange.Checker{Tickers: true}
	c, err := snapshot.New(exchange.NewConfig(checker, okx.Source(inst)))
	if err != nil {
		t.Fatal(err)
	}
	return okx.NewFeed(c, checker), c, checker
}

func wire(ls []exchange.Level) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf(`["%s","%s","0","1"]`, l.Price, l.Qty)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func push(action string, asks, bids []exchange.Level, ms int64, sum int32, prev, seq int64) string {
	return fmt.Sprintf(`{"arg":{"channel":"books","instId":"BTC-USDT"},"action":%q,"data":[{"asks":%s,"bids":%s,"ts":"%d","checksum":%d,"prevSeqId":%d,"seqId":%d}]}`,
		action, wire(asks), wire(bids), ms, sum, prev, seq)
}

func TestFeedFollowsTheSeqChainAndChecksums(t *testing.T) {
	t.Parallel()
	f, c, checker := newFeed(t)
	const ms = 1597026383085
	// The book of OKX's documented checksum example, with its checksum.
	bids, asks := lv("3366.1", "7", "3366", "6"), lv("3366.8", "9", "3368", "8")
	steps := []string{
		push("snapshot", asks, bids, ms, -1881014294, -1, 1000),
		// 3366.8 leaves, 3367 arrives: the book of the odd example but for a bid.
		push("update", lv("3366.8", "0", "3367", "2"), nil, ms+100, okx.Checksum(bids, lv("3367", "2", "3368", "8")), 1000, 1007),
		// Quiet: no levels, seqId = prevSeqId.
		push("update", nil, nil, ms+1100, 0, 1007, 1007),
	}
	for _, s := range steps {
		if err := f.Handle(time.UnixMilli(ms), []byte(s)); err != nil {
			t.Fatalf("Handle(%s): %v", s, err)
		}
	}
	if m, mm, _ := checker.Counts(); m != 2 || mm != 0 {
		t.Fatalf("checks: %d matched, %d mismatched; want 2, 0", m, mm)
	}
	cut, err := c.Cut(time.UnixMilli(ms + 1100))
	if err != nil {
		t.Fatal(err)
	}
	if !cut.Complete() {
		t.Fatalf("cut at the quiet push's time is incomplete: %v", cut.Err())
	}
	_, ask, _ := cut.First(src, exchange.AskSide)
	_, bid, _ := cut.First(src, exchange.BidSide)
	if ask.String() != "2@3367" || bid.String() != "7@3366.1" {
		t.Errorf("best bid %v ask %v", bid, ask)
	}
	// A push whose prevSeqId is not the last seqId is a gap.
	if err := f.Handle(time.UnixMilli(ms), []byte(push("update", nil, lv("3366", "1"), ms+1200, 0, 1010, 1012))); err != nil {
		t.Fatal(err)
	}
	cut, _ = c.Cut(time.UnixMilli(ms + 1200))
	if st, _ := cut.Status(src); st.State != snapshot.Gapped {
		t.Fatalf("after a broken chain: %v, want gapped", st.State)
	}
}

func TestFeedContinuesThroughANumberingRestart(t *testing.T) {
	t.Parallel()
	f, c, _ := newFeed(t)
	const ms = 1597026383085
	bids, asks := lv("10", "1"), lv("11", "1")
	for _, s := range []string{
		push("snapshot", asks, bids, ms, 0, -1, 5000),
		push("update", nil, lv("10", "2"), ms+100, 0, 5000, 5003),
		push("update", nil, lv("10", "3"), ms+200, 0, 5003, 7), // OKX restarted at 7
		push("update", nil, lv("10", "4"), ms+300, 0, 7, 9),
	} {
		if err := f.Handle(time.UnixMilli(ms), []byte(s)); err != nil {
			t.Fatalf("Handle(%s): %v", s, err)
		}
	}
	cut, _ := c.Cut(time.UnixMilli(ms + 300))
	st, _ := cut.Status(src)
	if st.State != snapshot.Current && st.State != snapshot.Stale {
		t.Fatalf("state %v after a numbering restart", st.State)
	}
	if _, bid, _ := cut.First(src, exchange.BidSide); bid.Qty.String() != "4" {
		t.Errorf("best bid %v, want quantity 4 from the last push", bid)
	}
}

func TestFeedWrongChecksumInvalidates(t *testing.T) {
	t.Parallel()
	f, _, checker := newFeed(t)
	const ms = 1597026383085
	bids, asks := lv("3366.1", "7", "3366", "6"), lv("3366.8", "9", "3368", "8")
	if err := f.Handle(time.UnixMilli(ms), []byte(push("snapshot", asks, bids, ms, -1881014294, -1, 1))); err != nil {
		t.Fatal(err)
	}
	err := f.Handle(time.UnixMilli(ms), []byte(push("update", nil, lv("3366", "5"), ms+100, -1881014294, 1, 2)))
	if !errors.Is(err, exchange.ErrMismatch) || !errors.Is(err, snapshot.ErrInvalid) {
		t.Fatalf("wrong checksum: %v, want ErrMismatch and ErrInvalid", err)
	}
	if m, mm, _ := checker.Counts(); m != 1 || mm != 1 {
		t.Fatalf("checks: %d matched, %d mismatched; want 1, 1", m, mm)
	}
}

// levels returns n levels on a side from price from, one apart (down for
// bids, up for asks), quantity 1.
func levels(from, n, step int) []exchange.Level {
	var out []exchange.Level
	for i := range n {
		out = append(out, exchange.Level{Price: exchange.MustDecimal(fmt.Sprint(from + i*step)), Qty: exchange.MustDecimal("1")})
	}
	return out
}

func pushOn(channel, action string, asks, bids []exchange.Level, ms int64, prev, seq int64) string {
	return strings.Replace(push(action, asks, bids, ms, 0, prev, seq), `"channel":"books"`, `"channel":"`+channel+`"`, 1)
}

// A books50-l2-tbt book keeps 50 levels a side, as OKX's does: a level
// pushed out by a better one leaves the book (OKX sends it no more updates,
// so keeping it would leave a stale level that resurfaces once the levels
// above it go), and a snapshot deeper than the channel is cut to it.
func TestFeedKeepsTheChannelsDepth(t *testing.T) {
	t.Parallel()
	f, c, _ := newFeed(t)
	const ms = 1597026383085
	const ch = "books50-l2-tbt"
	if okx.Depth(ch) != 50 || okx.Depth("books") != 400 || okx.Depth("books-l2-tbt") != 400 || okx.Depth("bbo-tbt") != 0 {
		t.Fatalf("Depth: %d %d %d %d", okx.Depth(ch), okx.Depth("books"), okx.Depth("books-l2-tbt"), okx.Depth("bbo-tbt"))
	}
	bids, asks := levels(1000, 52, -1), levels(1001, 50, 1) // bids 1000 down to 949
	bid := func(p string) exchange.Key { return exchange.KeyOf(exchange.Bid, exchange.MustDecimal(p)) }
	steps := []struct {
		msg     string
		bids    int    // bid levels after it
		worst   string // the worst bid after it
		gone    string // a bid that must not be in the book
		bestBid string
		bestQty string
	}{
		{pushOn(ch, "snapshot", asks, bids, ms, -1, 10), 50, "951", "950", "1000", "1"},
		// A better bid pushes 951 out of the top 50.
		{pushOn(ch, "update", nil, lv("1000.5", "2"), ms+10, 10, 11), 50, "952", "951", "1000.5", "2"},
		// The two best bids go: 951 must not come back, OKX has not sent it.
		{pushOn(ch, "update", nil, lv("1000.5", "0", "1000", "0"), ms+20, 11, 12), 48, "952", "951", "999", "1"},
		// OKX refills the book from below: the level it sends is there.
		{pushOn(ch, "update", nil, lv("940", "3"), ms+30, 12, 13), 49, "940", "951", "999", "1"},
	}
	for i, s := range steps {
		if err := f.Handle(time.UnixMilli(ms), []byte(s.msg)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		cut, err := c.Cut(time.UnixMilli(ms + int64(10*i)))
		if err != nil {
			t.Fatal(err)
		}
		got := cut.Top(src, exchange.BidSide, 100, nil)
		if len(got) != s.bids || got[len(got)-1].Key != bid(s.worst) {
			t.Fatalf("step %d: %d bids down to %v, want %d down to %s", i, len(got), got[len(got)-1].Key.Price, s.bids, s.worst)
		}
		if _, ok := cut.Get(src, bid(s.gone)); ok {
			t.Fatalf("step %d: bid %s is in the book", i, s.gone)
		}
		if _, b, _ := cut.First(src, exchange.BidSide); b.Price.String() != s.bestBid || b.Qty.String() != s.bestQty {
			t.Fatalf("step %d: best bid %v, want %s@%s", i, b, s.bestQty, s.bestBid)
		}
		if n := len(cut.Top(src, exchange.AskSide, 100, nil)); n != 50 {
			t.Fatalf("step %d: %d asks, want 50", i, n)
		}
	}
}
