package otelqueue

import (
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the spans this package starts:
// the name of the tracer it asks the TracerProvider for.
const ScopeName = "github.com/gather-go/gather/queue/otelqueue"

// The attributes this package sets beyond OpenTelemetry's messaging
// conventions (messaging.system "gather", messaging.destination.name the
// queue, messaging.operation.type and .name, messaging.message.id the task
// ID, messaging.batch.message_count, messaging.message.body.size,
// error.type).
const (
	// BatchIDKey is the batch ID, on every span: it joins a producer's
	// send and await spans with the handler spans of the batch's tasks.
	BatchIDKey = attribute.Key("gather.batch.id")
	// KindKey is the task kind's name, on send and process spans.
	KindKey = attribute.Key("gather.task.kind")
	// AttemptKey is the 1-based attempt number, on process spans.
	AttemptKey = attribute.Key("gather.task.attempt")
	// IndexKey is a task's index in its batch, on the await span of a
	// batch that failed (Await) and on AwaitSettled's failure events.
	IndexKey = attribute.Key("gather.task.index")
	// TasksKey is the number of tasks of the batch awaited, on await spans.
	TasksKey = attribute.Key("gather.batch.tasks")
	// FailedKey is how many tasks of the batch failed, on AwaitSettled's
	// span.
	FailedKey = attribute.Key("gather.batch.failed")
	// DeduplicatedKey is true on a send span whose idempotency key matched
	// an earlier batch: nothing was stored, the batch ID is the earlier
	// batch's, and its tasks carry the earlier enqueue's trace context.
	DeduplicatedKey = attribute.Key("gather.batch.deduplicated")
)

// system is messaging.system: not one of the registered values, which
// name brokers; gather is the messaging system here, whichever broker
// stores its tasks.
var system = semconv.MessagingSystemKey.String("gather")

// An Option configures Enqueue, Handler, Await, AwaitSettled or AwaitTask.
// The zero Option is not valid; use the With functions.
type Option func(*config)

// WithTracerProvider sets the TracerProvider that spans come from.
// Default: otel.GetTracerProvider(), the global one, looked up when the
// middleware is made (the global provider forwards to one set later).
// A nil tp keeps the default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	}
}

// WithPropagators sets the propagator that writes the trace context into
// a submission's headers and reads it back from a task's. It must be the
// same kind on both sides. Default: otel.GetTextMapPropagator(), the
// global one (which carries nothing until the program sets one). A nil p
// keeps the default.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) {
		if p != nil {
			c.prop = p
		}
	}
}

// WithSpanNameFormatter sets how spans are named. f gets the operation,
// "send" (Enqueue), "process" (Handler) or "await" (the Await functions),
// and the queue, which is "" for await spans since a batch handle does not
// know its queue. It is called from many goroutines at once, not
// necessarily once per span (a name is kept for the next span on the same
// queue), so it must depend on its arguments only, and should return a
// name of low cardinality (not a batch ID).
// Default: "<operation> <queue>", as OpenTelemetry's messaging conventions
// name spans, and "await" alone. A nil f keeps the default.
func WithSpanNameFormatter(f func(operation, queue string) string) Option {
	return func(c *config) {
		if f != nil {
			c.name = f
		}
	}
}

type config struct {
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator
	name func(operation, queue string) string
}

func newConfig(opts []Option) *config {
	c := &config{tp: otel.GetTracerProvider(), prop: otel.GetTextMapPropagator(), name: spanName}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

func (c *config) tracer() trace.Tracer {
	return c.tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL))
}

// nameCache keeps the last span name made for an operation on a queue,
// since a middleware mostly sees one queue: a name costs an allocation.
// Its zero value is empty; it is safe for concurrent use.
type nameCache struct{ last atomic.Pointer[cachedName] }

type cachedName struct{ queue, name string }

func (n *nameCache) get(c *config, operation, queue string) string {
	if l := n.last.Load(); l != nil && l.queue == queue {
		return l.name
	}
	name := c.name(operation, queue)
	n.last.Store(&cachedName{queue, name})
	return name
}

func spanName(operation, queue string) string {
	if queue == "" {
		return operation
	}
	return operation + " " + queue
}
