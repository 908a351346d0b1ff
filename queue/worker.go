package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Policy is how a worker shares its capacity between priority levels.
type Policy int

const (
	// Strict runs a level only when every higher level is empty: no
	// inversion, but low levels can starve while high ones are busy.
	// "Empty" is as the broker answers a claim: a replicated broker
	// (natsbroker with Replicas > 1) may answer from a replica that has
	// not yet applied an acknowledged enqueue, and so run a lower level's
	// task while that higher one is still on its way (a moment's lag).
	Strict Policy = iota
	// Weighted gives each non-empty level a share of the tasks proportional
	// to its weight (WorkerConfig.Weights): no level is starved.
	Weighted
)

// Worker defaults.
const (
	DefaultLease           = 30 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultMaxClaim        = 1024
)

// Worker limits: NewWorker refuses a config beyond them with an error
// wrapping ErrBadConfig.
const (
	// MaxConcurrency is the most runner goroutines a worker starts.
	MaxConcurrency = 1 << 16
	// MaxClaimLimit is the largest WorkerConfig.MaxClaim.
	MaxClaimLimit = 1 << 12
	// MaxHeld bounds Concurrency × MaxClaim: a runner's room for claimed
	// deliveries (about 256 bytes each) grows up to MaxClaim as its claims
	// grow, so the product bounds the memory a worker holds for claims
	// (256 MiB here).
	MaxHeld = 1 << 20
	// MaxWeight is the largest weight of the Weighted policy.
	MaxWeight = 1 << 20
	// MinLease is the shortest WorkerConfig.Lease: the worker extends
	// held leases every Lease/3.
	MinLease = time.Millisecond
)

// DefaultWeights are the weighted policy's shares, PriorityLow first.
var DefaultWeights = [NumPriorities]int{1, 2, 4, 8}

// WorkerConfig configures a Worker. A nil *WorkerConfig means every default,
// and so does every zero field.
type WorkerConfig struct {
	// Queues are the queues the worker serves. Default: DefaultQueue.
	Queues []string
	// Concurrency is how many tasks run at once, on that many goroutines.
	// Concurrency is how many tasks run at once, on that many goroutines:
	// 0 (the default) means runtime.GOMAXPROCS(0), at most MaxConcurrency,
	// and Concurrency × MaxClaim at most MaxHeld.
	Concurrency int
	// Policy shares capacity between priority levels. Default Strict.
	Policy Policy
	// Weights are the Weighted policy's shares per level, PriorityLow
	// first, each 0 (the level runs only when the others are empty) to
	// MaxWeight; all zero means DefaultWeights.
	Weights [NumPriorities]int
	// Lease is how long a claimed task stays the worker's without a
	// heartbeat; the worker extends it every Lease/3 while the task is held.
	// If the worker dies, the task is delivered again after the lease.
	// Default DefaultLease, or the broker's MaxLease if that is shorter (see
	// Limiter); otherwise at least MinLease and at most the broker's
	// MaxLease.
	Lease time.Duration
	// MaxClaim is the most tasks one goroutine claims at once. Each
	// goroutine sizes its claims so that a claim holds about eight times as
	// much handler time as the goroutine waits on the broker for it
	// (claiming and reporting, each measured as long as a Complete call
	// takes): one task at a time while tasks are slow next to a broker
	// round trip, up to MaxClaim while they are fast. A slower link claims
	// more at once, never less. Default DefaultMaxClaim, or MaxHeld /
	// Concurrency when that is less; at most MaxClaimLimit.
	MaxClaim int
	// ShutdownTimeout bounds the graceful shutdown that Run performs when
	// its context ends. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger receives task failures, retries and dead letters. Default:
	// discard.
	Logger *slog.Logger
	// Observer receives the events of the worker's tasks (see Event).
	// Default: none.
	Observer Observer
	// Middleware wraps the run of every task, Middleware[0] outermost
	// (see Middleware). Default: none. A nil element is an error.
	Middleware []Middleware
	// GlobalLimits cap the tasks running at once across every worker of
	// the broker, per queue or per kind (see GlobalLimit); the broker must
	// implement Semaphore. A runner takes a slot before a limited task
	// starts, waiting while none is free, and keeps it across its claims
	// while they hold tasks the limit covers: it releases it when it
	// goes idle, when it waits for another slot, and when someone was
	// refused one (asked every 250 ms held: one broker round trip). So
	// an unreached limit costs a runner one slot call per 250 ms of
	// claiming, not calls every claim. Default: none; at most
	// MaxGlobalLimits.
	GlobalLimits []GlobalLimit
	// GlobalRates cap how many tasks start per second across every
	// worker of the broker, per queue or per kind (see GlobalRate); the
	// broker must implement RateLimiter. A runner takes tokens for as
	// many tasks as it started in the last few milliseconds at once
	// (about one broker round trip per 10 ms while the rate is not
	// reached), gives back those it has not used within 10 ms, and waits
	// while the bucket is empty. Default: none; at most
	// MaxGlobalLimits.
	GlobalRates []GlobalRate
}

// Worker claims tasks from a Broker and runs them with the handlers
// registered by Handle. Register handlers, then Start (or Run); Shutdown
// stops it. A Worker owns its goroutines: Concurrency runners and one
// heartbeat; Shutdown returns once they have all exited. Its methods are
// safe for concurrent use.
type Worker struct {
	b         Broker
	queues    []string
	conc      int
	policy    Policy
	stride    [NumPriorities]uint64
	lease     time.Duration
	maxOut    int       // the broker's MaxPayload (Limiter); 0: none
	recheck   Rechecker // the broker, if it is one
	maxClaim  int
	shutdown  time.Duration
	log       *slog.Logger
	obs       Observer
	mw        []Middleware
	limits    []GlobalLimit
	slotNames []string // limits[i].SlotName()

	rates       []GlobalRate
	bucketNames []string // rates[i].BucketName()

	mu       sync.Mutex
	handlers map[string]runFunc
	started  bool
	pass     [NumPriorities]uint64 // weighted: virtual time per level
	qnext    int                   // rotates the first queue tried
	freed    chan struct{}         // closed when a runner releases global slots; nil until one waits
	refusals map[string]uint64     // SlotRefusals last seen, by slot name (see keepSlots)

	stop       chan struct{} // closed by Shutdown: stop claiming
	stopOnce   sync.Once
	hardCtx    context.Context // cancelled when the shutdown deadline passes
	hardCancel context.CancelFunc
	runners    sync.WaitGroup
	heartbeat  sync.WaitGroup
	slots      []*slot
	kinds      string // registered kinds, for error messages
}

// NewWorker returns a Worker for b. It returns an error wrapping
// ErrBadConfig that lists every problem of cfg, including those against the
// broker's limits when b implements Limiter.
func NewWorker(b Broker, cfg *WorkerConfig) (*Worker, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...))
	}
	if b == nil {
		bad("NewWorker with a nil Broker")
	}
	if cfg == nil {
		cfg = &WorkerConfig{Concurrency: defaultConcurrency()}
	}
	w := &Worker{
		b: b, queues: []string{DefaultQueue}, conc: cfg.Concurrency, policy: cfg.Policy,
		lease: DefaultLease, shutdown: DefaultShutdownTimeout,
		log: discard, obs: cfg.Observer, handlers: map[string]runFunc{}, stop: make(chan struct{}),
	}
	w.recheck, _ = b.(Rechecker)
	lim, _ := b.(Limiter)
	if lim != nil {
		w.maxOut = max(lim.MaxPayload(), 0)
	}
	if len(cfg.Queues) > 0 {
		w.queues = slices.Clone(cfg.Queues)
		for i, q := range w.queues {
			switch {
			case q == "":
				bad("WorkerConfig.Queues holds an empty name")
			case lim != nil:
				if err := lim.CheckQueue(q); err != nil {
					bad("WorkerConfig.Queues[%d]: %v", i, err)
				}
			}
		}
	}
	switch {
	case cfg.Concurrency < 0 || cfg.Concurrency > MaxConcurrency:
		bad("WorkerConfig.Concurrency is %d: want 0 (default GOMAXPROCS) to %d", cfg.Concurrency, MaxConcurrency)
	case cfg.Concurrency == 0:
		w.conc = defaultConcurrency()
	}
	claim := cfg.MaxClaim
	if claim == 0 {
		claim = DefaultMaxClaim
		if w.conc > 0 && w.conc <= MaxConcurrency {
			claim = max(1, min(claim, MaxHeld/w.conc))
		}
	}
	if claim > 0 && claim <= MaxClaimLimit && w.conc <= MaxConcurrency && w.conc*claim > MaxHeld {
		bad("WorkerConfig.Concurrency × MaxClaim is %d × %d: want at most %d (each runner may hold room for MaxClaim deliveries): lower MaxClaim",
			w.conc, claim, MaxHeld)
	}
	if cfg.Policy != Strict && cfg.Policy != Weighted {
		bad("WorkerConfig.Policy is %d: want Strict or Weighted", cfg.Policy)
	}
	weights := cfg.Weights
	if weights == ([NumPriorities]int{}) {
		weights = DefaultWeights
	}
	for l, wt := range weights {
		switch {
		case wt < 0 || wt > MaxWeight:
			bad("WorkerConfig.Weights[%d] is %d: want 0 to %d", l, wt, MaxWeight)
		case wt == 0:
			w.stride[l] = 0 // never chosen while another level has work
		default:
			w.stride[l] = MaxWeight / uint64(wt) // at least 1
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		dst  *time.Duration
	}{{"Lease", cfg.Lease, &w.lease}, {"ShutdownTimeout", cfg.ShutdownTimeout, &w.shutdown}} {
		switch {
		case d.v < 0:
			bad("WorkerConfig.%s is %v: want 0 (the default) or more", d.name, d.v)
		case d.v > 0:
			*d.dst = d.v
		}
	}
	switch {
	case cfg.Lease > 0 && cfg.Lease < MinLease:
		bad("WorkerConfig.Lease is %v: want 0 (default %v) or at least %v", cfg.Lease, DefaultLease, MinLease)
	case lim != nil && lim.MaxLease() > 0 && w.lease > lim.MaxLease():
		if cfg.Lease == 0 {
			w.lease = lim.MaxLease() // heartbeats within the broker's limit
		} else {
			bad("WorkerConfig.Lease is %v but broker %T keeps a lease at most %v without a heartbeat: want a Lease of at most %v, or a broker with a longer one",
				cfg.Lease, b, lim.MaxLease(), lim.MaxLease())
		}
		if w.lease < MinLease {
			bad("broker %T keeps a lease at most %v: want a broker whose lease is at least %v", b, w.lease, MinLease)
		}
	}
	switch {
	case cfg.MaxClaim < 0 || cfg.MaxClaim > MaxClaimLimit:
		bad("WorkerConfig.MaxClaim is %d: want 0 (default %d, at most MaxHeld / Concurrency) to %d", cfg.MaxClaim, DefaultMaxClaim, MaxClaimLimit)
	default:
		w.maxClaim = claim // cfg.MaxClaim, or the default for Concurrency
	}
	if cfg.Logger != nil {
		w.log = cfg.Logger
	}
	for i, m := range cfg.Middleware {
		if m == nil {
			bad("WorkerConfig.Middleware[%d] is nil", i)
		}
	}
	w.mw = slices.Clone(cfg.Middleware)
	checkLimits(b, cfg.GlobalLimits, bad)
	w.limits = slices.Clone(cfg.GlobalLimits)
	for _, l := range w.limits {
		w.slotNames = append(w.slotNames, l.SlotName())
	}
	checkRates(b, cfg.GlobalRates, bad)
	w.rates = slices.Clone(cfg.GlobalRates)
	for _, r := range w.rates {
		w.bucketNames = append(w.bucketNames, r.BucketName())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	w.hardCtx, w.hardCancel = context.WithCancel(context.Background())
	return w, nil
}

func (w *Worker) register(kind string, fn runFunc) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		panic("queue: Handle called after the worker started")
	}
	if _, dup := w.handlers[kind]; dup {
		panic("queue: a handler for kind " + kind + " is already registered")
	}
	w.handlers[kind] = fn
}

// Start starts the worker's goroutines and returns. It returns an error if
// no handler is registered or the worker was started before.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errorf("worker already started")
	}
	if len(w.handlers) == 0 {
		return errorf("%w: worker started with no handler: register one with Handle", ErrBadConfig)
	}
	names := make([]string, 0, len(w.handlers))
	for k := range w.handlers {
		names = append(names, k)
	}
	if len(w.mw) > 0 {
		wrapped := make(map[string]runFunc, len(w.handlers))
		for k, fn := range w.handlers {
			fn, err := runChain(fn, w.mw, k)
			if err != nil {
				return err
			}
			wrapped[k] = fn
		}
		w.handlers = wrapped
	}
	w.started = true
	sort.Strings(names)
	w.kinds = strings.Join(names, ", ")
	for range w.conc {
		s := &slot{w: w, chunk: 1}
		w.slots = append(w.slots, s)
		w.runners.Add(1)
		go s.loop()
	}
	w.heartbeat.Add(1)
	go w.beat()
	return nil
}

// Run starts the worker and blocks until ctx ends, then shuts it down within
// WorkerConfig.ShutdownTimeout. It returns nil after a clean shutdown, the
// Start error, or the Shutdown error.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.shutdown)
	defer cancel()
	return w.Shutdown(sctx)
}

// Shutdown stops the worker gracefully: it stops claiming, hands claimed
// tasks that have not started back to the broker, and waits for running
// handlers. If ctx ends first, it cancels the handlers' contexts, hands
// their tasks back too (so nothing is lost; they run again elsewhere), waits
// for the handlers to return and returns ctx's error. A handler that
// ignores its context holds Shutdown up. Shutdown may be called more than
// once and before Start.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.stopOnce.Do(func() { close(w.stop) })
	done := make(chan struct{})
	go func() {
		w.runners.Wait()
		w.heartbeat.Wait()
		close(done)
	}()
	select {
	case <-done:
		w.hardCancel()
		return nil
	case <-ctx.Done():
		w.hardCancel()
		<-done
		return fmt.Errorf("queue: worker shutdown: %w", context.Cause(ctx))
	}
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// claim fills dst from the queues following the priority policy.
func (w *Worker) claim(ctx context.Context, dst []Delivery) (int, error) {
	var order [NumPriorities]Priority
	w.mu.Lock()
	q0 := w.qnext
	w.qnext++
	for i := range order {
		order[i] = Priority(NumPriorities - 1 - i)
	}
	if w.policy == Weighted {
		// Lowest virtual time first; ties go to the higher level. An
		// insertion sort of four: no closure, so order stays on the stack.
		key := func(l Priority) uint64 {
			if w.stride[l] == 0 {
				return ^uint64(0)
			}
			return w.pass[l]
		}
		for i := 1; i < len(order); i++ {
			for j := i; j > 0 && key(order[j]) < key(order[j-1]); j-- {
				order[j], order[j-1] = order[j-1], order[j]
			}
		}
	}
	w.mu.Unlock()
	for k, l := range order {
		for i := range w.queues {
			q := w.queues[(q0+i)%len(w.queues)]
			n, err := w.b.Claim(ctx, q, l, w.lease, dst)
			if err != nil {
				return 0, fmt.Errorf("queue: claim from %s level %d: %w", q, l, err)
			}
			if n > 0 {
				if w.policy == Weighted {
					w.mu.Lock()
					// Levels found empty do not bank credit while empty.
					for _, e := range order[:k] {
						w.pass[e] = max(w.pass[e], w.pass[l])
					}
					w.pass[l] += uint64(n) * w.stride[l]
					w.mu.Unlock()
				}
				return n, nil
			}
		}
	}
	return 0, nil
}

// beat extends the leases of held tasks every lease/3.
func (w *Worker) beat() {
	defer w.heartbeat.Done()
	done := make(chan struct{})
	go func() { w.runners.Wait(); close(done) }()
	t := time.NewTicker(w.lease / 3)
	defer t.Stop()
	// Extend works on copies: a runner reuses its delivery buffer for its next
	// claim as soon as its group is done, while Extend may still be running.
	var held []Delivery
	var ptrs []*Delivery
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		w.extendSlots(context.WithoutCancel(w.hardCtx))
		held = held[:0]
		for _, s := range w.slots {
			held = s.held(held)
		}
		if len(held) == 0 {
			continue
		}
		ptrs = ptrs[:0]
		for i := range held {
			ptrs = append(ptrs, &held[i])
		}
		if err := w.b.Extend(context.WithoutCancel(w.hardCtx), w.lease, ptrs); err != nil {
			w.log.Warn("extending leases", "tasks", len(held), "err", err)
		}
		clear(held)
		clear(ptrs)
	}
}

func defaultConcurrency() int { return max(1, runtime.GOMAXPROCS(0)) }

// maxMessage bounds the error message kept of a failed attempt (a panic's
// value and stack, a handler's error): brokers store it with the outcome
// and the dead letter, where a message of megabytes would not fit.
const maxMessage = 64 << 10

func clipMessage(msg string) string {
	if len(msg) <= maxMessage {
		return msg
	}
	return fmt.Sprintf("%s... (%d bytes more)", msg[:maxMessage], len(msg)-maxMessage)
}

// backoff returns the delay before attempt+1: exponential, capped, with the
// upper half jittered.
func backoff(m *Message) time.Duration {
	d := m.BackoffMin
	for i := 1; i < m.Attempt && d < m.BackoffMax; i++ {
		if d > m.BackoffMax/2 {
			d = m.BackoffMax // doubling would pass it, or overflow
			break
		}
		d *= 2
	}
	d = min(d, m.BackoffMax)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// claimRatio is how much handler time a claim aims to hold per unit of
// time its runner waits on the broker for it (see WorkerConfig.MaxClaim):
// the broker's share of a runner's time stays near 1/(1+claimRatio), and a
// claim holds back from other runners about claimRatio broker waits' worth
// of work. A group's wait is taken as two Complete calls (its claim and
// its report): a claim's own time may include waiting for work to arrive,
// which says nothing about the link.
const claimRatio = 8

// slot is one runner goroutine and what it holds.
type slot struct {
	w     *Worker
	chunk int
	buf   []Delivery

	// rtt is the smoothed time of a Complete call, per the smoothed
	// handler time per task; they size the next claim (see resize).
	// completing and completes sum the current group's Complete calls.
	rtt, per   time.Duration
	completing time.Duration
	completes  int

	mu    sync.Mutex // guards group for the heartbeat
	group []Delivery

	gmu        sync.Mutex   // guards gslots; held while they are extended or released
	gslots     []heldSlot   // global slots held (see takeSlots), kept across claims (see keepSlots)
	yieldUntil time.Time    // no global slot is taken before it (see keepSlots)
	tokens     []rateStock  // rate tokens in stock, per Worker.rates (see takeTokens)
	pos        atomic.Int32 // group[pos:] is not finished yet

	done  []Completion
	first time.Time // when done[0] was appended
	arena []byte    // outputs are cut from it

	// failed is set when a report of the current group failed: the
	// broker is likely unreachable, and the group's leases lapse with it.
	failed bool
}

// held appends copies of the deliveries the slot holds and has not finished.
// The runner writes a delivery only when claiming it, outside a group, so a
// copy taken under the lock is whole.
func (s *slot) held(dst []Delivery) []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(dst, s.group[s.pos.Load():]...)
}

func (s *slot) setGroup(g []Delivery) {
	s.mu.Lock()
	s.group = g
	s.pos.Store(0)
	s.mu.Unlock()
}

func (s *slot) loop() {
	w := s.w
	defer w.runners.Done()
	ctx := context.WithoutCancel(w.hardCtx) // broker calls survive the hard stop
	defer s.dropSlots(ctx)                  // kept across claims (see keepSlots)
	s.buf = make([]Delivery, 1)             // grown as claims grow (see resize)
	for !w.stopping() {
		n, err := w.claim(ctx, s.buf[:s.chunk])
		if err != nil {
			w.log.Error("claiming tasks", "err", err)
			s.dropSlots(ctx)
			if !s.pause(time.Second) {
				return
			}
			continue
		}
		if n == 0 {
			s.dropSlots(ctx) // an idle runner holds no slot, and no token
			s.dropTokens(ctx)
			if !s.idle(ctx) {
				return
			}
			continue
		}
		s.runClaimed(ctx, n)
	}
}

// runClaimed runs the n deliveries just claimed into s.buf and sizes the
// next claim.
func (s *slot) runClaimed(ctx context.Context, n int) {
	start := time.Now()
	s.completing, s.completes = 0, 0
	s.runGroup(ctx, s.buf[:n])
	clear(s.buf[:n])
	s.resize(n, time.Since(start)-s.completing)
}

// resize sizes the next claim after a group of n tasks that ran for run
// outside Complete: so that a claim holds about claimRatio times as much
// handler time as two Complete calls take. Both sides are measured, so a
// slower machine (handlers and broker alike) keeps the size, and a slower
// link raises it; there is no threshold where claims fall to one task.
func (s *slot) resize(n int, run time.Duration) {
	per := max(run/time.Duration(n), 1)
	if s.per == 0 {
		s.per = per
	} else {
		s.per += (per - s.per) / 4
	}
	if s.completes > 0 {
		rtt := s.completing / time.Duration(s.completes)
		if s.rtt == 0 {
			s.rtt = rtt
		} else {
			s.rtt += (rtt - s.rtt) / 4
		}
	}
	k := min(int64(s.w.maxClaim), int64(2*claimRatio*s.rtt/s.per)+1)
	s.chunk = int(max(k, 1))
	if s.chunk > len(s.buf) {
		// Doubling at least: a few allocations while claims grow; a
		// runner of slow tasks keeps a buffer of one.
		s.buf = make([]Delivery, min(max(2*len(s.buf), s.chunk), s.w.maxClaim))
	}
}

// pause waits d or until the worker stops; it reports false on stop.
func (s *slot) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.w.stop:
		return false
	case <-t.C:
		return true
	}
}

// idle blocks until the broker signals work or the worker stops; it
// reports false on stop.
func (s *slot) idle(ctx context.Context) bool {
	w := s.w
	nctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := w.b.Notify(nctx, w.queues)
	if err != nil {
		w.log.Error("waiting for work", "err", err)
		return s.pause(time.Second)
	}
	// Work that arrived between the empty claim and Notify: claim again
	// before sleeping (the caller's next claim does it if we return now).
	n, err := w.claim(ctx, s.buf[:s.chunk])
	if err == nil && n > 0 {
		s.runClaimed(ctx, n)
		return true
	}
	select {
	case <-ch:
		return true
	case <-w.stop:
		return false
	}
}

// runGroup runs claimed deliveries one after another, then reports them.
func (s *slot) runGroup(ctx context.Context, g []Delivery) {
	w := s.w
	s.setGroup(g)
	s.trimSlots(ctx, g)
	var (
		tctx    context.Context
		curCh   <-chan struct{}
		watched *taskCtx // tctx when it is one, to end
	)
	s.failed = false
	for i := range g {
		d := &g[i]
		if s.failed {
			// A report failed: the rest of the group is left to its
			// leases, which likely lapse while the broker is away (a
			// server restarting), and comes again. Run now, it would run
			// on leases that may be gone, beside the copies the broker
			// hands out again.
			break
		}
		if w.stopping() {
			// Hand back what has not started.
			for j := i; j < len(g); j++ {
				if err := w.b.Retry(ctx, &g[j], time.Time{}, nil); err != nil {
					w.log.Error("handing a task back", "task", g[j].ID(), "err", err)
				}
			}
			break
		}
		s.pos.Store(int32(i))
		if tctx == nil || d.Canceled != curCh {
			if watched != nil {
				watched.end()
			}
			tctx, watched = s.watch(d.Canceled)
			curCh = d.Canceled
		}
		s.run(ctx, tctx, d)
	}
	if watched != nil {
		watched.end()
	}
	s.flush(ctx)
	s.keepSlots(ctx)
	s.setGroup(nil)
}

// watch returns the context for tasks whose batch cancels through ch: the
// hard-stop context, cancelled also when ch closes, and the *taskCtx to end
// when the tasks are done (nil when ch is nil: the hard-stop context is
// returned as it is). Ending it closes its Done, as a finished handler's
// context should be, and joins the goroutine that watches ch, if one was
// started.
func (s *slot) watch(ch <-chan struct{}) (context.Context, *taskCtx) {
	if ch == nil {
		return s.w.hardCtx, nil
	}
	c := &taskCtx{hard: s.w.hardCtx, ch: ch}
	return c, c
}

// taskCtx is a handler's context when its batch can be cancelled: the
// hard-stop context, cancelled also when the batch's Canceled channel
// closes. Following a channel takes a goroutine, and most handlers never
// wait on their context, so the goroutine (and the cancelCtx it cancels)
// starts only when something asks for Done, or for Err or Value once the
// channel is closed: a task that ignores its context costs one allocation
// here instead of a goroutine start, a cancelCtx and two hand-offs (the
// start, and the runner waiting for the watcher to exit when the group
// ends): five allocations and two goroutine switches a lone task.
type taskCtx struct {
	hard context.Context
	ch   <-chan struct{}

	mu     sync.Mutex
	inner  context.Context // nil until needed
	cancel context.CancelCauseFunc
	stop   chan struct{} // closed by end to release the watcher
	wg     sync.WaitGroup
	ended  bool
}

// get returns the real context, creating it and its watcher on first use.
func (c *taskCtx) get() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithCancelCause(c.hard)
		switch {
		case closed(c.ch):
			c.cancel(ErrCanceled)
		case c.ended:
			c.cancel(nil)
		default:
			c.stop = make(chan struct{})
			c.wg.Go(func() {
				select {
				case <-c.ch:
					c.cancel(ErrCanceled)
				case <-c.stop:
				}
			})
		}
	}
	return c.inner
}

// settled reports whether the context is (or must now be) cancelled, or
// was created: then get is the source of truth.
func (c *taskCtx) settled() bool {
	c.mu.Lock()
	made, ended := c.inner != nil, c.ended
	c.mu.Unlock()
	return made || ended || closed(c.ch)
}

func (c *taskCtx) Deadline() (time.Time, bool) { return c.hard.Deadline() }
func (c *taskCtx) Done() <-chan struct{}       { return c.get().Done() }

func (c *taskCtx) Err() error {
	if c.settled() {
		return c.get().Err()
	}
	return c.hard.Err()
}

func (c *taskCtx) Value(key any) any {
	if c.settled() {
		return c.get().Value(key)
	}
	return c.hard.Value(key)
}

// end cancels the context and joins its watcher.
func (c *taskCtx) end() {
	c.mu.Lock()
	c.ended = true
	stop, cancel := c.stop, c.cancel
	c.mu.Unlock()
	if stop != nil {
		close(stop)
		c.wg.Wait()
	}
	if cancel != nil {
		cancel(nil)
	}
}

func closed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// run runs one delivery and records its completion or retry.
func (s *slot) run(ctx, tctx context.Context, d *Delivery) {
	w := s.w
	now := time.Now()
	if len(s.done) > 0 && now.Sub(s.first) > 2*time.Millisecond {
		s.flush(ctx)
	}
	if w.recheck != nil && w.recheck.Finished(d) {
		return // a copy of a task that ran meanwhile
	}
	fn := w.handlers[d.Kind]
	switch {
	case closed(d.Canceled):
		s.observe(EventCanceled, d, 0, nil)
		s.complete(ctx, d, nil, &Failure{Code: CodeCanceled, Message: "batch canceled", Attempts: d.Attempt - 1}, false, now)
		return
	case fn == nil:
		f := &Failure{Code: CodeUnknownKind, Attempts: d.Attempt,
			Message: fmt.Sprintf("no handler for kind %q on this worker (it handles: %s)", d.Kind, w.kinds)}
		s.observe(EventDeadLettered, d, 0, f)
		s.complete(ctx, d, nil, f, true, now)
		return
	case !d.Deadline.IsZero() && !now.Before(d.Deadline):
		f := &Failure{Code: CodeTimeout, Attempts: d.Attempt - 1,
			Message: fmt.Sprintf("deadline %s passed before the task ran", d.Deadline.Format(time.RFC3339Nano))}
		s.observe(EventDeadLettered, d, 0, f)
		s.complete(ctx, d, nil, f, true, now)
		return
	}
	if len(w.limits) > 0 && !s.takeSlots(ctx, d) {
		return // the worker stopped while the task waited: handed back
	}
	if len(w.rates) > 0 && !s.takeTokens(ctx, d) {
		return // likewise
	}
	s.observe(EventStarted, d, now.Sub(d.EnqueuedAt), nil)
	rctx := tctx
	var cancel context.CancelFunc
	if d.Timeout > 0 || !d.Deadline.IsZero() {
		dl := d.Deadline
		if d.Timeout > 0 && (dl.IsZero() || now.Add(d.Timeout).Before(dl)) {
			dl = now.Add(d.Timeout)
		}
		rctx, cancel = context.WithDeadline(tctx, dl)
	}
	start := len(s.arena)
	out, err := call(fn, rctx, &d.Message, s.arena)
	if cancel != nil {
		cancel()
	}
	if err == nil && w.maxOut > 0 && len(out)-start > w.maxOut {
		// The broker could not store it: fail the task rather than have
		// every completion of it fail and the task run again forever.
		err = Permanent(fmt.Errorf("output of %d bytes: broker %T stores at most %d", len(out)-start, w.b, w.maxOut))
	}
	var ran time.Duration
	if w.obs != nil { // time.Since reads the clock
		ran = time.Since(now)
	}
	if err == nil {
		s.observe(EventSucceeded, d, ran, nil)
		s.arena = out
		if cap(s.arena)-len(s.arena) < 64 {
			s.arena = make([]byte, 0, 4096)
		}
		s.complete(ctx, d, out[start:len(out):len(out)], nil, false, now)
		return
	}
	s.arena = out[:start]
	if w.hardCtx.Err() != nil {
		// Shutdown deadline: hand the task back rather than fail it.
		if w.obs != nil {
			s.observe(EventFailed, d, ran, &Failure{Code: CodeCanceled, Message: "worker shutdown deadline: " + err.Error(), Attempts: d.Attempt})
			s.observe(EventReleased, d, 0, nil)
		}
		if err := w.b.Retry(ctx, d, time.Time{}, nil); err != nil {
			w.log.Error("handing a task back", "task", d.ID(), "err", err)
		}
		return
	}
	f := &Failure{Code: CodeFailed, Message: clipMessage(err.Error()), Attempts: d.Attempt}
	var bi *badInputError
	var pe *panicError
	switch {
	case closed(d.Canceled):
		f.Code = CodeCanceled
	case errors.As(err, &bi):
		f.Code = CodeBadInput
	case errors.As(err, &pe):
		f.Code = CodePanic
	case errors.Is(err, ErrPermanent):
		f.Code = CodePermanent
	case rctx.Err() != nil && errors.Is(rctx.Err(), context.DeadlineExceeded):
		f.Code = CodeTimeout
		if d.Timeout > 0 {
			f.Message = fmt.Sprintf("attempt timed out after %v: %s", d.Timeout, f.Message)
		}
	}
	s.observe(EventFailed, d, ran, f)
	final := f.Code != CodeFailed && f.Code != CodePanic && f.Code != CodeTimeout ||
		d.Attempt >= d.MaxAttempts ||
		!d.Deadline.IsZero() && !time.Now().Before(d.Deadline)
	if !final {
		delay := backoff(&d.Message)
		s.observe(EventRetried, d, delay, nil)
		w.log.Debug("task failed; retrying", "task", d.ID(), "kind", d.Kind, "attempt", d.Attempt, "in", delay, "err", err)
		if err := w.b.Retry(ctx, d, time.Now().Add(delay), &AttemptError{Attempt: d.Attempt, At: time.Now(), Error: f.Message}); err != nil {
			w.log.Error("retrying a task", "task", d.ID(), "err", err)
		}
		return
	}
	dead := f.Code != CodeCanceled
	if dead {
		s.observe(EventDeadLettered, d, 0, f)
		w.log.Warn("task dead-lettered", "task", d.ID(), "kind", d.Kind, "attempts", d.Attempt, "code", f.Code, "err", err)
	}
	s.complete(ctx, d, nil, f, dead, now)
}

func (s *slot) complete(ctx context.Context, d *Delivery, out []byte, f *Failure, dead bool, now time.Time) {
	if len(s.done) == 0 {
		s.first = now
	}
	s.done = append(s.done, Completion{Delivery: d, Outcome: Outcome{Index: d.Index, Output: out, Err: f}, Dead: dead})
	// Failures go out at once so that fail-fast awaiters react quickly.
	if f != nil || len(s.done) >= cap(s.buf) {
		s.flush(ctx)
	}
}

func (s *slot) flush(ctx context.Context) {
	if len(s.done) == 0 {
		return
	}
	start := time.Now()
	if err := s.w.b.Complete(ctx, s.done); err != nil {
		// The leases will expire and the tasks run again: at least once.
		s.w.log.Error("recording results", "tasks", len(s.done), "err", err)
		s.failed = true
	}
	s.completing += time.Since(start)
	s.completes++
	clear(s.done)
	s.done = s.done[:0]
	// Complete usually readied an awaiting goroutine, and the runtime
	// queues it to run next on this P, where it would wait until this
	// runner parks: after its next claims, Notify and claims again, about
	// a microsecond. Yield so the awaiter runs now and that bookkeeping
	// overlaps its next enqueue. A lone task's round trip: 3.65 µs before,
	// 2.9 µs after; batches of 100 and 10k unchanged (one yield a flush).
	runtime.Gosched()
}

// observe reports an event of delivery d to the worker's observer, if any.
func (s *slot) observe(t EventType, d *Delivery, elapsed time.Duration, f *Failure) {
	if o := s.w.obs; o != nil {
		e := Event{Type: t, Queue: d.Queue, Kind: d.Kind, BatchID: d.BatchID, Index: d.Index, Attempt: d.Attempt, Elapsed: elapsed}
		if f != nil {
			e.Err = f
		}
		o.Observe(e)
	}
}
