package queue

import (
	"context"
	"fmt"
)

// RunFunc runs one delivered task with its kind's handler, types erased: it
// decodes m.Payload, calls the handler and appends the encoded output to
// dst, returning the extended slice (the output is out[len(dst):]) or dst
// and the handler's error. m is the worker's: read it, do not keep it or
// modify it. A RunFunc is what Middleware wraps.
type RunFunc func(ctx context.Context, m *Message, dst []byte) (out []byte, err error)

// Middleware wraps the run of every task a worker runs, whatever its kind,
// as net/http middleware wraps a handler: logging, tracing, timing, metrics,
// recovering panics in a way of one's own. It is called once per kind when
// the worker starts, so the cost per task is the call of what it returns.
// The function returned may derive ctx (a span, a logger, values from
// m.Headers) before calling next, and see or replace next's output and
// error after. It must call next at most once, from the goroutine it was
// called on. A panic that escapes it is recovered by the worker and fails
// the attempt, recorded with its stack, as a handler's panic does.
type Middleware func(next RunFunc) RunFunc

// EnqueueFunc stores a submission on the broker and returns its batch ID,
// as Broker.Enqueue does. It is what EnqueueMiddleware wraps.
type EnqueueFunc func(ctx context.Context, s *Submission) (batchID string, err error)

// EnqueueMiddleware wraps every enqueue of a client: it may add headers to
// the submission (SetHeader; a trace context, a tenant), log, time or
// refuse it (return an error without calling next). It is called once when
// the client is made. It must not change the submission's Payloads, which
// the client has checked and may share; other fields it changes are taken
// as they are when next is called, and the headers are checked then (see
// CheckHeaders).
type EnqueueMiddleware func(next EnqueueFunc) EnqueueFunc

// Header limits: Enqueue refuses a submission beyond them with an error
// wrapping ErrBadInput.
const (
	// MaxHeaders is the most headers a submission carries.
	MaxHeaders = 32
	// MaxHeaderBytes bounds the summed lengths of a submission's header
	// keys and values: they travel with every task.
	MaxHeaderBytes = 8 << 10
)

// SetHeader sets the header key to value, making the map if there is none.
func (s *Submission) SetHeader(key, value string) {
	if s.Headers == nil {
		s.Headers = make(map[string]string, 1)
	}
	s.Headers[key] = value
}

// CheckHeaders returns an error wrapping ErrBadInput, saying what is
// accepted, when h holds an empty key, more than MaxHeaders headers or more
// than MaxHeaderBytes of keys and values.
func CheckHeaders(h map[string]string) error {
	if len(h) > MaxHeaders {
		return errorf("%w: %d headers: want at most %d (MaxHeaders)", ErrBadInput, len(h), MaxHeaders)
	}
	n := 0
	for k, v := range h {
		if k == "" {
			return errorf("%w: a header with an empty key: want a non-empty key", ErrBadInput)
		}
		n += len(k) + len(v)
	}
	if n > MaxHeaderBytes {
		return errorf("%w: headers of %d bytes (keys and values): want at most %d (MaxHeaderBytes)", ErrBadInput, n, MaxHeaderBytes)
	}
	return nil
}

// enqueueChain returns b.Enqueue wrapped by mw, mw[0] outermost, with the
// headers checked just before the broker sees them.
func enqueueChain(b Broker, mw []EnqueueMiddleware) (EnqueueFunc, error) {
	var fn EnqueueFunc = b.Enqueue
	if len(mw) == 0 {
		return fn, nil // no middleware, no headers to check
	}
	fn = func(ctx context.Context, s *Submission) (string, error) {
		if err := CheckHeaders(s.Headers); err != nil {
			return "", err
		}
		return b.Enqueue(ctx, s)
	}
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] == nil {
			return nil, errorf("%w: ClientConfig.EnqueueMiddleware[%d] is nil", ErrBadConfig, i)
		}
		fn = mw[i](fn)
		if fn == nil {
			return nil, errorf("%w: ClientConfig.EnqueueMiddleware[%d] returned a nil EnqueueFunc", ErrBadConfig, i)
		}
	}
	return fn, nil
}

// runChain returns fn wrapped by mw, mw[0] outermost. NewWorker refused
// nil middleware; one that returns nil is found here, when Start calls it.
func runChain(fn RunFunc, mw []Middleware, kind string) (RunFunc, error) {
	for i := len(mw) - 1; i >= 0; i-- {
		fn = mw[i](fn)
		if fn == nil {
			return nil, fmt.Errorf("%w: WorkerConfig.Middleware[%d] returned a nil RunFunc for kind %q", ErrBadConfig, i, kind)
		}
	}
	return fn, nil
}
