package kraken_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/kraken"
)

// model is a reference book: levels by price, cut to depth after every
// message, kept the simplest way.
type model struct {
	depth int
	sides [2]map[uint64]exchange.Level // by price units (scale fixed at 1)
}

func (m *model) set(side exchange.Side, l exchange.Level) {
	if l.Qty.IsZero() {
		delete(m.sides[side], l.Price.Units)
		return
	}
	m.sides[side][l.Price.Units] = l
}

// best returns side's levels best first.
func (m *model) best(side exchange.Side) []exchange.Level {
	out := make([]exchange.Level, 0, len(m.sides[side]))
	for _, l := range m.sides[side] {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b exchange.Level) int {
		return exchange.Compare(exchange.KeyOf(side, a.Price), exchange.KeyOf(side, b.Price))
	})
	return out
}

func (m *model) truncate() {
	for s := range m.sides {
		for _, l := range m.best(exchange.Side(s))[min(m.depth, len(m.sides[s])):] {
			delete(m.sides[s], l.Price.Units)
		}
	}
}

// FuzzFeed drives the Feed with a snapshot and updates made from the input
// (prices in a narrow band, so levels collide, enter and leave the depth),
// each update carrying the checksum of the reference book: the collector's
// book must match it after every message, and the cut the reference.
func FuzzFeed(f *testing.F) {
	f.Add([]byte{3, 10, 1, 11, 2, 9, 3, 12, 0, 8, 5, 13, 7})
	f.Add([]byte{1, 5, 5, 5, 0, 5, 0, 4, 9, 6, 1, 3, 3})
	f.Add([]byte{10, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 0, 0, 0, 0})
	f.Fuzz(fuzzFeedBody)
}

func fuzzFeedBody(t *testing.T, data []byte) {
	{
		if len(data) < 1 {
			return
		}
		depth := int(data[0]%10) + 1
		data = data[1:min(len(data), 600)] // at most about 200 updates: fast runs
		fd, c, checker := newFeed(t)
		m := &model{depth: depth, sides: [2]map[uint64]exchange.Level{{}, {}}}
		// Bids at prices 1..20, asks at 21..40 (units of 0.1).
		level := func(side exchange.Side, b1, b2 byte) exchange.Level {
			p := uint64(b1%20) + 1
			if side == exchange.Ask {
				p += 20
			}
			return exchange.Level{Price: exchange.Decimal{Units: p, Scale: 1}, Qty: exchange.Decimal{Units: uint64(b2 % 4), Scale: 2}}
		}
		for i := 0; i+1 < len(data) && i < 16; i += 2 {
			side := exchange.Side(data[i] % 2)
			l := level(side, data[i]/2, data[i+1])
			if l.Qty.IsZero() {
				continue
			}
			m.set(side, l)
		}
		// Kraken sends a snapshot sorted, without duplicates.
		m.truncate()
		snap := fmt.Sprintf(`[1,{"as":%s,"bs":%s},"book-%d","XBT/USD"]`, wire(m.best(exchange.Ask)), wire(m.best(exchange.Bid)), depth)
		t0 := time.Unix(1700000000, 0)
		if err := fd.Handle(t0, []byte(snap)); err != nil {
			t.Fatalf("snapshot %s: %v", snap, err)
		}
		data = data[min(len(data), 16):]
		for n := 0; len(data) >= 3; n++ {
			k := int(data[0]%3) + 1
			var ups [2][]exchange.Level
			for j := 0; j < k && len(data) >= 3; j++ {
				side := exchange.Side(data[0] % 2)
				l := level(side, data[1], data[2])
				ups[side] = append(ups[side], l)
				m.set(side, l)
				data = data[3:]
			}
			m.truncate()
			sum := kraken.Checksum(m.best(exchange.Ask), m.best(exchange.Bid))
			msg := fmt.Sprintf(`[1,{"a":%s},{"b":%s,"c":"%d"},"book-%d","XBT/USD"]`, wire(ups[exchange.Ask]), wire(ups[exchange.Bid]), sum, depth)
			if err := fd.Handle(t0.Add(time.Duration(n+1)*time.Millisecond), []byte(msg)); err != nil {
				t.Fatalf("update %d %s: %v", n, msg, err)
			}
		}
		if _, mm, _ := checker.Counts(); mm != 0 {
			t.Fatalf("%d checksum mismatches", mm)
		}
		cut, err := c.Cut(t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for k, v := range cut.All(src) {
			got = append(got, fmt.Sprintf("%v %v", k.Side, v))
		}
		var want []string
		for s := range m.sides {
			for _, l := range m.best(exchange.Side(s)) {
				want = append(want, fmt.Sprintf("%v %v", exchange.Side(s), l))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("book %v, reference %v", got, want)
		}
	}
}
