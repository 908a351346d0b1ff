package otelqueue

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gather-go/gather/queue"
)

// Handler returns worker middleware (for WorkerConfig.Middleware) that
// reads the trace context from the task's headers with the propagator and
// runs each attempt in a consumer span named "process <queue>", a child of
// the enqueue's producer span (or of the span in the worker's context, or a
// new trace, when the headers carry none). The span carries the queue, the
// kind, the task ID, the batch ID, the attempt and the payload's size, and
// the handler's context carries the span.
//
// An attempt that returns an error records it and ends with status Error,
// error.type being "permanent" (queue.Permanent), "timeout" (the attempt's
// context passed its deadline), "canceled" (its batch was cancelled) or
// the error's type. A panic is recorded with its stack (error.type
// "panic"), the span is ended, and the panic goes on with the same value to
// the worker, which fails the attempt as for any handler's panic. A retry
// is another attempt and another span.
//
// Put it first in WorkerConfig.Middleware (outermost) so that the span
// covers the other middleware. The middleware is safe for concurrent use
// and starts no goroutines.
func Handler(opts ...Option) queue.Middleware {
	c := newConfig(opts)
	tracer := c.tracer()
	consumer := trace.WithSpanKind(trace.SpanKindConsumer)
	return func(next queue.RunFunc) queue.RunFunc {
		var names nameCache
		return func(ctx context.Context, m *queue.Message, dst []byte) (out []byte, err error) {
			ctx = c.prop.Extract(ctx, propagation.MapCarrier(m.Headers))
			// The attributes a sampler may use go in at the start, as the
			// messaging conventions ask; the rest only on a span that
			// records, so that a provider that records nothing costs less.
			ctx, span := tracer.Start(ctx, names.get(c, "process", m.Queue), consumer, trace.WithAttributes(
				system,
				semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("process"),
				semconv.MessagingDestinationName(m.Queue),
			))
			if span.IsRecording() {
				span.SetAttributes(
					semconv.MessagingMessageID(m.ID()),
					semconv.MessagingMessageBodySize(len(m.Payload)),
					BatchIDKey.String(m.BatchID),
					KindKey.String(m.Kind),
					AttemptKey.Int(m.Attempt),
				)
			}
			returned := false
			defer func() {
				if returned {
					return
				}
				v := recover()
				if v == nil {
					// runtime.Goexit: the goroutine ends, and so does the span.
					span.SetStatus(codes.Error, "the handler called runtime.Goexit")
					span.End()
					return
				}
				msg := fmt.Sprintf("panic: %v", v)
				span.RecordError(errors.New(msg), trace.WithStackTrace(true))
				span.SetStatus(codes.Error, msg)
				span.SetAttributes(semconv.ErrorTypeKey.String("panic"))
				span.End()
				panic(v) // to the worker's recovery, which records the attempt
			}()
			out, err = next(ctx, m, dst)
			returned = true
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				span.SetAttributes(errorType(ctx, err))
			}
			span.End()
			return out, err
		}
	}
}

// errorType classifies a handler's error as the worker will, where the
// middleware can tell.
func errorType(ctx context.Context, err error) attribute.KeyValue {
	switch {
	case errors.Is(err, queue.ErrPermanent):
		return semconv.ErrorTypeKey.String(string(queue.CodePermanent))
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return semconv.ErrorTypeKey.String(string(queue.CodeTimeout))
	case errors.Is(ctx.Err(), context.Canceled):
		return semconv.ErrorTypeKey.String(string(queue.CodeCanceled))
	}
	return semconv.ErrorType(err)
}
