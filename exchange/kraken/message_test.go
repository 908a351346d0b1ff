package kraken_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/kraken"
)

// Fixtures written from the v1 book channel's documented message forms.
const (
	docSnapshot = `[0,{"as":[["5541.30000","2.50700000","1534614248.123678"],["5541.80000","0.33000000","1534614098.345543"],["5542.70000","0.64700000","1534614244.654432"]],"bs":[["5541.20000","1.52900000","1534614248.765567"],["5539.90000","0.30000000","1534614241.769870"],["5539.50000","5.00000000","1534613831.243486"]]},"book-100","XBT/USD"]`
	docUpdate   = `[1234,{"a":[["5541.30000","2.50700000","1534614248.456738"],["5542.50000","0.40100000","1534614248.456738"]]},{"b":[["5541.30000","0.00000000","1534614335.345903"]],"c":"974942666"},"book-10","XBT/USD"]`
	docRepub    = `[1234,{"a":[["5541.30000","2.50700000","1534614248.456738","r"],["5542.50000","0.40100000","1534614248.456738"]],"c":"974942666"},"book-10","XBT/USD"]`
)

func TestDecodeSnapshot(t *testing.T) {
	t.Parallel()
	m, err := kraken.Decode([]byte(docSnapshot))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != kraken.Snapshot || m.Pair != "XBT/USD" || m.Depth != 100 || m.Channel != "book-100" || m.HasChecksum {
		t.Fatalf("decoded %+v", m)
	}
	if len(m.Asks) != 3 || len(m.Bids) != 3 {
		t.Fatalf("got %d asks and %d bids, want 3 and 3", len(m.Asks), len(m.Bids))
	}
	if m.Asks[0].Price.String() != "5541.30000" || m.Asks[0].Volume.String() != "2.50700000" {
		t.Errorf("first ask %v %v", m.Asks[0].Price, m.Asks[0].Volume)
	}
	if want := time.Unix(1534614248, 765567000).UTC(); !m.Time().Equal(want) {
		t.Errorf("Time() = %v, want %v", m.Time(), want)
	}
}

func TestDecodeUpdateWithChecksumInSecondPayload(t *testing.T) {
	t.Parallel()
	m, err := kraken.Decode([]byte(docUpdate))
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != kraken.Update || m.ChannelID != 1234 || m.Depth != 10 || !m.HasChecksum || m.Checksum != 974942666 {
		t.Fatalf("decoded %+v", m)
	}
	if len(m.Asks) != 2 || len(m.Bids) != 1 || !m.Bids[0].Volume.IsZero() {
		t.Fatalf("levels: asks %v bids %v", m.Asks, m.Bids)
	}
	r, err := kraken.Decode([]byte(docRepub))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Asks[0].Republish || r.Asks[1].Republish || !r.HasChecksum {
		t.Fatalf("republish flags: %+v", r.Asks)
	}
}

func TestDecodeEventsAndOtherChannels(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]kraken.Kind{
		`{"event":"heartbeat"}`: kraken.Heartbeat,
		`{"connectionID":8628615390848610000,"event":"systemStatus","status":"online","version":"1.0.0"}`:                                                           kraken.Other,
		`{"channelID":10001,"channelName":"book-10","event":"subscriptionStatus","pair":"XBT/EUR","status":"subscribed","subscription":{"depth":10,"name":"book"}}`: kraken.Other,
		`[0,["5698.40000","5700.00000","1542057299.545897","1.01234567","0.98765432"],"spread","XBT/USD"]`:                                                          kraken.Other,
	} {
		m, err := kraken.Decode([]byte(msg))
		if err != nil {
			t.Errorf("Decode(%s): %v", msg, err)
			continue
		}
		if m.Kind != want {
			t.Errorf("Decode(%s).Kind = %v, want %v", msg, m.Kind, want)
		}
	}
}

func TestDecodeRefusesMalformedBooks(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		``, `x`, `[1,2]`, `{"event":`,
		`[0,{"as":[["1.0","2.0"]]},"book-10","XBT/USD"]`,                       // no time
		`[0,{"as":[["1.0","2.0","1.5","x"]]},"book-10","XBT/USD"]`,             // bad flag
		`[0,{"as":[["-1.0","2.0","1.5"]]},"book-10","XBT/USD"]`,                // negative price
		`[0,{"as":[["1e3","2.0","1.5"]]},"book-10","XBT/USD"]`,                 // exponent
		`[0,{"as":[[1.0,"2.0","1.5"]]},"book-10","XBT/USD"]`,                   // number, not string
		`[0,{"a":[["1.0","2.0","1.5"]],"c":"-1"},"book-10","XBT/USD"]`,         // bad checksum
		`[0,{"a":[["1.0","2.0","1.5"]],"c":"4294967296"},"book-10","XBT/USD"]`, // checksum too large
		`[0,{"as":[]},{"a":[]},"book-10","XBT/USD"]`,                           // mixed
		`[0,{"x":1},"book-10","XBT/USD"]`,                                      // nothing
		`[0,{"as":[]},"book-x","XBT/USD"]`,                                     // bad depth
		`[0,{"a":[],"c":"1"},{"b":[],"c":"2"},"book-10","XBT/USD"]`,            // two checksums
	} {
		_, err := kraken.Decode([]byte(msg))
		if err == nil {
			t.Errorf("Decode(%s) succeeded", msg)
			continue
		}
		if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
			t.Errorf("Decode(%s) = %v, want ErrFormat or ErrDecimal", msg, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{docSnapshot, docUpdate, docRepub, `{"event":"heartbeat"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := kraken.Decode(msg)
		if err != nil {
			if !errors.Is(err, exchange.ErrFormat) && !errors.Is(err, exchange.ErrDecimal) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrDecimal", err)
			}
			return
		}
		if (m.Kind == kraken.Snapshot || m.Kind == kraken.Update) && m.Depth <= 0 {
			t.Fatalf("book message with depth %d", m.Depth)
		}
		kraken.Checksum(levelsOf(m.Asks), levelsOf(m.Bids))
	})
}

func levelsOf(ls []kraken.Level) []exchange.Level {
	out := make([]exchange.Level, len(ls))
	for i, l := range ls {
		out[i] = exchange.Level{Price: l.Price, Qty: l.Volume}
	}
	return out
}
