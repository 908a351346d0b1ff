package wire

import (
	"slices"

	"github.com/gather-go/gather/exchange"
)

// DepthSide is the set of prices of one side of a book that a venue keeps
// to a fixed depth, best first, for venues that do not send the deletion of
// a level pushed out of that depth (Kraken, OKX). Prices are normalized
// ([exchange.Decimal.Norm]).
//
// A message's levels are merged in one pass, so that a message of k levels
// costs O(k log k + depth) however its prices fall, and memory stays
// O(depth) between messages. The zero value is an empty side. A DepthSide
// is not safe for concurrent use.
type DepthSide struct {
	prices []exchange.Decimal
	spare  []exchange.Decimal
	upd    []depthUpd
}

type depthUpd struct {
	p    exchange.Decimal
	keep bool
}

// Len returns the number of prices.
func (d *DepthSide) Len() int { return len(d.prices) }

// Has reports whether price p (normalized) is on the side.
func (d *DepthSide) Has(side exchange.Side, p exchange.Decimal) bool {
	_, ok := slices.BinarySearchFunc(d.prices, p, func(have, want exchange.Decimal) int {
		return exchange.Compare(exchange.Key{Side: side, Price: have}, exchange.Key{Side: side, Price: want})
	})
	return ok
}

// Reset replaces the prices with those of the levels of ls with a quantity
// (levels without one are skipped, as an image skips them), cut to depth.
func (d *DepthSide) Reset(side exchange.Side, ls []exchange.Level, depth int) {
	d.prices = d.prices[:0]
	d.apply(side, ls, depth, nil, true)
}

// Apply applies the levels of one message on side, in the order sent (a
// zero quantity removes a price, the last level of a price wins), then cuts
// the side to depth, calling drop (if not nil) with each price cut off,
// worst first.
func (d *DepthSide) Apply(side exchange.Side, ls []exchange.Level, depth int, drop func(exchange.Decimal)) {
	d.apply(side, ls, depth, drop, false)
}

func (d *DepthSide) apply(side exchange.Side, ls []exchange.Level, depth int, drop func(exchange.Decimal), skipZero bool) {
	cmp := func(a, b exchange.Decimal) int {
		return exchange.Compare(exchange.Key{Side: side, Price: a}, exchange.Key{Side: side, Price: b})
	}
	d.upd = d.upd[:0]
	for _, l := range ls {
		if !skipZero || !l.Qty.IsZero() {
			d.upd = append(d.upd, depthUpd{p: l.Price.Norm(), keep: !l.Qty.IsZero()})
		}
	}
	// Stable, so that of the levels of one price the last sent comes last.
	slices.SortStableFunc(d.upd, func(a, b depthUpd) int { return cmp(a.p, b.p) })
	out := d.spare[:0]
	i, j := 0, 0
	for i < len(d.prices) || j < len(d.upd) {
		if j+1 < len(d.upd) && cmp(d.upd[j].p, d.upd[j+1].p) == 0 {
			j++ // a later level of the same price follows
			continue
		}
		var c int
		switch {
		case j == len(d.upd):
			c = -1
		case i == len(d.prices):
			c = 1
		default:
			c = cmp(d.prices[i], d.upd[j].p)
		}
		switch {
		case c < 0:
			out = append(out, d.prices[i])
			i++
		case c > 0:
			if d.upd[j].keep {
				out = append(out, d.upd[j].p)
			}
			j++
		default:
			if d.upd[j].keep {
				out = append(out, d.upd[j].p)
			}
			i++
			j++
		}
	}
	d.prices, d.spare = out, d.prices
	for len(d.prices) > depth {
		p := d.prices[len(d.prices)-1]
		d.prices = d.prices[:len(d.prices)-1]
		if drop != nil {
			drop(p)
		}
	}
	// A huge message leaves no huge buffers behind.
	if limit := 1024 + 2*min(depth, 1<<20); cap(d.spare) > limit || cap(d.upd) > limit {
		d.spare, d.upd = nil, nil
		if cap(d.prices) > limit {
			d.prices = slices.Clip(slices.Clone(d.prices))
		}
	}
}
