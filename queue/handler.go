package queue

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Handler runs tasks of one kind, as http.Handler serves requests. Handle is
// called on a worker goroutine with a context that is cancelled when the
// task's batch is cancelled, its attempt times out, its deadline passes or
// the worker's shutdown deadline passes. Returning an error fails the
// attempt: it is retried with backoff unless it wraps ErrPermanent (see
// Permanent) or was the last; a panic is recovered and fails the attempt
// the same way, recorded with its stack.
type Handler[In, Out any] interface {
	Handle(ctx context.Context, in In) (Out, error)
}

// HandlerFunc adapts a function to a Handler.
type HandlerFunc[In, Out any] func(ctx context.Context, in In) (Out, error)

// Handle calls f(ctx, in).
func (f HandlerFunc[In, Out]) Handle(ctx context.Context, in In) (Out, error) { return f(ctx, in) }

// Handle registers h to run the tasks of kind k on w. It must be called
// before w starts. It panics if h is nil, if k has a handler on w already, or
// if w has started: programmer errors, as with http.ServeMux.Handle.
func Handle[In, Out any](w *Worker, k Kind[In, Out], h Handler[In, Out]) {
	k.check()
	if h == nil {
		panic("queue: Handle with a nil handler")
	}
	w.register(k.name, func(ctx context.Context, m *Message, dst []byte) ([]byte, error) {
		in, err := decode(k.in, m.Payload)
		if err != nil {
			return dst, &badInputError{kind: k.name, err: err}
		}
		out, err := h.Handle(ctx, in)
		if err != nil {
			return dst, err
		}
		dst, err = k.out.Append(dst, out)
		if err != nil {
			return dst, Permanent(fmt.Errorf("encoding output of kind %q: %w", k.name, err))
		}
		return dst, nil
	})
}

// HandleFunc registers f to run the tasks of kind k on w (see Handle).
func HandleFunc[In, Out any](w *Worker, k Kind[In, Out], f func(ctx context.Context, in In) (Out, error)) {
	if f == nil {
		panic("queue: HandleFunc with a nil function")
	}
	Handle(w, k, HandlerFunc[In, Out](f))
}

// runFunc is a handler with its types erased (see RunFunc).
type runFunc = RunFunc

type badInputError struct {
	kind string
	err  error
}

func (e *badInputError) Error() string {
	return fmt.Sprintf("input does not decode as kind %q: %v", e.kind, e.err)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v\n\n%s", e.value, e.stack) }

// call runs fn, turning a panic into a *panicError with the stack.
func call(fn runFunc, ctx context.Context, m *Message, dst []byte) (out []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			out, err = dst, &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return fn(ctx, m, dst)
}
