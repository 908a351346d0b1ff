package otelqueue_test

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/otelqueue"
)

// A request enqueues a batch and awaits it: the producer span, each task's
// span in the worker and the await span are one trace. A real program
// would export the spans (an OTLP exporter in a batch span processor) and
// set the global provider and propagator instead of passing them.
func Example() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)
	opts := []otelqueue.Option{otelqueue.WithTracerProvider(tp), otelqueue.WithPropagators(propagation.TraceContext{})}

	broker, _ := membroker.New(nil)
	defer broker.Close()
	square := queue.NewKind[int, int]("square")
	worker, _ := queue.NewWorker(broker, &queue.WorkerConfig{Middleware: []queue.Middleware{otelqueue.Handler(opts...)}})
	queue.HandleFunc(worker, square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	_ = worker.Start()
	defer worker.Shutdown(ctx)
	client, _ := queue.NewClient(broker, &queue.ClientConfig{EnqueueMiddleware: []queue.EnqueueMiddleware{otelqueue.Enqueue(opts...)}})

	ctx, request := tp.Tracer("example").Start(ctx, "request")
	batch, _ := queue.EnqueueBatch(ctx, client, square, []int{2, 3})
	out, err := otelqueue.Await(ctx, batch, opts...)
	request.End()
	fmt.Println(out, err)

	names := map[string]string{} // span ID to name
	for _, s := range spans.Ended() {
		names[s.SpanContext().SpanID().String()] = s.Name()
	}
	// Every span of the trace, with its parent.
	trace := request.SpanContext().TraceID()
	var tree []string
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() != trace {
			continue
		}
		if parent, ok := names[s.Parent().SpanID().String()]; ok {
			tree = append(tree, s.Name()+", child of "+parent)
		} else {
			tree = append(tree, s.Name()+", the root")
		}
	}
	slices.Sort(tree)
	fmt.Println(strings.Join(tree, "\n"))
	// Output:
	// [4 9] <nil>
	// await, child of request
	// process default, child of send default
	// process default, child of send default
	// request, the root
	// send default, child of request
}

// AwaitSettled's span says how many tasks failed, with an event for each
// of the first 16.
func ExampleAwaitSettled() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)

	broker, _ := membroker.New(nil)
	defer broker.Close()
	check := queue.NewKind[int, int]("check")
	worker, _ := queue.NewWorker(broker, nil)
	queue.HandleFunc(worker, check, func(ctx context.Context, n int) (int, error) {
		if n < 0 {
			return 0, queue.Permanent(fmt.Errorf("%d is negative", n))
		}
		return n, nil
	})
	_ = worker.Start()
	defer worker.Shutdown(ctx)
	client, _ := queue.NewClient(broker, nil)

	batch, _ := queue.EnqueueBatch(ctx, client, check, []int{1, -2, 3})
	res, _ := otelqueue.AwaitSettled(ctx, batch, otelqueue.WithTracerProvider(tp))
	fmt.Println(len(res), res[1].Err != nil)
	await := spans.Ended()[0]
	fmt.Println(await.Name(), await.Status().Description)
	for _, e := range await.Events() {
		fmt.Println(e.Name, e.Attributes[0].Value.AsInt64())
	}
	// Output:
	// 3 true
	// await 1 of 3 tasks failed
	// task failed 1
}
