package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// In a synctest bubble time starts at midnight UTC, 2000-01-01, and moves
// only when every goroutine is blocked: sources stamp their updates with the
// bubble's clock, as a live feed would.

// At waits until the cut is complete or the context ends, and then returns
// the cut marked incomplete with the reasons and the context's error.
func TestAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B"), SilentAfter: 20 * time.Millisecond})
		start := time.Now()
		must(t, c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 1, Time: start, Key: "k", Value: 1}))
		must(t, c.Apply(snapshot.Update[string, int]{Source: "B", Seq: 1, Time: start, Key: "k", Value: 1}))
		must(t, c.Heartbeat(snapshot.Heartbeat{Source: "A", Seq: 1, Time: start.Add(time.Second)}))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		cut, err := c.At(ctx, start.Add(10*time.Millisecond))
		if waited := time.Since(start); waited != 50*time.Millisecond {
			t.Fatalf("At returned after %v, want the 50ms deadline", waited)
		}
		if cut == nil || cut.Complete() {
			t.Fatalf("cut %v", cut)
		}
		if !errors.Is(err, snapshot.ErrIncomplete) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		st := wantState(t, cut, "B", snapshot.Silent)
		if !st.Since.Equal(start) || !strings.Contains(err.Error(), `"B" silent since 2000-01-01T00:00:00Z`) {
			t.Fatalf("B %+v, err %v", st, err)
		}
		// The same time again: the kept cut, at once.
		again, _ := c.At(t.Context(), start.Add(10*time.Millisecond))
		if again != cut {
			t.Fatalf("At for the same time took a new cut")
		}
	})
}

// Every yields aligned cuts as they complete, skips to the newest for a slow
// reader (counting the skipped ones), and takes a cut incomplete once its
// grace has run out.
func TestEveryConflatesAndCountsSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B"), SilentAfter: 8 * time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var wg sync.WaitGroup
		for _, src := range []string{"A", "B"} {
			wg.Go(func() {
				for i := 1; i <= 120; i++ {
					if src == "B" && i > 52 {
						return // B goes silent at 52ms
					}
					now := time.Now()
					if err := c.Apply(snapshot.Update[string, int]{Source: src, Seq: uint64(i), Time: now, Key: "k", Value: i}); err != nil {
						t.Error(err)
					}
					if err := c.Heartbeat(snapshot.Heartbeat{Source: src, Seq: uint64(i), Time: now}); err != nil {
						t.Error(err)
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
		var got []string
		for cut, skipped := range c.Every(ctx, 10*time.Millisecond, 5*time.Millisecond) {
			at := cut.Time().Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
			line := fmt.Sprintf("%v skipped=%d complete=%v", at, skipped, cut.Complete())
			if !cut.Complete() {
				st, _ := cut.Status("B")
				line += " B=" + st.State.String()
			}
			got = append(got, line)
			if len(got) == 1 {
				time.Sleep(35 * time.Millisecond) // a slow reader
			}
			if len(got) == 5 {
				cancel()
			}
		}
		wg.Wait()
		want := []string{
			"0s skipped=0 complete=true",
			"30ms skipped=2 complete=true",
			"40ms skipped=0 complete=true",
			"50ms skipped=0 complete=true",
			"60ms skipped=0 complete=false B=silent",
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Every yielded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// The gap-fill hook is rate-limited per source; a gap filled before its turn
// is never reported.
func TestGapFillIsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls []string
		c := newC(t, &snapshot.Config[string, int]{
			Sources:         sources("A"),
			GapFillInterval: 100 * time.Millisecond,
			GapFill: func(src string, first, last uint64) {
				calls = append(calls, fmt.Sprintf("%v %d-%d", time.Since(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), first, last))
			},
		})
		send := func(seq uint64) { must(t, c.Apply(up("A", seq, int(seq), "k", int(seq)))) }
		send(1)
		send(3) // gap 2: reported at once
		send(2)
		time.Sleep(10 * time.Millisecond)
		send(5) // gap 4: within the interval, deferred
		send(4) // filled before its turn: never reported
		send(7) // gap 6: deferred
		time.Sleep(100 * time.Millisecond)
		send(8) // the interval has passed: gap 6 is reported now
		want := []string{"0s 2-2", "110ms 6-6"}
		if !slices.Equal(calls, want) {
			t.Fatalf("GapFill calls %v, want %v", calls, want)
		}
	})
}

// Readers of a cut see exactly that cut however many updates and cuts follow,
// without blocking the writers (run with -race).
func TestOldCutsStayValidWhileWritersRun(t *testing.T) {
	t.Parallel()
	const keys, steps = 40, 3000
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B"), Horizon: time.Hour})
	// Writer W writes key i%keys = i at event time i ms, with a heartbeat at
	// i ms: the complete cut at T holds, per key, the last i ≤ T.
	expect := func(at int) map[string]int {
		m := map[string]int{}
		for i := 1; i <= at; i++ {
			m[fmt.Sprint(i%keys)] = i
		}
		return m
	}
	var writers sync.WaitGroup
	for _, src := range []string{"A", "B"} {
		writers.Go(func() {
			for i := 1; i <= steps; i++ {
				must(t, c.Apply(up(src, uint64(i), i, fmt.Sprint(i%keys), i)))
				must(t, c.Heartbeat(hb(src, uint64(i), i)))
			}
		})
	}
	cuts := make(chan *snapshot.Cut[string, int], 16)
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			var held []*snapshot.Cut[string, int]
			for cut := range cuts {
				held = append(held, cut)
				// Re-read every cut held so far while the writers go on.
				for _, h := range held {
					at := int(h.Time().Sub(base) / time.Millisecond)
					want := expect(at)
					for _, src := range []string{"A", "B"} {
						if got := contents(h, src); !mapsEqual(got, want) {
							t.Errorf("cut at %dms, source %s: %v, want %v", at, src, got, want)
							return
						}
					}
				}
				if len(held) > 8 {
					held = held[1:]
				}
			}
		})
	}
	ctx := context.Background()
	for at := 5; at <= steps; at += 97 {
		cut, err := c.At(ctx, ms(at))
		if err != nil {
			t.Fatal(err)
		}
		cuts <- cut
	}
	writers.Wait()
	close(cuts)
	readers.Wait()
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
