package replay

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/binance"
	"github.com/gather-go/gather/exchange/kraken"
	"github.com/gather-go/gather/exchange/okx"
	"github.com/gather-go/gather/snapshot"
)

// FuzzReplay feeds capture lines made from the input through the three
// adapters into one collector, taking cuts as the replay does: whatever
// the messages say (IDs out of order, books that disagree with their
// checksums, malformed JSON), nothing may panic or hang, and the best
// levels of the last cut's ordered views must be the levels its keys hold.
func FuzzReplay(f *testing.F) {
	for _, name := range []string{"testdata/mixed.capture", "testdata/gap.capture", "testdata/mismatch.capture"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		checker := &exchange.Checker{Tickers: true}
		sources := []snapshot.Source{
			binance.Source(binance.Spot, "BNBBTC"), binance.Source(binance.USDM, "BTCUSDT"),
			kraken.Source("XBT/USD"), okx.Source("BTC-USDT"),
		}
		r := &run{stdout: io.Discard, stderr: io.Discard, every: time.Second}
		cfg := exchange.NewConfig(checker, sources...)
		cfg.Now = func() time.Time { return r.now }
		c, err := snapshot.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.c = c
		for _, s := range sources {
			r.sources = append(r.sources, s.Name)
		}
		r.binance, r.kraken, r.okx = binance.NewFeed(c, checker), kraken.NewFeed(c, checker), okx.NewFeed(c, checker)
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			l, ok := ParseLine(sc.Bytes())
			if !ok {
				continue
			}
			l.Number = n
			r.cutsBefore(l.Time)
			if l.Time.After(r.now) {
				r.now = l.Time
			}
			r.feed("fuzz", l)
		}
		cut, err := c.Cut(r.now.Add(time.Second))
		if err != nil {
			return // behind the newest cut: nothing to look at
		}
		for _, src := range r.sources {
			for _, side := range []int{exchange.BidSide, exchange.AskSide} {
				k, v, ok := cut.First(src, side)
				if !ok {
					continue
				}
				if got, ok := cut.Get(src, k); !ok || got != v {
					t.Fatalf("%s side %d: First gives %v at %v, Get gives %v %v", src, side, v, k, got, ok)
				}
				if k.Side != exchange.Side(side) || v.Qty.IsZero() {
					t.Fatalf("%s side %d: best level %v at %v", src, side, v, k)
				}
			}
		}
	})
}
