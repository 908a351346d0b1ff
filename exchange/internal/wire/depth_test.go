package wire

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gather-go/gather/exchange"
)

// DepthSide against a reference: a map of the prices, the message applied
// level by level, sorted, and cut to the depth.
func TestDepthSide(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, side := range []exchange.Side{exchange.Bid, exchange.Ask} {
		for _, depth := range []int{0, 1, 5, 40} {
			var d DepthSide
			ref := map[string]exchange.Decimal{}
			order := func(a, b exchange.Decimal) int {
				return exchange.Compare(exchange.Key{Side: side, Price: a}, exchange.Key{Side: side, Price: b})
			}
			for step := range 400 {
				var ls []exchange.Level
				for range r.IntN(12) {
					// "12.50" and "12.5" are one price.
					p := exchange.MustDecimal(fmt.Sprintf("%d.%d", r.IntN(60), 5))
					if r.IntN(2) == 0 {
						p = exchange.MustDecimal(fmt.Sprintf("%d.%d0", r.IntN(60), 5))
					}
					q := exchange.MustDecimal(fmt.Sprint(r.IntN(3)))
					ls = append(ls, exchange.Level{Price: p, Qty: q})
				}
				reset := step%50 == 0
				if reset {
					clear(ref)
				}
				for _, l := range ls {
					if l.Qty.IsZero() {
						if !reset {
							delete(ref, l.Price.Norm().String())
						}
						continue
					}
					ref[l.Price.Norm().String()] = l.Price.Norm()
				}
				want := slices.SortedFunc(maps.Values(ref), order)
				var wantDrop []exchange.Decimal
				for len(want) > depth {
					wantDrop = append(wantDrop, want[len(want)-1])
					delete(ref, want[len(want)-1].String())
					want = want[:len(want)-1]
				}
				var dropped []exchange.Decimal
				if reset {
					d.Reset(side, ls, depth)
					wantDrop = nil
				} else {
					d.Apply(side, ls, depth, func(p exchange.Decimal) { dropped = append(dropped, p) })
				}
				if !slices.Equal(d.prices, want) || !slices.Equal(dropped, wantDrop) {
					t.Fatalf("%v depth %d step %d, levels %v: prices %v dropped %v, want %v dropped %v",
						side, depth, step, ls, d.prices, dropped, want, wantDrop)
				}
				if d.Len() != len(want) {
					t.Fatalf("Len %d, want %d", d.Len(), len(want))
				}
				for _, p := range want {
					if !d.Has(side, p) {
						t.Fatalf("Has(%v) is false", p)
					}
				}
			}
		}
	}
}

// A message of many levels costs O(k log k), however its prices fall, and
// leaves no large buffer behind.
func TestDepthSideLargeMessage(t *testing.T) {
	var d DepthSide
	var ls []exchange.Level
	for i := range 200_000 {
		ls = append(ls, exchange.Level{Price: exchange.Decimal{Units: uint64(i + 1)}, Qty: exchange.Decimal{Units: 1}})
	}
	n := 0
	d.Apply(exchange.Bid, ls, 400, func(exchange.Decimal) { n++ })
	if d.Len() != 400 || n != 200_000-400 || cap(d.prices) > 4096 || d.spare != nil || d.upd != nil {
		t.Fatalf("after 200,000 levels: %d prices (cap %d), %d dropped, spare %d, upd %d",
			d.Len(), cap(d.prices), n, cap(d.spare), cap(d.upd))
	}
	if !d.Has(exchange.Bid, exchange.Decimal{Units: 200_000}) || d.Has(exchange.Bid, exchange.Decimal{Units: 1}) {
		t.Fatal("the best 400 bids are not the ones kept")
	}
}
