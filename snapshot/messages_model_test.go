package snapshot_test

// Messages against the model: the same stream of exchange events is fed to
// two collectors, one as a source numbering updates with Events (the path
// the reference model proves in model_test.go), the other as a source
// numbering messages (one per event, numbered one by one, by ranges of IDs,
// or by a chain naming the previous ID). Deliveries are shuffled, duplicated,
// gapped, and gaps closed by resends or images, identically for both; every
// cut must hold the same state with the same statuses, and Through and Seq
// must name the same event.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gather-go/gather/snapshot"
)

type mevent struct {
	t          int64
	chg        []snapshot.Change[string, int]
	uLast      uint64 // the last update seq of the event (collector A)
	first, id  uint64 // the message's ID range (collector B)
	prev       uint64
	stateAfter map[string]int
}

type mdeliv struct {
	kind byte // 'm' event, 'h' heartbeat after event, 'i' image after event
	e    int
	t    int64 // heartbeat time
}

func runMessages(t testing.TB, seed uint64) (atSeqs int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	mode := r.IntN(3) // 0 one ID per message, 1 ranges, 2 chains
	startImage := r.IntN(3) == 0
	nev := 3 + r.IntN(60)
	evs := make([]mevent, nev)
	state := map[string]int{}
	tm := tBase
	var useq, id uint64
	for e := range evs {
		tm += r.Int64N(3) * tick
		ev := mevent{t: tm}
		for range 1 + r.IntN(3) {
			k := fmt.Sprintf("k%d", r.IntN(6))
			v := e*10 + r.IntN(10) + 1
			del := r.IntN(8) == 0
			ev.chg = append(ev.chg, snapshot.Change[string, int]{Key: k, Value: v, Delete: del})
			if del {
				delete(state, k)
			} else {
				state[k] = v
			}
			useq++
		}
		ev.uLast = useq
		ev.prev = id
		switch mode {
		case 0:
			ev.first, id = id+1, id+1
		case 1:
			ev.first = id + 1
			id += 1 + uint64(r.IntN(4))
		case 2:
			ev.first = id + 1
			id += 1 + uint64(r.IntN(5))
		}
		ev.id = id
		ev.stateAfter = maps.Clone(state)
		evs[e] = ev
	}
	// Deliveries: events with heartbeats between them.
	var l []mdeliv
	for e := range evs {
		l = append(l, mdeliv{kind: 'm', e: e})
		if e+1 < nev && evs[e+1].t > evs[e].t && r.IntN(3) == 0 {
			l = append(l, mdeliv{kind: 'h', e: e, t: evs[e+1].t - 1 - r.Int64N(2)*tick/2})
		}
	}
	l = append(l, mdeliv{kind: 'h', e: nev - 1, t: evs[nev-1].t + 10*tick})
	gaps := r.Float64() * 0.2
	for i := 0; i < len(l); i++ {
		if l[i].kind != 'm' || r.Float64() >= gaps {
			continue
		}
		j := i
		for j < len(l) && l[j].kind == 'm' && j-i < 1+r.IntN(3) {
			j++
		}
		run := slices.Clone(l[i:j])
		l = slices.Delete(l, i, j)
		if r.IntN(2) == 0 {
			l = slices.Insert(l, min(len(l), i+r.IntN(4)), mdeliv{kind: 'i', e: run[len(run)-1].e})
		} else {
			l = slices.Insert(l, min(len(l), i+1+r.IntN(8)), run...)
		}
	}
	for i := range l {
		if r.IntN(5) == 0 {
			j := min(len(l)-1, i+1+r.IntN(3))
			l[i], l[j] = l[j], l[i]
		}
	}
	for i := 0; i < len(l); i++ {
		if l[i].kind == 'm' && r.IntN(8) == 0 {
			l = slices.Insert(l, min(len(l), i+1+r.IntN(10)), l[i])
		}
	}
	if startImage {
		l = slices.Insert(l, r.IntN(len(l)+1), mdeliv{kind: 'i', e: r.IntN(nev)})
	}

	// seqOf maps A's update sequence numbers at event ends to B's IDs,
	// eventOf B's IDs to events.
	seqOf := map[uint64]uint64{0: 0}
	eventOf := map[uint64]int{}
	for e, ev := range evs {
		seqOf[ev.uLast] = ev.id
		eventOf[ev.id] = e
	}
	// In some scenarios a Check hook refuses one event, once, on both
	// collectors (as a checksum mismatch would); the events it sees must
	// hold the true state, ordered reads included.
	failAt := uint64(0)
	if r.IntN(3) == 0 {
		failAt = evs[r.IntN(nev)].id
	}
	var checkErr error
	newColl := func(messages bool) *snapshot.Collector[string, int] {
		failed := false
		cfg := &snapshot.Config[string, int]{SilentAfter: time.Hour, Order: modelOrder,
			Sources: []snapshot.Source{{Name: "S", Events: !messages, Messages: messages, StartWithImage: startImage}},
			Check: func(v *snapshot.View[string, int]) error {
				id := v.Seq()
				if !messages {
					id = seqOf[id]
				}
				e, ok := eventOf[id]
				if !ok {
					checkErr = fmt.Errorf("Check saw seq %d (messages %v), which ends no event", v.Seq(), messages)
					return nil
				}
				want := evs[e].stateAfter
				got := map[string]int{}
				for side := range 2 {
					for k, val := range v.Ascend(side) {
						got[k] = val
					}
				}
				if !maps.Equal(got, want) || v.Len() != len(want) {
					checkErr = fmt.Errorf("Check (messages %v) after event %d: view %v (Len %d), want %v", messages, e, got, v.Len(), want)
				}
				if id == failAt && !failed {
					failed = true
					return errors.New("checksum mismatch")
				}
				return nil
			}}
		c, err := snapshot.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := newColl(false), newColl(true)
	where := func(step int) string {
		return fmt.Sprintf("seed %d mode %d start %v step %d/%d", seed, mode, startImage, step, len(l))
	}
	clock := int64(tBase - tick)
	done, cancel := context.WithCancel(context.Background())
	cancel() // AtSeq must not wait here
	for step, d := range l {
		ev := &evs[d.e]
		var ea, eb error
		switch d.kind {
		case 'm':
			us := make([]snapshot.Update[string, int], len(ev.chg))
			for i, ch := range ev.chg {
				us[i] = snapshot.Update[string, int]{Source: "S", Seq: ev.uLast - uint64(len(ev.chg)-1-i), Time: time.Unix(0, ev.t),
					Key: ch.Key, Value: ch.Value, Delete: ch.Delete, EndOfEvent: i == len(ev.chg)-1}
			}
			ea = a.Apply(us...)
			m := snapshot.Message[string, int]{Source: "S", Seq: ev.id, Time: time.Unix(0, ev.t), Changes: ev.chg}
			switch {
			case mode == 1:
				m.First = ev.first
			case mode == 2 && ev.prev == 0:
				m.First = 1
			case mode == 2:
				m.Prev = ev.prev
			}
			eb = b.ApplyMessage(m)
		case 'h':
			ea = a.Heartbeat(snapshot.Heartbeat{Source: "S", Seq: ev.uLast, Time: time.Unix(0, d.t)})
			eb = b.Heartbeat(snapshot.Heartbeat{Source: "S", Seq: ev.id, Time: time.Unix(0, d.t)})
		case 'i':
			var es []snapshot.Entry[string, int]
			for _, k := range slices.Sorted(maps.Keys(ev.stateAfter)) {
				es = append(es, snapshot.Entry[string, int]{Key: k, Value: ev.stateAfter[k]})
			}
			ea = a.Reset(snapshot.Image[string, int]{Source: "S", Seq: ev.uLast, Time: time.Unix(0, ev.t), Entries: es})
			eb = b.Reset(snapshot.Image[string, int]{Source: "S", Seq: ev.id, Time: time.Unix(0, ev.t), Entries: es})
		}
		if (ea == nil) != (eb == nil) || ea != nil && !sameSentinel(ea, eb) {
			t.Fatalf("%s: %c event %d: updates %v, messages %v", where(step), d.kind, d.e, ea, eb)
		}
		if checkErr != nil {
			t.Fatalf("%s: %v", where(step), checkErr)
		}
		// The state right after an event, when AtSeq has it, is the true one.
		if r.IntN(3) == 0 {
			e := r.IntN(nev)
			if at, err := b.AtSeq(done, "S", evs[e].id); err == nil {
				if got := contents(at, "S"); !maps.Equal(got, evs[e].stateAfter) {
					t.Fatalf("%s: AtSeq(%d) = %v, want %v", where(step), evs[e].id, got, evs[e].stateAfter)
				}
				if err := checkOrdered(at, "S", evs[e].stateAfter); err != nil {
					t.Fatalf("%s: AtSeq(%d): %v", where(step), evs[e].id, err)
				}
				atSeqs++
			}
		}
		if r.IntN(4) != 0 {
			continue
		}
		at := ev.t - r.Int64N(4)*tick + r.Int64N(3)*tick
		if at <= clock {
			at = clock + tick
		}
		clock = at
		ca, err := a.Cut(time.Unix(0, at))
		if err != nil {
			t.Fatal(err)
		}
		cb, err := b.Cut(time.Unix(0, at))
		if err != nil {
			t.Fatal(err)
		}
		sa, _ := ca.Status("S")
		sb, _ := cb.Status("S")
		if ca.Complete() != cb.Complete() || sa.State != sb.State {
			t.Fatalf("%s: cut at %d: updates %s, messages %s", where(step), at, ca, cb)
		}
		if got, want := contents(cb, "S"), contents(ca, "S"); !maps.Equal(got, want) {
			t.Fatalf("%s: cut at %d: messages hold %v, updates %v", where(step), at, got, want)
		}
		if seqOf[sa.Through] != sb.Through || seqOf[sa.Seq] != sb.Seq {
			t.Fatalf("%s: cut at %d: updates Through %d Seq %d (IDs %d %d), messages Through %d Seq %d",
				where(step), at, sa.Through, sa.Seq, seqOf[sa.Through], seqOf[sa.Seq], sb.Through, sb.Seq)
		}
		if err := checkOrdered(cb, "S", contents(ca, "S")); err != nil {
			t.Fatalf("%s: %v", where(step), err)
		}
	}
	return atSeqs
}

func sameSentinel(a, b error) bool {
	for _, s := range []error{snapshot.ErrSequence, snapshot.ErrTime, snapshot.ErrOverflow, snapshot.ErrLate, snapshot.ErrInvalid} {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

func TestMessagesAgainstUpdates(t *testing.T) {
	t.Parallel()
	n := uint64(2000)
	if testing.Short() || raceEnabled {
		n = 300
	}
	reads := 0
	for seed := range n {
		reads += runMessages(t, seed)
	}
	if reads < int(n) {
		t.Fatalf("only %d AtSeq reads checked in %d scenarios", reads, n)
	}
}

func FuzzMessages(f *testing.F) {
	f.Add(uint64(1))
	f.Add(uint64(77))
	f.Fuzz(func(t *testing.T, seed uint64) { runMessages(t, seed) })
}
