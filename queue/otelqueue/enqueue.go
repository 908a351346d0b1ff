package otelqueue

import (
	"context"
	"maps"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gather-go/gather/queue"
)

// Enqueue returns enqueue middleware (for ClientConfig.EnqueueMiddleware)
// that starts a producer span per enqueued batch, named "send <queue>", as
// a child of the span in the enqueue's context, and writes that span's
// context into the submission's headers with the propagator. The span
// carries the queue, the kind, the batch ID and the task count (or the task
// ID for a batch of one); an enqueue that fails records its error and ends
// the span with status Error. An enqueue whose idempotency key matched an
// earlier batch is marked with DeduplicatedKey and the earlier batch's ID:
// its tasks carry the earlier enqueue's trace context, not this one's.
//
// Put it first in ClientConfig.EnqueueMiddleware (outermost) so that the
// span covers the other middleware and a refusal by one of them is
// recorded. The middleware is safe for concurrent use and starts no
// goroutines.
func Enqueue(opts ...Option) queue.EnqueueMiddleware {
	c := newConfig(opts)
	tracer := c.tracer()
	producer := trace.WithSpanKind(trace.SpanKindProducer)
	return func(next queue.EnqueueFunc) queue.EnqueueFunc {
		var names nameCache
		return func(ctx context.Context, s *queue.Submission) (string, error) {
			// As in Handler: what a sampler may use at the start, the rest
			// on a span that records.
			n := len(s.Payloads)
			start := [5]attribute.KeyValue{
				system,
				semconv.MessagingOperationTypeSend,
				semconv.MessagingOperationName("send"),
				semconv.MessagingDestinationName(s.Queue),
			}
			attrs := start[:4]
			if n > 1 {
				attrs = append(attrs, semconv.MessagingBatchMessageCount(n))
			}
			ctx, span := tracer.Start(ctx, names.get(c, "send", s.Queue), producer, trace.WithAttributes(attrs...))
			if span.IsRecording() {
				id := BatchIDKey.String(s.BatchID)
				kind := KindKey.String(s.Kind)
				if n == 1 {
					span.SetAttributes(id, kind, semconv.MessagingMessageID(queue.TaskID(s.BatchID, 0)))
				} else {
					span.SetAttributes(id, kind)
				}
			}
			defer span.End()
			c.prop.Inject(ctx, headers{s})
			id, err := next(ctx, s)
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				span.SetAttributes(semconv.ErrorType(err))
				return id, err
			}
			if id != s.BatchID {
				span.SetAttributes(DeduplicatedKey.Bool(true), BatchIDKey.String(id))
			}
			return id, nil
		}
	}
}

// headers is the propagator's view of a submission's headers.
type headers struct{ s *queue.Submission }

func (h headers) Get(key string) string { return h.s.Headers[key] }
func (h headers) Set(key, value string) { h.s.SetHeader(key, value) }
func (h headers) Keys() []string        { return slices.Collect(maps.Keys(h.s.Headers)) }
