package natsbroker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestBadWireData: task messages that do not decode (junk, no Gather-Task
// header) are dead-lettered with the reason, the task their header names
// fails with bad_input so its batch completes, and good tasks behind them
// still run.
func TestBadWireData(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	js := connect(t, s)
	b := newBroker(t, js, natsbroker.Config{Prefix: "badwire"})
	c, _ := queue.NewClient(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	// A batch whose real task waits far in the future: the junk message
	// below claims to be its task.
	victim, err := queue.Enqueue(ctx, c, procKind, 1, queue.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	subj := "badwire.q.default.1" // PriorityNormal's subject
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: []byte("junk"), Header: nats.Header{"Gather-Task": []string{victim.ID()}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, subj, []byte("GQ\x03\xff")); err != nil { // truncated, and no header
		t.Fatal(err)
	}
	good, err := queue.EnqueueBatch(ctx, c, procKind, ints(5))
	if err != nil {
		t.Fatal(err)
	}
	w, _ := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2})
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: 2 * n}, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	if _, err := good.Await(ctx); err != nil {
		t.Fatalf("good batch behind the bad messages: %v", err)
	}
	if _, err := victim.Await(ctx); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "bad wire data") {
		t.Fatalf("task named by a junk message: %v, want ErrBadInput saying bad wire data", err)
	}
	// The headerless message names no task, so no await waits for it: the
	// runner that claimed it may still be burying it. Nothing signals
	// that: poll.
	var dls []queue.DeadLetter
	for deadline := time.Now().Add(queuetest.Liveness(30 * time.Second)); ; time.Sleep(10 * time.Millisecond) {
		if dls, err = c.DeadLetters(ctx, queue.DefaultQueue, "", 10); err != nil {
			t.Fatal(err)
		}
		if len(dls) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2: %+v", len(dls), dls)
	}
	// Two worker goroutines claim concurrently: the order is not fixed.
	var reasons []string
	for _, dl := range dls {
		if len(dl.Attempts) != 1 {
			t.Fatalf("dead letter %+v: want one attempt with the reason", dl)
		}
		reasons = append(reasons, dl.Attempts[0].Error)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"no GQ magic", "truncated", `header Gather-Task is ""`} {
		if !strings.Contains(all, want) {
			t.Errorf("dead letter reasons %q: none says %q", reasons, want)
		}
	}
}
