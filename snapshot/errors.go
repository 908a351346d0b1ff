package snapshot

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Errors returned by a [Collector] wrap one of them, so
// callers can test with [errors.Is].
var (
	// ErrUnknownSource: a message named a source that is not in
	// [Config.Sources] (when sources are fixed).
	ErrUnknownSource = errors.New("snapshot: unknown source")
	// ErrSequence: a sequence number was zero, went backwards beyond the
	// duplicate window, or an image was behind what was already applied.
	ErrSequence = errors.New("snapshot: bad sequence number")
	// ErrTime: an event time was missing, went backwards (beyond the
	// source's declared disorder), fell at or before the progress the source
	// had already announced, or differed within one event.
	ErrTime = errors.New("snapshot: bad event time")
	// ErrOverflow: an update lay too far beyond a gap for the bounded buffer;
	// the source is gapped until a [Collector.Reset].
	ErrOverflow = errors.New("snapshot: gap buffer overflow")
	// ErrInvalid: the [Config.Verify] hook refused an update; the source is
	// invalid until a [Collector.Reset].
	ErrInvalid = errors.New("snapshot: update failed verification")
	// ErrKey: a key was refused: its side is outside [Order.Sides].
	ErrKey = errors.New("snapshot: bad key")
	// ErrLate: an update older than a cut already taken was refused because
	// the late policy is [LateReject].
	ErrLate = errors.New("snapshot: late update rejected")
	// ErrIncomplete: a cut is not complete; the error names each required
	// source that holds it back and why.
	ErrIncomplete = errors.New("snapshot: cut incomplete")
	// ErrTooOld: the requested time is before the newest cut and no cut at
	// that time is kept (see [Config.Horizon]).
	ErrTooOld = errors.New("snapshot: cut not in the kept history")
	// ErrStale: no complete cut is as fresh as [Collector.Fresh] asked.
	ErrStale = errors.New("snapshot: no complete cut fresh enough")
)

// InputError reports a message that a [Collector] refused. A refused message
// changes nothing, except where Err is [ErrOverflow] or [ErrInvalid], which
// also mark the source (see their documentation).
//
// The zero value is not useful; InputError values are created by the
// Collector and are safe to share.
type InputError struct {
	Op     string // "apply", "heartbeat", "reset" or "atseq"
	Source string // the source named by the message
	Seq    uint64 // the message's sequence number
	Reason string // what was wrong and what was expected
	Err    error  // one of the sentinel errors above
	Cause  error  // the verify hook's error, for ErrInvalid
	Index  int    // the update's position in the Apply call
	batch  int
}

// Error returns "snapshot: <op> <source> seq <n>: <reason>".
func (e *InputError) Error() string {
	msg := fmt.Sprintf("snapshot: %s %q seq %d: %s%s", e.Op, e.Source, e.Seq, e.Reason, e.suffix())
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns the sentinel error and, for ErrInvalid, the hook's error.
func (e *InputError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

func inputErr(op, src string, seq uint64, sentinel error, format string, args ...any) *InputError {
	return &InputError{Op: op, Source: src, Seq: seq, Err: sentinel, Reason: fmt.Sprintf(format, args...)}
}

// fmtTime formats an internal event time (Unix nanoseconds) for messages.
func fmtTime(t int64) string {
	if t == minTime {
		return "the beginning"
	}
	return time.Unix(0, t).UTC().Format("2006-01-02T15:04:05.999999999Z")
}
