package otelqueue_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/otelqueue"
)

// providers are the set-ups the benchmarks compare: no middleware, the
// middleware with OpenTelemetry's no-op provider (tracing compiled in,
// switched off), and the SDK recording every span and exporting none (the
// cost of tracing itself, without an exporter's).
func providers() []struct {
	name string
	tp   trace.TracerProvider
} {
	return []struct {
		name string
		tp   trace.TracerProvider
	}{{"bare", nil}, {"noop", noop.NewTracerProvider()}, {"sdk", sdktrace.NewTracerProvider()}}
}

// BenchmarkHandler is the worker middleware's cost per attempt, called
// directly on a task whose headers carry a trace context.
func BenchmarkHandler(b *testing.B) {
	m := &queue.Message{BatchID: "0123456789abcdef0123456789abcdef", Queue: "default", Kind: "k", Payload: []byte("1"),
		Attempt: 1, MaxAttempts: 3, Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	var next queue.RunFunc = func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
		return append(dst, '1'), nil
	}
	for _, p := range providers() {
		b.Run(p.name, func(b *testing.B) {
			fn := next
			if p.tp != nil {
				fn = otelqueue.Handler(otelqueue.WithTracerProvider(p.tp), otelqueue.WithPropagators(propagation.TraceContext{}))(next)
			}
			ctx := context.Background()
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fn(ctx, m, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnqueue is the enqueue middleware's cost per batch, called
// directly (the headers' map included).
func BenchmarkEnqueue(b *testing.B) {
	var next queue.EnqueueFunc = func(ctx context.Context, s *queue.Submission) (string, error) { return s.BatchID, nil }
	for _, p := range providers() {
		b.Run(p.name, func(b *testing.B) {
			fn := next
			if p.tp != nil {
				fn = otelqueue.Enqueue(otelqueue.WithTracerProvider(p.tp), otelqueue.WithPropagators(propagation.TraceContext{}))(next)
			}
			ctx := context.Background()
			s := &queue.Submission{BatchID: "0123456789abcdef0123456789abcdef", Queue: "default", Kind: "k", Payloads: [][]byte{[]byte("1")}}
			b.ReportAllocs()
			for b.Loop() {
				s.Headers = nil
				if _, err := fn(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip enqueues a lone task on membroker and awaits it,
// with and without both middlewares and the await span: what tracing adds
// to a task's round trip, in allocations and (measured alone) time.
func BenchmarkRoundTrip(b *testing.B) {
	for _, p := range providers() {
		b.Run(p.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			broker, err := membroker.New(nil)
			if err != nil {
				b.Fatal(err)
			}
			defer broker.Close()
			var ccfg queue.ClientConfig
			var wcfg queue.WorkerConfig
			var opts []otelqueue.Option
			if p.tp != nil {
				opts = []otelqueue.Option{otelqueue.WithTracerProvider(p.tp), otelqueue.WithPropagators(propagation.TraceContext{})}
				ccfg.EnqueueMiddleware = []queue.EnqueueMiddleware{otelqueue.Enqueue(opts...)}
				wcfg.Middleware = []queue.Middleware{otelqueue.Handler(opts...)}
			}
			echo := queue.NewKind[int, int]("echo")
			w, err := queue.NewWorker(broker, &wcfg)
			if err != nil {
				b.Fatal(err)
			}
			queue.HandleFunc(w, echo, func(ctx context.Context, n int) (int, error) { return n, nil })
			if err := w.Start(); err != nil {
				b.Fatal(err)
			}
			defer w.Shutdown(ctx)
			c, err := queue.NewClient(broker, &ccfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				task, err := queue.Enqueue(ctx, c, echo, 1)
				if err != nil {
					b.Fatal(err)
				}
				if p.tp != nil {
					_, err = otelqueue.AwaitTask(ctx, task, opts...)
				} else {
					_, err = task.Await(ctx)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
