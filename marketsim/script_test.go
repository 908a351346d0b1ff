package marketsim_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/marketsim"
)

// The first ten seconds of the default market for seed 1: what each venue
// sends, loses and holds back is the same on every run.
func ExampleScript() {
	s, err := marketsim.NewScript(&marketsim.Config{Seed: 1})
	if err != nil {
		panic(err)
	}
	type tally struct{ quotes, lost, late, beats int }
	counts := make([]tally, len(s.Venues()))
	var first []string
	for range 10_000 { // milliseconds
		for _, e := range s.Next() {
			c := &counts[e.Venue]
			switch {
			case e.Kind == marketsim.KindHeartbeat:
				c.beats++
			case e.Lost:
				c.lost++
			case e.Delay > 0:
				c.late++
			default:
				c.quotes++
			}
			if e.Kind == marketsim.KindQuote && len(first) < 4 {
				first = append(first, fmt.Sprintf("%v %s %s %d x %d", e.At, s.Venues()[e.Venue].Name,
					s.Symbols()[e.Symbol], e.Quote.Bid, e.Quote.Ask))
			}
		}
	}
	fmt.Println(strings.Join(first, "\n"))
	for v, ven := range s.Venues() {
		c := counts[v]
		fmt.Printf("%s %-11s quotes %d lost %d late %d heartbeats %d\n", ven.Name, ven.Role, c.quotes, c.lost, c.late, c.beats)
	}
	// Output:
	// 0s XNAS S299 28512 x 28514
	// 0s XNAS S259 22456 x 22458
	// 0s ARCX S230 12305 x 12308
	// 0s ARCX S238 18481 x 18484
	// XNAS clean       quotes 20000 lost 0 late 0 heartbeats 1000
	// ARCX lossy       quotes 19993 lost 7 late 0 heartbeats 1000
	// BATS goes silent quotes 16000 lost 0 late 0 heartbeats 800
	// EDGX late        quotes 19984 lost 0 late 16 heartbeats 1000
}

func TestScriptIsDeterministic(t *testing.T) {
	t.Parallel()
	run := func(seed uint64) [][]marketsim.Event {
		s, err := marketsim.NewScript(&marketsim.Config{Seed: seed, LossEvery: 50, LateEvery: 50})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]marketsim.Event
		for range 3000 {
			out = append(out, append([]marketsim.Event(nil), s.Next()...))
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two scripts of seed 7 differ")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("seeds 7 and 8 give the same script")
	}
}

func TestSilentVenueFallsSilentAndComesBack(t *testing.T) {
	t.Parallel()
	s, err := marketsim.NewScript(&marketsim.Config{SilentAt: 100 * time.Millisecond, SilentFor: 50 * time.Millisecond, SilentEvery: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	heard := map[time.Duration]bool{}
	for range 300 {
		for _, e := range s.Next() {
			if s.Venues()[e.Venue].Role == marketsim.Silent {
				heard[e.At] = true
			}
		}
	}
	for ms := range 300 {
		at := time.Duration(ms) * time.Millisecond
		silent := at >= 100*time.Millisecond && at < 150*time.Millisecond
		if silent && heard[at] {
			t.Errorf("the silent venue spoke at %v", at)
		}
		if !silent && at%(10*time.Millisecond) == 0 && !heard[at] {
			t.Errorf("the silent venue sent no heartbeat at %v", at)
		}
	}
}

func TestConfigErrorsSayWhatIsAccepted(t *testing.T) {
	t.Parallel()
	_, err := marketsim.NewScript(&marketsim.Config{Venues: 17, Symbols: -1, Rate: 2_000_000, Heartbeat: time.Hour, SilentFor: time.Minute})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Venues is 17: want 1 to 16", "Symbols is -1", "Rate is 2000000", "Heartbeat is 1h0m0s", "SilentFor 1m0s is not shorter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
