package exchange

import "fmt"

// Side is the side of an order book a price level is on.
type Side uint8

// The sides of a book. The zero value is Bid.
const (
	Bid Side = iota // buy orders, best first = highest price
	Ask             // sell orders, best first = lowest price
)

// String returns "bid" or "ask".
func (s Side) String() string {
	switch s {
	case Bid:
		return "bid"
	case Ask:
		return "ask"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// Key identifies a price level of one book: its side and its price in
// canonical form ([Decimal.Norm]), so that "3366" and "3366.0" are one level.
// A book's source (venue and symbol) is the collector's source, not part of
// the key. The zero value is the bid at price 0.
type Key struct {
	Side  Side
	Price Decimal
}

// KeyOf returns the key of the level at price on side.
func KeyOf(side Side, price Decimal) Key { return Key{Side: side, Price: price.Norm()} }

// Compare orders keys the way a book is read, best first on each side:
// bids by descending price, then asks by ascending price. So the first key of
// a book in this order is its best bid, and the first ask follows the last
// bid. It returns -1, 0 or +1.
func Compare(a, b Key) int {
	if a.Side != b.Side {
		if a.Side < b.Side {
			return -1
		}
		return 1
	}
	if a.Side == Bid {
		return b.Price.Cmp(a.Price)
	}
	return a.Price.Cmp(b.Price)
}

// Level is a price level as the exchange sent it: the price and quantity with
// their written scale, which checksums depend on. A Level in a book never has
// a zero quantity (a zero quantity deletes the level).
type Level struct {
	Price Decimal `json:"price"`
	Qty   Decimal `json:"qty"`
}

// String returns "qty@price".
func (l Level) String() string { return l.Qty.String() + "@" + l.Price.String() }
