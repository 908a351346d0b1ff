package snapshot_test

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// Configuration values beyond what the collector can honour are refused with
// an error naming the accepted range.
func TestHostileConfigRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  snapshot.Config[string, int]
		want string
	}{
		{snapshot.Config[string, int]{MaxBuffered: math.MaxInt}, "MaxBuffered 9223372036854775807 is outside 0 (the default, 4096) to 16777216"},
		{snapshot.Config[string, int]{MaxBuffered: 1 << 34}, "MaxBuffered 17179869184 is outside"},
		{snapshot.Config[string, int]{MaxPending: math.MaxInt}, "MaxPending 9223372036854775807 is outside 0 (the default, 1048576) to 1073741824"},
		{snapshot.Config[string, int]{Order: &snapshot.Order[string]{}}, "Order.Compare is nil"},
		{snapshot.Config[string, int]{Order: &snapshot.Order[string]{Compare: strings.Compare, Sides: 17}}, "Order.Sides 17 is outside 0 (one side) to 16"},
		{snapshot.Config[string, int]{Order: &snapshot.Order[string]{Compare: strings.Compare, Sides: 2}}, "Order.Side is nil"},
	} {
		if _, err := snapshot.New(&tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// The largest MaxBuffered allocates nothing up front: the buffer grows with
// what it holds. (Not parallel: it reads the process's allocation counter.)
func TestMaxBufferedAllocatesOnDemand(t *testing.T) {
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A"), MaxBuffered: 1 << 24})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	must(t, c.Apply(up("A", 1<<23, 1, "k", 1))) // far ahead: buffered
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("buffering one update allocated %d bytes", grew)
	}
	st := wantState(t, cutAt(t, c, 2), "A", snapshot.Gapped)
	if st.MissingCount != 1<<23-1 || st.Buffered != 1 {
		t.Fatalf("status %+v", st)
	}
}

// Times past what int64 nanoseconds hold (1678 to 2262) are refused, not
// wrapped into another century; a cut's time likewise.
func TestHostileTimesRefused(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A")})
	y2300 := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	y1600 := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	for _, at := range []time.Time{y2300, y1600} {
		err := c.Apply(snapshot.Update[string, int]{Source: "A", Seq: 2, Time: at, Key: "k", Value: 2})
		if !errors.Is(err, snapshot.ErrTime) || !strings.Contains(err.Error(), "outside the supported range") {
			t.Fatalf("update at %v: %v", at, err)
		}
		if err := c.Heartbeat(snapshot.Heartbeat{Source: "A", Seq: 1, Time: at}); !errors.Is(err, snapshot.ErrTime) {
			t.Fatalf("heartbeat at %v: %v", at, err)
		}
		if err := c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 5, Time: at}); !errors.Is(err, snapshot.ErrTime) {
			t.Fatalf("image at %v: %v", at, err)
		}
		if err := c.ApplyMessage(snapshot.Message[string, int]{Source: "A", Seq: 2, Time: at}); !errors.Is(err, snapshot.ErrTime) {
			t.Fatalf("message at %v: %v", at, err)
		}
		if _, err := c.Cut(at); !errors.Is(err, snapshot.ErrTime) {
			t.Fatalf("Cut(%v): %v", at, err)
		}
		if _, err := c.At(t.Context(), at); !errors.Is(err, snapshot.ErrTime) {
			t.Fatalf("At(%v): %v", at, err)
		}
	}
	must(t, c.Apply(up("A", 2, 2, "k", 2)))
	must(t, c.Heartbeat(hb("A", 2, 3)))
	cut := cutAt(t, c, 3)
	wantContents(t, cut, "A", map[string]int{"k": 2})
	if _, err := c.AsOf(y2300); err != nil { // clamped: the newest cut
		t.Fatalf("AsOf(2300): %v", err)
	}
}

// Sequence numbers at the top of the range, and a heartbeat announcing one,
// neither wrap nor make the collector walk the range.
func TestHostileSequenceNumbers(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A")})
	if err := c.Apply(up("A", math.MaxUint64, 1, "k", 1)); !errors.Is(err, snapshot.ErrSequence) {
		t.Fatalf("seq 2^64-1: %v", err)
	}
	if err := c.Reset(snapshot.Image[string, int]{Source: "A", Seq: math.MaxUint64, Time: ms(1)}); !errors.Is(err, snapshot.ErrSequence) {
		t.Fatalf("image at 2^64-1: %v", err)
	}
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	must(t, c.Heartbeat(hb("A", math.MaxUint64-1, 5)))
	st := wantState(t, cutAt(t, c, 4), "A", snapshot.Gapped)
	if st.MissingCount != math.MaxUint64-2 || st.Missing[0] != (snapshot.SeqRange{First: 2, Last: math.MaxUint64 - 1}) {
		t.Fatalf("status %+v", st)
	}
}

// A key on a side that the Order does not have is refused before anything
// changes.
func TestKeyOnUnknownSideRefused(t *testing.T) {
	t.Parallel()
	c, err := snapshot.New(&snapshot.Config[book, int]{Sources: []snapshot.Source{{Name: "B"}}, Order: bookOrder()})
	must(t, err)
	good := snapshot.Update[book, int]{Source: "B", Seq: 1, Time: ms(1), Key: book{0, 10}, Value: 1}
	bad := snapshot.Update[book, int]{Source: "B", Seq: 2, Time: ms(1), Key: book{2, 10}, Value: 1}
	err = c.Apply(good, bad)
	var ie *snapshot.InputError
	if !errors.Is(err, snapshot.ErrKey) || !errors.As(err, &ie) || ie.Index != 1 || !strings.Contains(err.Error(), "sides are 0 to 1") {
		t.Fatalf("bad side: %v", err)
	}
	if err := c.Reset(snapshot.Image[book, int]{Source: "B", Seq: 5, Time: ms(2), Entries: []snapshot.Entry[book, int]{{Key: book{-1, 1}}}}); !errors.Is(err, snapshot.ErrKey) {
		t.Fatalf("bad side in an image: %v", err)
	}
	must(t, c.Heartbeat(snapshot.Heartbeat{Source: "B", Seq: 1, Time: ms(3)}))
	cut := cutAtB(t, c, 3)
	if got := cut.Top("B", 0, 5, nil); len(got) != 1 || got[0].Key != (book{0, 10}) {
		t.Fatalf("after refusals: %v", got)
	}
}
