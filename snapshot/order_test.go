package snapshot_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
)

// orderedRun applies ops (key, qty; qty 0 deletes) to an ordered book
// source, cutting after every cutEvery ops, and checks every cut taken, at
// the end, against the book as it was when that cut was taken: old cuts keep
// their order while the tree changes under later ones.
func orderedRun(t testing.TB, ops [][2]int, cutEvery int) {
	type kept struct {
		cut  *snapshot.Cut[book, int]
		want map[book]int
	}
	var cuts []kept
	ref := map[book]int{}
	// The Check hook's view of the state at the sequencing frontier is
	// checked too, every 61st update.
	check := func(v *snapshot.View[book, int]) error {
		if v.Seq()%61 != 0 {
			return nil
		}
		if v.Len() != len(ref) {
			return fmt.Errorf("view Len %d, want %d", v.Len(), len(ref))
		}
		for side := range 2 {
			keys := sortedSide(ref, side)
			got := v.Top(side, len(keys)+1, nil)
			if len(got) != len(keys) {
				return fmt.Errorf("view side %d: Top has %d, want %d", side, len(got), len(keys))
			}
			for i, e := range got {
				if e.Key != keys[i] || e.Value != ref[keys[i]] {
					return fmt.Errorf("view side %d level %d: %v=%d, want %v", side, i, e.Key, e.Value, keys[i])
				}
			}
			// A partial top appended after what dst holds.
			pre := []snapshot.Entry[book, int]{{Key: book{Side: 9}}}
			part := v.Top(side, 3, pre)
			if n := min(3, len(keys)); len(part) != 1+n || part[0].Key != pre[0].Key {
				return fmt.Errorf("view side %d: Top(3) after one entry has %d, want %d", side, len(part), 1+n)
			}
			for i, e := range part[1:] {
				if e.Key != keys[i] || e.Value != ref[keys[i]] || e.KeySeq != 0 {
					return fmt.Errorf("view side %d: Top(3) level %d: %+v, want %v", side, i, e, keys[i])
				}
			}
			if f, _, ok := v.First(side); ok != (len(keys) > 0) || ok && f != keys[0] {
				return fmt.Errorf("view side %d: First %v", side, f)
			}
		}
		return nil
	}
	c, err := snapshot.New(&snapshot.Config[book, int]{Sources: []snapshot.Source{{Name: "X"}}, Order: bookOrder(), Check: check})
	if err != nil {
		t.Fatal(err)
	}
	at := base
	for i, o := range ops {
		k := book{Side: o[0] & 1, Price: o[0] >> 1}
		at = at.Add(time.Microsecond)
		u := snapshot.Update[book, int]{Source: "X", Seq: uint64(i + 1), Time: at, Key: k, Value: o[1], Delete: o[1] == 0}
		if o[1] == 0 {
			delete(ref, k)
		} else {
			ref[k] = o[1]
		}
		if err := c.Apply(u); err != nil {
			t.Fatal(err)
		}
		if (i+1)%cutEvery == 0 || i == len(ops)-1 {
			cut, err := c.Cut(at)
			if err != nil {
				t.Fatal(err)
			}
			cuts = append(cuts, kept{cut, maps.Clone(ref)})
		}
	}
	o := bookOrder()
	for j, kc := range cuts {
		for side := range 2 {
			var keys []book
			for k := range kc.want {
				if k.Side == side {
					keys = append(keys, k)
				}
			}
			slices.SortFunc(keys, o.Compare)
			got := kc.cut.Top("X", side, len(keys)+5, nil)
			if len(got) != len(keys) {
				t.Fatalf("cut %d side %d: Top has %d levels, want %d", j, side, len(got), len(keys))
			}
			for i, e := range got {
				if e.Key != keys[i] || e.Value != kc.want[keys[i]] {
					t.Fatalf("cut %d side %d level %d: %v=%d, want %v=%d", j, side, i, e.Key, e.Value, keys[i], kc.want[keys[i]])
				}
			}
			f, fv, ok := kc.cut.First("X", side)
			l, _, ok2 := kc.cut.Last("X", side)
			if ok != (len(keys) > 0) || ok2 != ok || ok && (f != keys[0] || fv != kc.want[f] || l != keys[len(keys)-1]) {
				t.Fatalf("cut %d side %d: First %v %v Last %v, want %v", j, side, f, ok, l, keys)
			}
			if n := min(10, len(keys)); len(kc.cut.Top("X", side, 10, nil)) != n {
				t.Fatalf("cut %d side %d: Top 10 has the wrong length", j, side)
			}
		}
	}
}

func sortedSide(m map[book]int, side int) []book {
	var keys []book
	for k := range m {
		if k.Side == side {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, bookOrder().Compare)
	return keys
}

// Thousands of levels churned: every cut's ordered view stays right, newest
// and old alike.
func TestOrderedBookAgainstReference(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 7))
		levels := []int{50, 300, 3000, 20000}[seed]
		n := 8000
		if raceEnabled {
			n = 2000
		}
		ops := make([][2]int, n)
		for i := range ops {
			q := r.IntN(4) // a quarter deletes
			ops[i] = [2]int{r.IntN(2 * levels), q * (1 + r.IntN(100))}
		}
		orderedRun(t, ops, 100+r.IntN(300))
	}
}

// FuzzOrdered decodes ops from bytes: two bytes a key (side and price), one a
// quantity (0 deletes), so that a few hundred keys split and merge nodes.
func FuzzOrdered(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(3))
	f.Add([]byte("a much longer seed that inserts and deletes many different levels of the book, over and over"), uint8(17))
	f.Fuzz(func(t *testing.T, data []byte, every uint8) {
		var ops [][2]int
		for i := 0; i+2 < len(data); i += 3 {
			ops = append(ops, [2]int{int(data[i])<<2 | int(data[i+1]&3), int(data[i+2] % 8)})
		}
		if len(ops) == 0 {
			return
		}
		orderedRun(t, ops, 1+int(every))
	})
}

// Example-style check of the doc's claim: a book's best bid and offer.
func TestBestBidOffer(t *testing.T) {
	t.Parallel()
	c, err := snapshot.New(&snapshot.Config[book, int]{Order: bookOrder()})
	must(t, err)
	must(t, c.ApplyMessage()) // nothing: fine
	for i, lv := range []book{{0, 100}, {0, 101}, {1, 103}, {1, 102}} {
		must(t, c.Apply(snapshot.Update[book, int]{Source: "V", Seq: uint64(i + 1), Time: ms(1), Key: lv, Value: 10 + i}))
	}
	cut := cutAtB(t, c, 1)
	bid, bq, _ := cut.First("V", 0)
	ask, aq, _ := cut.First("V", 1)
	if got := fmt.Sprintf("%d x %d / %d x %d", bid.Price, bq, ask.Price, aq); got != "101 x 11 / 102 x 13" {
		t.Fatalf("BBO %s", got)
	}
}

// View.Changed, against a reference book: it is true exactly when an image
// was applied, or a key the event set or removed is on the side and among
// its first n keys after the event (or the side has n keys or fewer), so
// that whenever the first n levels differ from the previous event's it is
// true, and a checksum cached while it is false stays right.
func TestViewChanged(t *testing.T) {
	t.Run("messages", func(t *testing.T) { testViewChanged(t, true) })
	t.Run("events", func(t *testing.T) { testViewChanged(t, false) })
}

// testViewChanged feeds events of one to three changes, as messages or as
// updates ending with EndOfEvent.
func testViewChanged(t *testing.T, messages bool) {
	const n = 5
	r := rand.New(rand.NewPCG(7, 8))
	ref := map[book]int{}
	var prev [2][]snapshot.Entry[book, int]
	var event []book // the keys the event being checked changes
	image := false
	changedSeen, unchangedSeen := 0, 0
	check := func(v *snapshot.View[book, int]) error {
		for side := range 2 {
			keys := sortedSide(ref, side)
			want := image
			if !image {
				for _, k := range event {
					if k.Side == side && (len(keys) <= n || bookOrder().Compare(k, keys[n-1]) <= 0) {
						want = true
					}
				}
			}
			got := v.Changed(side, n)
			if got != want {
				return fmt.Errorf("seq %d side %d: Changed %v, want %v (event %v)", v.Seq(), side, got, want, event)
			}
			top := v.Top(side, n, nil)
			if !got && !slices.Equal(top, prev[side]) {
				return fmt.Errorf("seq %d side %d: Changed false, but the top went from %v to %v", v.Seq(), side, prev[side], top)
			}
			if got {
				changedSeen++
			} else {
				unchangedSeen++
			}
			prev[side] = top
			if v.Changed(side, 0) {
				return fmt.Errorf("seq %d side %d: Changed(0) is true", v.Seq(), side)
			}
		}
		return nil
	}
	c, err := snapshot.New(&snapshot.Config[book, int]{Sources: []snapshot.Source{{Name: "X", Messages: messages, Events: !messages}},
		Order: bookOrder(), Check: check})
	if err != nil {
		t.Fatal(err)
	}
	reset := func(seq uint64) {
		clear(ref)
		img := snapshot.Image[book, int]{Source: "X", Seq: seq, Time: base.Add(time.Duration(seq) * time.Microsecond)}
		for range r.IntN(30) {
			k := book{Side: r.IntN(2), Price: 1 + r.IntN(40)}
			if _, ok := ref[k]; !ok {
				ref[k] = 1 + r.IntN(3)
				img.Entries = append(img.Entries, snapshot.Entry[book, int]{Key: k, Value: ref[k]})
			}
		}
		image, event = true, nil
		if err := c.Reset(img); err != nil {
			t.Fatal(err)
		}
		image = false
	}
	reset(1)
	seq := uint64(2)
	for ev := 0; ev < 3000; ev++ {
		if ev%500 == 499 {
			reset(seq)
			seq++
			continue
		}
		at := base.Add(time.Duration(seq) * time.Microsecond)
		m := snapshot.Message[book, int]{Source: "X", Seq: seq, Time: at}
		event = event[:0]
		for range 1 + r.IntN(3) {
			k := book{Side: r.IntN(2), Price: 1 + r.IntN(40)}
			ch := snapshot.Change[book, int]{Key: k, Value: 1 + r.IntN(3)}
			if r.IntN(3) == 0 {
				ch = snapshot.Change[book, int]{Key: k, Delete: true}
				delete(ref, k)
			} else {
				ref[k] = ch.Value
			}
			m.Changes = append(m.Changes, ch)
			event = append(event, k)
		}
		if messages {
			if err := c.ApplyMessage(m); err != nil {
				t.Fatal(err)
			}
			seq++
			continue
		}
		for i, ch := range m.Changes {
			u := snapshot.Update[book, int]{Source: "X", Seq: seq, Time: at, Key: ch.Key, Value: ch.Value, Delete: ch.Delete,
				EndOfEvent: i == len(m.Changes)-1}
			if err := c.Apply(u); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	if changedSeen < 100 || unchangedSeen < 100 {
		t.Fatalf("Changed was true %d times and false %d times: the test covers too little", changedSeen, unchangedSeen)
	}
}

// Without an Order, Changed is always true: nothing is known of the order.
func TestViewChangedUnordered(t *testing.T) {
	var got []bool
	c, err := snapshot.New(&snapshot.Config[book, int]{Sources: []snapshot.Source{{Name: "X"}},
		Check: func(v *snapshot.View[book, int]) error { got = append(got, v.Changed(0, 3)); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Reset(snapshot.Image[book, int]{Source: "X", Seq: 1, Time: base}))
	must(t, c.Apply(snapshot.Update[book, int]{Source: "X", Seq: 2, Time: base, Key: book{0, 9}, Value: 1}))
	if !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("Changed reported %v, want [true true]", got)
	}
}
