// Command marketdata simulates venues streaming quotes for hundreds of symbols,
// cuts consistent snapshots of them on an interval with package snapshot, and
// computes the consolidated best bid and offer (NBBO) of every symbol on each
// snapshot with gather.Map, flagging locked and crossed markets.
//
// The quotes come from package marketsim's script; each venue reaches the
// collector with its own latency and jitter. ARCX loses messages now and then
// and resends them when the collector asks (its gap-fill hook); BATS goes
// silent part way through; EDGX is optional and slow, and holds a quote back
// now and then. The simulation runs in
// simulated time, deterministically for a seed, so its output can be checked:
//
//	go run ./examples/marketdata -seed 1 -symbols 300 -duration 1s
package main

import (
	"container/heap"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/gather-go/gather"
	"github.com/gather-go/gather/marketsim"
	"github.com/gather-go/gather/snapshot"
)

func main() {
	o := defaults()
	flag.Uint64Var(&o.Seed, "seed", o.Seed, "random seed")
	flag.IntVar(&o.Symbols, "symbols", o.Symbols, "number of symbols")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "simulated duration")
	flag.DurationVar(&o.Interval, "interval", o.Interval, "time between snapshots")
	flag.IntVar(&o.Show, "show", o.Show, "symbols to show from the last snapshot")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "marketdata:", err)
		os.Exit(1)
	}
}

// options shape a run.
type options struct {
	Seed     uint64
	Symbols  int
	Duration time.Duration // simulated
	Interval time.Duration // between snapshots
	Grace    time.Duration // how long after its time a snapshot is cut
	Show     int
}

func defaults() options {
	return options{Seed: 1, Symbols: 300, Duration: time.Second, Interval: 100 * time.Millisecond, Grace: 20 * time.Millisecond, Show: 4}
}

// Quote is one venue's top of book for a symbol, in cents.
type Quote = marketsim.Quote

// venue is how one simulated exchange feed reaches the collector; what it
// sends comes from the marketsim script (ARCX loses a message now and then,
// BATS goes silent, EDGX holds a quote back now and then).
type venue struct {
	optional bool
	latency  time.Duration // mean one-way delay
	jitter   time.Duration // uniform ± around it
}

var venues = []venue{
	{latency: 2 * time.Millisecond, jitter: time.Millisecond},
	{latency: 5 * time.Millisecond, jitter: 4 * time.Millisecond},
	{latency: time.Millisecond, jitter: 500 * time.Microsecond},
	{optional: true, latency: 30 * time.Millisecond, jitter: 5 * time.Millisecond},
}

var open = time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)

// delivery is one message reaching the collector at a simulated time.
type delivery struct {
	at  time.Time
	ord int // tie-break: generation order
	u   *snapshot.Update[string, Quote]
	h   *snapshot.Heartbeat
}

// queue orders deliveries by arrival time (container/heap).
type queue []delivery

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].ord < q[j].ord
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(delivery)) }
func (q *queue) Pop() (x any) { x, *q = (*q)[len(*q)-1], (*q)[:len(*q)-1]; return x }

// sim is the simulated market: its clock, the messages in flight, and the
// updates each venue sent (for resends).
type sim struct {
	now     time.Time
	q       queue
	ord     int
	sent    map[string][]snapshot.Update[string, Quote] // by venue, index seq-1
	lost    map[string]map[uint64]bool
	resends int
	rng     *rand.Rand
}

func (s *sim) push(at time.Time, u *snapshot.Update[string, Quote], h *snapshot.Heartbeat) {
	s.ord++
	heap.Push(&s.q, delivery{at: at, ord: s.ord, u: u, h: h})
}

// resend answers the collector's gap-fill request: lost updates arrive again
// after a round trip of 2 to 40 milliseconds.
func (s *sim) resend(src string, first, last uint64) {
	delay := 2*time.Millisecond + time.Duration(s.rng.Int64N(int64(38*time.Millisecond)))
	for seq := first; seq <= last; seq++ {
		if s.lost[src][seq] {
			delete(s.lost[src], seq)
			u := s.sent[src][seq-1]
			s.resends++
			s.push(s.now.Add(delay), &u, nil)
		}
	}
}

// generate produces every venue's messages from the market script, with
// arrival times after each venue's latency and jitter.
func (s *sim) generate(o options, script *marketsim.Script) {
	type clock struct {
		seq     uint64
		arrived time.Time // a venue's messages arrive in order (one connection)
	}
	names := script.Venues()
	symbols := script.Symbols()
	clocks := make([]clock, len(venues))
	// Run on a little past the last snapshot, so that it can complete.
	for ms := time.Duration(0); ms < o.Duration+o.Grace; ms += time.Millisecond {
		for _, e := range script.Next() {
			v, c, name := venues[e.Venue], &clocks[e.Venue], names[e.Venue].Name
			event := open.Add(e.At)
			at := event.Add(v.latency - v.jitter + time.Duration(s.rng.Int64N(int64(2*v.jitter)+1)))
			if at.Before(c.arrived) {
				at = c.arrived
			}
			if e.Kind == marketsim.KindHeartbeat {
				c.arrived = at
				s.push(at, nil, &snapshot.Heartbeat{Source: name, Seq: c.seq, Time: event})
				continue
			}
			c.seq++
			u := snapshot.Update[string, Quote]{Source: name, Seq: c.seq, Time: event, Key: symbols[e.Symbol], Value: e.Quote}
			s.sent[name] = append(s.sent[name], u)
			switch {
			case e.Lost:
				s.lost[name][u.Seq] = true
			case e.Delay > 0:
				s.push(at.Add(e.Delay), &u, nil) // held back: later ones overtake it
			default:
				c.arrived = at
				s.push(at, &u, nil)
			}
		}
	}
}

// nbbo is one symbol's consolidated best bid and offer.
type nbbo struct {
	Bid, Ask        int64
	BidAt, AskAt    string
	Quoted          bool
	Locked, Crossed bool
}

func run(ctx context.Context, w io.Writer, o options) error {
	script, err := marketsim.NewScript(&marketsim.Config{Seed: o.Seed, Venues: len(venues), Symbols: o.Symbols,
		Rate: 3000, Heartbeat: 2 * time.Millisecond, LossEvery: 300, LateEvery: 2000,
		SilentAt: 550 * time.Millisecond, SilentFor: time.Hour, SilentEvery: 2 * time.Hour})
	if err != nil {
		return err
	}
	symbols := script.Symbols()
	s := &sim{
		now:  open,
		sent: map[string][]snapshot.Update[string, Quote]{},
		lost: map[string]map[uint64]bool{},
		rng:  rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed)),
	}
	cfg := &snapshot.Config[string, Quote]{
		Now:             func() time.Time { return s.now },
		SilentAfter:     20 * time.Millisecond,
		GapFill:         s.resend,
		GapFillInterval: time.Millisecond,
	}
	for i, v := range script.Venues() {
		cfg.Sources = append(cfg.Sources, snapshot.Source{Name: v.Name, Optional: venues[i].optional})
		s.lost[v.Name] = map[uint64]bool{}
	}
	c, err := snapshot.New(cfg)
	if err != nil {
		return err
	}
	s.generate(o, script)

	var last *snapshot.Cut[string, Quote]
	var lastBook []nbbo
	complete := 0
	for at := o.Interval; at <= o.Duration; at += o.Interval {
		cutTime := open.Add(at)
		// Deliver everything that arrives before the snapshot is due.
		for s.q.Len() > 0 && !s.q[0].at.After(cutTime.Add(o.Grace)) {
			d := heap.Pop(&s.q).(delivery)
			s.now = d.at
			if d.u != nil {
				err = c.Apply(*d.u)
			} else {
				err = c.Heartbeat(*d.h)
			}
			if err != nil {
				return err
			}
		}
		s.now = cutTime.Add(o.Grace)
		cut, err := c.Cut(cutTime)
		if err != nil {
			return err
		}
		book, err := consolidate(ctx, cut, symbols)
		if err != nil {
			return err
		}
		if cut.Complete() {
			complete++
		}
		fmt.Fprintln(w, summary(cut, book))
		last, lastBook = cut, book
	}
	st := c.Stats()
	fmt.Fprintf(w, "%d of %d snapshots complete; %d updates applied, %d resent after gaps, %d late\n",
		complete, int(o.Duration/o.Interval), st.Applied, s.resends, st.Late)
	if last != nil {
		fmt.Fprintf(w, "NBBO at %s:\n", last.Time().Format("15:04:05.000"))
		for i := range min(o.Show, len(symbols)) {
			fmt.Fprintf(w, "  %-5s %s\n", symbols[i], lastBook[i])
		}
	}
	return nil
}

// consolidate computes every symbol's NBBO from the venues that have passed
// the cut's time, fanning out with gather.Map.
func consolidate(ctx context.Context, cut *snapshot.Cut[string, Quote], symbols []string) ([]nbbo, error) {
	var current []string
	for _, st := range cut.Sources() {
		if st.State == snapshot.Current {
			current = append(current, st.Source)
		}
	}
	return gather.Map(ctx, symbols, func(_ context.Context, sym string) (nbbo, error) {
		var b nbbo
		for _, v := range current {
			q, ok := cut.Get(v, sym)
			if !ok {
				continue
			}
			if !b.Quoted || q.Bid > b.Bid {
				b.Bid, b.BidAt = q.Bid, v
			}
			if !b.Quoted || q.Ask < b.Ask {
				b.Ask, b.AskAt = q.Ask, v
			}
			b.Quoted = true
		}
		b.Locked = b.Quoted && b.Bid == b.Ask
		b.Crossed = b.Quoted && b.Bid > b.Ask
		return b, nil
	}, gather.Limit(4))
}

// summary is one line per snapshot: complete or not, the NBBO's health, and
// every venue that had not passed the snapshot's time.
func summary(cut *snapshot.Cut[string, Quote], book []nbbo) string {
	quoted, locked, crossed := 0, 0, 0
	for _, b := range book {
		if b.Quoted {
			quoted++
		}
		if b.Locked {
			locked++
		}
		if b.Crossed {
			crossed++
		}
	}
	state := "complete  "
	if !cut.Complete() {
		state = "INCOMPLETE"
	}
	var behind []string
	for _, st := range cut.Sources() {
		if st.State == snapshot.Current {
			continue
		}
		note := st.Source + " " + st.State.String()
		switch st.State {
		case snapshot.Stale:
			note += " " + st.Lag.Round(time.Millisecond).String()
		case snapshot.Silent:
			note += " since " + st.Since.Format("15:04:05.000")
		case snapshot.Gapped:
			note += fmt.Sprintf(" (%d missing)", st.MissingCount)
		}
		if !st.Required {
			note += " (optional)"
		}
		behind = append(behind, note)
	}
	line := fmt.Sprintf("%s %s  quoted %d  locked %d  crossed %d", cut.Time().Format("15:04:05.000"), state, quoted, locked, crossed)
	if len(behind) > 0 {
		line += "  behind: " + strings.Join(behind, ", ")
	}
	return line
}

func (b nbbo) String() string {
	if !b.Quoted {
		return "no quote"
	}
	s := fmt.Sprintf("%s (%s) x %s (%s)", cents(b.Bid), b.BidAt, cents(b.Ask), b.AskAt)
	switch {
	case b.Crossed:
		s += " CROSSED"
	case b.Locked:
		s += " LOCKED"
	}
	return s
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
