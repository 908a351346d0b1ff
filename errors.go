package gather

import (
	"errors"
	"fmt"
)

// TaskError is the failure of one task: its index among the inputs and the error it
// returned (or the context error that kept it from starting). errors.Is and errors.As
// see the task's own error through it.
type TaskError struct {
	Index int
	Err   error
}

func (e *TaskError) Error() string { return fmt.Sprintf("gather: task %d: %v", e.Index, e.Err) }

// Unwrap returns the task's own error.
func (e *TaskError) Unwrap() error { return e.Err }

// PanicError is the value re-panicked in the caller's goroutine when a task panics.
// Value is what the task passed to panic; Stack is the panicking goroutine's stack,
// as formatted by runtime/debug.Stack, so the crash report shows where the task
// panicked and not only where it was re-raised.
type PanicError struct {
	Index int
	Value any
	Stack []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("gather: task %d panicked: %v\n\ntask stack:\n%s", p.Index, p.Value, p.Stack)
}

// Unwrap returns the panic value if it is an error, so errors.Is(p, io.EOF) works for
// panic(io.EOF), and nil otherwise.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// Values splits settled results into their values and one error that joins every
// failure, each as a [*TaskError] carrying its index, in index order. The error is nil
// when every task succeeded; the values are index-aligned with results, with the zero
// value where a task failed.
func Values[T any](results []Result[T]) ([]T, error) {
	values := make([]T, len(results))
	var errs []error
	for i, r := range results {
		if r.Err != nil {
			errs = append(errs, &TaskError{Index: i, Err: r.Err})
			continue
		}
		values[i] = r.Value
	}
	return values, errors.Join(errs...)
}
