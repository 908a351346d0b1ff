package demo

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gather-go/gather/marketsim"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// legend explains the market terms, one line each.
const legend = `Legend:
  bid      the highest price a venue will pay for a symbol
  offer    (or ask) the lowest price a venue will sell it at
  spread   offer minus bid
  mid      halfway between bid and offer
  NBBO     the consolidated quote: the best bid and the best offer across every venue
  quoted   the symbol has a bid and an offer on some venue
  locked   the best bid equals the best offer, on different venues
  crossed  the best bid is above the best offer: somebody's quote is stale
  cut      every venue's quotes as of one instant; complete once every venue has reported up to it
`

// maxWidth bounds a live-view line, so that a narrow terminal's wrapping
// does not throw off the redraw.
const maxWidth = 110

// view prints the demo's progress: a block redrawn in place on a terminal,
// a plain line a second otherwise. Not safe for concurrent use.
type view struct {
	w       io.Writer
	term    bool
	o       options
	venues  []marketsim.Venue
	symbols []string

	drawn    int       // lines of the block on screen
	lastDraw time.Time // terminal: when the block was last drawn
	lastLine time.Time // plain: when the last line was printed
	lineCuts int       // plain: cuts since the last line
	lineDone int       // plain: complete ones among them
	window   []rate    // rounds of the last second, for tasks/s
}

type rate struct {
	t time.Time
	n int
}

func newView(w io.Writer, term bool, o options, venues []marketsim.Venue, symbols []string) *view {
	return &view{w: w, term: term, o: o, venues: venues, symbols: symbols, lastLine: time.Now()}
}

func (v *view) header() {
	names := make([]string, len(v.venues))
	for i, ven := range v.venues {
		names[i] = ven.Name
		if ven.Role != marketsim.Clean {
			names[i] += " (" + ven.Role.String() + ")"
		}
	}
	until := "until interrupted"
	if v.o.duration > 0 {
		until = "for " + v.o.duration.String()
	}
	fmt.Fprintf(v.w, "gather demo: %d venues x %d symbols, a cut every %v, %s, seed %d\n",
		len(v.venues), len(v.symbols), v.o.interval, until, v.o.seed)
	fmt.Fprintf(v.w, "venues: %s\n", strings.Join(names, ", "))
	fmt.Fprint(v.w, legend)
	if v.term {
		fmt.Fprintln(v.w)
	}
}

// reason says in a few words why a source holds a cut back.
func reason(st snapshot.SourceStatus[string]) string {
	switch st.State {
	case snapshot.Stale:
		return st.Source + " stale by " + st.Lag.Round(time.Millisecond).String()
	case snapshot.Silent:
		return st.Source + " silent since " + st.Since.Local().Format("15:04:05.000")
	case snapshot.Gapped:
		return fmt.Sprintf("%s gapped (%d missing, resend asked)", st.Source, st.MissingCount)
	}
	return st.Source + " " + st.State.String()
}

func heldBack(cut *snapshot.Cut[string, marketsim.Quote]) string {
	var rs []string
	for _, st := range cut.Sources() {
		if st.Required && st.State != snapshot.Current {
			rs = append(rs, reason(st))
		}
	}
	return strings.Join(rs, ", ")
}

// tasksPerSecond counts the tasks of the rounds finished in the last second.
func (v *view) tasksPerSecond(now time.Time, n int) int {
	v.window = append(v.window, rate{now, n})
	i := 0
	for i < len(v.window) && now.Sub(v.window[i].t) > time.Second {
		i++
	}
	v.window = v.window[i:]
	total := 0
	for _, r := range v.window {
		total += r.n
	}
	return total
}

func (v *view) round(r *Round, lat *samples, sum *summary, fs natsfeed.Stats, vs []marketsim.VenueStats) {
	now := time.Now()
	tps := v.tasksPerSecond(now, len(r.Quotes))
	ps := percentiles(lat.last(100), 50, 99)
	if !v.term {
		v.lineCuts++
		if r.Cut.Complete() {
			v.lineDone++
		}
		if now.Sub(v.lastLine) < time.Second {
			return
		}
		line := fmt.Sprintf("%s cuts %d, %d complete", r.Cut.Time().Local().Format("15:04:05.000"), v.lineCuts, v.lineDone)
		if hb := heldBack(r.Cut); hb != "" {
			line += "; held back: " + hb
		}
		line += fmt.Sprintf("; %s tasks/s; cut-to-result p50 %v p99 %v", num(tps), ms(ps[0]), ms(ps[1]))
		if len(r.Quotes) > 0 {
			line += "; " + r.Quotes[0].Symbol + " " + r.Quotes[0].String()
		}
		fmt.Fprintln(v.w, line)
		v.lastLine, v.lineCuts, v.lineDone = now, 0, 0
		return
	}
	if now.Sub(v.lastDraw) < 80*time.Millisecond {
		return // at most a dozen redraws a second
	}
	v.lastDraw = now
	var lines []string
	state := "complete"
	if !r.Cut.Complete() {
		state = "incomplete, held back by " + heldBack(r.Cut)
	}
	lines = append(lines, fmt.Sprintf("cut %s #%d %s", r.Cut.Time().Local().Format("15:04:05.000"), sum.cuts, state))
	lines = append(lines, fmt.Sprintf("  %-6s %17s %17s %7s %9s", "symbol", "bid", "offer", "spread", "mid"))
	quoted, locked, crossed := 0, 0, 0
	for _, q := range r.Quotes {
		if q.Quoted {
			quoted++
		}
		if q.Locked {
			locked++
		}
		if q.Crossed {
			crossed++
		}
	}
	for _, q := range r.Quotes[:min(v.o.show, len(r.Quotes))] {
		if !q.Quoted {
			lines = append(lines, fmt.Sprintf("  %-6s %s", q.Symbol, "no quote"))
			continue
		}
		mark := ""
		switch {
		case q.Crossed:
			mark = " CROSSED"
		case q.Locked:
			mark = " LOCKED"
		}
		lines = append(lines, fmt.Sprintf("  %-6s %10s %-6s %10s %-6s %7s %9s%s", q.Symbol, cents(q.Bid), q.BidVenue,
			cents(q.Ask), q.AskVenue, cents(q.Spread), mid(q.MidX2), mark))
	}
	lines = append(lines, fmt.Sprintf("of %d symbols: %d quoted, %d locked, %d crossed", len(r.Quotes), quoted, locked, crossed))
	lines = append(lines, fmt.Sprintf("cuts %d (%d complete, %d skipped); tasks %s, %s/s; cut-to-result p50 %v p99 %v",
		sum.cuts, sum.complete, sum.skipped, num(sum.tasks), num(tps), ms(ps[0]), ms(ps[1])))
	var notes []string
	for _, s := range vs {
		switch {
		case s.Silent:
			notes = append(notes, s.Name+" silent now")
		case s.Lost > 0:
			notes = append(notes, fmt.Sprintf("%s %d lost, %d resends", s.Name, s.Lost, s.Resends))
		case s.Delayed > 0:
			notes = append(notes, fmt.Sprintf("%s %d late", s.Name, s.Delayed))
		}
	}
	feedLine := fmt.Sprintf("feed: %s updates, %d resend requests, %d images", num(int(fs.Updates)), fs.Resends, fs.Images)
	if len(notes) > 0 {
		feedLine += "; " + strings.Join(notes, ", ")
	}
	lines = append(lines, feedLine)

	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF\x1b[J", v.drawn) // up to the block's first line, clear below
	}
	for _, l := range lines {
		if len(l) > maxWidth {
			cut := maxWidth - 3
			for cut > 0 && !utf8.RuneStart(l[cut]) {
				cut-- // not inside a rune (µs)
			}
			l = l[:cut] + "..."
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	io.WriteString(v.w, b.String())
	v.drawn = len(lines)
}

func (v *view) summary(s *summary) {
	if v.term && v.drawn > 0 {
		fmt.Fprintln(v.w)
	}
	fmt.Fprintf(v.w, "summary: %d cuts in %v, %d complete", s.cuts, s.elapsed.Round(time.Millisecond), s.complete)
	if s.skipped > 0 {
		fmt.Fprintf(v.w, ", %d skipped (a round took longer than the interval)", s.skipped)
	}
	if len(s.held) > 0 {
		keys := make([]string, 0, len(s.held))
		for k := range s.held {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, s.held[k])
		}
		fmt.Fprintf(v.w, "; held back by %s", strings.Join(parts, ", "))
	}
	fmt.Fprintln(v.w)
	fmt.Fprintln(v.w, "venues:")
	for _, vs := range s.venues {
		state := "not seen"
		if s.last != nil {
			if st, ok := s.last.Cut.Status(vs.Name); ok {
				state = st.State.String()
			}
		}
		detail := fmt.Sprintf("%s quotes sent", num(int(vs.Sent)))
		switch {
		case vs.Lost > 0 || vs.Role == marketsim.Lossy:
			detail += fmt.Sprintf(", %d lost and %d resend requests answered", vs.Lost, vs.Resends)
		case vs.Delayed > 0 || vs.Role == marketsim.Late:
			detail += fmt.Sprintf(", %d held back and sent late", vs.Delayed)
		case vs.Role == marketsim.Silent:
			detail += fmt.Sprintf(", %s heartbeats; silent %v every %v from %v", num(int(vs.Heartbeats)),
				s.silence.For, s.silence.Every, s.silence.At)
		}
		fmt.Fprintf(v.w, "  %-5s %-12s %-8s %s\n", vs.Name, vs.Role, state, detail)
	}
	perCut := 0
	if s.cuts > 0 {
		perCut = s.tasks / s.cuts
	}
	fmt.Fprintf(v.w, "tasks run: %s through the queue (%d a cut)\n", num(s.tasks), perCut)
	ps := percentiles(slices.Clone(s.lat), 50, 99, 100)
	fmt.Fprintf(v.w, "cut-to-result latency: p50 %v, p99 %v, max %v over %d cuts\n", ms(ps[0]), ms(ps[1]), ms(ps[2]), len(s.lat))
	fmt.Fprintf(v.w, "feed: %s updates, %s heartbeats, %d resend requests (%d answered), %d images, %d refused\n",
		num(int(s.feed.Updates)), num(int(s.feed.Heartbeats)), s.feed.Resends, s.feed.Answered, s.feed.Images, s.feed.Refused)
	fmt.Fprintf(v.w, "collector: %s updates sequenced, %s duplicates ignored (resent or late copies), %s late (after their cut)\n",
		num(int(s.coll.Applied)), num(int(s.coll.Duplicates)), num(int(s.coll.Late)))
}

// ms rounds a duration for display: 2.13ms, 850µs.
func ms(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// num formats n with thousands separators.
func num(n int) string {
	s := strconv.Itoa(n)
	if n < 0 {
		return "-" + num(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
