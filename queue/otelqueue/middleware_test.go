package otelqueue_test

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/otelqueue"
)

// TestEnqueueSpan: a refused enqueue ends its span with the error; an
// enqueue whose idempotency key matched an earlier batch is marked and
// names that batch; the span name formatter names the spans.
func TestEnqueueSpan(t *testing.T) {
	t.Parallel()
	tr := newTracing(t)
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	errRefused := errors.New("refused by policy")
	refuseBig := func(next queue.EnqueueFunc) queue.EnqueueFunc {
		return func(ctx context.Context, s *queue.Submission) (string, error) {
			if len(s.Payloads) > 2 {
				return "", errRefused
			}
			return next(ctx, s)
		}
	}
	named := slices.Concat(tr.opts, []otelqueue.Option{otelqueue.WithSpanNameFormatter(func(op, q string) string { return "gather." + op + "/" + q })})
	c, err := queue.NewClient(b, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{otelqueue.Enqueue(named...), refuseBig}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := queue.NewKind[int, int]("k")
	if _, err := queue.EnqueueBatch(ctx, c, k, []int{1, 2, 3}, queue.WithQueue("big")); !errors.Is(err, errRefused) {
		t.Fatalf("EnqueueBatch of 3 = %v, want the refusal", err)
	}
	refused := tr.one(t, "gather.send/big")
	if refused.Status().Code != codes.Error || refused.Status().Description != errRefused.Error() || len(refused.Events()) != 1 {
		t.Errorf("refused enqueue's span: status %v, events %v; want the error", refused.Status(), refused.Events())
	}

	first, err := queue.Enqueue(ctx, c, k, 1, queue.WithIdempotencyKey("once", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	again, err := queue.Enqueue(ctx, c, k, 1, queue.WithIdempotencyKey("once", time.Hour))
	if err != nil || again.BatchID() != first.BatchID() {
		t.Fatalf("second enqueue with the key: %v, batch %s; want the first's, %s", err, again.BatchID(), first.BatchID())
	}
	sends := tr.spans("gather.send/default", otelqueue.BatchIDKey.String(first.BatchID()))
	if len(sends) != 2 || hasAttr(sends[0], otelqueue.DeduplicatedKey.Bool(true)) || !hasAttr(sends[1], otelqueue.DeduplicatedKey.Bool(true)) {
		t.Errorf("send spans of the first batch's ID: %s; want the first plain and the second deduplicated", tr.dump())
	}

	done, cancel := context.WithCancel(ctx)
	cancel() // no worker runs the task: the await ends with ctx
	if _, err := otelqueue.AwaitTask(done, first, named...); !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitTask = %v, want context.Canceled", err)
	}
	tr.one(t, "gather.await/")
}

// TestAwaitSpanCanceled: an await whose context ends first ends its span
// with that error.
func TestAwaitSpanCanceled(t *testing.T) {
	t.Parallel()
	tr := newTracing(t)
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	task, err := queue.Enqueue(context.Background(), c, queue.NewKind[int, int]("k"), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no worker runs the task: the await can only end with ctx
	if _, err := otelqueue.AwaitTask(ctx, task, tr.opts...); !errors.Is(err, context.Canceled) {
		t.Fatalf("AwaitTask = %v, want context.Canceled", err)
	}
	s := tr.one(t, "await", otelqueue.BatchIDKey.String(task.BatchID()))
	if s.Status().Code != codes.Error || attr(s, otelqueue.TasksKey).AsInt64() != 1 || attr(s, "error.type").AsString() == "" {
		t.Errorf("await span: status %v, attributes %v", s.Status(), s.Attributes())
	}
}

// TestHandlerPanicAndGoexit: a panic goes on with its value after the span
// ended with it; runtime.Goexit ends the span too.
func TestHandlerPanicAndGoexit(t *testing.T) {
	t.Parallel()
	tr := newTracing(t)
	mw := otelqueue.Handler(tr.opts...)
	m := &queue.Message{BatchID: "b", Queue: "q", Kind: "k", Attempt: 2, MaxAttempts: 3}
	type value struct{ n int }
	panics := mw(func(context.Context, *queue.Message, []byte) ([]byte, error) { panic(value{7}) })
	func() {
		defer func() {
			if v := recover(); v != (value{7}) {
				t.Errorf("recovered %v, want the handler's panic value", v)
			}
		}()
		_, _ = panics(context.Background(), m, nil)
		t.Error("the panic did not go on")
	}()
	s := tr.one(t, "process q", otelqueue.AttemptKey.Int(2))
	if s.Status().Code != codes.Error || attr(s, "error.type").AsString() != "panic" {
		t.Errorf("panicking attempt's span: status %v, attributes %v", s.Status(), s.Attributes())
	}

	m.Queue = "exit"
	exits := mw(func(context.Context, *queue.Message, []byte) ([]byte, error) { runtime.Goexit(); return nil, nil })
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = exits(context.Background(), m, nil)
	}()
	<-done
	if s := tr.one(t, "process exit"); s.Status().Code != codes.Error {
		t.Errorf("span of an attempt that called runtime.Goexit: status %v, want Error", s.Status())
	}
	if s := tr.one(t, "process exit"); s.SpanKind() != trace.SpanKindConsumer || s.Parent().IsValid() {
		t.Errorf("span of a task without a trace context: kind %v, parent %v; want a consumer span at the root", s.SpanKind(), s.Parent())
	}
}

// TestBaggageOverHeaderLimit: baggage that takes the headers past
// queue.MaxHeaderBytes gets the enqueue refused with ErrBadInput, recorded
// on its span, rather than dropped without a word.
func TestBaggageOverHeaderLimit(t *testing.T) {
	t.Parallel()
	tr := newTracing(t)
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tenant := func(next queue.EnqueueFunc) queue.EnqueueFunc {
		return func(ctx context.Context, s *queue.Submission) (string, error) {
			s.SetHeader("tenant", strings.Repeat("t", 1000))
			return next(ctx, s)
		}
	}
	prop := otelqueue.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	c, err := queue.NewClient(b, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{
		otelqueue.Enqueue(otelqueue.WithTracerProvider(tr.tp), prop), tenant}})
	if err != nil {
		t.Fatal(err)
	}
	var members []baggage.Member
	for _, k := range []string{"a", "b"} {
		m, err := baggage.NewMemberRaw(k, strings.Repeat("v", 3800))
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	bag, err := baggage.New(members...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(context.Background(), bag)
	if _, err := queue.Enqueue(ctx, c, queue.NewKind[int, int]("k"), 1); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "MaxHeaderBytes") {
		t.Fatalf("Enqueue with %d bytes of baggage = %v, want ErrBadInput naming MaxHeaderBytes", len(bag.String()), err)
	}
	if s := tr.one(t, "send default"); s.Status().Code != codes.Error {
		t.Errorf("refused enqueue's span: status %v, want Error", s.Status())
	}
	small, err := baggage.New(members[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Enqueue(baggage.ContextWithBaggage(context.Background(), small), c, queue.NewKind[int, int]("k"), 1); err != nil {
		t.Fatalf("Enqueue with %d bytes of baggage: %v", len(small.String()), err)
	}
}
