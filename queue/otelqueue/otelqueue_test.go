package otelqueue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/otelqueue"
	"github.com/gather-go/gather/queue/queuetest"
)

// tracing is a recording SDK provider and the options that route both
// middlewares to it with the W3C trace context propagator, so that tests
// running in parallel touch no global.
type tracing struct {
	rec  *tracetest.SpanRecorder
	tp   *sdktrace.TracerProvider
	opts []otelqueue.Option
}

func newTracing(t *testing.T) *tracing {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &tracing{rec: rec, tp: tp, opts: []otelqueue.Option{
		otelqueue.WithTracerProvider(tp), otelqueue.WithPropagators(propagation.TraceContext{}),
	}}
}

// spans returns the ended spans named name with the attributes kvs.
func (tr *tracing) spans(name string, kvs ...attribute.KeyValue) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
next:
	for _, s := range tr.rec.Ended() {
		if s.Name() != name {
			continue
		}
		for _, kv := range kvs {
			if !hasAttr(s, kv) {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// one returns the one ended span named name with the attributes kvs.
func (tr *tracing) one(t *testing.T, name string, kvs ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	t.Helper()
	s := tr.spans(name, kvs...)
	if len(s) != 1 {
		t.Fatalf("%d spans %q with %v, want 1; spans: %s", len(s), name, kvs, tr.dump())
	}
	return s[0]
}

func (tr *tracing) dump() string {
	var b strings.Builder
	for _, s := range tr.rec.Ended() {
		fmt.Fprintf(&b, "\n  %s %s parent %s %v", s.Name(), s.SpanContext().SpanID(), s.Parent().SpanID(), s.Attributes())
	}
	return b.String()
}

func hasAttr(s sdktrace.ReadOnlySpan, kv attribute.KeyValue) bool {
	for _, a := range s.Attributes() {
		if a == kv {
			return true
		}
	}
	return false
}

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value
		}
	}
	return attribute.Value{}
}

// childOf fails the test unless child's parent is parent, in its trace.
func childOf(t *testing.T, child, parent sdktrace.ReadOnlySpan) {
	t.Helper()
	if child.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("span %q is in trace %s, want %q's trace %s", child.Name(), child.SpanContext().TraceID(),
			parent.Name(), parent.SpanContext().TraceID())
	}
	if child.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q has parent %s, want %q (%s)", child.Name(), child.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
	}
}

func TestMembroker(t *testing.T) {
	t.Parallel()
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkTraces(t, b)
}

var (
	double  = queue.NewKind[int, int]("double")
	outer   = queue.NewKind[int, int]("outer")
	flaky   = queue.NewKind[int, int]("flaky")
	panicky = queue.NewKind[int, int]("panicky")
	refuse  = queue.NewKind[int, int]("refuse")
)

// handlerPanics is a named function so that its frame can be looked for
// in the recorded stacks.
func handlerPanics(context.Context, int) (int, error) { panic("boom") }

// checkTraces runs tasks on b through a client with otelqueue.Enqueue and a
// worker with otelqueue.Handler, under one request span, and checks the
// spans: the producer span is the request's child, each attempt's span the
// producer's child in the same trace, the handler's spans and the tasks it
// enqueues are children of its attempt's span, errors and panics are
// recorded, a retried task has a span per attempt, and the await spans
// are the request's children and record how the batch ended.
func checkTraces(t *testing.T, b queue.Broker) {
	tr := newTracing(t)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	client, err := queue.NewClient(b, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{otelqueue.Enqueue(tr.opts...)}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4, Middleware: []queue.Middleware{otelqueue.Handler(tr.opts...)}})
	if err != nil {
		t.Fatal(err)
	}
	inner := tr.tp.Tracer("test")
	queue.HandleFunc(w, double, func(ctx context.Context, n int) (int, error) {
		_, s := inner.Start(ctx, "inner")
		s.SetAttributes(attribute.Int("n", n))
		s.End()
		return 2 * n, nil
	})
	queue.HandleFunc(w, outer, func(ctx context.Context, n int) (int, error) {
		task, err := queue.Enqueue(ctx, client, double, n)
		if err != nil {
			return 0, err
		}
		return task.Await(ctx)
	})
	var flakyRuns atomic.Int64
	queue.HandleFunc(w, flaky, func(ctx context.Context, n int) (int, error) {
		if flakyRuns.Add(1) < 3 {
			return 0, errors.New("not yet")
		}
		return n, nil
	})
	queue.HandleFunc(w, panicky, handlerPanics)
	queue.HandleFunc(w, refuse, func(context.Context, int) (int, error) { return 0, queue.Permanent(errors.New("no")) })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := w.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	rctx, request := tr.tp.Tracer("test").Start(ctx, "request")
	batch, err := queue.EnqueueBatch(rctx, client, double, []int{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := otelqueue.Await(rctx, batch, tr.opts...); err != nil || fmt.Sprint(out) != "[2 4 6]" {
		t.Fatalf("Await = %v, %v; want [2 4 6]", out, err)
	}
	nested, err := queue.Enqueue(rctx, client, outer, 5)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := otelqueue.AwaitTask(rctx, nested, tr.opts...); err != nil || out != 10 {
		t.Fatalf("AwaitTask(outer) = %v, %v; want 10", out, err)
	}
	retried, err := queue.Enqueue(rctx, client, flaky, 7, queue.WithMaxAttempts(3), queue.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := otelqueue.AwaitTask(rctx, retried, tr.opts...); err != nil || out != 7 {
		t.Fatalf("AwaitTask(flaky) = %v, %v; want 7", out, err)
	}
	mixed, err := queue.EnqueueBatch(rctx, client, panicky, []int{1}, queue.WithMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = otelqueue.Await(rctx, mixed, tr.opts...)
	var f *queue.Failure
	if !errors.As(err, &f) || f.Code != queue.CodePanic || !strings.Contains(f.Message, "handlerPanics") {
		t.Fatalf("Await(panicky) = %v, want a panic failure whose stack names handlerPanics", err)
	}
	refused, err := queue.EnqueueBatch(rctx, client, refuse, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	settled, err := otelqueue.AwaitSettled(rctx, refused, tr.opts...)
	if err != nil || len(settled) != 2 || !errors.Is(settled[0].Err, queue.ErrPermanent) {
		t.Fatalf("AwaitSettled(refuse) = %v, %v; want two permanent failures", settled, err)
	}
	request.End()

	req := tr.one(t, "request")
	// The batch of three: one producer span, an attempt span per task, the
	// handler's own span under each, the await span beside the producer's.
	send := tr.one(t, "send default", otelqueue.BatchIDKey.String(batch.ID()))
	childOf(t, send, req)
	if send.SpanKind() != trace.SpanKindProducer || attr(send, "messaging.batch.message_count").AsInt64() != 3 ||
		attr(send, "messaging.system").AsString() != "gather" || attr(send, otelqueue.KindKey).AsString() != "double" {
		t.Errorf("send span: kind %v, attributes %v", send.SpanKind(), send.Attributes())
	}
	runs := tr.spans("process default", otelqueue.BatchIDKey.String(batch.ID()))
	if len(runs) != 3 {
		t.Fatalf("%d process spans for the batch of 3, want 3: %s", len(runs), tr.dump())
	}
	ids := map[trace.SpanID]bool{}
	for _, r := range runs {
		childOf(t, r, send)
		ids[r.SpanContext().SpanID()] = true
		if r.SpanKind() != trace.SpanKindConsumer || attr(r, otelqueue.AttemptKey).AsInt64() != 1 ||
			!strings.HasPrefix(attr(r, "messaging.message.id").AsString(), batch.ID()+"/") || r.Status().Code != codes.Unset {
			t.Errorf("process span: kind %v, status %v, attributes %v", r.SpanKind(), r.Status(), r.Attributes())
		}
	}
	under := 0
	for _, in := range tr.spans("inner") {
		if ids[in.Parent().SpanID()] && in.Parent().TraceID() == req.SpanContext().TraceID() {
			under++
		}
	}
	if under != 3 {
		t.Errorf("%d of the handlers' own spans are children of the batch's process spans, want 3: %s", under, tr.dump())
	}
	await := tr.one(t, "await", otelqueue.BatchIDKey.String(batch.ID()))
	childOf(t, await, req)
	if await.Status().Code != codes.Unset || attr(await, otelqueue.TasksKey).AsInt64() != 3 {
		t.Errorf("await span: status %v, attributes %v", await.Status(), await.Attributes())
	}

	// A task enqueued by a handler joins the trace under its attempt.
	nestedSend := tr.one(t, "send default", otelqueue.BatchIDKey.String(nested.BatchID()))
	childOf(t, nestedSend, req)
	nestedRun := tr.one(t, "process default", otelqueue.BatchIDKey.String(nested.BatchID()))
	childOf(t, nestedRun, nestedSend)
	var sub sdktrace.ReadOnlySpan
	for _, s := range tr.spans("send default", otelqueue.KindKey.String("double")) {
		if s.Parent().SpanID() == nestedRun.SpanContext().SpanID() {
			sub = s
		}
	}
	if sub == nil {
		t.Fatalf("no send span under the outer task's process span: %s", tr.dump())
	}
	childOf(t, tr.one(t, "process default", otelqueue.BatchIDKey.String(attr(sub, otelqueue.BatchIDKey).AsString())), sub)

	// A retried task: one span per attempt, each the producer's child.
	retrySend := tr.one(t, "send default", otelqueue.BatchIDKey.String(retried.BatchID()))
	for attempt := 1; attempt <= 3; attempt++ {
		r := tr.one(t, "process default", otelqueue.BatchIDKey.String(retried.BatchID()), otelqueue.AttemptKey.Int(attempt))
		childOf(t, r, retrySend)
		if want := codes.Error; attempt == 3 {
			want = codes.Unset
			if r.Status().Code != want {
				t.Errorf("attempt %d: status %v, want %v", attempt, r.Status(), want)
			}
		} else if r.Status().Code != want || r.Status().Description != "not yet" || len(r.Events()) != 1 || r.Events()[0].Name != "exception" {
			t.Errorf("attempt %d: status %v, events %v; want %v with the error recorded", attempt, r.Status(), r.Events(), want)
		}
	}

	// A panic: recorded with its stack, and the worker still saw it.
	boom := tr.one(t, "process default", otelqueue.BatchIDKey.String(mixed.ID()))
	childOf(t, boom, tr.one(t, "send default", otelqueue.BatchIDKey.String(mixed.ID())))
	if boom.Status().Code != codes.Error || attr(boom, "error.type").AsString() != "panic" || len(boom.Events()) != 1 ||
		!strings.Contains(fmt.Sprint(boom.Events()[0].Attributes), "handlerPanics") {
		t.Errorf("panicking attempt: status %v, attributes %v, events %v; want the panic and its stack", boom.Status(), boom.Attributes(), boom.Events())
	}
	boomAwait := tr.one(t, "await", otelqueue.BatchIDKey.String(mixed.ID()))
	childOf(t, boomAwait, req)
	if boomAwait.Status().Code != codes.Error || attr(boomAwait, "error.type").AsString() != "panic" || !hasAttr(boomAwait, otelqueue.IndexKey.Int(0)) {
		t.Errorf("await of the panicking task: status %v, attributes %v", boomAwait.Status(), boomAwait.Attributes())
	}

	// Permanent failures, awaited settled.
	refusals := tr.spans("process default", otelqueue.BatchIDKey.String(refused.ID()))
	if len(refusals) != 2 {
		t.Errorf("%d process spans for the batch of 2 refused tasks, want 2 (a permanent failure is not retried)", len(refusals))
	}
	for _, r := range refusals {
		if attr(r, "error.type").AsString() != "permanent" {
			t.Errorf("refusing attempt: attributes %v, want error.type permanent", r.Attributes())
		}
	}
	settledSpan := tr.one(t, "await", otelqueue.BatchIDKey.String(refused.ID()))
	if settledSpan.Status().Code != codes.Error || attr(settledSpan, otelqueue.FailedKey).AsInt64() != 2 || len(settledSpan.Events()) != 2 {
		t.Errorf("AwaitSettled's span: status %v, attributes %v, events %v; want 2 failures", settledSpan.Status(), settledSpan.Attributes(), settledSpan.Events())
	}
}
