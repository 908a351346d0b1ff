// Package queuetest is the conformance suite every queue.Broker must pass,
// shaped like testing/slogtest and River's riverdrivertest: a broker's tests
// call Run once with a constructor, and every semantic the queue promises is
// checked against it through the public API (Client, Worker) and through the
// Broker methods directly. Use it when you write a broker; changing broker
// semantics means extending this suite first.
package queuetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather"
	"github.com/gather-go/gather/queue"
)

// Option configures Run.
type Option func(*suite)

// InBubble says that the brokers newBroker makes are purely in-process (no
// network, no goroutine blocked on I/O), so the time-based subtests
// (leases, backoff, delays, timeouts) run inside testing/synctest bubbles on
// a fake clock: instantly and deterministically. Without it they run on the
// real clock with short durations.
func InBubble() Option { return func(s *suite) { s.bubble = true } }

// BoundedQueue says that the brokers newBroker makes bound the queue called
// name at n unfinished tasks (n small, such as 100), which enables the
// ErrQueueFull subtest. Without it that subtest is skipped.
func BoundedQueue(name string, n int) Option {
	return func(s *suite) { s.boundedQueue, s.maxDepth = name, n }
}

// TimeUnit sets the time scale of the time-based subtests on the real
// clock (leases, backoff, delays, timeouts are small multiples of it) to d
// instead of 20 ms. Networked brokers, replicated ones above all, pass a
// larger unit (such as 100 ms) so that a loaded machine's scheduling and
// network delays stay well inside every window the subtests measure. It
// has no effect with InBubble, where the unit is a second of fake time.
func TimeUnit(d time.Duration) Option {
	return func(s *suite) {
		if d > 0 {
			s.unit = d
		}
	}
}

// AsyncRelease says that a finished task (its outcome recorded) may keep
// counting against its queue's bound and Depth for up to d afterwards: a
// broker that applies acknowledgements asynchronously, such as a
// replicated JetStream stream, frees its bound a moment after the outcome
// is readable. The subtests that enqueue into a queue just drained, or
// read Depth after a Complete, then retry for up to d (briefly pausing in
// between) before failing. Without it the suite expects the bound freed
// and Depth updated by the time an outcome is visible. Such a broker may
// also answer a claim from a replica that has not yet seen an
// acknowledged enqueue, so StrictPriority runs its scenario again (up to
// three times) after an inversion.
func AsyncRelease(d time.Duration) Option { return func(s *suite) { s.release = d } }

type suite struct {
	newBroker    func(*testing.T) queue.Broker
	bubble       bool
	boundedQueue string
	maxDepth     int
	unit         time.Duration // real-clock unit; 20 ms unless TimeUnit
	release      time.Duration // see AsyncRelease
}

// Run runs the suite against brokers made by newBroker, one fresh broker per
// subtest. newBroker must arrange (with t.Cleanup) to release the broker.
// Subtests run in parallel. A subtest for an optional interface is skipped,
// saying so, only when the broker does not implement it or returns an error
// wrapping errors.ErrUnsupported.
func Run(t *testing.T, newBroker func(t *testing.T) queue.Broker, opts ...Option) {
	s := &suite{newBroker: newBroker, unit: 20 * time.Millisecond}
	for _, o := range opts {
		o(s)
	}
	tests := []struct {
		name  string
		timed bool // uses the clock: runs in a bubble with InBubble
		fn    func(*testing.T, *env)
	}{
		{"EnqueueWait", false, testEnqueueWait},
		{"AwaitOrdered", false, testAwaitOrdered},
		{"AwaitSettled", false, testAwaitSettled},
		{"ResultsCompletionOrder", false, testResults},
		{"FailFastCancelsRest", false, testFailFast},
		{"CancelBatch", false, testCancel},
		{"Attach", false, testAttach},
		{"ClaimNonBlockingAndNotify", false, testClaimNotify},
		{"SubscribeReplays", false, testSubscribeReplays},
		{"RedeliveryAfterLeaseExpiry", true, testLeaseExpiry},
		{"HeartbeatKeepsLease", true, testHeartbeat},
		{"ResultRecordedOnce", true, testResultOnce},
		{"StrictPriority", false, testStrict},
		{"WeightedPriority", false, testWeighted},
		{"RetryBackoff", true, testRetryBackoff},
		{"Permanent", false, testPermanent},
		{"PanicRecorded", false, testPanic},
		{"Timeout", true, testTimeout},
		{"Deadline", true, testDeadline},
		{"Delayed", true, testDelayed},
		{"Idempotency", false, testIdempotency},
		{"DeadLetterRedrive", false, testDeadLetters},
		{"QueueFull", false, s.testQueueFull},
		{"Depth", false, testDepth},
		{"BadInput", false, testBadInput},
		{"HostileValues", false, testHostileValues},
		{"HostileTaskIDs", false, testHostileTaskIDs},
		{"FarTimes", false, testFarTimes},
		{"ConcurrencyLimit", false, testConcurrency},
		{"ShutdownHandsBack", true, testShutdown},
		{"TwoWorkersShareBatch", false, testTwoWorkers},
		{"InspectQueues", false, testInspectQueues},
		{"InspectBatches", false, testInspectBatches},
		{"InspectDeadLetters", false, testInspectDeadLetters},
		{"Middleware", false, testMiddleware},
		{"PauseResume", false, testPause},
		{"GlobalLimit", false, testGlobalLimit},
		{"GlobalLimitLease", true, testGlobalLimitLease},
		{"GlobalLimitFair", true, testGlobalLimitFair},
		{"GlobalRate", true, testGlobalRate},
		{"RateReturn", false, testRateReturn},
		{"Periodic", true, testPeriodic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.timed && s.bubble {
				synctest.Test(t, func(t *testing.T) { tc.fn(t, s.env(t, true)) })
				return
			}
			tc.fn(t, s.env(t, false))
		})
	}
}

// env is one subtest's broker, client and helpers.
type env struct {
	t      *testing.T
	b      queue.Broker
	c      *queue.Client
	bubble bool
	// unit is the time scale of time-based tests: a second on the fake
	// clock, 20 ms (or TimeUnit's) on the real one.
	unit time.Duration
	// release is AsyncRelease's bound: 0 means strict.
	release time.Duration
}

func (s *suite) env(t *testing.T, bubble bool) *env {
	b := s.newBroker(t)
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, b: b, c: c, bubble: bubble, unit: s.unit, release: s.release}
	if bubble {
		e.unit = time.Second
	}
	return e
}

// ctx bounds a wait: a failure rather than a hang. On the real clock the
// bound is Liveness(2 min), scaled up with a TimeUnit above 20 ms (a
// broker that needs a larger unit also runs the long subtests, such as
// WeightedPriority's 600 claims of one task, more slowly) to at most
// Liveness(5 min), under go test's default timeout of 10 minutes. In a
// bubble it is 30 s of fake time: only a deadlock reaches it.
func (e *env) ctx() context.Context {
	bound := 30 * time.Second
	if !e.bubble {
		bound = 2 * time.Minute
		if base := 20 * time.Millisecond; e.unit > base {
			bound = min(bound/base*e.unit, 5*time.Minute)
		}
		bound = Liveness(bound)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	e.t.Cleanup(cancel)
	return ctx
}

// released calls f until it returns nil, for up to e.release (see
// AsyncRelease) with a short pause between calls, and fails the test with
// f's last error. With no AsyncRelease f gets one call: strict. The pause
// polls broker state that announces no event (a replicated stream applying
// an acknowledgement); it never waits for something the test could observe.
func (e *env) released(f func() error) {
	e.t.Helper()
	deadline := time.Now().Add(e.release)
	pause := time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			e.t.Fatal(err)
		}
		timer := time.NewTimer(pause)
		<-timer.C
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// worker starts a worker with the handlers reg registers, shut down at
// cleanup.
func (e *env) worker(cfg *queue.WorkerConfig, reg func(w *queue.Worker)) *queue.Worker {
	e.t.Helper()
	if cfg == nil {
		cfg = &queue.WorkerConfig{Concurrency: 4}
	}
	w, err := queue.NewWorker(e.b, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	reg(w)
	if err := w.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Liveness(time.Minute))
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			e.t.Errorf("worker shutdown: %v", err)
		}
	})
	return w
}

var (
	double = queue.NewKind[int, int]("queuetest.double")
	echo   = queue.NewKind[string, string]("queuetest.echo")
)

func doubleH(ctx context.Context, n int) (int, error) { return 2 * n, nil }

func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// result carries a call's value and error to get, which fails the test on
// the error: try(f()).get(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) get(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func failureOf(t *testing.T, err error) *queue.Failure {
	t.Helper()
	var f *queue.Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *queue.Failure", err, err)
	}
	return f
}

func testEnqueueWait(t *testing.T, e *env) {
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, echo, func(ctx context.Context, s string) (string, error) { return s + "!", nil })
	})
	ctx := e.ctx()
	task := try(queue.Enqueue(ctx, e.c, echo, "hi")).get(t)
	if got := try(task.Await(ctx)).get(t); got != "hi!" {
		t.Fatalf("Wait = %q, want %q", got, "hi!")
	}
	// Waiting again replays the recorded result.
	if got := try(task.Await(ctx)).get(t); got != "hi!" {
		t.Fatalf("second Wait = %q, want %q", got, "hi!")
	}
}

func testAwaitOrdered(t *testing.T, e *env) {
	e.worker(&queue.WorkerConfig{Concurrency: 8}, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	ctx := e.ctx()
	for _, n := range []int{1, 7, 1000} {
		b := try(queue.EnqueueBatch(ctx, e.c, double, ints(n))).get(t)
		if b.Len() != n || b.ID() == "" {
			t.Fatalf("batch Len %d ID %q, want %d and an ID", b.Len(), b.ID(), n)
		}
		got := try(b.Await(ctx)).get(t)
		for i, v := range got {
			if v != 2*i {
				t.Fatalf("batch of %d: result %d = %d, want %d", n, i, v, 2*i)
			}
		}
	}
}

var errOdd = errors.New("odd")

func testAwaitSettled(t *testing.T, e *env) {
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			if n%2 == 1 {
				return 0, queue.Permanent(fmt.Errorf("%d: %w", n, errOdd))
			}
			return 2 * n, nil
		})
	})
	ctx := e.ctx()
	res := try(try(queue.EnqueueBatch(ctx, e.c, double, ints(50))).get(t).AwaitSettled(ctx)).get(t)
	if len(res) != 50 {
		t.Fatalf("%d results, want 50", len(res))
	}
	for i, r := range res {
		if i%2 == 0 {
			if r.Err != nil || r.Value != 2*i {
				t.Fatalf("result %d = %v, %v; want %d", i, r.Value, r.Err, 2*i)
			}
			continue
		}
		if _, ok := r.Err.(*queue.Failure); !ok {
			t.Fatalf("result %d error %v (%T): want the *queue.Failure itself, as gather's settled results hold the task's own error", i, r.Err, r.Err)
		}
		if f := failureOf(t, r.Err); f.Code != queue.CodePermanent || !strings.Contains(f.Message, "odd") || f.Attempts != 1 {
			t.Fatalf("result %d failure %+v: want code permanent, message with odd, 1 attempt", i, f)
		}
		if !errors.Is(r.Err, queue.ErrPermanent) {
			t.Fatalf("result %d: errors.Is(ErrPermanent) false", i)
		}
	}
}

func testResults(t *testing.T, e *env) {
	e.worker(nil, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(300))).get(t)
	seen := make([]bool, 300)
	count := 0
	for i, r := range b.Results(ctx) {
		if i < 0 || r.Err != nil || r.Value != 2*i || seen[i] {
			t.Fatalf("Results yielded %d, %v, %v (seen before: %v)", i, r.Value, r.Err, i >= 0 && seen[i])
		}
		seen[i] = true
		count++
	}
	if count != 300 {
		t.Fatalf("Results yielded %d outcomes, want 300", count)
	}
	// Breaking early is allowed and stops following.
	for range b.Results(ctx) {
		break
	}
}

func testFailFast(t *testing.T, e *env) {
	started := make(chan struct{}, 3)
	var ran atomic.Int32
	var cancelled atomic.Int32
	e.worker(&queue.WorkerConfig{Concurrency: 4, MaxClaim: 1}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			ran.Add(1)
			if n == 0 {
				// Fail once three others are running.
				for range 3 {
					<-started
				}
				return 0, queue.Permanent(errors.New("boom"))
			}
			started <- struct{}{}
			<-ctx.Done()
			cancelled.Add(1)
			return 0, ctx.Err()
		})
	})
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(100))).get(t)
	_, err := b.Await(ctx)
	var te *gather.TaskError
	if !errors.As(err, &te) || te.Index != 0 || !errors.Is(err, queue.ErrPermanent) {
		t.Fatalf("Await error %v: want a *gather.TaskError for index 0 wrapping ErrPermanent", err)
	}
	res := try(b.AwaitSettled(ctx)).get(t)
	for i, r := range res[1:] {
		if !errors.Is(r.Err, queue.ErrCanceled) {
			t.Fatalf("result %d = %v, %v: want ErrCanceled", i+1, r.Value, r.Err)
		}
	}
	// The running handlers see their context cancelled (the worker's
	// cleanup shutdown would otherwise wait for them), and the queued tasks
	// never start.
	// A slot freed by the failure may claim a task or two before the
	// cancellation lands; the rest never start.
	if n := ran.Load(); n > 8 {
		t.Fatalf("%d of 100 handlers ran: the tasks queued behind the failure should not start", n)
	}
}

func testCancel(t *testing.T, e *env) {
	running := make(chan struct{})
	e.worker(&queue.WorkerConfig{Concurrency: 1, MaxClaim: 1}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			if n > 0 {
				return 0, fmt.Errorf("task %d started after the batch was cancelled", n)
			}
			close(running)
			<-ctx.Done()
			if !errors.Is(context.Cause(ctx), queue.ErrCanceled) {
				return 0, fmt.Errorf("cause %v, want ErrCanceled", context.Cause(ctx))
			}
			return 0, ctx.Err()
		})
	})
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(20))).get(t)
	<-running
	if err := b.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	res := try(b.AwaitSettled(ctx)).get(t)
	for i, r := range res {
		if !errors.Is(r.Err, queue.ErrCanceled) {
			t.Fatalf("result %d = %v: want ErrCanceled", i, r.Err)
		}
	}
	if err := b.Cancel(ctx); err != nil {
		t.Fatalf("cancelling a cancelled batch: %v", err)
	}
	// A lone task cancels the same way.
	task := try(queue.Enqueue(ctx, e.c, double, 5, queue.WithDelay(time.Hour))).get(t)
	if err := task.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := task.Await(ctx); !errors.Is(err, queue.ErrCanceled) {
		t.Fatalf("Wait after Cancel: %v, want ErrCanceled", err)
	}
	if err := e.b.Cancel(ctx, "no-such-batch"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Cancel of an unknown batch: %v, want ErrNotFound", err)
	}
}

func testAttach(t *testing.T, e *env) {
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(40))).get(t)
	// The producer goes away; another client finishes the wait.
	other := try(queue.NewClient(e.b, nil)).get(t)
	a := try(queue.Attach(ctx, other, double, b.ID())).get(t)
	if a.Len() != 40 || a.ID() != b.ID() {
		t.Fatalf("attached batch: Len %d ID %s, want 40 and %s", a.Len(), a.ID(), b.ID())
	}
	e.worker(nil, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	got := try(a.Await(ctx)).get(t)
	for i, v := range got {
		if v != 2*i {
			t.Fatalf("result %d = %d, want %d", i, v, 2*i)
		}
	}
	if _, err := queue.Attach(ctx, other, double, "no-such-batch"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Attach to an unknown batch: %v, want ErrNotFound", err)
	}
	if _, err := queue.Attach(ctx, other, echo, b.ID()); !errors.Is(err, queue.ErrBadInput) {
		t.Fatalf("Attach with another kind: %v, want ErrBadInput", err)
	}
}

func testClaimNotify(t *testing.T, e *env) {
	ctx := e.ctx()
	var dst [4]queue.Delivery
	if n, err := e.b.Claim(ctx, "q", queue.PriorityNormal, time.Minute, dst[:]); n != 0 || err != nil {
		t.Fatalf("Claim on an empty queue = %d, %v; want 0, nil at once", n, err)
	}
	ch, err := e.b.Notify(ctx, []string{"q"})
	if err != nil {
		t.Fatal(err)
	}
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(3), queue.WithQueue("q"))).get(t)
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("Notify's channel not closed after an enqueue")
	}
	n, err := e.b.Claim(ctx, "q", queue.PriorityNormal, time.Minute, dst[:])
	if n != 3 || err != nil {
		t.Fatalf("Claim = %d, %v; want 3", n, err)
	}
	for i, d := range dst[:n] {
		if d.BatchID != b.ID() || d.Index != i || d.Kind != double.Name() || d.Attempt != 1 || d.Queue != "q" {
			t.Fatalf("delivery %d: %+v", i, d.Message)
		}
		if in, err := double.Input(&d.Message); err != nil || in != i {
			t.Fatalf("delivery %d input %d, %v", i, in, err)
		}
	}
	if n, _ := e.b.Claim(ctx, "q", queue.PriorityNormal, time.Minute, dst[:]); n != 0 {
		t.Fatalf("claimed %d leased tasks again", n)
	}
	cs := []queue.Completion{}
	for i := range dst[:n] {
		cs = append(cs, queue.Completion{Delivery: &dst[i], Outcome: queue.Outcome{Index: i, Output: []byte(fmt.Sprint(10 * i))}})
	}
	if err := e.b.Complete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	got := try(b.Await(ctx)).get(t)
	if !slices.Equal(got, []int{0, 10, 20}) {
		t.Fatalf("results %v, want [0 10 20]", got)
	}
}

func testSubscribeReplays(t *testing.T, e *env) {
	e.worker(nil, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(10))).get(t)
	try(b.Await(ctx)).get(t)
	sub, err := e.b.Subscribe(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Size() != 10 || sub.Kind() != double.Name() || sub.Queue() != queue.DefaultQueue {
		t.Fatalf("subscription Size %d Kind %q Queue %q", sub.Size(), sub.Kind(), sub.Queue())
	}
	seen := map[int]bool{}
	buf := make([]queue.Outcome, 3)
	for {
		n, err := sub.Next(ctx, buf)
		for _, o := range buf[:n] {
			if seen[o.Index] {
				t.Fatalf("outcome %d twice", o.Index)
			}
			seen[o.Index] = true
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 10 {
		t.Fatalf("replayed %d outcomes, want 10", len(seen))
	}
}

// testLeaseExpiry: a worker claims a task and dies without acknowledging
// it; after the lease the task is delivered again and runs.
func testLeaseExpiry(t *testing.T, e *env) {
	ctx := e.ctx()
	task := try(queue.Enqueue(ctx, e.c, double, 21)).get(t)
	var dst [1]queue.Delivery
	// The lease runs from the claim request: a loaded machine may return
	// from Claim well after the broker started the lease.
	claimed := time.Now()
	if n, err := e.b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, 5*e.unit, dst[:]); n != 1 || err != nil {
		t.Fatalf("Claim = %d, %v", n, err)
	}
	// The "dead" worker never completes dst[0].
	var attempt atomic.Int32
	var ranAt atomic.Int64
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			ranAt.Store(time.Now().UnixNano())
			attempt.Add(1)
			return 2 * n, nil
		})
	})
	if got := try(task.Await(ctx)).get(t); got != 42 {
		t.Fatalf("Wait = %d, want 42", got)
	}
	if d := time.Unix(0, ranAt.Load()).Sub(claimed); d < 5*e.unit-e.unit/2 {
		t.Fatalf("redelivered after %v, before the lease of %v expired", d, 5*e.unit)
	}
	if attempt.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", attempt.Load())
	}
}

// testHeartbeat: a task running longer than its lease is not delivered
// again while its worker heartbeats. The heartbeat renews every third of
// the lease: a loaded machine that holds a renewal back past the rest of
// the lease lets the lease expire, a legitimate outcome (a lease is how a
// stalled worker's tasks come back). So a run that saw a redelivery is
// tried again with every duration doubled, until a run sees none; a
// heartbeat that does not work fails every try.
func testHeartbeat(t *testing.T, e *env) {
	ctx := e.ctx()
	for k, u := 0, e.unit; ; k, u = k+1, 2*u {
		n := heartbeatRun(t, e, ctx, u)
		if n == 1 {
			return
		}
		if k == 4 || e.bubble {
			t.Fatalf("lease %v, handler running %v: ran %d times; the heartbeat should keep the lease", 3*u, 10*u, n)
		}
		t.Logf("lease %v, handler running %v: ran %d times; trying again with durations doubled", 3*u, 10*u, n)
	}
}

// heartbeatRun runs one task that takes 10 u on a worker whose lease is
// 3 u and returns how many times its handler ran.
func heartbeatRun(t *testing.T, e *env, ctx context.Context, u time.Duration) int32 {
	var runs atomic.Int32
	w, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 2, Lease: 3 * u})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
		runs.Add(1)
		timer := time.NewTimer(10 * u)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return 2 * n, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	task := try(queue.Enqueue(ctx, e.c, double, 1)).get(t)
	got, err := task.Await(ctx)
	if serr := w.Shutdown(ctx); serr != nil {
		t.Fatalf("worker shutdown: %v", serr)
	}
	if err != nil || got != 2 {
		t.Fatalf("Wait = %d, %v; want 2", got, err)
	}
	return runs.Load()
}

// testResultOnce: a task that runs twice (its first worker outlived its
// lease) has its first recorded outcome kept; the second is dropped and
// subscribers see one outcome per task.
func testResultOnce(t *testing.T, e *env) {
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, []int{1, 2})).get(t)
	var first [2]queue.Delivery
	if n, err := e.b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, e.unit, first[:]); n != 2 || err != nil {
		t.Fatalf("Claim = %d, %v", n, err)
	}
	// Wait for the leases to expire, then claim the redeliveries.
	ch := try(e.b.Notify(ctx, []string{queue.DefaultQueue})).get(t)
	var second [2]queue.Delivery
	n := 0
	for n < 2 {
		k, err := e.b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Hour, second[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += k
		if n < 2 {
			select {
			case <-ch:
			case <-ctx.Done():
				t.Fatal("no redelivery after the lease expired")
			}
			ch = try(e.b.Notify(ctx, []string{queue.DefaultQueue})).get(t)
		}
	}
	for _, d := range second {
		if d.Attempt != 2 {
			t.Fatalf("redelivery of task %d has Attempt %d, want 2", d.Index, d.Attempt)
		}
	}
	complete := func(d *queue.Delivery, out string) {
		t.Helper()
		if err := e.b.Complete(ctx, []queue.Completion{{Delivery: d, Outcome: queue.Outcome{Index: d.Index, Output: []byte(out)}}}); err != nil {
			t.Fatal(err)
		}
	}
	byIndex := func(ds []queue.Delivery, i int) *queue.Delivery {
		for k := range ds {
			if ds[k].Index == i {
				return &ds[k]
			}
		}
		t.Fatalf("no delivery of task %d", i)
		return nil
	}
	// Task 0: the stale delivery completes first and wins.
	complete(byIndex(first[:], 0), "100")
	complete(byIndex(second[:], 0), "200")
	// Task 1: the redelivery completes first and wins.
	complete(byIndex(second[:], 1), "300")
	complete(byIndex(first[:], 1), "400")
	got := try(b.Await(ctx)).get(t)
	if !slices.Equal(got, []int{100, 300}) {
		t.Fatalf("results %v, want [100 300] (the first completion of each task)", got)
	}
	count := 0
	for range b.Results(ctx) {
		count++
	}
	if count != 2 {
		t.Fatalf("Results yielded %d outcomes for 2 tasks", count)
	}
	// Retrying a stale delivery does nothing.
	if err := e.b.Retry(ctx, byIndex(first[:], 0), time.Time{}, &queue.AttemptError{Attempt: 1, Error: "stale"}); err != nil {
		t.Fatal(err)
	}
	var dst [1]queue.Delivery
	if n, _ := e.b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst[:]); n != 0 {
		t.Fatalf("a finished task was delivered again after a stale retry")
	}
}

// levelKind records the priority of each task it runs.
var levelKind = queue.NewKind[int, int]("queuetest.level")

// runLevels enqueues perLevel tasks at each level, then starts a worker of
// policy that claims them one at a time, and returns the levels in the
// order they ran: the first window of them once that many ran (the rest of
// the batches cancelled), or all of them with window 0.
func runLevels(t *testing.T, e *env, policy queue.Policy, perLevel, window int) []int {
	ctx := e.ctx()
	var batches []*queue.Batch[int]
	for l := queue.PriorityLow; l < queue.NumPriorities; l++ {
		in := make([]int, perLevel)
		for i := range in {
			in[i] = int(l)
		}
		batches = append(batches, try(queue.EnqueueBatch(ctx, e.c, levelKind, in, queue.WithPriority(l))).get(t))
	}
	var mu sync.Mutex
	var order []int
	full := make(chan struct{})
	w, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1, MaxClaim: 1, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, levelKind, func(ctx context.Context, l int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, l)
		if len(order) == window {
			close(full)
		}
		return l, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	// Stopped on return: a caller may run the scenario again, with one
	// worker.
	defer func() {
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	}()
	if window > 0 {
		select {
		case <-full:
		case <-ctx.Done():
			mu.Lock()
			ran := len(order)
			mu.Unlock()
			t.Fatalf("%d tasks ran before the liveness bound, want %d", ran, window)
		}
		for _, b := range batches {
			if err := b.Cancel(ctx); err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(order[:window])
	}
	for _, b := range batches {
		try(b.Await(ctx)).get(t)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(order)
}

// testStrict: with every level's tasks enqueued before the worker starts,
// the worker runs them highest level first. A broker with AsyncRelease
// (a replicated stream) may answer a claim from a replica that has not
// yet seen an acknowledged enqueue, and find a level empty that is not:
// an inversion then is the broker's lag, not the policy's order, and the
// scenario is run again, up to three times; a policy that inverts fails
// every run.
func testStrict(t *testing.T, e *env) {
	tries := 1
	if e.release > 0 {
		tries = 3
	}
	for k := 1; ; k++ {
		order := runLevels(t, e, queue.Strict, 25, 0)
		i := 1
		for i < len(order) && order[i] <= order[i-1] {
			i++
		}
		if i == len(order) {
			return
		}
		msg := fmt.Sprintf("priority inversion at %d: level %d ran after level %d (order %v)", i, order[i], order[i-1], order)
		if k == tries {
			t.Fatal(msg)
		}
		t.Logf("run %d of %d: %s; running again", k, tries, msg)
	}
}

func testWeighted(t *testing.T, e *env) {
	const per = 600
	// While every level has work (the first per tasks certainly), each level
	// gets its weight's share of DefaultWeights. The rest of the tasks
	// would only show the levels emptying one by one: they are cancelled.
	window := runLevels(t, e, queue.Weighted, per, per)
	var count [queue.NumPriorities]int
	for _, l := range window {
		count[l]++
	}
	total := 0
	for _, w := range queue.DefaultWeights {
		total += w
	}
	for l, w := range queue.DefaultWeights {
		want := float64(w) / float64(total)
		got := float64(count[l]) / float64(len(window))
		if got < want-0.03 || got > want+0.03 {
			t.Errorf("level %d ran %.1f%% of the first %d tasks, want %.1f%% ± 3", l, 100*got, per, 100*want)
		}
		if count[l] == 0 {
			t.Errorf("level %d starved", l)
		}
	}
}

func testRetryBackoff(t *testing.T, e *env) {
	var mu sync.Mutex
	var times []time.Time
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if len(times) < 3 {
				return 0, fmt.Errorf("transient failure %d", len(times))
			}
			return 2 * n, nil
		})
	})
	ctx := e.ctx()
	task := try(queue.Enqueue(ctx, e.c, double, 4, queue.WithMaxAttempts(3), queue.WithBackoff(4*e.unit, 100*e.unit))).get(t)
	if got := try(task.Await(ctx)).get(t); got != 8 {
		t.Fatalf("Wait = %d, want 8 after two retries", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("%d attempts, want 3", len(times))
	}
	// Exponential with jitter in the upper half: [2u, 4u] then [4u, 8u].
	for i, bounds := range [][2]time.Duration{{2 * e.unit, 4 * e.unit}, {4 * e.unit, 8 * e.unit}} {
		gap := times[i+1].Sub(times[i])
		if gap < bounds[0] || e.bubble && gap > bounds[1] {
			t.Errorf("delay before attempt %d: %v, want within [%v, %v]", i+2, gap, bounds[0], bounds[1])
		}
	}
}

func testPermanent(t *testing.T, e *env) {
	var runs atomic.Int32
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			runs.Add(1)
			return 0, queue.Permanent(errOdd)
		})
	})
	ctx := e.ctx()
	_, err := try(queue.Enqueue(ctx, e.c, double, 1, queue.WithMaxAttempts(5))).get(t).Await(ctx)
	if !errors.Is(err, queue.ErrPermanent) || !strings.Contains(err.Error(), errOdd.Error()) || runs.Load() != 1 {
		t.Fatalf("Wait error %v after %d runs: want ErrPermanent after 1", err, runs.Load())
	}
}

func panicky(ctx context.Context, n int) (int, error) {
	panic(fmt.Sprintf("task %d exploded", n))
}

func testPanic(t *testing.T, e *env) {
	e.worker(nil, func(w *queue.Worker) { queue.HandleFunc(w, double, panicky) })
	ctx := e.ctx()
	_, err := try(queue.Enqueue(ctx, e.c, double, 7, queue.WithMaxAttempts(2), queue.WithBackoff(0, 0))).get(t).Await(ctx)
	f := failureOf(t, err)
	if !errors.Is(err, queue.ErrPanic) || f.Attempts != 2 ||
		!strings.Contains(f.Message, "task 7 exploded") || !strings.Contains(f.Message, "panicky") {
		t.Fatalf("failure %+v: want a panic after 2 attempts with its value and a stack naming panicky", f)
	}
}

func testTimeout(t *testing.T, e *env) {
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
	})
	ctx := e.ctx()
	start := time.Now()
	_, err := try(queue.Enqueue(ctx, e.c, double, 1, queue.WithTimeout(2*e.unit), queue.WithMaxAttempts(1))).get(t).Await(ctx)
	if !errors.Is(err, queue.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait error %v: want ErrTimeout", err)
	}
	if d := time.Since(start); d < 2*e.unit {
		t.Fatalf("timed out after %v, before the timeout of %v", d, 2*e.unit)
	}
}

func testDeadline(t *testing.T, e *env) {
	var mu sync.Mutex
	runs := map[int]int{} // by input
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			mu.Lock()
			runs[n]++
			mu.Unlock()
			<-ctx.Done()
			return 0, ctx.Err()
		})
	})
	runsOf := func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return runs[n]
	}
	ctx := e.ctx()
	// A deadline that passes while the task runs ends it, without retries.
	// The deadline counts from enqueue, so a loaded machine may let it pass
	// before the task is even claimed: then it never runs, which is right
	// too (the second case below), and the case is tried again with the
	// deadline doubled until the task runs before its deadline passes.
	ran := false
	for k, d := 0, 2*e.unit; k < 8 && !ran; k, d = k+1, 2*d {
		n := 100 + k
		_, err := try(queue.Enqueue(ctx, e.c, double, n, queue.WithDeadline(time.Now().Add(d)), queue.WithMaxAttempts(5))).get(t).Await(ctx)
		if !errors.Is(err, queue.ErrTimeout) || runsOf(n) > 1 {
			t.Fatalf("deadline in %v: Wait error %v after %d runs: want ErrTimeout after at most 1", d, err, runsOf(n))
		}
		ran = runsOf(n) == 1
	}
	if !ran {
		t.Fatal("no task ran before its deadline, up to a deadline of 256 units from enqueue")
	}
	// A deadline that passed before the task was claimed: it never runs.
	_, err := try(queue.Enqueue(ctx, e.c, double, 2, queue.WithDeadline(time.Now().Add(e.unit)), queue.WithDelay(3*e.unit))).get(t).Await(ctx)
	if !errors.Is(err, queue.ErrTimeout) || runsOf(2) != 0 {
		t.Fatalf("Wait error %v, %d runs: want ErrTimeout and no run", err, runsOf(2))
	}
}

func testDelayed(t *testing.T, e *env) {
	var ranAt atomic.Int64
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			ranAt.Store(time.Now().UnixNano())
			return 2 * n, nil
		})
	})
	ctx := e.ctx()
	start := time.Now()
	try(try(queue.Enqueue(ctx, e.c, double, 1, queue.WithDelay(5*e.unit))).get(t).Await(ctx)).get(t)
	if d := time.Unix(0, ranAt.Load()).Sub(start); d < 5*e.unit {
		t.Fatalf("delayed task ran after %v, want at least %v", d, 5*e.unit)
	}
	at := time.Now().Add(3 * e.unit)
	try(try(queue.Enqueue(ctx, e.c, double, 1, queue.WithRunAt(at))).get(t).Await(ctx)).get(t)
	if got := time.Unix(0, ranAt.Load()); got.Before(at) {
		t.Fatalf("task ran at %v, before its RunAt %v", got, at)
	}
}

func testIdempotency(t *testing.T, e *env) {
	var runs atomic.Int32
	e.worker(nil, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			runs.Add(1)
			return 2 * n, nil
		})
	})
	ctx := e.ctx()
	t1 := try(queue.Enqueue(ctx, e.c, double, 5, queue.WithIdempotencyKey("k1", time.Hour))).get(t)
	t2 := try(queue.Enqueue(ctx, e.c, double, 5, queue.WithIdempotencyKey("k1", time.Hour))).get(t)
	if t1.ID() != t2.ID() {
		t.Fatalf("same key gave tasks %s and %s", t1.ID(), t2.ID())
	}
	if a, b := try(t1.Await(ctx)).get(t), try(t2.Await(ctx)).get(t); a != 10 || b != 10 {
		t.Fatalf("results %d, %d; want 10, 10", a, b)
	}
	t3 := try(queue.Enqueue(ctx, e.c, double, 5, queue.WithIdempotencyKey("k1", time.Hour))).get(t)
	try(t3.Await(ctx)).get(t)
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times for one key, want 1", runs.Load())
	}
	b1 := try(queue.EnqueueBatch(ctx, e.c, double, ints(3), queue.WithIdempotencyKey("k2", time.Hour))).get(t)
	b2 := try(queue.EnqueueBatch(ctx, e.c, double, ints(3), queue.WithIdempotencyKey("k2", time.Hour))).get(t)
	if b1.ID() != b2.ID() || b1.ID() == t1.BatchID() {
		t.Fatalf("batch IDs %s, %s (task batch %s)", b1.ID(), b2.ID(), t1.BatchID())
	}
	try(b2.Await(ctx)).get(t)
	if _, err := queue.EnqueueBatch(ctx, e.c, double, ints(4), queue.WithIdempotencyKey("k2", time.Hour)); !errors.Is(err, queue.ErrBadInput) {
		t.Fatalf("reusing a key for a batch of another size: %v, want ErrBadInput", err)
	}
	if runs.Load() != 4 {
		t.Fatalf("handler ran %d times, want 4", runs.Load())
	}
}

func testDeadLetters(t *testing.T, e *env) {
	if _, ok := e.b.(queue.DeadLetterer); !ok {
		t.Skipf("broker %T does not implement queue.DeadLetterer", e.b)
	}
	var heal atomic.Bool
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: []string{"dlq"}}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			if heal.Load() {
				return 2 * n, nil
			}
			return 0, errors.New("downstream unavailable")
		})
	})
	ctx := e.ctx()
	task := try(queue.Enqueue(ctx, e.c, double, 33, queue.WithMaxAttempts(2), queue.WithBackoff(0, 0), queue.WithQueue("dlq"))).get(t)
	_, err := task.Await(ctx)
	if f := failureOf(t, err); f.Code != queue.CodeFailed || f.Attempts != 2 {
		t.Fatalf("failure %+v: want code failed after 2 attempts", f)
	}
	dls, err := e.c.DeadLetters(ctx, "dlq", "", 10)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("broker %T: dead letters unsupported: %v", e.b, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].ID() != task.ID() {
		t.Fatalf("dead letters %+v, want task %s", dls, task.ID())
	}
	dl := dls[0]
	if in, err := double.Input(&dl.Message); err != nil || in != 33 {
		t.Fatalf("dead letter input %d, %v; want 33", in, err)
	}
	if len(dl.Attempts) != 2 || !strings.Contains(dl.Attempts[0].Error, "downstream unavailable") ||
		!strings.Contains(dl.Attempts[1].Error, "downstream unavailable") {
		t.Fatalf("dead letter attempts %+v: want both errors", dl.Attempts)
	}
	if more := try(e.c.DeadLetters(ctx, "dlq", dl.ID(), 10)).get(t); len(more) != 0 {
		t.Fatalf("dead letters after the last one: %+v", more)
	}
	heal.Store(true)
	id := try(e.c.Redrive(ctx, dl.ID())).get(t)
	b := try(queue.Attach(ctx, e.c, double, id)).get(t)
	if got := try(b.Await(ctx)).get(t); got[0] != 66 {
		t.Fatalf("re-driven result %v, want [66]", got)
	}
	if left := try(e.c.DeadLetters(ctx, "dlq", "", 10)).get(t); len(left) != 0 {
		t.Fatalf("dead letters left after redrive: %+v", left)
	}
	if _, err := e.c.Redrive(ctx, dl.ID()); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("redriving twice: %v, want ErrNotFound", err)
	}
}

func (s *suite) testQueueFull(t *testing.T, e *env) {
	if s.maxDepth <= 0 {
		t.Skip("no bounded queue: pass queuetest.BoundedQueue to Run")
	}
	ctx := e.ctx()
	e.c = try(queue.NewClient(e.b, nil)).get(t)
	q := queue.WithQueue(s.boundedQueue)
	first := try(queue.EnqueueBatch(ctx, e.c, double, ints(s.maxDepth-1), q)).get(t)
	_, err := queue.EnqueueBatch(ctx, e.c, double, ints(2), q)
	if !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("enqueueing past the bound: %v, want ErrQueueFull", err)
	}
	last := try(queue.Enqueue(ctx, e.c, double, 1000, q)).get(t)
	if _, err := queue.Enqueue(ctx, e.c, double, 1, q); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("enqueueing into a full queue: %v, want ErrQueueFull", err)
	}
	// Nothing queued was lost; once drained, the queue takes tasks again.
	e.worker(&queue.WorkerConfig{Concurrency: 4, Queues: []string{s.boundedQueue}}, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	if got := try(first.Await(ctx)).get(t); len(got) != s.maxDepth-1 || got[len(got)-1] != 2*(s.maxDepth-2) {
		t.Fatalf("first batch results wrong: %d of them", len(got))
	}
	if got := try(last.Await(ctx)).get(t); got != 2000 {
		t.Fatalf("last task = %d, want 2000", got)
	}
	// A full batch fits once every finished task has left the bound (with
	// AsyncRelease, within its window; a bound never freed still fails).
	var full *queue.Batch[int]
	e.released(func() error {
		var err error
		full, err = queue.EnqueueBatch(ctx, e.c, double, ints(s.maxDepth), q)
		if err != nil && !errors.Is(err, queue.ErrQueueFull) {
			t.Fatalf("enqueueing into a drained queue: %v", err)
		}
		if err != nil {
			return fmt.Errorf("enqueueing %d tasks into a drained queue bounded at %d: %w", s.maxDepth, s.maxDepth, err)
		}
		return nil
	})
	try(full.Await(ctx)).get(t)
}

// testDepth: Stats.Depth counts a queue's unfinished tasks per level, as
// its bound does: ready, delayed and leased ones, not finished ones.
func testDepth(t *testing.T, e *env) {
	st, ok := e.b.(queue.Stats)
	if !ok {
		t.Skipf("broker %T does not implement queue.Stats", e.b)
	}
	ctx := e.ctx()
	const name = "depth"
	q := queue.WithQueue(name)
	check := func(what string, want [queue.NumPriorities]int) error {
		got, err := st.Depth(ctx, name)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skipf("broker %T: Depth unsupported: %v", e.b, err)
		}
		if err != nil {
			t.Fatalf("Depth %s: %v", what, err)
		}
		if got != want {
			return fmt.Errorf("depth %s = %v, want %v", what, got, want)
		}
		return nil
	}
	strict := func(what string, want [queue.NumPriorities]int) {
		t.Helper()
		if err := check(what, want); err != nil {
			t.Fatal(err)
		}
	}
	strict("of an unused queue", [queue.NumPriorities]int{})
	try(queue.EnqueueBatch(ctx, e.c, double, ints(3), q)).get(t)
	try(queue.EnqueueBatch(ctx, e.c, double, ints(2), q, queue.WithPriority(queue.PriorityHigh), queue.WithDelay(time.Hour))).get(t)
	try(queue.Enqueue(ctx, e.c, double, 1, q, queue.WithPriority(queue.PriorityLow))).get(t)
	strict("after enqueueing", [queue.NumPriorities]int{1, 3, 2, 0})
	var dst [2]queue.Delivery
	if n, err := e.b.Claim(ctx, name, queue.PriorityNormal, time.Minute, dst[:]); n != 2 || err != nil {
		t.Fatalf("Claim = %d, %v; want 2", n, err)
	}
	strict("with two tasks leased", [queue.NumPriorities]int{1, 3, 2, 0})
	if err := e.b.Retry(ctx, &dst[1], time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	strict("after a release", [queue.NumPriorities]int{1, 3, 2, 0})
	if err := e.b.Complete(ctx, []queue.Completion{{Delivery: &dst[0], Outcome: queue.Outcome{Index: dst[0].Index, Output: []byte("0")}}}); err != nil {
		t.Fatal(err)
	}
	e.released(func() error { return check("after a completion", [queue.NumPriorities]int{1, 2, 2, 0}) })
	if other := try(st.Depth(ctx, "depth-unused")).get(t); other != ([queue.NumPriorities]int{}) {
		t.Fatalf("Depth of another queue = %v, want zeros", other)
	}
}

func testBadInput(t *testing.T, e *env) {
	ctx := e.ctx()
	// Configuration.
	for _, n := range []int{-1, 1 << 40} { // 0 is the default
		if _, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: n}); !errors.Is(err, queue.ErrBadConfig) ||
			!strings.Contains(err.Error(), "want 0 (default GOMAXPROCS) to 65536") {
			t.Fatalf("NewWorker with Concurrency %d: %v, want ErrBadConfig saying 0 to 65536", n, err)
		}
	}
	// A batch of nothing.
	if _, err := queue.EnqueueBatch(ctx, e.c, double, nil); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "at least one") {
		t.Fatalf("empty batch: %v, want ErrBadInput saying at least one", err)
	}
	good := try(queue.EnqueueBatch(ctx, e.c, double, ints(5))).get(t)
	// An oversized input.
	small := try(queue.NewClient(e.b, &queue.ClientConfig{MaxPayload: 16})).get(t)
	_, err := queue.EnqueueBatch(ctx, small, echo, []string{"ok", strings.Repeat("x", 100)})
	if !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "input 1") || !strings.Contains(err.Error(), "limit is 16") {
		t.Fatalf("oversized input: %v, want ErrBadInput naming input 1 and the limit", err)
	}
	// An input that does not encode.
	if _, err := queue.Enqueue(ctx, e.c, queue.NewKind[func(), int]("queuetest.func"), func() {}); !errors.Is(err, queue.ErrBadInput) {
		t.Fatalf("unencodable input: %v, want ErrBadInput", err)
	}
	// A kind no worker handles, and an input that does not decode as the
	// worker's kind: both fail permanently, the queue keeps flowing.
	unknown := try(queue.Enqueue(ctx, e.c, queue.NewKind[int, int]("queuetest.unknown"), 1)).get(t)
	mistyped := try(queue.Enqueue(ctx, e.c, queue.NewKind[string, int](double.Name()), "not a number")).get(t)
	after := try(queue.EnqueueBatch(ctx, e.c, double, ints(5))).get(t)
	e.worker(nil, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	if _, err := unknown.Await(ctx); !errors.Is(err, queue.ErrUnknownKind) || !strings.Contains(err.Error(), "queuetest.unknown") ||
		!strings.Contains(err.Error(), double.Name()) {
		t.Fatalf("unknown kind: %v, want ErrUnknownKind naming the kind and the handled ones", err)
	}
	if _, err := mistyped.Await(ctx); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("undecodable input: %v, want ErrBadInput", err)
	}
	try(good.Await(ctx)).get(t)
	try(after.Await(ctx)).get(t)
}

// testHostileValues: options out of range are refused before anything is
// stored, saying what is accepted; names and keys far longer than any real
// one are either refused with ErrBadInput stating the limit or work, and in
// both cases leave the broker working (a NATS subject past the server's
// control line closed the connection for good).
func testHostileValues(t *testing.T, e *env) {
	ctx := e.ctx()
	for _, tc := range []struct {
		name string
		opt  queue.Option
		want string
	}{
		{"empty idempotency key", queue.WithIdempotencyKey("", time.Hour), "non-empty key"},
		{"max attempts past 2^31-1", queue.WithMaxAttempts(queue.MaxAttemptsLimit + 1), "want 1 to 2147483647"},
		{"deadline in year 10000", queue.WithDeadline(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), "years 1 to 9999"},
		{"run-at in year 0", queue.WithRunAt(time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)), "years 1 to 9999"},
	} {
		if _, err := queue.Enqueue(ctx, e.c, double, 1, tc.opt); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadInput saying %q", tc.name, err, tc.want)
		}
	}
	nothing := queue.NewKind[struct{}, struct{}]("queuetest.nothing")
	if _, err := queue.EnqueueBatch(ctx, e.c, nothing, make([]struct{}, queue.MaxBatch+1)); !errors.Is(err, queue.ErrBadInput) ||
		!strings.Contains(err.Error(), "at most 16777216") {
		t.Errorf("a batch past MaxBatch: %v, want ErrBadInput stating the limit", err)
	}
	if _, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1, Queues: []string{strings.Repeat("x", 100)}}); err != nil {
		t.Fatalf("a worker for a queue name of 100 bytes: %v", err)
	}
	// A broker that keeps leases for a bounded time without a heartbeat:
	// a longer Lease is refused naming both, the default fits under it.
	if lim, ok := e.b.(queue.Limiter); ok && lim.MaxLease() > 0 {
		max := lim.MaxLease()
		_, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1, Lease: max + time.Second})
		if !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), (max+time.Second).String()) ||
			!strings.Contains(err.Error(), "at most "+max.String()) {
			t.Errorf("NewWorker with a Lease above the broker's MaxLease %v: %v, want ErrBadConfig naming both", max, err)
		}
		try(queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1, Lease: max})).get(t)
		try(queue.NewWorker(e.b, nil)).get(t)
	}

	// The longest idempotency window: the key is kept (as long as the
	// broker keeps anything), not dropped at once.
	forever := queue.WithIdempotencyKey("forever", time.Duration(1<<63-1))
	k1 := try(queue.Enqueue(ctx, e.c, double, 1, forever)).get(t)
	if k2 := try(queue.Enqueue(ctx, e.c, double, 1, forever)).get(t); k1.ID() != k2.ID() {
		t.Errorf("an idempotency key with the longest window gave tasks %s and %s", k1.ID(), k2.ID())
	}

	// Names and keys of 6,000 bytes, most of them bytes a NATS subject
	// cannot hold as they are.
	long := strings.Repeat("a/", 3000)
	var accepted []*queue.Task[int]
	check := func(what string, task *queue.Task[int], err error) {
		t.Helper()
		switch {
		case err == nil:
			accepted = append(accepted, task)
		case !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "at most"):
			t.Errorf("%s: %v, want success or ErrBadInput stating the limit (at most ...)", what, err)
		}
	}
	task, err := queue.Enqueue(ctx, e.c, double, 1, queue.WithQueue(long))
	check("a queue name of 6,000 bytes", task, err)
	longQueue := err == nil
	if _, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1, Queues: []string{long}}); longQueue != (err == nil) {
		t.Errorf("NewWorker for the long queue name: %v; Enqueue to it: accepted %v: want them to agree", err, longQueue)
	} else if err != nil && (!errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), "at most")) {
		t.Errorf("NewWorker for the long queue name: %v, want ErrBadConfig stating the limit", err)
	}
	task, err = queue.Enqueue(ctx, e.c, double, 2, queue.WithIdempotencyKey(long, time.Hour))
	check("an idempotency key of 6,000 bytes", task, err)
	if _, err := queue.Attach(ctx, e.c, double, long); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Attach to a batch ID of 6,000 bytes: %v, want ErrNotFound", err)
	}
	if err := e.b.Cancel(ctx, long); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Cancel of a batch ID of 6,000 bytes: %v, want ErrNotFound", err)
	}
	// The broker still works, and so do the tasks it accepted.
	queues := []string{queue.DefaultQueue}
	if longQueue {
		queues = append(queues, long)
	}
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: queues}, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	if got := try(try(queue.Enqueue(ctx, e.c, double, 21)).get(t).Await(ctx)).get(t); got != 42 {
		t.Fatalf("a task after the hostile values = %d, want 42", got)
	}
	for _, task := range append(accepted, k1) {
		try(task.Await(ctx)).get(t)
	}
}

// testHostileTaskIDs: a malformed task ID gets ErrBadInput from every
// broker, and a well-formed one that names no dead letter gets ErrNotFound
// (Redrive) or nothing (DeadLetters).
func testHostileTaskIDs(t *testing.T, e *env) {
	d, ok := e.b.(queue.DeadLetterer)
	if !ok {
		t.Skipf("broker %T does not implement queue.DeadLetterer", e.b)
	}
	ctx := e.ctx()
	for _, id := range []string{"", "garbage", "/3", "batch/", "batch/x", "batch/-1", strings.Repeat("z", 5000)} {
		if _, err := d.Redrive(ctx, id); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "<batch ID>/<index>") {
			t.Errorf("Redrive(%.20q): %v, want ErrBadInput saying what a task ID is", id, err)
		}
		if id == "" {
			continue // DeadLetters after "" lists from the start
		}
		if _, err := d.DeadLetters(ctx, queue.DefaultQueue, id, 10); !errors.Is(err, queue.ErrBadInput) {
			t.Errorf("DeadLetters after %.20q: %v, want ErrBadInput", id, err)
		}
	}
	for _, id := range []string{"nosuch/0", strings.Repeat("z", 5000) + "/1"} {
		if _, err := d.Redrive(ctx, id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Redrive(%.20q): %v, want ErrNotFound", id, err)
		}
		if dls, err := d.DeadLetters(ctx, queue.DefaultQueue, id, 10); err != nil || len(dls) != 0 {
			t.Errorf("DeadLetters after %.20q: %d, %v; want none, no error", id, len(dls), err)
		}
	}
}

// testFarTimes: times far from now mean what they say. The Unix epoch is a
// deadline long past, not "no deadline"; a deadline in the year 3000 lets
// the task run; a run-at time in the year 3000 (or the latest WithDelay)
// keeps the task waiting; the epoch as run-at time runs it at once.
func testFarTimes(t *testing.T, e *env) {
	var far atomic.Int32
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: []string{"far"}}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			if n < 0 {
				far.Add(1)
			}
			return 2 * n, nil
		})
	})
	ctx := e.ctx()
	q := queue.WithQueue("far")
	y3000 := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	try(queue.Enqueue(ctx, e.c, double, -1, q, queue.WithRunAt(y3000))).get(t)
	try(queue.Enqueue(ctx, e.c, double, -2, q, queue.WithDelay(time.Duration(1<<63-1)))).get(t)
	_, err := try(queue.Enqueue(ctx, e.c, double, 1, q, queue.WithDeadline(time.Unix(0, 0)))).get(t).Await(ctx)
	if !errors.Is(err, queue.ErrTimeout) {
		t.Errorf("a task with the Unix epoch as deadline: %v, want ErrTimeout (the epoch is a time, not none)", err)
	}
	if got, err := try(queue.Enqueue(ctx, e.c, double, 2, q, queue.WithDeadline(y3000))).get(t).Await(ctx); err != nil || got != 4 {
		t.Errorf("a task with a deadline in the year 3000: %d, %v; want 4", got, err)
	}
	if got, err := try(queue.Enqueue(ctx, e.c, double, 3, q, queue.WithRunAt(time.Unix(0, 0)))).get(t).Await(ctx); err != nil || got != 6 {
		t.Errorf("a task to run at the Unix epoch: %d, %v; want 6 at once", got, err)
	}
	if got, err := try(queue.Enqueue(ctx, e.c, double, 4, q, queue.WithDelay(time.Duration(-1<<63)))).get(t).Await(ctx); err != nil || got != 8 {
		t.Errorf("a task with the most negative delay: %d, %v; want 8 at once", got, err)
	}
	if n := far.Load(); n != 0 {
		t.Errorf("%d tasks due in the year 3000 or later ran", n)
	}
	if st, ok := e.b.(queue.Stats); ok {
		e.released(func() error {
			if d, err := st.Depth(ctx, "far"); err != nil || d[queue.PriorityNormal] != 2 {
				return fmt.Errorf("depth = %v, %v; want the 2 far tasks still waiting at PriorityNormal", d, err)
			}
			return nil
		})
	}
}

func testConcurrency(t *testing.T, e *env) {
	var running, peak atomic.Int32
	e.worker(&queue.WorkerConfig{Concurrency: 3}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
			r := running.Add(1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			time.Sleep(100 * time.Microsecond) // hold the slot so others overlap; not a wait for an event
			running.Add(-1)
			return 2 * n, nil
		})
	})
	ctx := e.ctx()
	try(try(queue.EnqueueBatch(ctx, e.c, double, ints(200))).get(t).Await(ctx)).get(t)
	if p := peak.Load(); p > 3 || p < 1 {
		t.Fatalf("peak concurrency %d with a limit of 3", p)
	}
}

// testShutdown: a worker shutting down lets a running task finish when the
// deadline allows, and hands back the task it cannot finish and the tasks it
// claimed but did not start; another worker then runs them: nothing lost.
func testShutdown(t *testing.T, e *env) {
	ctx := e.ctx()
	release := make(chan struct{})
	// Buffered, filled without blocking: the first start of each worker
	// is what the test waits for.
	started1, started2 := make(chan int, 1), make(chan int, 1)
	var runs atomic.Int32
	w1, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w1, double, func(ctx context.Context, n int) (int, error) {
		runs.Add(1)
		select {
		case started1 <- n:
		default:
		}
		select {
		case <-release:
			return 2 * n, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(10))).get(t)
	if err := w1.Start(); err != nil {
		t.Fatal(err)
	}
	<-started1
	// Graceful: the running task finishes within the deadline.
	done := make(chan error)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		done <- w1.Shutdown(sctx)
	}()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	// Hard: a task that outlives the deadline is handed back.
	block := make(chan struct{})
	w2, err := queue.NewWorker(e.b, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w2, double, func(ctx context.Context, n int) (int, error) {
		select {
		case started2 <- n:
		default:
		}
		select {
		case <-block:
		case <-ctx.Done():
		}
		return 0, ctx.Err()
	})
	b2 := try(queue.EnqueueBatch(ctx, e.c, double, ints(10))).get(t)
	if err := w2.Start(); err != nil {
		t.Fatal(err)
	}
	<-started2
	sctx, cancel := context.WithTimeout(ctx, e.unit)
	err = w2.Shutdown(sctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown past its deadline: %v, want DeadlineExceeded", err)
	}
	e.worker(nil, func(w *queue.Worker) { queue.HandleFunc(w, double, doubleH) })
	for _, b := range []*queue.Batch[int]{b, b2} {
		got := try(b.Await(ctx)).get(t)
		for i, v := range got {
			if v != 2*i {
				t.Fatalf("result %d = %d, want %d", i, v, 2*i)
			}
		}
	}
}

func testTwoWorkers(t *testing.T, e *env) {
	var runs [2]atomic.Int32
	for k := range 2 {
		e.worker(&queue.WorkerConfig{Concurrency: 2}, func(w *queue.Worker) {
			queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
				runs[k].Add(1)
				return 2 * n, nil
			})
		})
	}
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(2000))).get(t)
	res := try(b.AwaitSettled(ctx)).get(t)
	for i, r := range res {
		if r.Err != nil || r.Value != 2*i {
			t.Fatalf("result %d = %v, %v", i, r.Value, r.Err)
		}
	}
	if total := runs[0].Load() + runs[1].Load(); total < 2000 {
		t.Fatalf("handlers ran %d times for 2000 tasks", total)
	}
}
