package snapshot_test

import (
	"maps"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// base is the event-time origin of the hand-written tests.
var base = time.Date(2024, 3, 1, 14, 30, 0, 0, time.UTC)

func ms(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }

func up(src string, seq uint64, at int, key string, val int) snapshot.Update[string, int] {
	return snapshot.Update[string, int]{Source: src, Seq: seq, Time: ms(at), Key: key, Value: val}
}

func hb(src string, seq uint64, at int) snapshot.Heartbeat {
	return snapshot.Heartbeat{Source: src, Seq: seq, Time: ms(at)}
}

func newC(t testing.TB, cfg *snapshot.Config[string, int]) *snapshot.Collector[string, int] {
	t.Helper()
	c, err := snapshot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sources(names ...string) []snapshot.Source {
	out := make([]snapshot.Source, len(names))
	for i, n := range names {
		out[i] = snapshot.Source{Name: n}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func cutAt(t testing.TB, c *snapshot.Collector[string, int], at int) *snapshot.Cut[string, int] {
	t.Helper()
	cut, err := c.Cut(ms(at))
	if err != nil {
		t.Fatal(err)
	}
	return cut
}

func contents(cut *snapshot.Cut[string, int], src string) map[string]int {
	return maps.Collect(cut.All(src))
}

func wantContents(t testing.TB, cut *snapshot.Cut[string, int], src string, want map[string]int) {
	t.Helper()
	if got := contents(cut, src); !maps.Equal(got, want) {
		t.Fatalf("%s: source %s holds %v, want %v", cut, src, got, want)
	}
}

func wantState(t testing.TB, cut *snapshot.Cut[string, int], src string, want snapshot.State) snapshot.SourceStatus[string] {
	t.Helper()
	st, ok := cut.Status(src)
	if !ok {
		t.Fatalf("%s: no source %s", cut, src)
	}
	if st.State != want {
		t.Fatalf("%s: source %s is %v, want %v (%s)", cut, src, st.State, want, st)
	}
	return st
}
