package snapshot

import (
	"fmt"
	"math"
	"time"
)

// Event and request times are kept as Unix nanoseconds, which represent
// 1677-09-21 to 2262-04-11; the first and last nanosecond are reserved.
var (
	earliest = time.Unix(0, math.MinInt64+1).UTC()
	latest   = time.Unix(0, math.MaxInt64-1).UTC()
)

// nanos returns t as Unix nanoseconds, or false if t is zero or outside the
// representable range (a later time would wrap around into the past).
func nanos(t time.Time) (int64, bool) {
	// Whole seconds well inside the range need no more checking.
	if sec := t.Unix(); sec > math.MinInt64/int64(time.Second)+1 && sec < math.MaxInt64/int64(time.Second)-1 {
		return t.UnixNano(), true
	}
	if t.Before(earliest) || t.After(latest) {
		return 0, false
	}
	return t.UnixNano(), true
}

// badTime says why t was refused and what is accepted.
func badTime(what string, t time.Time) string {
	if t.IsZero() {
		return what + " needs its event time"
	}
	return what + "'s time " + t.UTC().Format(time.RFC3339Nano) + " is outside the supported range " +
		earliest.Format(time.RFC3339Nano) + " to " + latest.Format(time.RFC3339Nano)
}

// requestTime returns a requested cut time as Unix nanoseconds, or an error
// wrapping ErrTime if it is outside the supported range.
func requestTime(t time.Time) (int64, error) {
	tt, ok := nanos(t)
	if !ok {
		return 0, fmt.Errorf("%w: the requested time %s is outside the supported range %s to %s",
			ErrTime, t.UTC().Format(time.RFC3339Nano), earliest.Format(time.RFC3339Nano), latest.Format(time.RFC3339Nano))
	}
	return tt, nil
}

// clampTime returns t as Unix nanoseconds, clamped to the supported range.
func clampTime(t time.Time) int64 {
	switch {
	case t.Before(earliest):
		return math.MinInt64 + 1
	case t.After(latest):
		return math.MaxInt64 - 1
	}
	return t.UnixNano()
}
