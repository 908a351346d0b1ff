package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/marketsim"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/snapshot"
	"github.com/gather-go/gather/snapshot/natsfeed"
)

// Exit codes of Run.
const (
	ExitOK    = 0 // ran for its duration or until ctx ended
	ExitFail  = 1 // the demo could not run (the server, the queue, the feed failed)
	ExitUsage = 2 // bad arguments
)

// Config is what [RunConfig] needs: the arguments and output streams, and
// the optional hooks a caller that serves a dashboard uses. Stdout and
// Stderr default to io.Discard.
type Config struct {
	// Args are the demo's arguments, without the program and command name.
	Args []string
	// Stdout receives the view and the summary; Stderr, usage and errors.
	Stdout, Stderr io.Writer
	// Dashboard, if set, is called once the demo's parts are running and
	// before anything is printed, with ctx ending when the demo ends. It
	// returns the URL at which it serves a view of the demo (printed as the
	// first line, "dashboard: URL"), or an error that stops the demo with
	// exit code 1. What it starts is its own; it should stop when ctx ends.
	Dashboard func(ctx context.Context, live *Live) (url string, err error)
	// Observer receives the queue events of the demo's client and worker
	// (a dashboard's charts sit on it). Default: none.
	Observer queue.Observer
}

// Run runs the demo with args (without the command name), printing to
// stdout and stderr, until its --duration passes or ctx ends, and returns
// the exit code: 0 when it ran (ending ctx is a clean stop), 1 when it
// could not run, 2 for bad arguments. It is RunConfig without hooks.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return RunConfig(ctx, Config{Args: args, Stdout: stdout, Stderr: stderr})
}

// RunConfig runs the demo as cfg says; see Run.
func RunConfig(ctx context.Context, cfg Config) int {
	code, _ := run(ctx, cfg)
	return code
}

// options are the parsed flags.
type options struct {
	seed     uint64
	venues   int
	symbols  int
	rate     int
	interval time.Duration
	duration time.Duration
	show     int
	workers  int
	plain    bool
}

const usageText = `Usage: gather demo [flags]

Simulated market data venues stream quotes over an embedded NATS server; a
snapshot feed cuts consistent snapshots of them; on every cut, each symbol's
consolidated best bid and offer is computed through the task queue, and the
results are gathered back in symbol order. Nothing to install; the data lives
in a temporary directory, removed at exit.

Example:
  gather demo --venues 4 --symbols 300 --interval 100ms --duration 30s --seed 7

Flags:
`

func parse(args []string, stderr io.Writer) (options, int, bool) {
	o := options{seed: 1, venues: 4, symbols: 300, rate: 2000, interval: 100 * time.Millisecond, duration: 10 * time.Second, show: 6, workers: 2}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&o.seed, "seed", o.seed, "random seed: the same seed gives the same quotes, losses, delays and silences")
	fs.IntVar(&o.venues, "venues", o.venues, fmt.Sprintf("venues quoting, 1 to %d (the 2nd loses quotes, the 3rd goes silent, the 4th sends some late)", marketsim.MaxVenues))
	fs.IntVar(&o.symbols, "symbols", o.symbols, "symbols quoted, 1 to 100000")
	fs.IntVar(&o.rate, "rate", o.rate, "quotes each venue sends a second")
	fs.DurationVar(&o.interval, "interval", o.interval, "time between cuts, 10ms to 1m")
	fs.DurationVar(&o.duration, "duration", o.duration, "how long to run; 0 runs until interrupted")
	fs.IntVar(&o.show, "show", o.show, "symbols shown in the live view")
	fs.IntVar(&o.workers, "workers", o.workers, "tasks the in-process queue worker runs at once")
	fs.BoolVar(&o.plain, "plain", o.plain, "print plain lines even on a terminal")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, ExitOK, false
		}
		return o, ExitUsage, false
	}
	var errs []string
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Sprintf("unexpected argument %q: demo takes flags only", fs.Arg(0)))
	}
	if o.interval < 10*time.Millisecond || o.interval > time.Minute {
		errs = append(errs, fmt.Sprintf("--interval %v: want 10ms to 1m", o.interval))
	}
	if o.duration < 0 {
		errs = append(errs, fmt.Sprintf("--duration %v: want 0 (until interrupted) or more", o.duration))
	}
	if o.show < 0 {
		errs = append(errs, fmt.Sprintf("--show %d: want 0 or more", o.show))
	}
	if o.workers < 1 || o.workers > 1024 {
		errs = append(errs, fmt.Sprintf("--workers %d: want 1 to 1024", o.workers))
	}
	// marketsim takes zero for its default; here zero is a mistake.
	for _, f := range []struct {
		name string
		v    int
	}{{"venues", o.venues}, {"symbols", o.symbols}, {"rate", o.rate}} {
		if f.v < 1 {
			errs = append(errs, fmt.Sprintf("--%s %d: want 1 or more", f.name, f.v))
		}
	}
	mc := o.marketConfig()
	mc.Venues, mc.Symbols, mc.Rate = max(mc.Venues, 1), max(mc.Symbols, 1), max(mc.Rate, 1) // reported above
	if _, err := marketsim.NewScript(mc); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			errs = append(errs, flagName(line))
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(stderr, "gather demo:", e)
		}
		fmt.Fprintln(stderr, "Run 'gather demo --help' for usage.")
		return o, ExitUsage, false
	}
	return o, ExitOK, true
}

// flagName rewrites a marketsim config error in the demo's flag names.
func flagName(msg string) string {
	msg = strings.TrimPrefix(msg, "marketsim: ")
	for _, r := range [][2]string{{"Venues is", "--venues"}, {"Symbols is", "--symbols"}, {"Rate is", "--rate"}} {
		msg = strings.Replace(msg, r[0], r[1], 1)
	}
	return msg
}

func (o options) marketConfig() *marketsim.Config {
	return &marketsim.Config{Seed: o.seed, Venues: o.venues, Symbols: o.symbols, Rate: o.rate}
}

// Live gives a dashboard the demo's running parts. Its methods are safe for
// concurrent use.
type Live struct {
	server *natsserver.Server
	broker *natsbroker.Broker
	feed   *natsfeed.Feed[marketsim.Quote]
	market *marketsim.Market
	latest atomic.Pointer[Round]
}

// Server returns the embedded NATS server (to connect more clients to it).
func (l *Live) Server() *natsserver.Server { return l.server }

// Broker returns the client's broker; it implements queue.Inspector.
func (l *Live) Broker() *natsbroker.Broker { return l.broker }

// Collector returns the snapshot collector the feed fills.
func (l *Live) Collector() *snapshot.Collector[string, marketsim.Quote] { return l.feed.Collector() }

// Feed returns the feed's running totals.
func (l *Live) Feed() natsfeed.Stats { return l.feed.Stats() }

// Venues returns every venue's running totals.
func (l *Live) Venues() []marketsim.VenueStats { return l.market.Stats() }

// Symbols returns the symbols, in the order of Round.Quotes. Do not modify it.
func (l *Live) Symbols() []string { return l.market.Symbols() }

// Latest returns the latest round, or nil before the first.
func (l *Live) Latest() *Round { return l.latest.Load() }

// Round is one cut and its results.
type Round struct {
	// Cut is the snapshot the round computed on.
	Cut *snapshot.Cut[string, marketsim.Quote]
	// Quotes are the symbols' NBBOs, in symbol order.
	Quotes []NBBO
	// Latency is from the cut being taken to every result gathered.
	Latency time.Duration
	// Skipped counts the cuts passed over since the previous round because
	// the previous round took longer than the interval.
	Skipped int
}

// summary is what a run did, for the final report (and the benchmark).
type summary struct {
	elapsed  time.Duration
	cuts     int
	complete int
	skipped  int
	tasks    int
	held     map[string]int // "BATS silent" -> cuts it held back
	lat      []time.Duration
	last     *Round
	venues   []marketsim.VenueStats
	silence  struct{ At, For, Every time.Duration }
	feed     natsfeed.Stats
}

// errWriter drops writes once one has failed (a closed or broken stdout),
// so the demo still runs and stops cleanly; it says so on stderr once.
type errWriter struct {
	w      io.Writer
	failed bool
	stderr io.Writer
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.failed {
		return len(p), nil
	}
	if _, err := e.w.Write(p); err != nil {
		e.failed = true
		fmt.Fprintf(e.stderr, "gather demo: stdout: %v; carrying on without it\n", err)
	}
	return len(p), nil
}

func run(ctx context.Context, cfg Config) (int, *summary) {
	stdout, stderr := cfg.Stdout, cfg.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	if stdout == nil {
		stdout = io.Discard
	}
	o, code, ok := parse(cfg.Args, stderr)
	if !ok {
		return code, nil
	}
	fail := func(format string, args ...any) (int, *summary) {
		if ctx.Err() != nil {
			return ExitOK, nil // stopped while starting: a clean stop, not a failure
		}
		fmt.Fprintf(stderr, "gather demo: "+format+"\n", args...)
		return ExitFail, nil
	}
	term := !o.plain && isTerminal(stdout)
	out := &errWriter{w: stdout, stderr: stderr}

	dir, err := os.MkdirTemp("", "gather-demo-")
	if err != nil {
		return fail("temporary directory: %v", err)
	}
	defer os.RemoveAll(dir)
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: dir, Name: "gather-demo"})
	if err != nil {
		return fail("%v", err)
	}
	defer srv.Shutdown()
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	connect := func() (*nats.Conn, error) {
		nc, err := srv.Connect(nats.Name("gather-demo"))
		if err == nil {
			conns = append(conns, nc)
		}
		return nc, err
	}
	newBroker := func() (*natsbroker.Broker, error) {
		nc, err := connect()
		if err != nil {
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, err
		}
		// Results are read at once: keep them a minute, so that a long run
		// does not fill the temporary directory.
		return natsbroker.New(ctx, js, &natsbroker.Config{Prefix: "demo", Retention: time.Minute})
	}
	wb, err := newBroker()
	if err != nil {
		return fail("queue: %v", err)
	}
	defer wb.Close()
	cb, err := newBroker()
	if err != nil {
		return fail("queue: %v", err)
	}
	defer cb.Close()
	worker, err := queue.NewWorker(wb, &queue.WorkerConfig{Concurrency: o.workers, Observer: cfg.Observer})
	if err != nil {
		return fail("%v", err)
	}
	queue.HandleFunc(worker, Kind, Consolidate)
	if err := worker.Start(); err != nil {
		return fail("%v", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = worker.Shutdown(sctx)
	}()
	client, err := queue.NewClient(cb, &queue.ClientConfig{Observer: cfg.Observer})
	if err != nil {
		return fail("%v", err)
	}

	// One task first, so that the queue's streams exist before the first
	// cut is timed.
	warm, err := queue.EnqueueBatch(ctx, client, Kind, []Book{{Symbol: "WARM"}})
	if err == nil {
		_, err = warm.Await(ctx)
	}
	if err != nil {
		return fail("queue: %v", err)
	}

	mnc, err := connect()
	if err != nil {
		return fail("nats: %v", err)
	}
	market, err := marketsim.Start(mnc, "demo.md", o.marketConfig())
	if err != nil {
		return fail("%v", err)
	}
	defer market.Close()
	venues := market.Venues()

	// The feed joins a moment after the venues started: it starts from
	// their images, as any late joiner does.
	select {
	case <-ctx.Done():
		return ExitOK, nil
	case <-time.After(min(o.interval, 200*time.Millisecond)):
	}
	fnc, err := connect()
	if err != nil {
		return fail("nats: %v", err)
	}
	scfg := &snapshot.Config[string, marketsim.Quote]{SilentAfter: 500 * time.Millisecond, GapFillInterval: 10 * time.Millisecond}
	for _, v := range venues {
		scfg.Sources = append(scfg.Sources, snapshot.Source{Name: v.Name})
	}
	feed, err := natsfeed.Start(fnc, &natsfeed.Config[marketsim.Quote]{Prefix: "demo.md", Snapshot: scfg})
	if err != nil {
		return fail("%v", err)
	}
	defer feed.Close()

	// demoCtx ends when Run returns or ctx ends; cutsCtx when no more cuts
	// are to be taken. A round in flight when --duration passes finishes.
	demoCtx, cancelDemo := context.WithCancel(ctx)
	defer cancelDemo()
	live := &Live{server: srv, broker: cb, feed: feed, market: market}
	if cfg.Dashboard != nil {
		url, err := cfg.Dashboard(demoCtx, live)
		if err != nil {
			return fail("dashboard: %v", err)
		}
		fmt.Fprintf(out, "dashboard: %s\n", url)
	}
	v := newView(out, term, o, venues, market.Symbols())
	v.header()
	select {
	case <-feed.Ready():
	case <-demoCtx.Done():
		return ExitOK, nil
	case <-time.After(readyTimeout):
		return fail("the venues did not answer the feed's image requests within %v", readyTimeout)
	}
	// --duration counts from here, so that a slow start does not eat it.
	cutsCtx, cancelCuts := context.WithCancel(demoCtx)
	if o.duration > 0 {
		cutsCtx, cancelCuts = context.WithTimeout(demoCtx, o.duration)
	}
	defer cancelCuts()

	sum := &summary{held: map[string]int{}}
	start := time.Now()
	grace := min(o.interval/2, 50*time.Millisecond)
	symbols := market.Symbols()
	books := make([]Book, len(symbols))
	var quotes []VenueQuote
	var lat samples
	var failure error
	coll := feed.Collector()
	for cut, skipped := range coll.Every(cutsCtx, o.interval, grace) {
		quotes = quotes[:0]
		var current []string
		for _, st := range cut.Sources() {
			if st.State == snapshot.Current {
				current = append(current, st.Source)
			}
		}
		for i, sym := range symbols {
			n := len(quotes)
			for _, ven := range current {
				if q, ok := cut.Get(ven, sym); ok {
					quotes = append(quotes, VenueQuote{Venue: ven, Bid: q.Bid, Ask: q.Ask})
				}
			}
			books[i] = Book{Symbol: sym, Quotes: quotes[n:len(quotes):len(quotes)]}
		}
		res, err := compute(demoCtx, client, books)
		if err != nil {
			if demoCtx.Err() == nil {
				failure = err
			}
			break
		}
		for _, st := range cut.Sources() {
			if st.Required && st.State != snapshot.Current {
				sum.held[st.Source+" "+st.State.String()]++
			}
		}
		r := &Round{Cut: cut, Quotes: res, Latency: time.Since(cut.Taken()), Skipped: skipped}
		live.latest.Store(r)
		lat.add(r.Latency)
		sum.cuts++
		sum.skipped += skipped
		sum.tasks += len(res)
		if cut.Complete() {
			sum.complete++
		}
		sum.last = r
		v.round(r, &lat, sum, feed.Stats(), market.Stats())
	}
	sum.elapsed = time.Since(start)
	sum.lat = lat.last(maxSamples)
	sum.venues = market.Stats()
	mc := market.Config()
	sum.silence.At, sum.silence.For, sum.silence.Every = mc.SilentAt, mc.SilentFor, mc.SilentEvery
	sum.feed = feed.Stats()
	v.summary(sum)
	if err := market.Err(); err != nil && failure == nil {
		failure = err
	}
	if failure != nil {
		return fail("%v", failure)
	}
	return ExitOK, sum
}

// readyTimeout bounds the wait for the venues' images at the start.
const readyTimeout = 30 * time.Second

// roundTimeout bounds one round of tasks: past it the queue is taken to have
// failed.
const roundTimeout = 30 * time.Second

// compute sends one cut's books through the queue and gathers the results
// in symbol order.
func compute(ctx context.Context, client *queue.Client, books []Book) ([]NBBO, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, roundTimeout, fmt.Errorf("a round of %d tasks took over %v", len(books), roundTimeout))
	defer cancel()
	batch, err := queue.EnqueueBatch(ctx, client, Kind, books)
	if err != nil {
		return nil, err
	}
	res, err := batch.Await(ctx)
	if err != nil && context.Cause(ctx) != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", context.Cause(ctx), err)
	}
	return res, err
}

// isTerminal reports whether w is a terminal: an *os.File on a character
// device, with TERM not "dumb".
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
