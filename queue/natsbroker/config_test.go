package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestSettingsAgreeAcrossProcesses: the settings of a prefix are recorded
// by the process that set its streams up. A later broker with a default
// Config takes them (it used to remove another process's queue bound, so
// its enqueues passed the bound); one whose Config sets another value gets
// an error naming both.
func TestSettingsAgreeAcrossProcesses(t *testing.T) {
	t.Parallel()
	js := connect(t, embedded(t, false))
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	const prefix = "agree"
	newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: 2 * time.Second, Retention: time.Hour,
		StateMaxBytes: 64 << 20, QueueMaxDepth: map[string]int{"small": 3}})
	later := newBroker(t, js, natsbroker.Config{Prefix: prefix})
	if got := later.MaxLease(); got != 2*time.Second {
		t.Errorf("a default broker's MaxLease = %v, want the recorded AckWait 2s", got)
	}
	w, err := queue.NewWorker(later, &queue.WorkerConfig{Concurrency: 1, Lease: time.Minute})
	if err == nil || !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), "at most 2s") {
		t.Errorf("a worker with a 1m lease on a prefix with AckWait 2s: %v, want ErrBadConfig naming both", err)
		if w != nil {
			w.Shutdown(ctx)
		}
	}
	c, _ := queue.NewClient(later, nil)
	for i := range 3 {
		if _, err := queue.Enqueue(ctx, c, procKind, i, queue.WithQueue("small")); err != nil {
			t.Fatalf("task %d of 3 on a queue bounded at 3: %v", i, err)
		}
	}
	if _, err := queue.Enqueue(ctx, c, procKind, 3, queue.WithQueue("small")); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("a 4th task through a default-config broker on a queue another process bounded at 3: %v, want ErrQueueFull", err)
	}
	if _, err := queue.EnqueueBatch(ctx, c, procKind, ints(200), queue.WithQueue("new")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		cfg  natsbroker.Config
		want []string
	}{
		{"another AckWait", natsbroker.Config{AckWait: 5 * time.Second}, []string{"Config.AckWait is 5s", "has 2s"}},
		{"another Retention", natsbroker.Config{Retention: 2 * time.Hour}, []string{"Config.Retention is 2h0m0s", "has 1h0m0s"}},
		{"another state cap", natsbroker.Config{StateMaxBytes: 1 << 20}, []string{"Config.StateMaxBytes is 1048576", "has 67108864"}},
		{"another Replicas", natsbroker.Config{Replicas: 3}, []string{"Config.Replicas is 3", "has 1"}},
		{"another bound", natsbroker.Config{QueueMaxDepth: map[string]int{"small": 50}}, []string{`queue "small"`, "a bound of 50", "a bound of 3"}},
		{"a bound on every queue", natsbroker.Config{MaxDepth: 10}, []string{`queue "default"`, "a bound of 10", "no bound"}},
	} {
		tc.cfg.Prefix = prefix
		b, err := natsbroker.New(ctx, js, &tc.cfg)
		if err == nil {
			b.Close()
			t.Errorf("%s: New accepted it", tc.name)
			continue
		}
		for _, want := range tc.want {
			if !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want ErrBadConfig saying %q", tc.name, err, want)
			}
		}
	}
	// A bound that disagrees on a queue this broker first uses later fails
	// that use, naming both.
	newBroker(t, js, natsbroker.Config{Prefix: prefix + "2", MaxDepth: 10})
	unbounded := newBroker(t, js, natsbroker.Config{Prefix: prefix + "2"})
	if _, err := queue.Enqueue(ctx, try(queue.NewClient(unbounded, nil)).get(t), procKind, 1, queue.WithQueue("other")); err != nil {
		t.Fatal(err)
	}
	bounded := newBroker(t, js, natsbroker.Config{Prefix: prefix + "2", MaxDepth: 10})
	if _, err := queue.Enqueue(ctx, try(queue.NewClient(bounded, nil)).get(t), procKind, 1, queue.WithQueue("other")); !errors.Is(err, queue.ErrBadConfig) ||
		!strings.Contains(err.Error(), "a bound of 10") || !strings.Contains(err.Error(), "no bound") {
		t.Errorf("enqueueing with a bound of 10 to a queue recorded unbounded: %v, want ErrBadConfig naming both", err)
	}
	// The same settings, given explicitly, agree.
	newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: 2 * time.Second, Retention: time.Hour, StateMaxBytes: 64 << 20,
		QueueMaxDepth: map[string]int{"small": 3}})
}

// TestForgedBatchRecord: a batch record whose size is out of range (written
// by something other than a broker) is an error on Attach and Cancel,
// never a panic or an allocation of its size.
func TestForgedBatchRecord(t *testing.T) {
	t.Parallel()
	const prefix = "forged"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	for i, size := range []string{"0", "-1", "1000000000000", "16777217"} {
		id := fmt.Sprintf("forged%d", i)
		rec := `{"size":` + size + `,"kind":"` + procKind.Name() + `","queue":"default"}`
		if _, err := js.Publish(ctx, prefix+".b."+id, []byte(rec)); err != nil {
			t.Fatal(err)
		}
		if _, err := queue.Attach(ctx, c, procKind, id); err == nil || !strings.Contains(err.Error(), "size "+size+" out of range [1, 16777216]") {
			t.Errorf("Attach to a batch recorded with size %s: %v, want an error naming the size and the range", size, err)
		}
		if err := b.Cancel(ctx, id); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("Cancel of a batch recorded with size %s: %v, want an error naming the size", size, err)
		}
	}
}

// TestNameLimits: names past the broker's limits are refused before they
// reach the server, with the limit; the longest accepted ones work.
func TestNameLimits(t *testing.T) {
	t.Parallel()
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: "names"})
	if _, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: strings.Repeat("p", 33)}); !errors.Is(err, queue.ErrBadConfig) ||
		!strings.Contains(err.Error(), "at most 32 bytes") {
		t.Errorf("a prefix of 33 bytes: %v, want ErrBadConfig stating the limit", err)
	}
	_, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: "names", AckWait: 2, Retention: 2, IdleRecheck: 2})
	for _, want := range []string{"AckWait is 2ns: want 0 (default 30s) or at least 10ms", "Retention is 2ns: want 0 (default 24h0m0s) or at least 1s",
		"IdleRecheck is 2ns: want 0 (default 1s) or at least 1ms"} {
		if !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("durations of 2 ns: %v, want ErrBadConfig saying %q", err, want)
		}
	}
	// Submissions that do not come from a queue.Client are checked too:
	// what the envelope decoder would refuse is refused before it is
	// stored (max attempts past 2^31-1 were dead-lettered as bad wire data).
	for _, s := range []queue.Submission{
		{MaxAttempts: 1 << 31}, {MaxAttempts: 0}, {MaxAttempts: 1, Timeout: -1}, {MaxAttempts: 1, BackoffMax: -1},
		{MaxAttempts: 1, BatchID: strings.Repeat("b", 513)},
	} {
		if s.BatchID == "" {
			s.BatchID = "sub"
		}
		s.Queue, s.Kind, s.Payloads = queue.DefaultQueue, "k", [][]byte{nil}
		if _, err := b.Enqueue(ctx, &s); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "want") {
			t.Errorf("Enqueue of %+v: %v, want ErrBadInput saying what is accepted", s, err)
		}
	}
	// "names_qd_" and the queue's token within 255 bytes: 246.
	longest, over := strings.Repeat("q", 246), strings.Repeat("q", 82)+"/"
	for _, name := range []string{strings.Repeat("q", 247), strings.Repeat("/", 83)} {
		if err := b.CheckQueue(name); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "want at most 246") {
			t.Errorf("queue name of %d bytes: %v, want ErrBadInput stating the limit 246", len(name), err)
		}
	}
	// Reads of a name no queue can have answer without asking the server
	// (a subject built from it would close the connection).
	huge := strings.Repeat("/", 3000)
	if d, err := b.Depth(ctx, huge); err != nil || d != ([queue.NumPriorities]int{}) {
		t.Errorf("Depth of a queue name of 9,000 token bytes = %v, %v; want zeros", d, err)
	}
	if dls, err := b.DeadLetters(ctx, huge, "", 10); err != nil || len(dls) != 0 {
		t.Errorf("DeadLetters of a queue name of 9,000 token bytes = %v, %v; want none", dls, err)
	}
	key := strings.Repeat("k", 1024)
	if _, err := queue.Enqueue(ctx, c, procKind, 1, queue.WithIdempotencyKey(key+"k", time.Hour)); !errors.Is(err, queue.ErrBadInput) ||
		!strings.Contains(err.Error(), "want at most 1024") {
		t.Errorf("an idempotency key of 1025 bytes: %v, want ErrBadInput stating the limit", err)
	}
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2, Queues: []string{longest, over}})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: 2 * n}, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	for _, name := range []string{longest, over} {
		task, err := queue.Enqueue(ctx, c, procKind, 21, queue.WithQueue(name), queue.WithIdempotencyKey(key, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := task.Await(ctx); err != nil || got.V != 42 {
			t.Fatalf("a task on the queue of %d bytes = %d, %v; want 42", len(name), got, err)
		}
	}
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

type result[T any] struct {
	v   T
	err error
}

func (r result[T]) get(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// TestStreamsFromBeforeSettingsWereRecorded: streams set up by a version
// that recorded nothing are agreed with from what they hold (a queue's
// bound is its stream's message limit), and get the record and the state
// caps.
func TestStreamsFromBeforeSettingsWereRecorded(t *testing.T) {
	t.Parallel()
	js := connect(t, embedded(t, false))
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	const prefix = "legacy"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: prefix + "_state", Subjects: []string{prefix + ".b.*", prefix + ".r.*"},
		MaxAge: time.Hour, AllowMsgTTL: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: prefix + "_q_default", Subjects: []string{prefix + ".q.default.>"},
		Retention: jetstream.WorkQueuePolicy, MaxMsgs: 5, Discard: jetstream.DiscardNew, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix})
	c := try(queue.NewClient(b, nil)).get(t)
	if _, err := queue.EnqueueBatch(ctx, c, procKind, ints(6)); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("6 tasks on a queue whose stream holds 5 messages: %v, want ErrQueueFull", err)
	}
	try(queue.EnqueueBatch(ctx, c, procKind, ints(5))).get(t)
	st := try(js.Stream(ctx, prefix+"_state")).get(t)
	cfg := st.CachedInfo().Config
	if cfg.MaxAge != time.Hour || cfg.MaxBytes != natsbroker.DefaultStateMaxBytes || cfg.Metadata["gather.ack_wait"] != "30s" ||
		len(cfg.Subjects) != 5 {
		t.Fatalf("the state stream after New: max age %v, max bytes %d, metadata %v, subjects %v; want 1h kept, the default cap, AckWait recorded, every subject",
			cfg.MaxAge, cfg.MaxBytes, cfg.Metadata, cfg.Subjects)
	}
	if md := try(js.Stream(ctx, prefix+"_q_default")).get(t).CachedInfo().Config.Metadata; md["gather.max_depth"] != "5" {
		t.Fatalf("the default queue's stream metadata %v: want the bound 5 recorded", md)
	}
}
