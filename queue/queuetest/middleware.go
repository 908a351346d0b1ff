package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

type mwKey struct{}

// testMiddleware: headers that enqueue middleware adds reach the handler's
// middleware on every attempt (a retry too, and a batch of many tasks),
// middleware runs in order (the first outermost, on both sides), a value it
// puts in the context reaches the handler, it sees the handler's output and
// error, and headers the broker cannot take are refused before anything is
// stored.
func testMiddleware(t *testing.T, e *env) {
	var order []string
	var omu sync.Mutex
	note := func(s string) {
		omu.Lock()
		order = append(order, s)
		omu.Unlock()
	}
	tagger := func(name string) queue.EnqueueMiddleware {
		return func(next queue.EnqueueFunc) queue.EnqueueFunc {
			return func(ctx context.Context, s *queue.Submission) (string, error) {
				note("enqueue " + name)
				s.SetHeader("trace", s.Headers["trace"]+name)
				return next(ctx, s)
			}
		}
	}
	c, err := queue.NewClient(e.b, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{tagger("a"), tagger("b")}})
	if err != nil {
		t.Fatal(err)
	}

	type seen struct {
		index, attempt int
		trace          string
		out            string
		err            error
	}
	var mu sync.Mutex
	var runs []seen
	record := func(next queue.RunFunc) queue.RunFunc {
		return func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
			out, err := next(context.WithValue(ctx, mwKey{}, m.Headers["trace"]), m, dst)
			mu.Lock()
			runs = append(runs, seen{m.Index, m.Attempt, m.Headers["trace"], string(out[len(dst):]), err})
			mu.Unlock()
			return out, err
		}
	}
	outer := func(next queue.RunFunc) queue.RunFunc {
		return func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
			if m.Index == 0 && m.Attempt == 1 {
				note("run outer")
			}
			return next(ctx, m, dst)
		}
	}
	inner := func(next queue.RunFunc) queue.RunFunc {
		return func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
			if m.Index == 0 && m.Attempt == 1 {
				note("run inner")
			}
			return next(ctx, m, dst)
		}
	}
	e.worker(&queue.WorkerConfig{Concurrency: 4, Middleware: []queue.Middleware{outer, record, inner}}, func(w *queue.Worker) {
		queue.HandleFunc(w, echo, func(ctx context.Context, s string) (string, error) {
			if s == "flaky" {
				mu.Lock()
				n := 0
				for _, r := range runs {
					if r.index == 1 {
						n++
					}
				}
				mu.Unlock()
				if n == 0 {
					return "", errors.New("first attempt fails")
				}
			}
			tr, _ := ctx.Value(mwKey{}).(string)
			return s + "@" + tr, nil
		})
	})
	ctx := e.ctx()
	b := try(queue.EnqueueBatch(ctx, c, echo, []string{"x", "flaky", "z"}, queue.WithMaxAttempts(2), queue.WithBackoff(e.unit, e.unit))).get(t)
	got := try(b.Await(ctx)).get(t)
	if want := []string{"x@ab", "flaky@ab", "z@ab"}; !slices.Equal(got, want) {
		t.Fatalf("outputs %q, want %q: the handler sees the context middleware made from the headers", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(runs) != 4 {
		t.Fatalf("middleware saw %d runs, want 4 (three tasks, one retried): %+v", len(runs), runs)
	}
	failed := 0
	for _, r := range runs {
		if r.trace != "ab" {
			t.Errorf("task %d attempt %d: header trace = %q, want %q", r.index, r.attempt, r.trace, "ab")
		}
		if r.err != nil {
			failed++
			if r.index != 1 || r.attempt != 1 || r.out != "" {
				t.Errorf("task %d attempt %d failed (%v, output %q): want only task 1's first attempt to fail, with no output", r.index, r.attempt, r.err, r.out)
			}
		} else if !strings.HasSuffix(r.out, `@ab"`) {
			t.Errorf("task %d attempt %d: middleware saw output %s, want the handler's", r.index, r.attempt, r.out)
		}
	}
	if failed != 1 {
		t.Errorf("middleware saw %d failed runs, want 1", failed)
	}
	omu.Lock()
	if want := []string{"enqueue a", "enqueue b", "run outer", "run inner"}; !slices.Equal(order, want) {
		t.Errorf("middleware ran in the order %q, want %q", order, want)
	}
	omu.Unlock()

	// Headers beyond the limits are refused, naming them, and nothing is
	// stored; the client without middleware reaches the broker's own check.
	big := func(next queue.EnqueueFunc) queue.EnqueueFunc {
		return func(ctx context.Context, s *queue.Submission) (string, error) {
			for i := range queue.MaxHeaders + 1 {
				s.SetHeader(fmt.Sprint("h", i), "v")
			}
			return next(ctx, s)
		}
	}
	bc, err := queue.NewClient(e.b, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{big}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Enqueue(ctx, bc, echo, "never"); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "MaxHeaders") {
		t.Errorf("enqueue with %d headers: %v, want ErrBadInput naming MaxHeaders", queue.MaxHeaders+1, err)
	}
	s := &queue.Submission{BatchID: "queuetest-badheaders", Queue: queue.DefaultQueue, Kind: echo.Name(), MaxAttempts: 1,
		EnqueuedAt: time.Now(), Headers: map[string]string{"": "v"}, Payloads: [][]byte{[]byte(`"never"`)}}
	if _, err := e.b.Enqueue(ctx, s); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("Broker.Enqueue with an empty header key: %v, want ErrBadInput", err)
	}
	if _, err := queue.NewClient(e.b, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{nil}}); !errors.Is(err, queue.ErrBadConfig) {
		t.Errorf("NewClient with a nil middleware: %v, want ErrBadConfig", err)
	}
	if _, err := queue.NewWorker(e.b, &queue.WorkerConfig{Middleware: []queue.Middleware{nil}}); !errors.Is(err, queue.ErrBadConfig) {
		t.Errorf("NewWorker with a nil middleware: %v, want ErrBadConfig", err)
	}
}
