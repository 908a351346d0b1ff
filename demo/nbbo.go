package demo

import (
	"context"
	"fmt"

	"github.com/gather-go/gather/queue"
)

// VenueQuote is one venue's quote for a symbol in a cut, in cents.
type VenueQuote struct {
	Venue string `json:"venue"`
	Bid   int64  `json:"bid"`
	Ask   int64  `json:"ask"`
}

// Book is a task's input: one symbol's quotes from every venue that was
// current in the cut.
type Book struct {
	Symbol string       `json:"symbol"`
	Quotes []VenueQuote `json:"quotes"`
}

// NBBO is a task's result: one symbol's consolidated best bid and offer
// across venues (prices in cents).
type NBBO struct {
	Symbol   string `json:"symbol"`
	Quoted   bool   `json:"quoted"` // some venue quotes it
	Bid      int64  `json:"bid"`
	BidVenue string `json:"bid_venue"`
	Ask      int64  `json:"ask"`
	AskVenue string `json:"ask_venue"`
	// Spread is Ask - Bid; MidX2 is Ask + Bid, twice the mid price, so
	// that it stays a whole number of cents.
	Spread int64 `json:"spread"`
	MidX2  int64 `json:"mid_x2"`
	// Locked: the best bid equals the best offer; Crossed: it is above.
	Locked  bool `json:"locked"`
	Crossed bool `json:"crossed"`
}

// Kind is the demo's per-symbol calculation on the queue.
var Kind = queue.NewKind[Book, NBBO]("demo.nbbo")

// Consolidate computes a symbol's NBBO from its venues' quotes: the
// highest bid and the lowest offer, each with the first venue that quotes
// it. It is the handler of Kind.
func Consolidate(_ context.Context, b Book) (NBBO, error) {
	n := NBBO{Symbol: b.Symbol}
	for _, q := range b.Quotes {
		if q.Bid <= 0 || q.Ask <= 0 {
			return n, queue.Permanent(fmt.Errorf("demo: %s quote from %s has bid %d and ask %d: want positive prices in cents",
				b.Symbol, q.Venue, q.Bid, q.Ask))
		}
		if !n.Quoted || q.Bid > n.Bid {
			n.Bid, n.BidVenue = q.Bid, q.Venue
		}
		if !n.Quoted || q.Ask < n.Ask {
			n.Ask, n.AskVenue = q.Ask, q.Venue
		}
		n.Quoted = true
	}
	if n.Quoted {
		n.Spread = n.Ask - n.Bid
		n.MidX2 = n.Ask + n.Bid
		n.Locked = n.Bid == n.Ask
		n.Crossed = n.Bid > n.Ask
	}
	return n, nil
}

// String formats the NBBO as "190.01 XNAS x 190.03 ARCX", with LOCKED or
// CROSSED appended when it is.
func (n NBBO) String() string {
	if !n.Quoted {
		return "no quote"
	}
	s := fmt.Sprintf("%s %s x %s %s", cents(n.Bid), n.BidVenue, cents(n.Ask), n.AskVenue)
	switch {
	case n.Crossed:
		s += " CROSSED"
	case n.Locked:
		s += " LOCKED"
	}
	return s
}

// cents formats a price in cents as dollars.
func cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// mid formats twice a mid price, in cents, as dollars to the half cent.
func mid(x2 int64) string {
	s := cents(x2 / 2)
	if x2%2 != 0 {
		return s + "5"
	}
	return s + "0"
}
