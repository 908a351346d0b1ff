package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// Two venues quote one symbol at their own pace. A cut at 09:30:00.005 holds,
// for each venue, exactly its quotes up to that time, and is complete once
// both have passed it.
func Example() {
	open := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	at := func(ms int) time.Time { return open.Add(time.Duration(ms) * time.Millisecond) }
	c, err := snapshot.New(&snapshot.Config[string, float64]{
		Sources: []snapshot.Source{{Name: "XNAS"}, {Name: "BATS"}},
	})
	if err != nil {
		panic(err)
	}
	_ = c.Apply(
		snapshot.Update[string, float64]{Source: "XNAS", Seq: 1, Time: at(1), Key: "AAPL", Value: 189.10},
		snapshot.Update[string, float64]{Source: "XNAS", Seq: 2, Time: at(7), Key: "AAPL", Value: 189.12},
		snapshot.Update[string, float64]{Source: "BATS", Seq: 1, Time: at(2), Key: "AAPL", Value: 189.11},
	)
	cut, _ := c.Cut(at(5))
	fmt.Println(cut)
	xnas, _ := cut.Get("XNAS", "AAPL")
	fmt.Println("XNAS AAPL", xnas)

	// BATS announces it has nothing more up to 09:30:00.010.
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "BATS", Seq: 1, Time: at(10)})
	cut, _ = c.Cut(at(6))
	fmt.Println(cut)
	// Output:
	// cut 2024-01-02T09:30:00.005Z incomplete: "BATS" stale by 3.000001ms
	// XNAS AAPL 189.1
	// cut 2024-01-02T09:30:00.006Z complete
}

// At waits until every required source has passed the requested time; the
// cut is taken by the update that completes it.
func ExampleCollector_At() {
	open := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	c, _ := snapshot.New(&snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}, {Name: "B"}}})
	_ = c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 1, Time: open.Add(time.Second / 2), Key: "x", Value: 1})
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "A", Seq: 1, Time: open.Add(time.Second)})
	go func() {
		// B arrives later.
		_ = c.Apply(snapshot.Update[string, int]{Source: "B", Seq: 1, Time: open.Add(2 * time.Second), Key: "y", Value: 2})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cut, err := c.At(ctx, open.Add(time.Second))
	fmt.Println(cut, err)
	fmt.Println(cut.Len("A"), cut.Len("B"))
	// Output:
	// cut 2024-01-02T09:30:01Z complete <nil>
	// 1 0
}

// An incomplete cut says, source by source, why.
func ExampleCut_Err() {
	open := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	c, _ := snapshot.New(&snapshot.Config[string, int]{
		Sources: []snapshot.Source{{Name: "A"}, {Name: "B"}, {Name: "C"}, {Name: "D", Optional: true}},
	})
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "A", Time: open.Add(time.Minute)})
	_ = c.Apply(
		snapshot.Update[string, int]{Source: "B", Seq: 1, Time: open, Key: "x", Value: 1},
		snapshot.Update[string, int]{Source: "B", Seq: 4, Time: open, Key: "x", Value: 4},
	)
	cut, _ := c.Cut(open.Add(time.Second))
	fmt.Println(cut.Err())
	for _, st := range cut.Sources() {
		fmt.Println(st.Source, st.State, st.Required)
	}
	// Output:
	// snapshot: cut incomplete at 2024-01-02T09:30:01Z: "B" gapped: missing 2-3 (2), 1 buffered; "C" never heard
	// A current true
	// B gapped true
	// C never heard true
	// D never heard false
}

// With an Interval, the collector cuts at every aligned time the moment it
// completes, and Latest returns the newest complete cut without blocking.
func ExampleCollector_Latest() {
	open := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	c, _ := snapshot.New(&snapshot.Config[string, int]{
		Sources:  []snapshot.Source{{Name: "A"}, {Name: "B"}},
		Interval: 100 * time.Millisecond,
	})
	for i, ms := range []int{40, 120, 250, 260} {
		for _, src := range []string{"A", "B"} {
			_ = c.Apply(snapshot.Update[string, int]{Source: src, Seq: uint64(i + 1), Time: open.Add(time.Duration(ms) * time.Millisecond), Key: "n", Value: ms})
		}
		fmt.Println(c.Latest())
	}
	// Output:
	// cut 2024-01-02T09:30:00Z complete
	// cut 2024-01-02T09:30:00.1Z complete
	// cut 2024-01-02T09:30:00.2Z complete
	// cut 2024-01-02T09:30:00.2Z complete
}

// A lost update holds its source back until it is resent or, as here, a full
// image recovers the source (the snapshot-and-incremental recovery of
// exchange feeds).
func ExampleCollector_Reset() {
	open := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	at := func(ms int) time.Time { return open.Add(time.Duration(ms) * time.Millisecond) }
	c, _ := snapshot.New(&snapshot.Config[string, int]{
		Sources: []snapshot.Source{{Name: "A"}},
		GapFill: func(src string, first, last uint64) { fmt.Println("ask", src, "to resend", first, "to", last) },
	})
	_ = c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 1, Time: at(1), Key: "x", Value: 1})
	_ = c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 4, Time: at(4), Key: "x", Value: 4}) // 2 and 3 lost
	cut, _ := c.Cut(at(4))
	fmt.Println(cut)
	_ = c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 3, Time: at(3),
		Entries: []snapshot.Entry[string, int]{{Key: "x", Value: 3}, {Key: "y", Value: 3}}})
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "A", Seq: 4, Time: at(9)})
	cut, _ = c.Cut(at(5))
	fmt.Println(cut)
	x, _ := cut.Get("A", "x")
	y, _ := cut.Get("A", "y")
	fmt.Println(x, y)
	// Output:
	// ask A to resend 2 to 3
	// cut 2024-01-02T09:30:00.004Z incomplete: "A" gapped: missing 2-3 (2), 1 buffered
	// cut 2024-01-02T09:30:00.005Z complete
	// 4 3
}

// Every yields a cut at each aligned time as soon as it is complete. (The
// collector reads a stopped clock here, so that the printing loop, however
// slow, never falls an interval behind and skips a cut.)
func ExampleCollector_Every() {
	now := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	c, _ := snapshot.New(&snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}},
		Now: func() time.Time { return now }})
	// A announces that it has passed the next minute.
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "A", Time: now.Add(time.Minute)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for cut, skipped := range c.Every(ctx, time.Millisecond, time.Millisecond) {
		fmt.Println(cut.Complete(), skipped)
		if n++; n == 3 {
			break
		}
	}
	// Output:
	// true 0
	// true 0
	// true 0
}

// Barrier heartbeats close an epoch (an auction, a trading session) at one
// time across sources; AtEpoch returns the cut at that time once complete.
func ExampleCollector_AtEpoch() {
	close := time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC)
	c, _ := snapshot.New(&snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A"}, {Name: "B"}}})
	_ = c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 1, Time: close.Add(-time.Second), Key: "px", Value: 100})
	_ = c.Apply(snapshot.Update[string, int]{Source: "B", Seq: 1, Time: close.Add(-time.Second), Key: "px", Value: 101})
	for _, src := range []string{"A", "B"} {
		_ = c.Heartbeat(snapshot.Heartbeat{Source: src, Seq: 1, Time: close, Epoch: 20240102})
	}
	cut, err := c.AtEpoch(context.Background(), 20240102)
	a, _ := cut.Get("A", "px")
	b, _ := cut.Get("B", "px")
	fmt.Println(cut, err, a, b)
	// Output:
	// cut 2024-01-02T16:00:00Z complete <nil> 100 101
}

// Starting an order book the way Binance documents it: subscribe to the diff
// stream, buffer it, fetch the REST image (which has no event time), drop
// the diffs it covers and apply the rest; then read the best bid and offer.
func ExampleCollector_ApplyMessage() {
	type level struct {
		Bid   bool
		Price float64
	}
	c, _ := snapshot.New(&snapshot.Config[level, float64]{
		Sources: []snapshot.Source{{Name: "binance:BTCUSDT", Messages: true, StartWithImage: true}},
		Order: &snapshot.Order[level]{Sides: 2,
			Side: func(k level) int {
				if k.Bid {
					return 0
				}
				return 1
			},
			Compare: func(a, b level) int { // best first: bids descending, asks ascending
				if a.Bid {
					a, b = b, a
				}
				switch {
				case a.Price < b.Price:
					return -1
				case a.Price > b.Price:
					return 1
				}
				return 0
			}},
	})
	at := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	diff := func(first, last uint64, ms int, chg ...snapshot.Change[level, float64]) snapshot.Message[level, float64] {
		return snapshot.Message[level, float64]{Source: "binance:BTCUSDT", First: first, Seq: last,
			Time: at.Add(time.Duration(ms) * time.Millisecond), Changes: chg}
	}
	// Diffs U..u arrive before the image: they wait.
	_ = c.ApplyMessage(diff(157, 160, 1, snapshot.Change[level, float64]{Key: level{true, 42000}, Value: 1}))
	_ = c.ApplyMessage(diff(161, 165, 2,
		snapshot.Change[level, float64]{Key: level{true, 42001}, Value: 2},
		snapshot.Change[level, float64]{Key: level{false, 42003}, Delete: true}))
	// The REST image, lastUpdateId 160: the first diff is dropped, the second applied.
	_ = c.Reset(snapshot.Image[level, float64]{Source: "binance:BTCUSDT", Seq: 160, Untimed: true,
		Entries: []snapshot.Entry[level, float64]{
			{Key: level{true, 42000}, Value: 1.5}, {Key: level{false, 42003}, Value: 0.5}, {Key: level{false, 42004}, Value: 3},
		}})
	_ = c.Heartbeat(snapshot.Heartbeat{Source: "binance:BTCUSDT", Seq: 165, Time: at.Add(time.Second)})
	cut, _ := c.Cut(at.Add(time.Second))
	bid, bq, _ := cut.First("binance:BTCUSDT", 0)
	ask, aq, _ := cut.First("binance:BTCUSDT", 1)
	st, _ := cut.Status("binance:BTCUSDT")
	fmt.Printf("%v through %d: %.0f x %g / %.0f x %g\n", st.State, st.Through, bid.Price, bq, ask.Price, aq)
	// Output:
	// current through 165: 42001 x 2 / 42004 x 3
}

// A Check hook compares the state after each message with the checksum the
// exchange sent with it (here a CRC32 of the best three levels, as Kraken
// and OKX send); a mismatch refuses the message and asks for a new image.
func ExampleView() {
	sent := map[uint64]uint32{} // the exchange's checksum per message
	crc := func(v *snapshot.View[int, int]) uint32 {
		var b []byte
		for _, e := range v.Top(0, 3, nil) {
			b = fmt.Appendf(b, "%d:%d;", e.Key, e.Value)
		}
		return crc32.ChecksumIEEE(b)
	}
	c, _ := snapshot.New(&snapshot.Config[int, int]{
		Sources: []snapshot.Source{{Name: "kraken:XBT/USD", Messages: true}},
		Order:   &snapshot.Order[int]{Compare: func(a, b int) int { return b - a }}, // bids, highest first
		Check: func(v *snapshot.View[int, int]) error {
			if want, ok := sent[v.Seq()]; ok && crc(v) != want {
				return fmt.Errorf("checksum %d, the exchange sent %d", crc(v), want)
			}
			return nil
		},
		Resync: func(source string, err error) { fmt.Println("resync", source) },
	})
	at := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	sent[1] = crc32.ChecksumIEEE([]byte("101:5;100:2;"))
	fmt.Println(c.ApplyMessage(snapshot.Message[int, int]{Source: "kraken:XBT/USD", Seq: 1, Time: at,
		Changes: []snapshot.Change[int, int]{{Key: 100, Value: 2}, {Key: 101, Value: 5}}}))
	sent[2] = crc32.ChecksumIEEE([]byte("102:1;101:5;100:2;"))
	err := c.ApplyMessage(snapshot.Message[int, int]{Source: "kraken:XBT/USD", Seq: 2, Time: at.Add(time.Millisecond),
		Changes: []snapshot.Change[int, int]{{Key: 102, Value: 7}}}) // we missed an update of 102
	fmt.Println(errors.Is(err, snapshot.ErrInvalid))
	// Output:
	// <nil>
	// resync kraken:XBT/USD
	// true
}

// A Check hook that keeps its checksum of the best three levels per source
// and computes it again only when an event may have changed them: changes
// further down the book cost it nothing.
func ExampleView_Changed() {
	sums := map[string]uint32{}
	computed := 0
	c, _ := snapshot.New(&snapshot.Config[int, int]{
		Sources: []snapshot.Source{{Name: "book"}},
		Order:   &snapshot.Order[int]{Compare: func(a, b int) int { return b - a }}, // bids, highest first
		Check: func(v *snapshot.View[int, int]) error {
			if _, ok := sums[v.Source()]; ok && !v.Changed(0, 3) {
				return nil // the kept checksum holds
			}
			var b []byte
			for _, e := range v.Top(0, 3, nil) {
				b = fmt.Appendf(b, "%d:%d;", e.Key, e.Value)
			}
			sums[v.Source()] = crc32.ChecksumIEEE(b)
			computed++
			return nil
		},
	})
	at := time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)
	img := snapshot.Image[int, int]{Source: "book", Seq: 1, Time: at}
	for p := 100; p <= 105; p++ {
		img.Entries = append(img.Entries, snapshot.Entry[int, int]{Key: p, Value: 1})
	}
	_ = c.Reset(img) // computed: an image changes everything
	for i, ch := range []snapshot.Change[int, int]{
		{Key: 90, Value: 4},      // below the best three: kept
		{Key: 104, Value: 2},     // the second best: computed
		{Key: 101, Delete: true}, // kept
	} {
		_ = c.Apply(snapshot.Update[int, int]{Source: "book", Seq: uint64(2 + i), Time: at, Key: ch.Key, Value: ch.Value, Delete: ch.Delete})
	}
	fmt.Printf("computed %d times for 4 events, checksum of 105:1;104:2;103:1; %v\n",
		computed, sums["book"] == crc32.ChecksumIEEE([]byte("105:1;104:2;103:1;")))
	// Output:
	// computed 2 times for 4 events, checksum of 105:1;104:2;103:1; true
}
