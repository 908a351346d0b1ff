package queue

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Headers that a Scheduler puts on the tasks it enqueues.
const (
	HeaderPeriodic     = "Gather-Periodic"      // the schedule's name
	HeaderPeriodicTick = "Gather-Periodic-Tick" // the tick, RFC 3339 with nanoseconds
)

// SchedulerConfig configures a Scheduler. A nil *SchedulerConfig means
// every default.
type SchedulerConfig struct {
	// Logger receives enqueue failures. Default: discard.
	Logger *slog.Logger
	// Client configures the client the scheduler enqueues with (its
	// enqueue middleware sees the periodic headers). Default: nil.
	Client *ClientConfig
}

// Scheduler enqueues periodic tasks: one task per tick of each schedule
// registered with Periodic. Any number of processes may run the same
// schedules on brokers that share storage: each enqueues every tick with
// the idempotency key "periodic:<name>:<tick in Unix nanoseconds>", so the
// broker stores one task per tick however many processes enqueue it (never
// two), and a tick is enqueued as long as one process runs (none lost when
// another dies). A tick that no process was running for is not enqueued
// later. A tick is enqueued when it comes, or, after a failure, again
// until the next tick comes. Register with Periodic, then Start; Shutdown
// stops it. A Scheduler owns one goroutine per schedule while started.
type Scheduler struct {
	c   *Client
	log *slog.Logger

	mu      sync.Mutex
	entries []*periodic
	started bool
	ctx     context.Context // cancelled by Shutdown
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type periodic struct {
	name    string
	sched   Schedule
	enqueue func(ctx context.Context) error
}

type tickKey struct{}

// enqueueTimeout bounds one enqueue of a tick.
const enqueueTimeout = 30 * time.Second

// NewScheduler returns a Scheduler that enqueues on b. It returns an error
// wrapping ErrBadConfig for a nil broker or a bad client config.
func NewScheduler(b Broker, cfg *SchedulerConfig) (*Scheduler, error) {
	s := &Scheduler{log: discard}
	var cc ClientConfig
	if cfg != nil {
		if cfg.Logger != nil {
			s.log = cfg.Logger
		}
		if cfg.Client != nil {
			cc = *cfg.Client
		}
	}
	// The periodic headers go on first, so the caller's middleware sees
	// them.
	cc.EnqueueMiddleware = append([]EnqueueMiddleware{func(next EnqueueFunc) EnqueueFunc {
		return func(ctx context.Context, sub *Submission) (string, error) {
			if tk, ok := ctx.Value(tickKey{}).(tickInfo); ok {
				sub.SetHeader(HeaderPeriodic, tk.name)
				sub.SetHeader(HeaderPeriodicTick, tk.at.UTC().Format(time.RFC3339Nano))
			}
			return next(ctx, sub)
		}
	}}, cc.EnqueueMiddleware...)
	c, err := NewClient(b, &cc)
	if err != nil {
		return nil, err
	}
	s.c = c
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

type tickInfo struct {
	name string
	at   time.Time
}

// Periodic registers a schedule called name on s that enqueues one task of
// kind k with input in at each tick, with opts (WithIdempotencyKey is
// replaced by the tick's key). It returns an error wrapping ErrBadInput
// for an empty or repeated name, a nil schedule or a started scheduler.
func Periodic[In, Out any](s *Scheduler, name string, sched Schedule, k Kind[In, Out], in In, opts ...Option) error {
	k.check()
	if name == "" || sched == nil {
		return errorf("%w: Periodic needs a name and a schedule", ErrBadInput)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errorf("%w: Periodic %q after the scheduler started", ErrBadInput, clip(name))
	}
	for _, e := range s.entries {
		if e.name == name {
			return errorf("%w: a schedule called %q is registered already", ErrBadInput, clip(name))
		}
	}
	e := &periodic{name: name, sched: sched}
	base := slices.Clone(opts)
	e.enqueue = func(ctx context.Context) error {
		tk := ctx.Value(tickKey{}).(tickInfo)
		// Remembered for two periods, and a day at least: longer than
		// any scheduler lags behind another.
		window := max(2*sched.Next(tk.at).Sub(tk.at), DefaultIdempotencyWindow)
		o := append(slices.Clip(base), WithIdempotencyKey("periodic:"+name+":"+strconv.FormatInt(tk.at.UnixNano(), 10), window))
		_, err := Enqueue(ctx, s.c, k, in, o...)
		return err
	}
	s.entries = append(s.entries, e)
	return nil
}

// Start starts one goroutine per schedule and returns. It returns an error
// when s was started before.
func (s *Scheduler) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errorf("scheduler already started")
	}
	s.started = true
	for _, e := range s.entries {
		s.wg.Go(func() { s.loop(e) })
	}
	return nil
}

// Shutdown stops the scheduler and waits for its goroutines. An enqueue in
// flight is not cancelled (one cut short could leave its tasks stored and
// its idempotency key released, so that another scheduler enqueues the
// tick again): it finishes within enqueueTimeout. When ctx ends first,
// Shutdown still waits for it, then returns ctx's error. It may be called
// more than once and before Start.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		<-done // the loops saw the cancel
		return fmt.Errorf("queue: scheduler shutdown: %w", context.Cause(ctx))
	}
}

// loop enqueues e's ticks until the scheduler stops.
func (s *Scheduler) loop(e *periodic) {
	// Enqueues are not cancelled by Shutdown (see there), only bounded.
	ctx := context.WithoutCancel(s.ctx)
	tick := e.sched.Next(time.Now())
	for !tick.IsZero() {
		if !s.sleepUntil(tick) {
			return
		}
		next := e.sched.Next(tick)
		tctx := context.WithValue(ctx, tickKey{}, tickInfo{e.name, tick})
		for pause := 10 * time.Millisecond; ; pause = min(2*pause, 5*time.Second) {
			ectx, cancel := context.WithTimeout(tctx, enqueueTimeout)
			err := e.enqueue(ectx)
			cancel()
			if err == nil {
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("enqueueing a periodic task", "schedule", e.name, "tick", tick, "err", err)
			if !next.IsZero() && !time.Now().Add(pause).Before(next) {
				s.log.Error("periodic task not enqueued before its next tick", "schedule", e.name, "tick", tick, "err", err)
				break
			}
			if !s.sleepUntil(time.Now().Add(pause)) {
				return
			}
		}
		tick = next
	}
}

// sleepUntil waits until t or the scheduler stops; it reports false on stop.
func (s *Scheduler) sleepUntil(t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}
