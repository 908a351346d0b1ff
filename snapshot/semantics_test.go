package snapshot_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// A cut at T holds, per source, exactly the updates with event time ≤ T, in
// sequence order, whatever order they arrived in across sources.
func TestCutIsConsistentAcrossSources(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B")})
	// B runs ahead, A arrives out of order.
	must(t, c.Apply(up("B", 1, 1, "x", 10), up("B", 2, 5, "x", 50), up("B", 3, 9, "y", 90)))
	must(t, c.Apply(up("A", 2, 4, "x", 2), up("A", 1, 2, "x", 1), up("A", 3, 6, "x", 3)))
	must(t, c.Heartbeat(hb("A", 3, 7)))
	cut := cutAt(t, c, 5)
	if !cut.Complete() {
		t.Fatalf("cut at 5ms should be complete: %v", cut.Err())
	}
	wantContents(t, cut, "A", map[string]int{"x": 2})  // seq 3 (6ms) is after the cut
	wantContents(t, cut, "B", map[string]int{"x": 50}) // y (9ms) is after the cut
	cut2 := cutAt(t, c, 7)
	wantContents(t, cut2, "A", map[string]int{"x": 3})
	wantContents(t, cut2, "B", map[string]int{"x": 50})
	// The first cut is unchanged by the second.
	wantContents(t, cut, "A", map[string]int{"x": 2})
	if got := cut.Time(); !got.Equal(ms(5)) {
		t.Fatalf("Time = %v", got)
	}
}

// A source with events contributes all updates of an event or none.
func TestCutNeverHoldsPartOfAnEvent(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "X", Events: true}}})
	ev := func(seq uint64, key string, end bool) snapshot.Update[string, int] {
		u := up("X", seq, 3, key, int(seq))
		u.EndOfEvent = end
		return u
	}
	must(t, c.Apply(snapshot.Update[string, int]{Source: "X", Seq: 1, Time: ms(1), Key: "a", Value: 1, EndOfEvent: true}))
	must(t, c.Apply(ev(2, "bid", false), ev(3, "ask", false))) // a trade sweeping two levels, not finished
	cut := cutAt(t, c, 3)
	wantContents(t, cut, "X", map[string]int{"a": 1})
	wantState(t, cut, "X", snapshot.Stale)
	must(t, c.Apply(ev(4, "last", true)))
	cut = cutAt(t, c, 4)
	wantContents(t, cut, "X", map[string]int{"a": 1, "bid": 2, "ask": 3, "last": 4})
	// An event time that differs inside an event is refused.
	err := c.Apply(snapshot.Update[string, int]{Source: "X", Seq: 5, Time: ms(5), Key: "a", Value: 5},
		snapshot.Update[string, int]{Source: "X", Seq: 6, Time: ms(6), Key: "a", Value: 6, EndOfEvent: true})
	if !errors.Is(err, snapshot.ErrTime) || !strings.Contains(err.Error(), "seq 6") {
		t.Fatalf("event time change inside an event: %v", err)
	}
}

// Complete means every required source passed T; otherwise each source says
// why, and optional sources never block.
func TestIncompleteCutSaysWhy(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{
		Sources: []snapshot.Source{{Name: "ok"}, {Name: "slow"}, {Name: "gappy"}, {Name: "quiet"}, {Name: "opt", Optional: true}},
	})
	must(t, c.Apply(up("ok", 1, 1, "k", 1)))
	must(t, c.Heartbeat(hb("ok", 1, 100)))
	must(t, c.Apply(up("slow", 1, 40, "k", 1)))
	must(t, c.Apply(up("gappy", 1, 1, "k", 1), up("gappy", 4, 2, "k", 4), up("gappy", 5, 3, "k", 5)))
	must(t, c.Apply(up("opt", 1, 1, "k", 1)))
	cut := cutAt(t, c, 90)
	if cut.Complete() {
		t.Fatal("cut complete with sources behind")
	}
	wantState(t, cut, "ok", snapshot.Current)
	if st := wantState(t, cut, "slow", snapshot.Stale); st.Lag != 50*time.Millisecond+time.Nanosecond {
		t.Fatalf("slow lag = %v", st.Lag)
	}
	st := wantState(t, cut, "gappy", snapshot.Gapped)
	if !slices.Equal(st.Missing, []snapshot.SeqRange{{First: 2, Last: 3}}) || st.Buffered != 2 || st.MissingCount != 2 {
		t.Fatalf("gappy: %+v", st)
	}
	wantState(t, cut, "quiet", snapshot.NeverHeard)
	wantState(t, cut, "opt", snapshot.Stale)
	err := cut.Err()
	if !errors.Is(err, snapshot.ErrIncomplete) {
		t.Fatalf("Err = %v", err)
	}
	for _, want := range []string{`"slow" stale by 50.000001ms`, `"gappy" gapped: missing 2-3 (2), 2 buffered`, `"quiet" never heard`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Err %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"opt"`) || strings.Contains(err.Error(), `"ok"`) {
		t.Errorf("Err %q names a source that does not hold the cut back", err)
	}
	// Everyone catches up, except the optional source: complete.
	must(t, c.Apply(up("gappy", 2, 2, "k", 2), up("gappy", 3, 2, "k", 3)))
	must(t, c.Heartbeat(hb("gappy", 5, 100)))
	must(t, c.Heartbeat(hb("slow", 1, 100)))
	must(t, c.Heartbeat(hb("quiet", 0, 100)))
	cut = cutAt(t, c, 95)
	if !cut.Complete() || cut.Err() != nil {
		t.Fatalf("cut should be complete: %v", cut.Err())
	}
	wantState(t, cut, "opt", snapshot.Stale)
	wantContents(t, cut, "gappy", map[string]int{"k": 5})
}

// With per-key sequence numbers, a gap marks only the keys shown to have
// missed an update.
func TestGapMarksOnlyAffectedKeysSuspect(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("X")})
	ku := func(seq uint64, key string, kseq uint64) snapshot.Update[string, int] {
		u := up("X", seq, int(seq), key, int(seq))
		u.KeySeq = kseq
		return u
	}
	must(t, c.Apply(ku(1, "a", 1), ku(2, "b", 1), ku(3, "c", 1)))
	// seq 4 (a second update of "a") is lost; 5 and 6 arrive.
	must(t, c.Apply(ku(5, "a", 3), ku(6, "b", 2)))
	st := wantState(t, cutAt(t, c, 6), "X", snapshot.Gapped)
	if !slices.Equal(st.Suspect, []string{"a"}) {
		t.Fatalf("Suspect = %v, want [a]", st.Suspect)
	}
}

// A duplicate (a redelivery, the other line of an A/B pair) is ignored and
// counted; a sequence far behind is an error that changes nothing.
func TestDuplicatesAreIgnoredAndCounted(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), DupWindow: 4})
	for seq := uint64(1); seq <= 10; seq++ {
		lineA := up("A", seq, int(seq), "k", int(seq))
		lineB := lineA
		lineB.Value = -1 // a duplicate is never applied, whatever it carries
		must(t, c.Apply(lineA, lineB))
	}
	must(t, c.Apply(up("A", 12, 12, "k", 12), up("A", 12, 12, "k", -1))) // a buffered duplicate
	cut := cutAt(t, c, 10)
	wantContents(t, cut, "A", map[string]int{"k": 10})
	if st, _ := cut.Status("A"); st.Duplicates != 11 {
		t.Fatalf("Duplicates = %d, want 11", st.Duplicates)
	}
	before := c.Stats()
	err := c.Apply(up("A", 5, 5, "k", 5)) // 6 behind the next expected 11, beyond the window of 4
	var ie *snapshot.InputError
	if !errors.As(err, &ie) || !errors.Is(err, snapshot.ErrSequence) || ie.Seq != 5 || ie.Source != "A" ||
		!strings.Contains(err.Error(), "expected 11") {
		t.Fatalf("far-behind sequence: %v", err)
	}
	if after := c.Stats(); after != before {
		t.Fatalf("a refused update changed the stats: %+v -> %+v", before, after)
	}
}

// A gap holds the source's frontier; a bounded buffer keeps what came after it;
// the gap-fill hook is called once per gap.
func TestGapHoldsFrontierAndCallsGapFillOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	c := newC(t, &snapshot.Config[string, int]{
		Sources: sources("A"),
		GapFill: func(src string, first, last uint64) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, fmt.Sprintf("%s %d-%d", src, first, last))
		},
		GapFillInterval: time.Nanosecond,
	})
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	must(t, c.Apply(up("A", 4, 4, "k", 4)))
	must(t, c.Apply(up("A", 5, 5, "k", 5))) // same gap: no new call
	must(t, c.Heartbeat(hb("A", 5, 6)))
	cut := cutAt(t, c, 5)
	wantContents(t, cut, "A", map[string]int{"k": 1})
	st := wantState(t, cut, "A", snapshot.Gapped)
	if st.Seq != 1 || st.Buffered != 2 {
		t.Fatalf("status %+v", st)
	}
	must(t, c.Apply(up("A", 2, 2, "k", 2), up("A", 3, 3, "k", 3)))
	must(t, c.Apply(up("A", 7, 7, "k", 7))) // a second gap
	mu.Lock()
	got := slices.Clone(calls)
	mu.Unlock()
	if !slices.Equal(got, []string{"A 2-3", "A 6-6"}) {
		t.Fatalf("GapFill calls %v, want [A 2-3 A 6-6]", got)
	}
	cut = cutAt(t, c, 6)
	wantContents(t, cut, "A", map[string]int{"k": 5})
}

// Overflowing the buffer marks the source gapped until a reset, with an error
// that says so; memory stays bounded.
func TestOverflowGapsSourceUntilReset(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), MaxBuffered: 8})
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	for seq := uint64(3); seq <= 8; seq++ {
		must(t, c.Apply(up("A", seq, int(seq), "k", int(seq))))
	}
	must(t, c.Apply(up("A", 9, 9, "k", 9)))
	err := c.Apply(up("A", 10, 10, "k", 10)) // 8 beyond the next expected 2
	if !errors.Is(err, snapshot.ErrOverflow) || !strings.Contains(err.Error(), "10 is 8 beyond the next expected 2") ||
		!strings.Contains(err.Error(), "until a reset") {
		t.Fatalf("overflow: %v", err)
	}
	// Even the missing update is refused now: data was lost.
	if err := c.Apply(up("A", 2, 2, "k", 2)); !errors.Is(err, snapshot.ErrOverflow) {
		t.Fatalf("after overflow: %v", err)
	}
	if st := c.Stats(); st.Buffered > 8 {
		t.Fatalf("buffered %d > MaxBuffered", st.Buffered)
	}
	st := wantState(t, cutAt(t, c, 5), "A", snapshot.Gapped)
	if !errors.Is(st.Err, snapshot.ErrOverflow) {
		t.Fatalf("status Err = %v", st.Err)
	}
	must(t, c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 10, Time: ms(10), Entries: []snapshot.Entry[string, int]{{Key: "k", Value: 10}}}))
	must(t, c.Apply(up("A", 11, 11, "k", 11)))
	must(t, c.Heartbeat(hb("A", 11, 20)))
	cut := cutAt(t, c, 12)
	if !cut.Complete() {
		t.Fatalf("after reset: %v", cut.Err())
	}
	wantContents(t, cut, "A", map[string]int{"k": 11})
}

// A reset installs a full image with its sequence atomically: buffered
// updates at or below it are dropped, the rest applied.
func TestResetInstallsImageAtomically(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A")})
	must(t, c.Apply(up("A", 1, 1, "a", 1), up("A", 2, 2, "gone", 2)))
	must(t, c.Apply(up("A", 5, 5, "a", -5), up("A", 6, 6, "a", 6), up("A", 7, 7, "b", 7))) // 3, 4 lost
	cut := cutAt(t, c, 2)
	wantContents(t, cut, "A", map[string]int{"a": 1, "gone": 2})
	// The image is current to seq 5 at 5ms: it holds "a" as of then, and
	// "gone" was deleted by one of the lost updates.
	must(t, c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 5, Time: ms(5),
		Entries: []snapshot.Entry[string, int]{{Key: "a", Value: 5}, {Key: "c", Value: 3}}}))
	// Between the old progress and the image, the source's state is unknown.
	wantState(t, cutAt(t, c, 4), "A", snapshot.Resetting)
	cut = cutAt(t, c, 6)
	wantContents(t, cut, "A", map[string]int{"a": 6, "c": 3})
	wantState(t, cut, "A", snapshot.Current)
	cut = cutAt(t, c, 7)
	wantContents(t, cut, "A", map[string]int{"a": 6, "c": 3, "b": 7})
	// Bad images change nothing.
	for _, img := range []snapshot.Image[string, int]{
		{Source: "A", Time: ms(9)},         // no sequence
		{Source: "A", Seq: 3, Time: ms(9)}, // behind the applied seq 7
		{Source: "A", Seq: 9},              // no time
	} {
		if err := c.Reset(img); err == nil {
			t.Fatalf("Reset(%+v) accepted", img)
		}
	}
	must(t, c.Heartbeat(hb("A", 7, 9)))
	wantContents(t, cutAt(t, c, 8), "A", map[string]int{"a": 6, "c": 3, "b": 7})
}

// An update older than a cut already taken follows the late policy.
func TestLatePolicies(t *testing.T) {
	t.Parallel()
	setup := func(p snapshot.LatePolicy) (*snapshot.Collector[string, int], *snapshot.Cut[string, int]) {
		c := newC(t, &snapshot.Config[string, int]{Sources: sources("fast", "slow"), Late: p})
		must(t, c.Apply(up("fast", 1, 1, "k", 1)))
		must(t, c.Heartbeat(hb("fast", 1, 50)))
		must(t, c.Apply(up("slow", 1, 1, "k", 1)))
		cut := cutAt(t, c, 10) // slow is stale at 1ms
		if cut.Complete() {
			t.Fatal("cut complete while slow is behind")
		}
		return c, cut
	}
	late := up("slow", 2, 5, "k", 5) // event time 5ms, before the cut at 10ms

	t.Run("revise", func(t *testing.T) {
		c, first := setup(snapshot.LateRevise)
		must(t, c.Apply(late))
		must(t, c.Heartbeat(hb("slow", 2, 20)))
		l := c.Latest()
		if l == nil || !l.Time().Equal(ms(10)) || l.Revision() != 1 || !l.Complete() {
			t.Fatalf("Latest = %v, want the cut at 10ms reissued complete", l)
		}
		wantContents(t, l, "slow", map[string]int{"k": 5})
		wantContents(t, first, "slow", map[string]int{"k": 1}) // the first issue is immutable
		if st, _ := l.Status("slow"); st.Late != 1 {
			t.Fatalf("Late = %d", st.Late)
		}
	})
	t.Run("drop", func(t *testing.T) {
		c, _ := setup(snapshot.LateDrop)
		must(t, c.Apply(late))
		must(t, c.Apply(up("slow", 3, 12, "other", 12)))
		cut := cutAt(t, c, 15)
		wantContents(t, cut, "slow", map[string]int{"k": 1, "other": 12}) // k=5 never appears
		if st, _ := cut.Status("slow"); st.Late != 1 || st.Seq != 3 {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("drop-whole-event", func(t *testing.T) {
		// An event that straddles a cut (part sequenced before it, the rest
		// after) is late as a whole: under LateDrop none of it ever shows.
		c := newC(t, &snapshot.Config[string, int]{Late: snapshot.LateDrop,
			Sources: []snapshot.Source{{Name: "E", Events: true}, {Name: "F"}}})
		must(t, c.Heartbeat(hb("F", 0, 100)))
		ev := func(seq uint64, at int, key string, end bool) snapshot.Update[string, int] {
			u := up("E", seq, at, key, int(seq))
			u.EndOfEvent = end
			return u
		}
		must(t, c.Apply(ev(1, 1, "a", true), ev(2, 5, "b", false)))
		cutAt(t, c, 10)
		must(t, c.Apply(ev(3, 5, "c", true)))                         // ends the event after the cut: late
		must(t, c.Apply(ev(4, 12, "d", false), ev(5, 12, "e", true))) // a later event, in time
		must(t, c.Heartbeat(hb("E", 5, 20)))
		cut := cutAt(t, c, 15)
		wantContents(t, cut, "E", map[string]int{"a": 1, "d": 4, "e": 5})
		if st, _ := cut.Status("E"); st.Late != 1 {
			t.Fatalf("Late = %d, want 1", st.Late)
		}
	})
	t.Run("reject", func(t *testing.T) {
		c, _ := setup(snapshot.LateReject)
		before := c.Stats()
		err := c.Apply(late)
		if !errors.Is(err, snapshot.ErrLate) || !strings.Contains(err.Error(), `"slow" seq 2`) {
			t.Fatalf("late update: %v", err)
		}
		if after := c.Stats(); after != before {
			t.Fatalf("a refused update changed the stats: %+v -> %+v", before, after)
		}
	})
	t.Run("reject-buffered", func(t *testing.T) {
		// With disorder, a buffered update can become late before its gap
		// is filled: the source is then invalid until a reset.
		c := newC(t, &snapshot.Config[string, int]{Late: snapshot.LateReject,
			Sources: []snapshot.Source{{Name: "D", Disorder: 5 * time.Millisecond}}})
		must(t, c.Apply(up("D", 1, 1, "k", 1), up("D", 3, 11, "k", 3)))
		cutAt(t, c, 12)
		must(t, c.Apply(up("D", 2, 14, "k", 2))) // in time itself; seq 3 (11ms) is now late
		st := wantState(t, cutAt(t, c, 20), "D", snapshot.Invalid)
		if !errors.Is(st.Err, snapshot.ErrLate) || st.Seq != 2 {
			t.Fatalf("status %+v", st)
		}
	})
}

// Bad input gets an error naming the source, the sequence and what was
// expected, and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		do    func(c *snapshot.Collector[string, int]) error
		is    error
		words []string
	}{
		{"zero seq", func(c *snapshot.Collector[string, int]) error { return c.Apply(up("A", 0, 9, "k", 0)) },
			snapshot.ErrSequence, []string{`"A" seq 0`, "start at 1"}},
		{"unknown source", func(c *snapshot.Collector[string, int]) error { return c.Apply(up("Z", 1, 9, "k", 0)) },
			snapshot.ErrUnknownSource, []string{`"Z" seq 1`, "configured sources (A, B)"}},
		{"time backwards", func(c *snapshot.Collector[string, int]) error { return c.Apply(up("A", 4, 2, "k", 0)) },
			snapshot.ErrTime, []string{`"A" seq 4`, "went backwards", "seq 3", "Disorder"}},
		{"before watermark", func(c *snapshot.Collector[string, int]) error { return c.Apply(up("B", 2, 5, "k", 0)) },
			snapshot.ErrTime, []string{`"B" seq 2`, "heartbeat at seq 1"}},
		{"missing time", func(c *snapshot.Collector[string, int]) error {
			return c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 4, Key: "k"})
		}, snapshot.ErrTime, []string{`"A" seq 4`, "event time"}},
		{"buffered before its predecessor", func(c *snapshot.Collector[string, int]) error { return c.Apply(up("A", 6, 1, "k", 0)) },
			snapshot.ErrTime, []string{`"A" seq 6`}},
		{"image without sequence", func(c *snapshot.Collector[string, int]) error {
			return c.Reset(snapshot.Image[string, int]{Source: "A", Time: ms(9)})
		}, snapshot.ErrSequence, []string{`reset "A" seq 0`, "sequence number it is current to"}},
		{"heartbeat contradicts applied", func(c *snapshot.Collector[string, int]) error { return c.Heartbeat(hb("A", 1, 8)) },
			snapshot.ErrTime, []string{`heartbeat "A" seq 1`, "seq 3"}},
		{"batch stops at the bad one", func(c *snapshot.Collector[string, int]) error {
			return c.Apply(up("B", 2, 20, "k", 1), up("B", 2, 21, "k", 2), up("B", 3, 19, "k", 3))
		}, snapshot.ErrTime, []string{`"B" seq 3`, "went backwards", "update 2 of 3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B"), DupWindow: 0})
			must(t, c.Apply(up("A", 1, 1, "k", 1), up("A", 2, 2, "k", 2), up("A", 3, 3, "k", 3)))
			must(t, c.Apply(up("B", 1, 1, "k", 1)))
			must(t, c.Heartbeat(hb("B", 1, 10)))
			before := cutAt(t, c, 2)
			stats := c.Stats()
			err := tc.do(c)
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "snapshot: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tc.name == "batch stops at the bad one" {
				stats.Applied++ // the first update of the batch was good
				stats.Duplicates++
				stats.Pending++
			}
			if after := c.Stats(); after != stats {
				t.Fatalf("stats changed: %+v -> %+v", stats, after)
			}
			after := cutAt(t, c, 2)
			for _, s := range []string{"A", "B"} {
				if !maps.Equal(contents(before, s), contents(after, s)) {
					t.Fatalf("contents of %s changed", s)
				}
			}
		})
	}
}

// The verify hook's failure refuses the update and marks the source invalid
// until a reset.
func TestVerifyHookMarksInvalid(t *testing.T) {
	t.Parallel()
	bad := errors.New("checksum mismatch")
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), Verify: func(u snapshot.Update[string, int]) error {
		if u.Value < 0 {
			return bad
		}
		return nil
	}})
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	err := c.Apply(up("A", 2, 2, "k", -2))
	if !errors.Is(err, snapshot.ErrInvalid) || !errors.Is(err, bad) {
		t.Fatalf("verify failure: %v", err)
	}
	must(t, c.Apply(up("A", 3, 3, "k", 3))) // waits behind the refused one
	st := wantState(t, cutAt(t, c, 3), "A", snapshot.Invalid)
	if !errors.Is(st.Err, bad) {
		t.Fatalf("status Err %v", st.Err)
	}
	must(t, c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 2, Time: ms(2), Entries: []snapshot.Entry[string, int]{{Key: "k", Value: 2}}}))
	must(t, c.Heartbeat(hb("A", 3, 9)))
	cut := cutAt(t, c, 4)
	wantState(t, cut, "A", snapshot.Current)
	wantContents(t, cut, "A", map[string]int{"k": 3})
}

// A source with declared disorder may go back in time up to its bound, and
// passes T only once it is that far beyond it.
func TestBoundedDisorder(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "D", Disorder: 3 * time.Millisecond}}})
	must(t, c.Apply(up("D", 1, 10, "k", 1), up("D", 2, 8, "k", 2), up("D", 3, 12, "j", 3)))
	if err := c.Apply(up("D", 4, 8, "k", 4)); !errors.Is(err, snapshot.ErrTime) { // 4ms behind 12
		t.Fatalf("beyond the disorder bound: %v", err)
	}
	cut := cutAt(t, c, 8) // D passed 12-3-1ns: 8ms is final
	wantState(t, cut, "D", snapshot.Current)
	wantContents(t, cut, "D", map[string]int{"k": 2})
	cut = cutAt(t, c, 10)
	wantState(t, cut, "D", snapshot.Stale)
	wantContents(t, cut, "D", map[string]int{"k": 2}) // seq 2 is later in sequence than seq 1
}

// Cuts handed out by Latest never go backwards, and a cut on the Interval
// grid is readable as soon as the update completing it returns.
func TestIntervalCutsAreTakenByTheCompletingWriter(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B"), Interval: 10 * time.Millisecond})
	if c.Latest() != nil {
		t.Fatal("Latest before any cut")
	}
	must(t, c.Apply(up("A", 1, 5, "k", 1), up("A", 2, 25, "k", 2)))
	must(t, c.Apply(up("B", 1, 7, "k", 1)))
	if l := c.Latest(); l == nil || !l.Time().Equal(ms(0)) {
		t.Fatalf("Latest = %v while B is at 7ms, want the cut at 0ms", l)
	}
	must(t, c.Apply(up("B", 2, 12, "k", 2))) // B passes 10ms: the cut at 10ms completes now
	l := c.Latest()
	if l == nil || !l.Time().Equal(ms(10)) || !l.Complete() {
		t.Fatalf("Latest = %v, want the complete cut at 10ms", l)
	}
	wantContents(t, l, "A", map[string]int{"k": 1})
	must(t, c.Heartbeat(hb("B", 2, 41))) // A is at 25: conflated to the cut at 20ms
	l2 := c.Latest()
	if !l2.Time().Equal(ms(20)) {
		t.Fatalf("Latest = %v, want 20ms", l2)
	}
	wantContents(t, l2, "B", map[string]int{"k": 2})
	// A late update for an old cut cannot move Latest back.
	must(t, c.Apply(up("A", 3, 26, "k", 3)))
	if l3 := c.Latest(); l3.Time().Before(l2.Time()) {
		t.Fatalf("Latest went back from %v to %v", l2, l3)
	}
}

// At waits until the cut is complete; the cut is taken by the update that
// completes it.
func TestAtWaitsForCompletion(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B")})
	must(t, c.Apply(up("A", 1, 1, "k", 1), up("A", 2, 30, "k", 2)))
	done := make(chan *snapshot.Cut[string, int])
	go func() {
		cut, err := c.At(context.Background(), ms(20))
		if err != nil {
			t.Error(err)
		}
		done <- cut
	}()
	// B catches up in steps; none completes the cut until 20ms passes.
	for seq, at := range []int{5, 15, 21} {
		select {
		case cut := <-done:
			t.Fatalf("At returned %v before B passed 20ms", cut)
		default:
		}
		must(t, c.Apply(up("B", uint64(seq+1), at, "k", at)))
	}
	cut := <-done
	if !cut.Complete() || !cut.Time().Equal(ms(20)) {
		t.Fatalf("At returned %v", cut)
	}
	wantContents(t, cut, "B", map[string]int{"k": 15})
	wantContents(t, cut, "A", map[string]int{"k": 1})
}

// As-of reads go back to the horizon; older requests get an error saying so.
func TestHistoryAndAsOf(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), Horizon: 20 * time.Millisecond})
	for i := 1; i <= 10; i++ {
		must(t, c.Apply(up("A", uint64(i), i*10, "k", i)))
		must(t, c.Heartbeat(hb("A", uint64(i), i*10)))
		cutAt(t, c, i*10)
	}
	// kept: 80, 90, 100
	cut, err := c.At(context.Background(), ms(90))
	if err != nil || !cut.Time().Equal(ms(90)) {
		t.Fatalf("At(90ms) = %v, %v", cut, err)
	}
	wantContents(t, cut, "A", map[string]int{"k": 9})
	if cut, err := c.AsOf(ms(95)); err != nil || !cut.Time().Equal(ms(90)) {
		t.Fatalf("AsOf(95ms) = %v, %v", cut, err)
	}
	if _, err := c.At(context.Background(), ms(85)); !errors.Is(err, snapshot.ErrTooOld) {
		t.Fatalf("At(85ms) between kept cuts: %v", err)
	}
	if _, err := c.AsOf(ms(70)); !errors.Is(err, snapshot.ErrTooOld) || !strings.Contains(err.Error(), "oldest kept cut") {
		t.Fatalf("AsOf(70ms): %v", err)
	}
	if _, err := c.Cut(ms(50)); !errors.Is(err, snapshot.ErrTooOld) {
		t.Fatalf("Cut(50ms): %v", err)
	}
}

// Fresh returns a complete cut no older than the bound, or an error at once.
func TestFreshBoundsStaleness(t *testing.T) {
	t.Parallel()
	now := time.Now()
	at := func(d time.Duration) time.Time { return now.Add(d) }
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B")})
	must(t, c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 1, Time: at(-time.Hour), Key: "k", Value: 1}))
	must(t, c.Heartbeat(snapshot.Heartbeat{Source: "A", Seq: 1, Time: at(time.Hour)}))
	must(t, c.Heartbeat(snapshot.Heartbeat{Source: "B", Time: at(-time.Minute)}))
	_, err := c.Fresh(time.Second)
	if !errors.Is(err, snapshot.ErrStale) || !strings.Contains(err.Error(), `"B"`) || strings.Contains(err.Error(), `"A" `) {
		t.Fatalf("Fresh with B a minute behind: %v", err)
	}
	must(t, c.Heartbeat(snapshot.Heartbeat{Source: "B", Time: at(time.Minute)}))
	cut, err := c.Fresh(time.Second)
	if err != nil || !cut.Complete() {
		t.Fatalf("Fresh = %v, %v", cut, err)
	}
	wantContents(t, cut, "A", map[string]int{"k": 1})
	if again, _ := c.Fresh(time.Hour); again != cut {
		t.Fatalf("Fresh took a new cut %v instead of returning %v", again, cut)
	}
}

// Barrier heartbeats close epochs; AtEpoch returns the cut at the epoch's time.
func TestEpochBarriers(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B")})
	barrier := func(src string, seq uint64, at int, epoch uint64) snapshot.Heartbeat {
		h := hb(src, seq, at)
		h.Epoch = epoch
		return h
	}
	must(t, c.Apply(up("A", 1, 1, "k", 1), up("B", 1, 2, "k", 1)))
	must(t, c.Heartbeat(barrier("A", 1, 10, 1)))
	got := make(chan *snapshot.Cut[string, int])
	go func() {
		cut, err := c.AtEpoch(context.Background(), 1)
		if err != nil {
			t.Error(err)
		}
		got <- cut
	}()
	if err := c.Heartbeat(barrier("B", 1, 11, 1)); !errors.Is(err, snapshot.ErrTime) {
		t.Fatalf("B closing epoch 1 at another time: %v", err)
	}
	must(t, c.Apply(up("B", 2, 12, "k", 2))) // B passes 10ms by data; the cut is taken
	cut := <-got
	if !cut.Complete() || !cut.Time().Equal(ms(10)) {
		t.Fatalf("AtEpoch = %v", cut)
	}
	wantContents(t, cut, "B", map[string]int{"k": 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := c.AtEpoch(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AtEpoch of an unannounced epoch: %v", err)
	}
}

// Sources not listed in the config are added on their first message.
func TestDynamicSources(t *testing.T) {
	t.Parallel()
	c := newC(t, nil)
	if err := c.Apply(up("", 1, 1, "k", 1)); !errors.Is(err, snapshot.ErrUnknownSource) {
		t.Fatalf("empty source name: %v", err)
	}
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	cutAt(t, c, 5)
	must(t, c.Apply(up("B", 1, 3, "k", 3))) // new after a cut at 5ms: late for it
	must(t, c.Heartbeat(hb("A", 1, 10)))
	must(t, c.Heartbeat(hb("B", 1, 10)))
	cut := cutAt(t, c, 6)
	if !cut.Complete() || len(cut.Sources()) != 2 {
		t.Fatalf("cut %v with %d sources", cut, len(cut.Sources()))
	}
	wantContents(t, cut, "B", map[string]int{"k": 3})
}

// MaxPending bounds the updates waiting for a cut: beyond it the collector
// cuts by itself.
func TestMaxPendingBoundsMemory(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), MaxPending: 100})
	for i := 1; i <= 1000; i++ {
		must(t, c.Apply(up("A", uint64(i), i, "k", i)))
		if p := c.Stats().Pending; p > 100 {
			t.Fatalf("%d pending after %d updates", p, i)
		}
	}
	if c.Stats().Cuts == 0 {
		t.Fatal("no cut was taken")
	}
}

// A config with several problems reports all of them.
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, err := snapshot.New(&snapshot.Config[string, int]{
		Sources:     []snapshot.Source{{Name: "A"}, {Name: "A"}, {}, {Name: "D", Disorder: -1}},
		Interval:    -1,
		MaxBuffered: -1,
		Late:        9,
	})
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, w := range []string{`"A" listed twice`, "Sources[2] has no name", `"D": Disorder`, "Interval", "MaxBuffered", "Late"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if !strings.HasPrefix(err.Error(), "snapshot: config: ") {
		t.Errorf("error %q lacks the prefix", err)
	}
}

// While a required source stays behind, the newest complete cut falls
// further behind the newest cut; the collector then keeps a frozen copy of
// it, which must read exactly as the original did.
func TestLatestSurvivesLongIncompleteRuns(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B")})
	for i := 1; i <= 50; i++ {
		must(t, c.Apply(up("A", uint64(i), i, fmt.Sprint(i%7), i)))
	}
	must(t, c.Apply(up("B", 1, 1, "b", 1)))
	must(t, c.Heartbeat(hb("B", 1, 20)))
	first := cutAt(t, c, 20)
	if !first.Complete() {
		t.Fatal(first.Err())
	}
	want := contents(first, "A")
	// B goes quiet; A keeps changing every key, and 400 incomplete cuts follow.
	for i := 51; i <= 450; i++ {
		must(t, c.Apply(up("A", uint64(i), i, fmt.Sprint(i%7), i)))
		cutAt(t, c, i-1)
	}
	l := c.Latest()
	if l.Seq() != first.Seq() || !l.Time().Equal(first.Time()) || !l.Complete() {
		t.Fatalf("Latest = %v (seq %d), want the cut at 20ms (seq %d)", l, l.Seq(), first.Seq())
	}
	wantContents(t, l, "A", want)
	wantContents(t, l, "B", map[string]int{"b": 1})
	wantContents(t, first, "A", want) // the original still reads the same
	if v, ok := l.Get("A", "6"); !ok || v != 20 {
		t.Fatalf("Get(A, 6) = %v, %v; want 20", v, ok)
	}
}

// With a horizon, a late update revises every kept cut at or after its time:
// each is reissued with a higher revision, and may become complete.
func TestLateRevisesKeptCuts(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("fast", "slow"), Horizon: time.Second})
	must(t, c.Apply(up("fast", 1, 1, "k", 1)))
	must(t, c.Heartbeat(hb("fast", 1, 100)))
	must(t, c.Apply(up("slow", 1, 1, "k", 1)))
	for _, at := range []int{10, 20, 30} {
		if cut := cutAt(t, c, at); cut.Complete() {
			t.Fatalf("cut at %dms complete while slow is at 1ms", at)
		}
	}
	// slow catches up: its updates at 15ms and 25ms are late for the cuts
	// at 20ms and 30ms, and its heartbeat passes everything.
	must(t, c.Apply(up("slow", 2, 15, "k", 15), up("slow", 3, 25, "new", 25)))
	must(t, c.Heartbeat(hb("slow", 3, 40)))
	want := map[int]map[string]int{
		10: {"k": 1},
		20: {"k": 15},
		30: {"k": 15, "new": 25},
	}
	for at, w := range want {
		cut, err := c.AsOf(ms(at))
		if err != nil || !cut.Time().Equal(ms(at)) {
			t.Fatalf("AsOf(%dms) = %v, %v", at, cut, err)
		}
		// Only cuts that late updates change are reissued: the one at
		// 10ms keeps its content, and its status as taken.
		if revised := at > 10; cut.Complete() != revised || (cut.Revision() > 0) != revised {
			t.Fatalf("kept cut at %dms: complete %v, revision %d", at, cut.Complete(), cut.Revision())
		}
		wantContents(t, cut, "slow", w)
		if cut.Len("slow") != len(w) {
			t.Fatalf("Len = %d, want %d", cut.Len("slow"), len(w))
		}
	}
	if l := c.Latest(); !l.Time().Equal(ms(30)) {
		t.Fatalf("Latest = %v, want the revised cut at 30ms", l)
	}
	// A late image replaces the source's whole state in the kept cuts after it.
	must(t, c.Apply(up("slow", 6, 45, "k", 45))) // 4, 5 lost
	cutAt(t, c, 50)
	must(t, c.Reset(snapshot.Image[string, int]{Source: "slow", Seq: 5, Time: ms(44), Entries: []snapshot.Entry[string, int]{{Key: "img", Value: 44}}}))
	must(t, c.Heartbeat(hb("slow", 6, 60)))
	cut, _ := c.AsOf(ms(50))
	wantContents(t, cut, "slow", map[string]int{"img": 44, "k": 45})
	wantState(t, cut, "slow", snapshot.Current)
}

// A source that starts with an image (its state before the image unknown)
// does not stop Interval cuts: the aligned times inside the resetting hole
// are skipped, the later ones taken as the data passes them.
func TestIntervalCutsAfterAnImage(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), Interval: time.Millisecond})
	must(t, c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 10, Time: ms(5), Entries: []snapshot.Entry[string, int]{{Key: "k", Value: 10}}}))
	for seq := uint64(11); seq <= 20; seq++ {
		must(t, c.Apply(up("A", seq, int(seq)-5, "k", int(seq))))
	}
	l := c.Latest()
	if l == nil || !l.Time().Equal(ms(14)) {
		t.Fatalf("Latest = %v, want the cut at 14ms", l)
	}
	wantContents(t, l, "A", map[string]int{"k": 19})
}
