package demo

import (
	"context"
	"fmt"
	"io"
	"os"
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
	coll     snapshot.Stats
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
	// Starting the server and creating the queue's streams is not cut short
	// by ctx: a stream still being created while the server shuts down
	// leaves the server's goroutines behind. It takes milliseconds.
	startCtx, cancelStart := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelStart()
	srv, err := natsserver.Start(startCtx, &natsserver.Config{Dir: dir, Name: "gather-demo"})
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
		return natsbroker.New(startCtx, js, &natsbroker.Config{Prefix: "demo", Retention: time.Minute})
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
	warm, err := queue.EnqueueBatch(startCtx, client, Kind, []Book{{Symbol: "WARM"}})
	if err == nil {
		_, err = warm.Await(startCtx)
	}
	if err != nil {
		return fail("queue: %v", err)
	}
	if ctx.Err() != nil {
		return ExitOK, nil
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
	sum.coll = coll.Stats()
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
