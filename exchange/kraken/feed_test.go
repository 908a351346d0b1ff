package kraken_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/kraken"
	"github.com/gather-go/gather/snapshot"
)

const pair = "XBT/USD"

var src = kraken.SourceName(pair)

func newFeed(t *testing.T) (*kraken.Feed, *exchange.Collector, *exchange.Checker) {
	t.Helper()
	checker := &exchange.Checker{}
	c, err := snapshot.New(exchange.NewConfig(checker, kraken.Source(pair)))
	if err != nil {
		t.Fatal(err)
	}
	return kraken.NewFeed(c, checker), c, checker
}

// wire writes levels in the v1 form, each stamped ts.
func wire(ls []exchange.Level) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf(`["%s","%s","1582905487.684110"]`, l.Price, l.Qty)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func update(asks, bids []exchange.Level, sum uint32) string {
	return fmt.Sprintf(`[42,{"a":%s},{"b":%s,"c":"%d"},"book-10","XBT/USD"]`, wire(asks), wire(bids), sum)
}

func TestFeedKeepsTheDocumentedBookAndItsChecksum(t *testing.T) {
	t.Parallel()
	f, c, checker := newFeed(t)
	t0 := time.Unix(1582905488, 0)
	snap := fmt.Sprintf(`[42,{"as":%s,"bs":%s},"book-10","XBT/USD"]`, wire(docAsks), wire(docBids))
	if err := f.Handle(t0, []byte(snap)); err != nil {
		t.Fatal(err)
	}
	// An update that changes nothing: the book is the documented one, whose
	// checksum Kraken publishes.
	if err := f.Handle(t0.Add(time.Second), []byte(update(docAsks[:1], nil, 974947235))); err != nil {
		t.Fatal(err)
	}
	// A new best bid pushes the tenth bid (0.04950) out of the depth-10
	// book; the exchange does not say so.
	newBid := levels("0.00000100", "0.05001")
	bids := append(append([]exchange.Level(nil), newBid...), docBids[:9]...)
	if err := f.Handle(t0.Add(2*time.Second), []byte(update(nil, newBid, kraken.Checksum(docAsks, bids)))); err != nil {
		t.Fatal(err)
	}
	// Deleting the new bid leaves nine bids: the pushed-out level must not
	// come back.
	del := levels("0.00000000", "0.05001")
	if err := f.Handle(t0.Add(3*time.Second), []byte(update(nil, del, kraken.Checksum(docAsks, docBids[:9])))); err != nil {
		t.Fatal(err)
	}
	if m, mm, _ := checker.Counts(); m != 3 || mm != 0 {
		t.Fatalf("checks: %d matched, %d mismatched; want 3, 0", m, mm)
	}
	if err := f.Handle(t0.Add(4*time.Second), []byte(`{"event":"heartbeat"}`)); err != nil {
		t.Fatal(err)
	}
	cut, err := c.Cut(t0.Add(4 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !cut.Complete() {
		t.Fatalf("cut incomplete after a heartbeat: %v", cut.Err())
	}
	_, bid, ok := cut.First(src, exchange.BidSide)
	_, ask, ok2 := cut.First(src, exchange.AskSide)
	if !ok || !ok2 || bid.Price.String() != "0.05000" || ask.Price.String() != "0.05005" {
		t.Errorf("best bid %v %v, ask %v %v", bid, ok, ask, ok2)
	}
	if n := cut.Len(src); n != 19 {
		t.Errorf("book has %d levels, want 19", n)
	}
}

func TestFeedRefusesAWrongChecksumUntilTheNextSnapshot(t *testing.T) {
	t.Parallel()
	f, c, checker := newFeed(t)
	t0 := time.Unix(1582905488, 0)
	snap := fmt.Sprintf(`[42,{"as":%s,"bs":%s},"book-10","XBT/USD"]`, wire(docAsks), wire(docBids))
	if err := f.Handle(t0, []byte(snap)); err != nil {
		t.Fatal(err)
	}
	err := f.Handle(t0.Add(time.Second), []byte(update(docAsks[:1], nil, 974947236)))
	if !errors.Is(err, exchange.ErrMismatch) || !errors.Is(err, snapshot.ErrInvalid) {
		t.Fatalf("wrong checksum: %v, want ErrMismatch and ErrInvalid", err)
	}
	if m, mm, _ := checker.Counts(); m != 0 || mm != 1 {
		t.Fatalf("checks: %d matched, %d mismatched; want 0, 1", m, mm)
	}
	cut, _ := c.Cut(t0.Add(time.Second))
	if st, _ := cut.Status(src); st.State != snapshot.Invalid {
		t.Fatalf("source state %v, want invalid", st.State)
	}
	// A new snapshot (Kraken resends one on resubscription) recovers.
	if err := f.Handle(t0.Add(2*time.Second), []byte(snap)); err != nil {
		t.Fatal(err)
	}
	if err := f.Handle(t0.Add(3*time.Second), []byte(update(docAsks[:1], nil, 974947235))); err != nil {
		t.Fatal(err)
	}
	if m, mm, _ := checker.Counts(); m != 1 || mm != 1 {
		t.Fatalf("checks: %d matched, %d mismatched; want 1, 1", m, mm)
	}
}

func TestFeedRefusesAnUpdateBeforeTheSnapshot(t *testing.T) {
	t.Parallel()
	f, _, _ := newFeed(t)
	err := f.Handle(time.Unix(1, 0), []byte(update(docAsks[:1], nil, 1)))
	if !errors.Is(err, exchange.ErrFormat) {
		t.Fatalf("update before snapshot: %v, want ErrFormat", err)
	}
}
