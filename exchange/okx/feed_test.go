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
