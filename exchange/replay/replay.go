package replay

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/gather-go/gather/exchange"
	"github.com/gather-go/gather/exchange/binance"
	"github.com/gather-go/gather/exchange/kraken"
	"github.com/gather-go/gather/exchange/okx"
	"github.com/gather-go/gather/snapshot"
)

const usage = `usage: gather feed replay [flags] FILE...

Replays exchange captures through the feed adapters (Binance spot and USDⓈ-M
depth, Kraken v1 book, OKX books) into one snapshot collector, and prints
every cut: per venue and symbol the best bid and offer, and whether the cut
was complete.

A capture line is one of
  <receive time in Unix seconds>: <WebSocket message as received>
  <REST request URL> -> <receive time in Unix seconds>: <response body>
Other lines are skipped and counted. The files are merged by receive time.

Example:
  gather feed replay --every 1s --check binance.log kraken.log okx.log
  gather feed replay --json okx.log | jq .books

Flags:
`

// maxReported bounds the adapter errors written to stderr one by one; the
// rest are counted.
const maxReported = 20

// Replay runs "gather feed replay FILE...": it replays capture files through
// the venues' feed adapters into one collector and prints on stdout, for
// every cut at a multiple of --every, the best bid and offer of each book
// and whether the cut was complete. With --check it compares every checksum
// a venue sent, and every book ticker whose update ID is the last of a
// message, with the collector's book right after that message (a ticker
// that arrives first is checked when the message is applied, one that
// arrives later against the state the collector can still give for that
// message), and ends with the line "checks: N matched, M mismatched".
//
// Time in the replay is the receive time of the lines: a cut at T is taken
// once a line received later than T plus --grace is read (and at the end,
// for every T up to the last line), so a venue's events up to T that
// arrived within the grace are in it.
//
// It returns the exit code: 0 when the replay ran (and, with --check,
// nothing mismatched), 1 when a check mismatched or a file could not be
// read to its end, 2 for a usage error or a file that cannot be opened.
// Human messages (adapter errors, the summary) go to stderr. It reads the
// files twice (once to find every book) and does not start goroutines; ctx
// ends the replay early (exit code 1).
func Replay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gather feed replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	every := fs.Duration("every", time.Second, "take a cut at every multiple of this `interval` (since the Unix epoch)")
	grace := fs.Duration("grace", time.Second, "take a cut once a line received this `long` after its time is read")
	check := fs.Bool("check", false, "compare the venues' checksums and book tickers with the collector's books; exit 1 on a mismatch")
	jsonOut := fs.Bool("json", false, "print each cut as one line of JSON instead of text")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	files := fs.Args()
	switch {
	case len(files) == 0:
		fmt.Fprintln(stderr, "gather feed replay: no capture FILE given (see --help)")
		return 2
	case *every <= 0:
		fmt.Fprintf(stderr, "gather feed replay: --every %v: want a positive interval, such as 1s\n", *every)
		return 2
	case *grace < 0:
		fmt.Fprintf(stderr, "gather feed replay: --grace %v: want zero or a positive duration\n", *grace)
		return 2
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "gather feed replay: %v\n", err)
			return 2
		}
		f.Close()
	}
	sources, err := discover(files)
	if err != nil {
		fmt.Fprintf(stderr, "gather feed replay: %v\n", err)
		return 1
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	r := &run{stdout: stdout, stderr: stderr, every: *every, grace: *grace, json: *jsonOut, check: *check, done: done}
	checker := &exchange.Checker{Tickers: *check}
	cfg := exchange.NewConfig(checker, sources...)
	cfg.Now = func() time.Time { return r.now }
	c, err := snapshot.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "gather feed replay: %v\n", err)
		return 1
	}
	r.c = c
	for _, s := range sources {
		r.sources = append(r.sources, s.Name)
	}
	slices.Sort(r.sources)
	r.binance = binance.NewFeed(c, checker)
	r.kraken = kraken.NewFeed(c, checker)
	r.okx = okx.NewFeed(c, checker)

	code := r.replay(ctx, files)
	fmt.Fprintf(stderr, "replayed %d lines from %d files: %d skipped (%d over %d bytes), %d of no venue known here, %d refused (%d shown); %d cuts, %d complete\n",
		r.lines, len(files), r.skipped, r.tooLong, MaxLine, r.unknown, r.errors, min(r.errors, maxReported), r.cuts, r.complete)
	if *check {
		matched, mismatched, unchecked := checker.Counts()
		matched += r.lateMatched
		mismatched += r.lateMismatched
		fmt.Fprintf(stderr, "%d checks could not be made: their update ID was not the last of a message the book applied\n", unchecked)
		fmt.Fprintf(stdout, "checks: %d matched, %d mismatched\n", matched, mismatched)
		if mismatched > 0 && code == 0 {
			code = 1
		}
	}
	return code
}

// run is one replay's state.
type run struct {
	stdout, stderr io.Writer
	every, grace   time.Duration
	json           bool
	check          bool
	done           context.Context // ended: AtSeq without waiting
	c              *exchange.Collector
	sources        []string
	binance        *binance.Feed
	kraken         *kraken.Feed
	okx            *okx.Feed

	now      time.Time // the receive time of the line being replayed
	next     time.Time // the time of the next cut; zero before the first line
	lines    int
	skipped  int
	tooLong  int
	unknown  int
	errors   int
	cuts     int
	complete int
	// Tickers that arrived after the message they refer to, checked here
	// against the collector's state right after that message.
	lateMatched, lateMismatched int
}

type head struct {
	name string
	f    *os.File
	r    *CaptureReader
	line Line
	ok   bool
}

func (r *run) replay(ctx context.Context, files []string) int {
	heads := make([]*head, len(files))
	defer func() {
		for _, h := range heads {
			if h != nil {
				h.f.Close()
			}
		}
	}()
	code := 0
	advance := func(h *head) {
		l, err := h.r.Next()
		h.line, h.ok = l, err == nil
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(r.stderr, "%s: %v\n", h.name, err)
			code = 1
		}
	}
	for i, name := range files {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(r.stderr, "gather feed replay: %v\n", err)
			return 2
		}
		heads[i] = &head{name: name, f: f, r: NewCaptureReader(f)}
		advance(heads[i])
	}
	for {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(r.stderr, "gather feed replay: stopped: %v\n", err)
			return 1
		}
		// The line received first, the earlier file first on a tie.
		var h *head
		for _, c := range heads {
			if c.ok && (h == nil || c.line.Time.Before(h.line.Time)) {
				h = c
			}
		}
		if h == nil {
			break
		}
		r.cutsBefore(h.line.Time)
		if h.line.Time.After(r.now) {
			r.now = h.line.Time
		}
		r.lines++
		r.feed(h.name, h.line)
		advance(h)
	}
	for _, h := range heads {
		s, long := h.r.Skipped()
		r.skipped += s
		r.tooLong += long
	}
	// The cuts up to the last line's time.
	for !r.next.IsZero() && !r.next.After(r.now) {
		r.cut(r.next)
		r.next = r.next.Add(r.every)
	}
	return code
}

// cutsBefore takes the cuts due before a line received at t is replayed:
// those whose time plus the grace is before t. A long silence in the
// captures skips the cuts in it but the last, and says so.
func (r *run) cutsBefore(t time.Time) {
	if r.next.IsZero() {
		r.next = t.Truncate(r.every).Add(r.every)
		return
	}
	due := t.Add(-r.grace)
	if n := due.Sub(r.next) / r.every; n > 1000 {
		fmt.Fprintf(r.stderr, "%d cuts skipped: no line received from %s to %s\n",
			n, r.now.Format(time.RFC3339Nano), t.Format(time.RFC3339Nano))
		r.next = r.next.Add(n * r.every)
	}
	for r.next.Before(due) {
		r.cut(r.next)
		r.next = r.next.Add(r.every)
	}
}

func (r *run) feed(file string, l Line) {
	var err error
	switch classify(l) {
	case venueBinance:
		if l.URL != "" {
			err = r.binance.HandleImage(l.Time, l.URL, l.Body)
			break
		}
		if r.check {
			if m, err := binance.Decode(l.Body); err == nil && m.Kind == binance.Ticker {
				mk := binance.Spot
				if !m.Ticker.EventTime.IsZero() {
					mk = binance.USDM
				}
				if r.lateTicker(file, l, binance.SourceName(mk, m.Ticker.Symbol), m.Ticker.UpdateID, m.Ticker.Bid, m.Ticker.Ask) {
					return
				}
			}
		}
		err = r.binance.Handle(l.Time, l.Body)
	case venueKraken:
		err = r.kraken.Handle(l.Time, l.Body)
	case venueOKX:
		if r.check {
			if m, err := okx.Decode(l.Body); err == nil && m.Kind == okx.BBO {
				bk := m.Books[0]
				if len(bk.Bids) > 0 && len(bk.Asks) > 0 &&
					r.lateTicker(file, l, okx.SourceName(m.InstID), r.okx.Seq(m.InstID, bk.SeqID), bk.Bids[0], bk.Asks[0]) {
					return
				}
			}
		}
		err = r.okx.Handle(l.Time, l.Body)
	default:
		r.unknown++
		return
	}
	if err != nil {
		r.errors++
		if r.errors <= maxReported {
			fmt.Fprintf(r.stderr, "%s:%d: %v\n", file, l.Number, err)
		}
	}
}

// lateTicker checks a ticker whose update ID names a message the book has
// already applied against the collector's state right after that message,
// and reports whether it could; a ticker that arrives first is left to the
// Checker, which sees the state when the message is applied.
func (r *run) lateTicker(file string, l Line, src string, seq uint64, bid, ask exchange.Level) bool {
	cut, err := r.c.AtSeq(r.done, src, seq)
	if err != nil {
		return false
	}
	_, b, okb := cut.First(src, exchange.BidSide)
	_, a, oka := cut.First(src, exchange.AskSide)
	if okb && oka && b.Price.Cmp(bid.Price) == 0 && b.Qty.Cmp(bid.Qty) == 0 && a.Price.Cmp(ask.Price) == 0 && a.Qty.Cmp(ask.Qty) == 0 {
		r.lateMatched++
		return true
	}
	r.lateMismatched++
	r.errors++
	if r.errors <= maxReported {
		fmt.Fprintf(r.stderr, "%s:%d: %s after %d: ticker says bid %v ask %v, the book had bid %v ask %v\n",
			file, l.Number, src, seq, bid, ask, orNone(b, okb), orNone(a, oka))
	}
	return true
}

func orNone(l exchange.Level, ok bool) string {
	if !ok {
		return "none"
	}
	return l.String()
}
