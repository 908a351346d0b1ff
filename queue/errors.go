package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrQueueFull is returned by Enqueue when the queue is at its bound:
	// nothing of the call was stored, nothing stored before was lost.
	ErrQueueFull = errors.New("queue: queue is full")
	// ErrNotFound is returned for an unknown batch or dead letter.
	ErrNotFound = errors.New("queue: not found")
	// ErrPermanent marks a handler error that must not be retried: wrap it
	// with Permanent. A task failing with it is dead-lettered at once.
	ErrPermanent = errors.New("queue: permanent failure")
	// ErrCanceled is the error of a task whose batch was cancelled.
	ErrCanceled = errors.New("queue: canceled")
	// ErrTimeout is the error of an attempt that ran past its Timeout, or of
	// a task whose Deadline passed.
	ErrTimeout = errors.New("queue: timeout")
	// ErrPanic is the error of an attempt whose handler panicked.
	ErrPanic = errors.New("queue: handler panicked")
	// ErrUnknownKind is the error of a task no handler is registered for on
	// the worker that claimed it. It is not retried.
	ErrUnknownKind = errors.New("queue: unknown kind")
	// ErrBadInput is the error of a task whose input does not decode, of an
	// awaited output that does not decode, of Enqueue calls with inputs that
	// cannot be encoded or are too large or with options out of range, and
	// of malformed task IDs.
	ErrBadInput = errors.New("queue: bad input")
	// ErrBadConfig is wrapped by constructors given an invalid config.
	ErrBadConfig = errors.New("queue: bad config")
)

// errorf returns an error whose message starts with "queue: ". A message that
// starts with one of the package's sentinels (errorf("%w: ...", ErrBadInput))
// has that prefix already and gets no second one: "queue: bad input: ...", not
// "queue: queue: bad input: ...".
func errorf(format string, args ...any) error {
	if strings.HasPrefix(format, "%w") && len(args) > 0 {
		if err, ok := args[0].(error); ok && strings.HasPrefix(err.Error(), "queue: ") {
			return fmt.Errorf(format, args...)
		}
	}
	return fmt.Errorf("queue: "+format, args...)
}

// clip shortens a caller's string for an error message: hostile input may
// be megabytes long.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Permanent wraps err so that the worker does not retry the task: it is
// dead-lettered after this attempt. errors.Is(Permanent(err), err) and
// errors.Is(Permanent(err), ErrPermanent) both hold. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// Code classifies a Failure.
type Code string

// The failure codes.
const (
	CodeFailed      Code = "failed"       // the handler returned an error on its last attempt
	CodePermanent   Code = "permanent"    // the handler returned Permanent(err)
	CodeCanceled    Code = "canceled"     // the batch was cancelled
	CodeTimeout     Code = "timeout"      // the last attempt timed out, or the deadline passed
	CodePanic       Code = "panic"        // the handler panicked on its last attempt
	CodeUnknownKind Code = "unknown_kind" // no handler for the kind
	CodeBadInput    Code = "bad_input"    // the input did not decode
)

// Failure is how a task failed, as recorded by the worker and returned to
// whoever awaits the task: as it is by Task.Await, Batch.AwaitSettled and
// Batch.Results (where its index is its place), and by Batch.Await wrapped in
// a *gather.TaskError carrying its index.
// It is plain data so brokers can store it; errors.Is matches it against the
// sentinel of its code (ErrCanceled, ErrTimeout, ErrPanic, ErrPermanent,
// ErrUnknownKind, ErrBadInput).
type Failure struct {
	Code     Code
	Message  string // the last attempt's error; for a panic, with its stack
	Attempts int    // how many attempts ran
}

func (f *Failure) Error() string {
	if f.Attempts > 1 {
		return fmt.Sprintf("queue: task %s after %d attempts: %s", f.Code, f.Attempts, f.Message)
	}
	return fmt.Sprintf("queue: task %s: %s", f.Code, f.Message)
}

// Is reports whether target is the sentinel of f's code.
func (f *Failure) Is(target error) bool {
	switch f.Code {
	case CodeCanceled:
		return target == ErrCanceled || target == context.Canceled
	case CodeTimeout:
		return target == ErrTimeout || target == context.DeadlineExceeded
	case CodePanic:
		return target == ErrPanic
	case CodePermanent:
		return target == ErrPermanent
	case CodeUnknownKind:
		return target == ErrUnknownKind || target == ErrPermanent
	case CodeBadInput:
		return target == ErrBadInput || target == ErrPermanent
	}
	return false
}
