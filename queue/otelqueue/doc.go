// Package otelqueue carries OpenTelemetry traces through package queue: from
// the code that enqueues a batch, to every attempt of every task a worker
// runs, and back to the code that awaits the batch.
//
// Use otelqueue when a service exports OpenTelemetry traces and wants a
// task's handler to appear in the trace of the request that enqueued it.
// Use queue/metrics for Prometheus counters and latencies, and
// queue.Observer for anything else. The core packages (queue, its brokers,
// the gather program) do not import OpenTelemetry; only a program that
// imports otelqueue links it.
//
// Three pieces, each configured by the same Options:
//
//   - Enqueue is a queue.EnqueueMiddleware (ClientConfig.EnqueueMiddleware).
//     Each enqueue gets a producer span, "send <queue>", a child of the
//     span in the enqueue's context, and that span's context is written
//     into the submission's headers by the propagator (W3C traceparent,
//     tracestate and baggage with the usual global set-up).
//   - Handler is a queue.Middleware (WorkerConfig.Middleware). Each attempt
//     of each task gets a consumer span, "process <queue>", a child of the
//     producer span read back from the task's headers: the same trace ID in
//     whichever process or machine the task runs. The handler's context
//     carries that span, so the handler's own spans, and the tasks it
//     enqueues through a client with Enqueue, join the trace. A retry is a
//     second span, a sibling of the first.
//   - Await, AwaitSettled and AwaitTask wrap the corresponding queue calls in
//     an "await" span, a child of the span in their context, that records how
//     the batch ended (which task failed and how).
//
// What "back" gives, exactly. The worker's spans go to the worker's
// exporter, and the producer sees them in its trace only in the tracing
// backend, which joins spans by trace ID: nothing travels back with the
// results, because a task's outcome carries its output and its failure and
// has no room for a span context (and the brokers' wire format is not
// changed for it). The await span puts the wait itself in the producer's
// trace, next to the producer span, with the outcome. For all three to be
// one trace, enqueue and await must run under one span: the incoming
// request's span (otelhttp's, for example) or one the caller starts. An
// enqueue under no span starts a new trace, and an await under no span
// another.
//
// Other paths: a Scheduler given Enqueue in its SchedulerConfig.Client
// starts a trace per tick enqueued (a tick another scheduler enqueued
// first is a send span marked with DeduplicatedKey); a dead letter that is
// redriven keeps the headers it was enqueued with, so its new attempts
// join the trace of the original enqueue.
//
// What must agree between processes: the producer's and the worker's
// propagators (the global one by default, otel.GetTextMapPropagator, which
// injects nothing until the program sets one, for example with
// otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
// propagation.TraceContext{}, propagation.Baggage{}))).
//
// The propagated fields count toward a submission's header limits
// (queue.MaxHeaders and queue.MaxHeaderBytes, 8 KiB of keys and values):
// traceparent takes 66 bytes, but W3C baggage may be up to 8 KiB, and an
// enqueue whose headers pass the limit is refused with an error wrapping
// queue.ErrBadInput that says so.
//
// Panics: Handler recovers a handler's panic only to record it on the span
// (an exception event with the stack, status Error, error.type "panic"),
// ends the span and panics again with the same value, so the worker's own
// recovery still fails the attempt with queue.CodePanic and the original
// stack.
//
// Cost: Handler adds a span per attempt and Enqueue a span per batch. With
// the OpenTelemetry SDK recording every span and exporting none, Handler
// allocates 12 times (2.5 KB) per attempt and Enqueue 13 times (2.6 KB) per
// batch, and a lone task's enqueue and AwaitTask on membroker allocate 46
// times where the bare round trip allocates 11; with OpenTelemetry's no-op
// provider, Handler allocates 5 times and Enqueue 4 (the attributes a
// sampler may use are made for every span, the others only for a span
// that records). An exporter's cost comes on top. BenchmarkHandler,
// BenchmarkEnqueue and BenchmarkRoundTrip measure it.
package otelqueue
