package queue_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// TestWorkerConfigBounds: values that used to panic, hang or exhaust memory
// in Start are refused by NewWorker, each error saying what is accepted.
func TestWorkerConfigBounds(t *testing.T) {
	t.Parallel()
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, tc := range []struct {
		name string
		cfg  queue.WorkerConfig
		want string
	}{
		{"a lease of 1 ns", queue.WorkerConfig{Concurrency: 1, Lease: 1}, "at least 1ms"},
		{"a lease of 2 ns", queue.WorkerConfig{Concurrency: 1, Lease: 2}, "at least 1ms"},
		{"MaxClaim 2^40", queue.WorkerConfig{Concurrency: 1, MaxClaim: 1 << 40}, "to 4096"},
		{"Concurrency 2^40", queue.WorkerConfig{Concurrency: 1 << 40}, "want 0 (default GOMAXPROCS) to 65536"},
		{"Concurrency × MaxClaim", queue.WorkerConfig{Concurrency: 1 << 16, MaxClaim: 1 << 12}, "at most 1048576"},
		{"a weight above 2^20", queue.WorkerConfig{Concurrency: 1, Policy: queue.Weighted, Weights: [queue.NumPriorities]int{1, 1, 1, 1<<20 + 1}}, "want 0 to 1048576"},
		{"a negative weight", queue.WorkerConfig{Concurrency: 1, Policy: queue.Weighted, Weights: [queue.NumPriorities]int{-1, 1, 1, 1}}, "want 0 to 1048576"},
	} {
		if _, err := queue.NewWorker(b, &tc.cfg); !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrBadConfig saying %q", tc.name, err, tc.want)
		}
	}
	// The default MaxClaim gives way to a large Concurrency rather than
	// refusing it.
	if _, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: queue.MaxConcurrency}); err != nil {
		t.Errorf("Concurrency %d with the default MaxClaim: %v", queue.MaxConcurrency, err)
	}
	// The limits themselves work: the shortest lease heartbeats without a
	// panic, the largest weight is chosen.
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2, Lease: queue.MinLease, MaxClaim: queue.MaxClaimLimit,
		Policy: queue.Weighted, Weights: [queue.NumPriorities]int{1, 0, 0, queue.MaxWeight}})
	if err != nil {
		t.Fatal(err)
	}
	kind := queue.NewKind[int, int]("bounds")
	queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	c, _ := queue.NewClient(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	low, err := queue.EnqueueBatch(ctx, c, kind, make([]int, 10), queue.WithPriority(queue.PriorityLow))
	if err != nil {
		t.Fatal(err)
	}
	crit, err := queue.EnqueueBatch(ctx, c, kind, make([]int, 10), queue.WithPriority(queue.PriorityCritical))
	if err != nil {
		t.Fatal(err)
	}
	for _, bt := range []*queue.Batch[int]{low, crit} {
		if _, err := bt.Await(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// limited is a membroker whose leases last at most a second, as a
// natsbroker's AckWait bounds its leases, and whose queue names are at most
// 8 bytes.
type limited struct {
	*membroker.Broker
	lease *atomic.Int64 // the longest lease a claim asked for
}

func (b limited) Claim(ctx context.Context, q string, l queue.Priority, lease time.Duration, dst []queue.Delivery) (int, error) {
	if int64(lease) > b.lease.Load() {
		b.lease.Store(int64(lease))
	}
	return b.Broker.Claim(ctx, q, l, lease, dst)
}

func (limited) MaxLease() time.Duration { return time.Second }
func (limited) MaxPayload() int         { return 16 }
func (limited) CheckQueue(name string) error {
	if len(name) > 8 {
		return errors.Join(queue.ErrBadInput, errors.New("queue name longer than 8 bytes: want at most 8"))
	}
	return nil
}

// TestWorkerRespectsBrokerLimits: with a broker that implements
// queue.Limiter, a Lease above its MaxLease is refused naming both, the
// default lease is lowered to it, and queue names it refuses are refused
// by NewWorker rather than failing every claim.
func TestWorkerRespectsBrokerLimits(t *testing.T) {
	t.Parallel()
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	b := limited{mb, new(atomic.Int64)}
	_, err = queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1, Lease: time.Minute, Queues: []string{"ok", "much-too-long"}})
	for _, want := range []string{"Lease is 1m0s", "at most 1s", "Queues[1]", "at most 8"} {
		if !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("NewWorker: %v, want ErrBadConfig saying %q", err, want)
		}
	}
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	kind := queue.NewKind[int, int]("limited")
	queue.HandleFunc(w, kind, func(ctx context.Context, n int) (int, error) { return n, nil })
	big := queue.NewKind[int, string]("limited.big")
	queue.HandleFunc(w, big, func(ctx context.Context, n int) (string, error) {
		if n == 0 {
			return strings.Repeat("x", 100), nil // past the broker's 16 bytes
		}
		return "", errors.New(strings.Repeat("e", 1<<20)) // a megabyte of error message
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _ := queue.NewClient(b, nil)
	task, err := queue.Enqueue(ctx, c, kind, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.Await(ctx); err != nil {
		t.Fatal(err)
	}
	// An output the broker cannot store fails the task permanently, saying
	// so, instead of failing every completion; an error message of a
	// megabyte is kept up to 64 KiB.
	task2, err := queue.Enqueue(ctx, c, big, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task2.Await(ctx); !errors.Is(err, queue.ErrPermanent) || !strings.Contains(err.Error(), "output of 102 bytes") ||
		!strings.Contains(err.Error(), "at most 16") {
		t.Errorf("an output past the broker's MaxPayload: %v, want ErrPermanent naming both sizes", err)
	}
	task3, err := queue.Enqueue(ctx, c, big, 1, queue.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task3.Await(ctx); err == nil || len(err.Error()) > 65<<10 || !strings.Contains(err.Error(), "bytes more") {
		t.Errorf("an error message of 1 MiB: kept %d bytes, want at most about 64 KiB, saying how much was cut", len(err.Error()))
	}
	if got := time.Duration(b.lease.Load()); got != time.Second {
		t.Fatalf("the default lease asked of the broker is %v, want its MaxLease, 1s", got)
	}
}
