package snapshot_test

import (
	"context"
	"errors"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
)

func rmsg(src string, first, last uint64, at int, kv ...any) snapshot.Message[string, int] {
	m := snapshot.Message[string, int]{Source: src, First: first, Seq: last, Time: ms(at)}
	for i := 0; i < len(kv); i += 2 {
		v := kv[i+1].(int)
		m.Changes = append(m.Changes, snapshot.Change[string, int]{Key: kv[i].(string), Value: v, Delete: v < 0})
	}
	return m
}

func chained(src string, prev, seq uint64, at int, kv ...any) snapshot.Message[string, int] {
	m := rmsg(src, 0, seq, at, kv...)
	m.Prev = prev
	return m
}

// A message covering a range of IDs continues from the previous one's last
// ID; gaps, duplicates and buffering work on those ranges, and a cut holds a
// whole message or none of it.
func TestRangeMessages(t *testing.T) {
	t.Parallel()
	var gaps [][2]uint64
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "B", Messages: true}},
		GapFill: func(_ string, first, last uint64) { gaps = append(gaps, [2]uint64{first, last}) }})
	must(t, c.ApplyMessage(rmsg("B", 1, 5, 1, "a", 1, "b", 2, "c", 3))) // five IDs, three changes
	must(t, c.ApplyMessage(rmsg("B", 6, 6, 2, "a", 10)))
	must(t, c.ApplyMessage(rmsg("B", 12, 20, 4, "b", 20))) // 7..11 missing
	cut := cutAt(t, c, 3)
	wantContents(t, cut, "B", map[string]int{"a": 10, "b": 2, "c": 3})
	st := wantState(t, cutAt(t, c, 5), "B", snapshot.Gapped)
	if st.Seq != 6 || st.MissingCount != 5 || len(st.Missing) != 1 || st.Missing[0] != (snapshot.SeqRange{First: 7, Last: 11}) || st.Buffered != 1 {
		t.Fatalf("gapped status %+v", st)
	}
	if len(gaps) != 1 || gaps[0] != [2]uint64{7, 11} {
		t.Fatalf("GapFill calls %v, want [[7 11]]", gaps)
	}
	// A duplicate of an applied message, and of a buffered one.
	must(t, c.ApplyMessage(rmsg("B", 6, 6, 2, "a", 99), rmsg("B", 12, 20, 4, "b", 99)))
	// A message overlapping the buffered one is refused.
	if err := c.ApplyMessage(rmsg("B", 10, 13, 3, "z", 1)); !errors.Is(err, snapshot.ErrSequence) || !strings.Contains(err.Error(), "overlapping the buffered message 12 to 20") {
		t.Fatalf("overlap: %v", err)
	}
	must(t, c.ApplyMessage(rmsg("B", 7, 11, 3, "c", -1))) // fills the gap; deletes c
	must(t, c.Heartbeat(hb("B", 20, 9)))
	cut = cutAt(t, c, 9)
	wantContents(t, cut, "B", map[string]int{"a": 10, "b": 20})
	st = wantState(t, cut, "B", snapshot.Current)
	if st.Seq != 20 || st.Through != 20 || st.Duplicates != 2 {
		t.Fatalf("status %+v", st)
	}
	// Messages continuing from 20 must start at 21; one overlapping what was applied is refused.
	if err := c.ApplyMessage(rmsg("B", 18, 25, 10, "a", 1)); !errors.Is(err, snapshot.ErrSequence) || !strings.Contains(err.Error(), "overlapping what was applied") {
		t.Fatalf("straddling without an image: %v", err)
	}
	// Bad ranges.
	for _, m := range []snapshot.Message[string, int]{
		rmsg("B", 30, 29, 10),                                     // First after Seq
		rmsg("B", 0, 0, 10),                                       // no Seq
		{Source: "B", Seq: 30, Prev: 30, Time: ms(10)},            // Prev not below Seq
		{Source: "B", Seq: 30, Prev: 20, First: 25, Time: ms(10)}, // First and Prev disagree
	} {
		if err := c.ApplyMessage(m); !errors.Is(err, snapshot.ErrSequence) {
			t.Fatalf("ApplyMessage(%+v) = %v, want ErrSequence", m, err)
		}
	}
	// Updates are refused for a message source, messages for an update source.
	if err := c.Apply(up("B", 21, 10, "a", 1)); !errors.Is(err, snapshot.ErrSequence) || !strings.Contains(err.Error(), "ApplyMessage") {
		t.Fatalf("Apply on a message source: %v", err)
	}
	u := newC(t, &snapshot.Config[string, int]{Sources: sources("U")})
	if err := u.ApplyMessage(rmsg("U", 1, 1, 1, "a", 1)); !errors.Is(err, snapshot.ErrSequence) || !strings.Contains(err.Error(), "Source.Messages") {
		t.Fatalf("ApplyMessage on an update source: %v", err)
	}
}

// A chain names the previous message's ID: IDs need not be dense, and a
// break in the chain is a gap until filled or reset.
func TestChainedMessages(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "F", Messages: true, StartWithImage: true}}})
	// Binance futures: the REST image at 1000; events U..u with pu.
	must(t, c.Reset(snapshot.Image[string, int]{Source: "F", Seq: 1000, Time: ms(1), Entries: []snapshot.Entry[string, int]{{Key: "a", Value: 1}}}))
	must(t, c.ApplyMessage(chained("F", 1000, 1017, 2, "a", 2)))
	must(t, c.ApplyMessage(chained("F", 1017, 1050, 3, "b", 3)))
	must(t, c.ApplyMessage(chained("F", 1090, 1100, 5, "a", 5))) // 1050 -> 1090: the message after 1050 was lost
	st := wantState(t, cutAt(t, c, 4), "F", snapshot.Gapped)
	if st.Seq != 1050 || st.Missing[0] != (snapshot.SeqRange{First: 1051, Last: 1090}) {
		t.Fatalf("status %+v", st)
	}
	must(t, c.ApplyMessage(chained("F", 1050, 1090, 4, "b", 4)))
	must(t, c.Heartbeat(hb("F", 1100, 6)))
	cut := cutAt(t, c, 6)
	wantContents(t, cut, "F", map[string]int{"a": 5, "b": 4})
	if st := wantState(t, cut, "F", snapshot.Current); st.Through != 1100 {
		t.Fatalf("Through %d, want 1100", st.Through)
	}
}

// Updates before a source's first image are buffered, bounded; the image
// drops those it covers, a message straddling it is applied, the rest follow
// in order, and nothing is lost.
func TestBufferBeforeFirstImage(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "S", Messages: true, StartWithImage: true}}})
	// The Binance spot recipe: diffs arrive from 157, the REST image is at 160.
	must(t, c.ApplyMessage(rmsg("S", 157, 158, 1, "x", 1)))
	must(t, c.ApplyMessage(rmsg("S", 159, 163, 2, "y", 2)))
	must(t, c.ApplyMessage(rmsg("S", 164, 164, 3, "x", 3)))
	must(t, c.Heartbeat(hb("S", 164, 9))) // kept until the image makes 164 applied
	st := wantState(t, cutAt(t, c, 1), "S", snapshot.AwaitingImage)
	if st.Buffered != 3 || st.Err != nil {
		t.Fatalf("status %+v buffered %d err %v", st, st.Buffered, st.Err)
	}
	must(t, c.Reset(snapshot.Image[string, int]{Source: "S", Seq: 160, Untimed: true,
		Entries: []snapshot.Entry[string, int]{{Key: "x", Value: 100}, {Key: "z", Value: 100}}}))
	cut := cutAt(t, c, 9)
	// 157..158 dropped (the image covers it); 159..163 straddles 161 and applies.
	wantContents(t, cut, "S", map[string]int{"x": 3, "y": 2, "z": 100})
	if st := wantState(t, cut, "S", snapshot.Current); st.Seq != 164 || st.Buffered != 0 {
		t.Fatalf("status %+v", st)
	}

	// The bound: MaxBuffered items before the first image, then overflow, until a reset.
	var resyncs []string
	c = newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "S", StartWithImage: true}}, MaxBuffered: 3,
		Resync: func(src string, err error) { resyncs = append(resyncs, src+": "+err.Error()) }})
	for seq := uint64(50); seq < 53; seq++ {
		must(t, c.Apply(up("S", seq, int(seq), "k", int(seq))))
	}
	err := c.Apply(up("S", 53, 53, "k", 53))
	if !errors.Is(err, snapshot.ErrOverflow) || !strings.Contains(err.Error(), "MaxBuffered (3)") || !strings.Contains(err.Error(), "before the first image") {
		t.Fatalf("overflow before the image: %v", err)
	}
	if len(resyncs) != 1 || !strings.Contains(resyncs[0], "MaxBuffered (3)") {
		t.Fatalf("Resync calls %q", resyncs)
	}
	st = wantState(t, cutAt(t, c, 60), "S", snapshot.AwaitingImage)
	if !errors.Is(st.Err, snapshot.ErrOverflow) {
		t.Fatalf("status %+v", st)
	}
	// The image at 51 keeps 52 and, since 53 was refused, leaves a gap there.
	must(t, c.Reset(snapshot.Image[string, int]{Source: "S", Seq: 51, Time: ms(51), Entries: []snapshot.Entry[string, int]{{Key: "k", Value: 51}}}))
	must(t, c.Apply(up("S", 54, 54, "k", 54)))
	st = wantState(t, cutAt(t, c, 61), "S", snapshot.Gapped)
	if st.Seq != 52 || st.Missing[0] != (snapshot.SeqRange{First: 53, Last: 53}) {
		t.Fatalf("status %+v", st)
	}
}

// An image without a time is dated by the next update: cuts before that
// say the source is resetting, cuts after hold the image.
func TestUntimedImage(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("A", "B")})
	must(t, c.Apply(up("A", 1, 1, "a", 1), up("B", 1, 1, "b", 1)))
	must(t, c.Heartbeat(hb("B", 1, 100)))
	must(t, c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 10, Untimed: true, Entries: []snapshot.Entry[string, int]{{Key: "a", Value: 10}}}))
	st := wantState(t, cutAt(t, c, 3), "A", snapshot.Resetting)
	if st.Seq != 10 {
		t.Fatalf("status %+v", st)
	}
	must(t, c.Apply(up("A", 11, 6, "b", 11)))
	wantState(t, cutAt(t, c, 4), "A", snapshot.Resetting) // between the old progress and the dating update
	cut := cutAt(t, c, 5)
	wantState(t, cut, "A", snapshot.Resetting)
	must(t, c.Heartbeat(hb("A", 11, 8)))
	cut = cutAt(t, c, 8)
	wantState(t, cut, "A", snapshot.Current)
	wantContents(t, cut, "A", map[string]int{"a": 10, "b": 11})
	// Untimed with a time, and untimed on a source with Disorder, are refused.
	if err := c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 12, Untimed: true, Time: ms(9)}); !errors.Is(err, snapshot.ErrTime) {
		t.Fatalf("Untimed with a Time: %v", err)
	}
	d := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "D", Disorder: 1}}})
	if err := d.Reset(snapshot.Image[string, int]{Source: "D", Seq: 1, Untimed: true}); !errors.Is(err, snapshot.ErrTime) || !strings.Contains(err.Error(), "Disorder") {
		t.Fatalf("Untimed with Disorder: %v", err)
	}
}

// book is a price-level key: side 0 bids (best = highest), side 1 asks.
type book struct {
	Side  int
	Price int
}

func bookOrder() *snapshot.Order[book] {
	return &snapshot.Order[book]{Sides: 2, Side: func(k book) int { return k.Side },
		Compare: func(a, b book) int {
			if a.Side == 0 {
				return b.Price - a.Price
			}
			return a.Price - b.Price
		}}
}

// crcTop is an exchange-style checksum: CRC32 of the top n levels of each
// side as "price:qty" joined by ":".
func crcTop(top func(side, n int, dst []snapshot.Entry[book, int]) []snapshot.Entry[book, int], n int) uint32 {
	var b []byte
	var buf [32]snapshot.Entry[book, int]
	for side := range 2 {
		for _, e := range top(side, n, buf[:0]) {
			if len(b) > 0 {
				b = append(b, ':')
			}
			b = strconv.AppendInt(b, int64(e.Key.Price), 10)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(e.Value), 10)
		}
	}
	return crc32.ChecksumIEEE(b)
}

// The Check hook sees the source's state after each message; a mismatch
// rolls the message back, marks the source invalid, calls Resync once, and
// a reset recovers it.
func TestCheckHookVerifiesState(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	want := map[uint64]uint32{} // the "exchange's" checksum per message
	var resyncs []error
	c, err := snapshot.New(&snapshot.Config[book, int]{
		Sources: []snapshot.Source{{Name: "K", Messages: true}}, Order: bookOrder(),
		Check: func(v *snapshot.View[book, int]) error {
			mu.Lock()
			w, ok := want[v.Seq()]
			mu.Unlock()
			if got := crcTop(v.Top, 3); ok && got != w {
				return errors.New("checksum " + strconv.FormatUint(uint64(got), 10) + " != " + strconv.FormatUint(uint64(w), 10))
			}
			return nil
		},
		Resync: func(_ string, err error) { resyncs = append(resyncs, err) },
	})
	must(t, err)
	lv := func(side, price, qty int) snapshot.Change[book, int] {
		return snapshot.Change[book, int]{Key: book{side, price}, Value: qty, Delete: qty == 0}
	}
	m := func(seq uint64, at int, chg ...snapshot.Change[book, int]) snapshot.Message[book, int] {
		return snapshot.Message[book, int]{Source: "K", Seq: seq, Time: ms(at), Changes: chg}
	}
	// The reference book, maintained by hand, gives the exchange's checksums.
	ref := map[book]int{}
	refTop := func(side, n int, dst []snapshot.Entry[book, int]) []snapshot.Entry[book, int] {
		var keys []book
		for k := range ref {
			if k.Side == side {
				keys = append(keys, k)
			}
		}
		o := bookOrder()
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if o.Compare(keys[j], keys[i]) < 0 {
					keys[i], keys[j] = keys[j], keys[i]
				}
			}
		}
		for _, k := range keys[:min(n, len(keys))] {
			dst = append(dst, snapshot.Entry[book, int]{Key: k, Value: ref[k]})
		}
		return dst
	}
	send := func(msg snapshot.Message[book, int]) error {
		saved := map[book]int{}
		for k, v := range ref {
			saved[k] = v
		}
		for _, ch := range msg.Changes {
			if ch.Delete {
				delete(ref, ch.Key)
			} else {
				ref[ch.Key] = ch.Value
			}
		}
		mu.Lock()
		want[msg.Seq] = crcTop(refTop, 3)
		mu.Unlock()
		err := c.ApplyMessage(msg)
		if err != nil {
			ref = saved
		}
		return err
	}
	must(t, send(m(1, 1, lv(0, 100, 5), lv(0, 99, 3), lv(1, 101, 4), lv(1, 103, 1))))
	must(t, send(m(2, 2, lv(0, 100, 0), lv(0, 98, 7), lv(1, 102, 2))))
	cut := cutAtB(t, c, 2)
	if k, v, ok := cut.First("K", 0); !ok || k.Price != 99 || v != 3 {
		t.Fatalf("best bid %v %v %v", k, v, ok)
	}
	if k, v, ok := cut.First("K", 1); !ok || k.Price != 101 || v != 4 {
		t.Fatalf("best ask %v %v %v", k, v, ok)
	}
	if k, _, ok := cut.Last("K", 1); !ok || k.Price != 103 {
		t.Fatalf("worst ask %v %v", k, ok)
	}
	if got := cut.Top("K", 1, 10, nil); len(got) != 3 || got[0].Key.Price != 101 || got[1].Key.Price != 102 || got[2].Key.Price != 103 {
		t.Fatalf("Top asks %v", got)
	}
	// A message whose state does not match the exchange's checksum.
	bad := m(3, 3, lv(0, 99, 4))
	mu.Lock()
	want[3] = 12345
	mu.Unlock()
	err = c.ApplyMessage(bad)
	if !errors.Is(err, snapshot.ErrInvalid) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("bad checksum: %v", err)
	}
	if len(resyncs) != 1 || !errors.Is(resyncs[0], snapshot.ErrInvalid) {
		t.Fatalf("Resync calls %v", resyncs)
	}
	// Rolled back: the source stays at seq 2, later messages wait, and
	// the cut after it holds nothing of seq 3.
	must(t, send(m(4, 4, lv(1, 101, 0))))
	st := wantStateB(t, cutAtB(t, c, 5), "K", snapshot.Invalid)
	if st.Seq != 2 || st.Buffered != 1 {
		t.Fatalf("status %+v", st)
	}
	if v, _ := cutAtB(t, c, 6).Get("K", book{0, 99}); v != 3 {
		t.Fatalf("rolled-back level = %d, want 3", v)
	}
	if len(resyncs) != 1 {
		t.Fatalf("Resync called again: %v", resyncs)
	}
	// The resync: an image at 3 (the exchange's state then), then 4 applies.
	ref = map[book]int{{0, 99}: 4, {0, 98}: 7, {1, 101}: 4, {1, 102}: 2, {1, 103}: 1}
	var es []snapshot.Entry[book, int]
	for k, v := range ref {
		es = append(es, snapshot.Entry[book, int]{Key: k, Value: v})
	}
	mu.Lock()
	want[3] = crcTop(refTop, 3)
	delete(ref, book{1, 101})
	want[4] = crcTop(refTop, 3)
	mu.Unlock()
	must(t, c.Reset(snapshot.Image[book, int]{Source: "K", Seq: 3, Time: ms(3), Entries: es}))
	must(t, c.Heartbeat(snapshot.Heartbeat{Source: "K", Seq: 4, Time: ms(9)}))
	cut = cutAtB(t, c, 9)
	wantStateB(t, cut, "K", snapshot.Current)
	if k, _, _ := cut.First("K", 1); k.Price != 102 {
		t.Fatalf("best ask after reset %v", k)
	}
	if k, v, _ := cut.First("K", 0); k.Price != 99 || v != 4 {
		t.Fatalf("best bid after reset %v %v", k, v)
	}
}

// AtFor waits only for the named sources.
func TestAtForWaitsForSubset(t *testing.T) {
	t.Parallel()
	c := newC(t, &snapshot.Config[string, int]{Sources: sources("btc-a", "btc-b", "eth")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan *snapshot.Cut[string, int])
	go func() {
		cut, err := c.AtFor(ctx, ms(5), "btc-a", "btc-b")
		if err != nil {
			t.Error(err)
		}
		done <- cut
	}()
	must(t, c.Apply(up("btc-a", 1, 1, "p", 1)))
	must(t, c.Heartbeat(hb("btc-a", 1, 6)))
	must(t, c.Apply(up("btc-b", 1, 2, "p", 2)))
	must(t, c.Heartbeat(hb("btc-b", 1, 7)))
	cut := <-done
	if cut.Complete() {
		t.Fatal("eth never reported: the cut is not complete")
	}
	wantContents(t, cut, "btc-a", map[string]int{"p": 1})
	wantContents(t, cut, "btc-b", map[string]int{"p": 2})
	wantState(t, cut, "eth", snapshot.NeverHeard)
	if _, err := c.AtFor(ctx, ms(8), "nope"); !errors.Is(err, snapshot.ErrUnknownSource) {
		t.Fatalf("unknown source: %v", err)
	}
	// Incomplete for the subset when ctx ends.
	short, cancel2 := context.WithCancel(ctx)
	cancel2()
	cut, err := c.AtFor(short, ms(20), "btc-a")
	if !errors.Is(err, snapshot.ErrIncomplete) || !errors.Is(err, context.Canceled) || cut == nil {
		t.Fatalf("canceled AtFor: %v %v", cut, err)
	}
}

func cutAtB(t testing.TB, c *snapshot.Collector[book, int], at int) *snapshot.Cut[book, int] {
	t.Helper()
	cut, err := c.Cut(ms(at))
	if err != nil {
		t.Fatal(err)
	}
	return cut
}

func wantStateB(t testing.TB, cut *snapshot.Cut[book, int], src string, want snapshot.State) snapshot.SourceStatus[book] {
	t.Helper()
	st, ok := cut.Status(src)
	if !ok || st.State != want {
		t.Fatalf("%s: state %v, want %v (%+v)", src, st.State, want, st)
	}
	return st
}

// AtSeq gives a source's state right after one message, the state an
// exchange's ticker for that update ID describes, whatever cuts say.
func TestAtSeq(t *testing.T) {
	t.Parallel()
	c, err := snapshot.New(&snapshot.Config[book, int]{Sources: []snapshot.Source{{Name: "S", Messages: true}, {Name: "T"}}, Order: bookOrder()})
	must(t, err)
	lv := func(side, price, qty int) snapshot.Change[book, int] {
		return snapshot.Change[book, int]{Key: book{side, price}, Value: qty, Delete: qty == 0}
	}
	m := func(first, seq uint64, at int, chg ...snapshot.Change[book, int]) snapshot.Message[book, int] {
		return snapshot.Message[book, int]{Source: "S", First: first, Seq: seq, Time: ms(at), Changes: chg}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(t, c.ApplyMessage(m(1, 10, 1, lv(0, 100, 1), lv(1, 101, 1))))
	must(t, c.ApplyMessage(m(11, 12, 1, lv(0, 100, 0), lv(0, 99, 2)))) // same event time as 10
	must(t, c.ApplyMessage(m(13, 15, 2, lv(1, 102, 3))))
	cutAtB(t, c, 1) // holds S through 12
	at, err := c.AtSeq(ctx, "S", 15)
	must(t, err)
	if st, _ := at.Status("S"); st.Through != 15 || st.State != snapshot.Current || !at.Time().Equal(ms(2)) {
		t.Fatalf("AtSeq 15: %+v at %v", st, at.Time())
	}
	if got := at.Top("S", 1, 5, nil); len(got) != 2 || got[1].Key.Price != 102 || got[1].Value != 3 {
		t.Fatalf("AtSeq 15 asks %v", got)
	}
	if at.Len("S") != 3 || len(at.Sources()) != 1 {
		t.Fatalf("AtSeq 15: Len %d, %d sources", at.Len("S"), len(at.Sources()))
	}
	// 12 is where the newest cut holds S; 10 is folded into it and was never
	// alone in a cut (both share one event time).
	at, err = c.AtSeq(ctx, "S", 12)
	must(t, err)
	if k, v, _ := at.First("S", 0); k.Price != 99 || v != 2 {
		t.Fatalf("AtSeq 12 best bid %v %v", k, v)
	}
	if _, err := c.AtSeq(ctx, "S", 10); !errors.Is(err, snapshot.ErrTooOld) {
		t.Fatalf("AtSeq 10: %v", err)
	}
	if _, err := c.AtSeq(ctx, "S", 14); !errors.Is(err, snapshot.ErrSequence) {
		t.Fatalf("AtSeq inside a range: %v", err)
	}
	// Waiting for a message not yet applied.
	done := make(chan error, 1)
	go func() {
		at, err := c.AtSeq(ctx, "S", 20)
		if err == nil {
			if v, _ := at.Get("S", book{0, 98}); v != 7 {
				err = errors.New("AtSeq 20 lacks the new level")
			}
		}
		done <- err
	}()
	must(t, c.ApplyMessage(m(16, 20, 3, lv(0, 98, 7))))
	must(t, <-done)
	short, cancel2 := context.WithCancel(ctx)
	cancel2()
	if _, err := c.AtSeq(short, "S", 99); !errors.Is(err, context.Canceled) {
		t.Fatalf("AtSeq canceled: %v", err)
	}
}

// For a source grouping updates into events, a refused check rolls back the
// whole event, including its updates sequenced before the last one.
func TestCheckRollsBackWholeEvent(t *testing.T) {
	t.Parallel()
	var resyncs int
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "E", Events: true}},
		Check: func(v *snapshot.View[string, int]) error {
			if sum, _ := v.Get("sum"); sum < 0 {
				return errors.New("negative sum")
			}
			return nil
		},
		Resync: func(string, error) { resyncs++ }})
	ev := func(seq uint64, at int, key string, val int, end bool) snapshot.Update[string, int] {
		u := up("E", seq, at, key, val)
		u.EndOfEvent = end
		return u
	}
	must(t, c.Apply(ev(1, 1, "sum", 1, true)))
	must(t, c.Apply(ev(2, 2, "a", 5, false), ev(3, 2, "b", 6, false)))
	err := c.Apply(ev(4, 2, "sum", -1, true))
	if !errors.Is(err, snapshot.ErrInvalid) || resyncs != 1 {
		t.Fatalf("refused event: %v, %d resyncs", err, resyncs)
	}
	must(t, c.Apply(ev(5, 3, "c", 7, true))) // waits: the source is invalid
	cut := cutAt(t, c, 5)
	st := wantState(t, cut, "E", snapshot.Invalid)
	if st.Seq != 1 || st.Buffered != 1 {
		t.Fatalf("status after the refused event: %+v (Seq %d, Buffered %d)", st, st.Seq, st.Buffered)
	}
	wantContents(t, cut, "E", map[string]int{"sum": 1}) // nothing of seqs 2-4
	// The resync: an image at 4 (with a valid sum), then 5 follows.
	must(t, c.Reset(snapshot.Image[string, int]{Source: "E", Seq: 4, Time: ms(2),
		Entries: []snapshot.Entry[string, int]{{Key: "sum", Value: 11}, {Key: "a", Value: 5}, {Key: "b", Value: 6}}}))
	must(t, c.Heartbeat(hb("E", 5, 9)))
	cut = cutAt(t, c, 9)
	wantState(t, cut, "E", snapshot.Current)
	wantContents(t, cut, "E", map[string]int{"sum": 11, "a": 5, "b": 6, "c": 7})
}

// Resync is asked for once per episode, whatever made the source need an
// image: a Verify refusal (an overflow while invalid asks no more), or a
// buffered update that became late under LateReject; a reset ends the
// episode.
func TestResyncOncePerEpisode(t *testing.T) {
	t.Parallel()
	var calls []string
	c := newC(t, &snapshot.Config[string, int]{Sources: []snapshot.Source{{Name: "A", Disorder: 5 * time.Millisecond}},
		Late: snapshot.LateReject, MaxBuffered: 3,
		Verify: func(u snapshot.Update[string, int]) error {
			if u.Value < 0 {
				return errors.New("negative")
			}
			return nil
		},
		Resync: func(src string, err error) { calls = append(calls, src+": "+err.Error()) }})
	must(t, c.Apply(up("A", 1, 1, "k", 1)))
	if err := c.Apply(up("A", 2, 2, "k", -1)); !errors.Is(err, snapshot.ErrInvalid) {
		t.Fatal(err)
	}
	must(t, c.Apply(up("A", 3, 3, "k", 3), up("A", 4, 4, "k", 4))) // buffered while invalid
	if err := c.Apply(up("A", 5, 5, "k", 5)); !errors.Is(err, snapshot.ErrOverflow) {
		t.Fatalf("overflow while invalid: %v", err)
	}
	if len(calls) != 1 {
		t.Fatalf("Resync calls in one episode: %q", calls)
	}
	must(t, c.Reset(snapshot.Image[string, int]{Source: "A", Seq: 5, Time: ms(5), Entries: []snapshot.Entry[string, int]{{Key: "k", Value: 5}}}))
	// A second episode: 7 waits behind the gap at 6, a cut passes its
	// time, and 6 (later than the cut, within the disorder) releases it late.
	must(t, c.Apply(up("A", 7, 7, "k", 7)))
	cutAt(t, c, 8)
	must(t, c.Apply(up("A", 6, 9, "k", 6)))
	if len(calls) != 2 || !strings.Contains(calls[1], "became late") {
		t.Fatalf("Resync calls: %q", calls)
	}
	wantState(t, cutAt(t, c, 20), "A", snapshot.Invalid)
}
