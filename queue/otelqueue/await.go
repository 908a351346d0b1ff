package otelqueue

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/gather-go/gather"
	"github.com/gather-go/gather/queue"
)

// maxFailureEvents bounds the "task failed" events AwaitSettled adds to its
// span: a batch may hold millions of tasks, and FailedKey counts them all.
const maxFailureEvents = 16

// Await calls b.Await(ctx) within a span named "await", a child of the span
// in ctx, and returns what it returns. The span carries the batch ID and
// its task count; when a task failed it records the error, the task's index
// (IndexKey) and error.type, the failure's code (queue.CodeTimeout's
// "timeout", ...), and ends with status Error, as it does when ctx ends
// first. Give it the context the batch was enqueued under, so that the
// await span, the producer span and the tasks' spans are one trace (see
// the package doc). Its cost beyond b.Await is one span.
func Await[Out any](ctx context.Context, b *queue.Batch[Out], opts ...Option) ([]Out, error) {
	ctx, span := startAwait(ctx, b.ID(), b.Len(), opts)
	defer span.End()
	out, err := b.Await(ctx)
	endAwait(span, err)
	return out, err
}

// AwaitTask is Await for a lone task: it calls t.Await(ctx) within an
// "await" span.
func AwaitTask[Out any](ctx context.Context, t *queue.Task[Out], opts ...Option) (Out, error) {
	ctx, span := startAwait(ctx, t.BatchID(), 1, opts)
	defer span.End()
	out, err := t.Await(ctx)
	endAwait(span, err)
	return out, err
}

// AwaitSettled calls b.AwaitSettled(ctx) within a span named "await", a
// child of the span in ctx, and returns what it returns. Beyond what
// Await's span carries, it counts the failed tasks (FailedKey), adds a
// "task failed" event for each of the first 16 (index, error.type and
// message), and ends with status Error when any failed.
func AwaitSettled[Out any](ctx context.Context, b *queue.Batch[Out], opts ...Option) ([]gather.Result[Out], error) {
	ctx, span := startAwait(ctx, b.ID(), b.Len(), opts)
	defer span.End()
	res, err := b.AwaitSettled(ctx)
	if err != nil {
		endAwait(span, err)
		return res, err
	}
	failed := 0
	for i := range res {
		if res[i].Err == nil {
			continue
		}
		failed++
		if failed <= maxFailureEvents && span.IsRecording() {
			span.AddEvent("task failed", trace.WithAttributes(IndexKey.Int(i), failureType(res[i].Err),
				semconv.ExceptionMessage(res[i].Err.Error())))
		}
	}
	span.SetAttributes(FailedKey.Int(failed))
	if failed > 0 {
		span.SetStatus(codes.Error, fmt.Sprintf("%d of %d tasks failed", failed, len(res)))
	}
	return res, nil
}

func startAwait(ctx context.Context, batchID string, n int, opts []Option) (context.Context, trace.Span) {
	c := newConfig(opts)
	return c.tracer().Start(ctx, c.name("await", ""), trace.WithAttributes(
		system, BatchIDKey.String(batchID), TasksKey.Int(n)))
}

func endAwait(span trace.Span, err error) {
	if err == nil {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(failureType(err))
	if te, ok := errors.AsType[*gather.TaskError](err); ok {
		span.SetAttributes(IndexKey.Int(te.Index))
	}
}

// failureType is error.type for an awaited error: a task's failure code,
// or the error's type.
func failureType(err error) attribute.KeyValue {
	if f, ok := errors.AsType[*queue.Failure](err); ok {
		return semconv.ErrorTypeKey.String(string(f.Code))
	}
	return semconv.ErrorType(err)
}
