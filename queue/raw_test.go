package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// A raw kind enqueues by name with JSON bytes; a typed kind of the same
// name runs the tasks; AttachRaw follows the batch by ID alone.
func TestRawKind(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, _ := membroker.New(nil)
	defer b.Close()
	w, _ := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2})
	queue.HandleFunc(w, queue.NewKind[struct{ N int }, int]("double"), func(ctx context.Context, in struct{ N int }) (int, error) {
		return in.N * 2, nil
	})
	w.Start()
	defer w.Shutdown(ctx)
	c, _ := queue.NewClient(b, nil)
	k, err := queue.RawKind("double")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := queue.EnqueueBatch(ctx, c, k, []json.RawMessage{json.RawMessage(`{"N":1}`), json.RawMessage(`{"N":21}`)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := batch.Await(ctx)
	if err != nil || string(got[0]) != "2" || string(got[1]) != "42" {
		t.Fatalf("got %q, %v", got, err)
	}
	a, err := queue.AttachRaw(ctx, c, batch.ID())
	if err != nil || a.Kind() != "double" || a.Len() != 2 {
		t.Fatalf("AttachRaw: %v", err)
	}
	if _, err := queue.AttachRaw(ctx, c, "nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("AttachRaw unknown: %v", err)
	}
	if _, err := queue.RawKind(""); !errors.Is(err, queue.ErrBadInput) {
		t.Fatalf("RawKind empty: %v", err)
	}
	if _, err := queue.EnqueueBatch(ctx, c, k, []json.RawMessage{nil}); !errors.Is(err, queue.ErrBadInput) {
		t.Fatalf("empty raw input: %v", err)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	good := queue.Settings{Queue: "q.1", Priority: "HIGH", Timeout: "30s", Deadline: "2030-01-02T15:04:05Z", MaxAttempts: 5,
		BackoffMin: "1s", BackoffMax: "1m", Delay: "0s", IdempotencyKey: "k", IdempotencyWindow: "1h"}
	opts, err := good.Options()
	if err != nil || len(opts) != 7 { // a zero delay is no option
		t.Fatalf("good: %d options, %v", len(opts), err)
	}
	if opts, err := (&queue.Settings{}).Options(); err != nil || len(opts) != 0 {
		t.Fatalf("zero: %v %v", opts, err)
	}
	bad := queue.Settings{Queue: "a/b", Priority: "9", Timeout: "0s", Deadline: "tomorrow", MaxAttempts: -1,
		BackoffMin: "1m", BackoffMax: "1s", Delay: "-1s", IdempotencyWindow: "1h"}
	_, err = bad.Options()
	if !errors.Is(err, queue.ErrBadInput) {
		t.Fatalf("bad: %v", err)
	}
	for _, want := range []string{`queue name "a/b"`, `priority "9"`, `timeout "0s"`, `deadline "tomorrow"`, "max_attempts -1",
		"backoff_max 1s is below backoff_min 1m0s", `delay "-1s"`, "idempotency_window without idempotency_key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := (&queue.Settings{Timeout: "100000h"}).Options(); err == nil || !strings.Contains(err.Error(), "up to 8760h") {
		t.Fatalf("huge timeout: %v", err)
	}
	for s, want := range map[string]queue.Priority{"low": queue.PriorityLow, "3": queue.PriorityCritical, "Normal": queue.PriorityNormal} {
		if p, err := queue.ParsePriority(s); err != nil || p != want {
			t.Errorf("ParsePriority(%q) = %v, %v", s, p, err)
		}
	}
	if queue.PriorityHigh.String() != "high" || queue.Priority(9).String() != "9" {
		t.Fatal("Priority.String")
	}
}
