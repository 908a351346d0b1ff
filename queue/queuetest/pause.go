package queuetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/gather-go/gather/queue"
)

// testPause: a paused queue runs nothing new while another queue keeps
// flowing through the same worker; the task it was running finishes;
// enqueue on it is still accepted; Resume runs what waited. Pausing
// through one broker value is seen by a worker on it at once (what other
// processes see, and when, is the broker's to document).
func testPause(t *testing.T, e *env) {
	p, ok := e.b.(queue.Pauser)
	if !ok {
		t.Skipf("%T does not implement queue.Pauser", e.b)
	}
	ctx := e.ctx()
	const paused, flowing = "queuetest-paused", "queuetest-flowing"
	if _, err := p.Paused(ctx, paused); errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("%T: Paused: %v", e.b, err)
	}
	var ranPaused atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: []string{paused, flowing}, MaxClaim: 1}, func(w *queue.Worker) {
		queue.HandleFunc(w, echo, func(ctx context.Context, s string) (string, error) {
			switch s {
			case "long":
				close(started)
				select {
				case <-release:
				case <-ctx.Done():
					return "", ctx.Err()
				}
			case "waits":
				ranPaused.Add(1)
			}
			return s + "!", nil
		})
	})
	long := try(queue.Enqueue(ctx, e.c, echo, "long", queue.WithQueue(paused))).get(t)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the long task never started")
	}
	if err := p.Pause(ctx, paused); err != nil {
		t.Fatal(err)
	}
	if err := p.Pause(ctx, paused); err != nil { // twice: nothing more
		t.Fatal(err)
	}
	if got := try(p.Paused(ctx, paused)).get(t); !got {
		t.Fatal("Paused = false after Pause")
	}
	if got := try(p.Paused(ctx, flowing)).get(t); got {
		t.Fatal("Paused = true for a queue never paused")
	}
	waiting := try(queue.EnqueueBatch(ctx, e.c, echo, []string{"waits", "waits", "waits"}, queue.WithQueue(paused))).get(t)
	// The other queue flows, twice over, while the paused one's tasks
	// are there to claim.
	for range 2 {
		b := try(queue.EnqueueBatch(ctx, e.c, echo, []string{"a", "b", "c", "d"}, queue.WithQueue(flowing))).get(t)
		if got := try(b.Await(ctx)).get(t); len(got) != 4 || got[0] != "a!" {
			t.Fatalf("flowing queue: %q", got)
		}
	}
	close(release)
	if got := try(long.Await(ctx)).get(t); got != "long!" {
		t.Fatalf("the task running at the pause: %q, want it to finish", got)
	}
	b := try(queue.EnqueueBatch(ctx, e.c, echo, []string{"e"}, queue.WithQueue(flowing))).get(t)
	try(b.Await(ctx)).get(t)
	if n := ranPaused.Load(); n != 0 {
		t.Fatalf("%d tasks of the paused queue ran", n)
	}
	if err := p.Resume(ctx, paused); err != nil {
		t.Fatal(err)
	}
	if got := try(p.Paused(ctx, paused)).get(t); got {
		t.Fatal("Paused = true after Resume")
	}
	if got := try(waiting.Await(ctx)).get(t); len(got) != 3 || got[2] != "waits!" {
		t.Fatalf("after Resume: %q, want the three waiting tasks run", got)
	}
	if err := p.Resume(ctx, paused); err != nil { // twice: nothing more
		t.Fatal(err)
	}
	if err := p.Pause(ctx, ""); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("Pause of an empty queue name: %v, want ErrBadInput", err)
	}
}
