package natsbroker_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// limitedOut is what a limited task returns: when it ran, where.
type limitedOut struct {
	Start, End int64 // Unix nanoseconds
	PID        int
}

var limitedKind = queue.NewKind[int, limitedOut]("natsbroker_test.limited")

const (
	holdEnv      = "NATSBROKER_TEST_HOLD" // "1": the limited role's tasks never finish
	rateEnv      = "NATSBROKER_TEST_RATE" // "1": the limited role has limitedRate instead of limitedLimit
	limitedLease = 3 * time.Second        // the limited role's lease (and AckWait)
	limitedMax   = 4
)

var (
	limitedLimit = queue.GlobalLimit{Queue: queue.DefaultQueue, Kind: limitedKind.Name(), Max: limitedMax}
	limitedRate  = queue.GlobalRate{Queue: queue.DefaultQueue, Kind: limitedKind.Name(), PerSecond: 200, Burst: 10}
)

// runLimited is the "limited" role: a worker of four runners under a
// global limit of 4 on limitedKind. Its tasks take 10 ms, or, with
// holdEnv, never finish (it prints "holding <Unix ns>" as each starts).
func runLimited() int {
	ctx := context.Background()
	nc, err := nats.Connect(os.Getenv(urlEnv), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	js, _ := jetstream.New(nc)
	b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: os.Getenv(prefixEnv), AckWait: limitedLease})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := &queue.WorkerConfig{Concurrency: 4, Lease: limitedLease, GlobalLimits: []queue.GlobalLimit{limitedLimit}}
	rated := os.Getenv(rateEnv) == "1"
	if rated {
		cfg.GlobalLimits, cfg.GlobalRates = nil, []queue.GlobalRate{limitedRate}
	}
	w, err := queue.NewWorker(b, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hold, pid := os.Getenv(holdEnv) == "1", os.Getpid()
	queue.HandleFunc(w, limitedKind, func(ctx context.Context, n int) (limitedOut, error) {
		start := time.Now()
		if hold {
			fmt.Println("holding", start.UnixNano())
			<-ctx.Done() // until killed
			return limitedOut{}, ctx.Err()
		}
		if !rated {
			time.Sleep(10 * time.Millisecond) // work that takes a while, so that runs overlap
		}
		return limitedOut{start.UnixNano(), time.Now().UnixNano(), pid}, nil
	})
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestGlobalLimitAcrossProcesses: a worker process takes every slot of a
// global limit of 4 and is SIGKILLed holding them; three more worker
// processes then share 120 tasks of the kind. No task starts before the
// dead worker's slots' lease has run out (they were counted honestly to
// the end), they come back then, and at no instant do more than 4 run
// across the three processes, by the start and end times every execution
// recorded, while 4 do run at once.
func TestGlobalLimitAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(90*time.Second))
	defer cancel()
	s := listening(ctx, t)
	js := connect(t, s)
	const prefix = "limits"
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: limitedLease})
	c, _ := queue.NewClient(b, nil)
	env := []string{roleEnv + "=limited", urlEnv + "=" + s.ClientURL(), prefixEnv + "=" + prefix}

	holder := startChild(t, append(env, holdEnv+"=1")...)
	holder.expect(t, "ready")
	held, err := queue.EnqueueBatch(ctx, c, limitedKind, ints(limitedMax))
	if err != nil {
		t.Fatal(err)
	}
	var took time.Time // when the holder's first task started: its slots were taken before
	for range limitedMax {
		ns, err := strconv.ParseInt(holder.expect(t, "holding "), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if at := time.Unix(0, ns); took.IsZero() || at.Before(took) {
			took = at
		}
	}
	holder.kill()
	killed := time.Now()

	var workers []*child
	for range 3 {
		workers = append(workers, startChild(t, env...))
	}
	for _, w := range workers {
		w.expect(t, "ready")
	}
	batch, err := queue.EnqueueBatch(ctx, c, limitedKind, ints(120))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := batch.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := held.Await(ctx) // the dead holder's tasks, run again
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, again...)

	type ev struct {
		at int64
		d  int
	}
	var evs []ev
	first := int64(0)
	pids := map[int]int{}
	for _, o := range outs {
		evs = append(evs, ev{o.Start, 1}, ev{o.End, -1})
		if first == 0 || o.Start < first {
			first = o.Start
		}
		pids[o.PID]++
	}
	slices.SortFunc(evs, func(a, b ev) int {
		if a.at != b.at {
			return int(min(max(a.at-b.at, -1), 1))
		}
		return a.d - b.d
	})
	cur, most := 0, 0
	for _, e := range evs {
		cur += e.d
		most = max(most, cur)
	}
	back := time.Unix(0, first)
	t.Logf("slots taken by %v, holder killed %v later; first task after it started %v after the kill; at most %d ran at once; tasks per worker PID %v",
		took.Format(time.RFC3339Nano), killed.Sub(took), back.Sub(killed), most, pids)
	if most > limitedMax {
		t.Fatalf("%d tasks ran at once across the processes: want at most %d", most, limitedMax)
	}
	if most < limitedMax {
		t.Fatalf("at most %d tasks ran at once: want the limit, %d, reached", most, limitedMax)
	}
	// The holder took its slots before its first task started, and renewed
	// them while alive: none could come back before took+lease, less the
	// moment between taking a slot and starting the task. AcquireSlot
	// dates the lease before its round trips (a read and a create, more
	// when the holder's four runners race for the same slot keys), so
	// that moment is a few round trips: milliseconds on a loaded machine
	// (5 ms seen). 100 ms still tells a slot held for its lease from one
	// freed early (at the kill, 3 s sooner).
	if back.Before(took.Add(limitedLease - 100*time.Millisecond)) {
		t.Fatalf("a task started %v after the dead holder's first slot was taken: want no sooner than its lease, %v", back.Sub(took), limitedLease)
	}
}

// TestGlobalRateAcrossProcesses: three worker processes share a global
// rate of 200 tasks a second (burst 10) over 2,010 tasks, ten seconds: by
// the start times every execution recorded, they never start faster than
// the rate allows, and reach it within 5%.
func TestGlobalRateAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s := listening(ctx, t)
	js := connect(t, s)
	const prefix = "rates"
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: limitedLease})
	c, _ := queue.NewClient(b, nil)
	env := []string{roleEnv + "=limited", rateEnv + "=1", urlEnv + "=" + s.ClientURL(), prefixEnv + "=" + prefix}
	var workers []*child
	for range 3 {
		workers = append(workers, startChild(t, env...))
	}
	for _, w := range workers {
		w.expect(t, "ready")
	}
	r := limitedRate
	n := int(10*r.PerSecond) + r.Burst
	enq := time.Now()
	batch, err := queue.EnqueueBatch(ctx, c, limitedKind, ints(n))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := batch.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	starts := make([]int64, 0, n)
	pids := map[int]int{}
	for _, o := range outs {
		starts = append(starts, o.Start)
		pids[o.PID]++
	}
	slices.Sort(starts)
	took := time.Unix(0, starts[n-1]).Sub(enq)
	least := time.Duration(float64(n-r.Burst) / r.PerSecond * float64(time.Second))
	got := float64(n-r.Burst) / took.Seconds()
	t.Logf("%d tasks started over %v: %.1f a second beyond the burst (rate %v); tasks per worker PID %v", n, took, got, r.PerSecond, pids)
	if took < least-time.Millisecond {
		t.Fatalf("%d tasks started within %v of the enqueue: the rate allows no sooner than %v", n, took, least)
	}
	if got < 0.95*r.PerSecond {
		t.Fatalf("%.1f tasks a second: want within 5%% of %v", got, r.PerSecond)
	}
}
