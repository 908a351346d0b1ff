package okx_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/okx"
	"github.com/gather-go/gather/snapshot"
)

// benchBook returns a collector holding a 400-level-a-side book of inst
// (as OKX's books channel sends), with or without OKX's checksum checked
// after every message, and the Seq of its image.
func benchBook(b *testing.B, checked bool) (*exchange.Collector, *exchange.Checker) {
	b.Helper()
	var checker *exchange.Checker
	if checked {
		checker = &exchange.Checker{}
	}
	c, err := snapshot.New(exchange.NewConfig(checker, okx.Source(inst)))
	if err != nil {
		b.Fatal(err)
	}
	var entries []snapshot.Entry[exchange.Key, exchange.Level]
	for i := range 400 {
		bid := exchange.Level{Price: exchange.Decimal{Units: uint64(9_000_000 - i), Scale: 1}, Qty: exchange.MustDecimal("0.12345678")}
		ask := exchange.Level{Price: exchange.Decimal{Units: uint64(9_000_001 + i), Scale: 1}, Qty: exchange.MustDecimal("1.5")}
		entries = append(entries,
			snapshot.Entry[exchange.Key, exchange.Level]{Key: exchange.KeyOf(exchange.Bid, bid.Price), Value: bid},
			snapshot.Entry[exchange.Key, exchange.Level]{Key: exchange.KeyOf(exchange.Ask, ask.Price), Value: ask})
	}
	if err := c.Reset(snapshot.Image[exchange.Key, exchange.Level]{Source: src, Seq: 1, Time: time.Unix(1, 0), Entries: entries}); err != nil {
		b.Fatal(err)
	}
	return c, checker
}

// benchApply applies b.N one-level messages (the quantity of a level in the
// top 25 changing), checking OKX's checksum of the top 25 levels after each
// if checked. The ratio of the two benchmarks is the checksum's cost
// against the update's.
func benchApply(b *testing.B, checked bool) {
	c, checker := benchBook(b, checked)
	price := exchange.Decimal{Units: 9_000_005, Scale: 1}
	key := exchange.KeyOf(exchange.Ask, price)
	qtys := [2]exchange.Decimal{exchange.MustDecimal("1.5"), exchange.MustDecimal("2.25")}
	changes := make([]snapshot.Change[exchange.Key, exchange.Level], 1)
	seq := uint64(1)
	t := time.Unix(2, 0)
	// The expected checksums, computed once for each state the level
	// alternates between.
	var sums [2]uint32
	if checked {
		for i := range sums {
			var bids, asks []exchange.Level
			for j := range okx.ChecksumDepth {
				bids = append(bids, exchange.Level{Price: exchange.Decimal{Units: uint64(9_000_000 - j), Scale: 1}, Qty: exchange.MustDecimal("0.12345678")})
				q := qtys[0]
				if j == 4 {
					q = qtys[i]
				}
				asks = append(asks, exchange.Level{Price: exchange.Decimal{Units: uint64(9_000_001 + j), Scale: 1}, Qty: q})
			}
			sums[i] = uint32(okx.Checksum(bids, asks))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		seq++
		i := int(seq % 2)
		changes[0] = snapshot.Change[exchange.Key, exchange.Level]{Key: key, Value: exchange.Level{Price: price, Qty: qtys[i]}}
		if checked {
			checker.ExpectChecksum(src, seq, sums[i], okx.BookChecksum)
		}
		t = t.Add(time.Microsecond)
		if err := c.ApplyMessage(snapshot.Message[exchange.Key, exchange.Level]{Source: src, Seq: seq, Time: t, Changes: changes}); err != nil {
			b.Fatal(err)
		}
	}
	if checked {
		if m, mm, _ := checker.Counts(); mm != 0 || m != b.N {
			b.Fatalf("checks: %d matched, %d mismatched of %d", m, mm, b.N)
		}
	}
}

func BenchmarkApplyMessage(b *testing.B)           { benchApply(b, false) }
func BenchmarkApplyMessageChecksum25(b *testing.B) { benchApply(b, true) }

// BenchmarkHandle decodes and applies an OKX books update of one level
// (formatting the message, about a tenth of the time, included): the whole
// path of a message whose checksum is not checked, for comparison with
// BenchmarkApplyMessageChecksum25.
func BenchmarkHandle(b *testing.B) {
	c, checker := benchBook(b, true)
	f := okx.NewFeed(c, checker)
	qty := [2]string{"2.25", "1.5"}
	seq := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		prev := seq
		seq++
		msg := fmt.Appendf(nil, `{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[["900000.5","%s","0","1"]],"bids":[],"ts":"%d","checksum":0,"prevSeqId":%d,"seqId":%d}]}`,
			qty[seq%2], 1000+seq, prev, seq)
		if err := f.Handle(time.Time{}, msg); err != nil {
			b.Fatal(err)
		}
	}
}
