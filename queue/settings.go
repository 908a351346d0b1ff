package queue

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Settings are the per-call options as plain data from an untrusted source
// (an HTTP request, a command line): Options checks every field and returns
// the options, or an error wrapping ErrBadInput that names each bad field
// and what it accepts, where the With functions would panic. The zero value
// means every default. Durations are Go duration strings ("30s", "1m30s").
type Settings struct {
	Queue       string `json:"queue,omitempty"`
	Priority    string `json:"priority,omitempty"`     // low, normal, high, critical, or 0 to 3
	Timeout     string `json:"timeout,omitempty"`      // per attempt, > 0
	Deadline    string `json:"deadline,omitempty"`     // RFC 3339
	MaxAttempts int    `json:"max_attempts,omitempty"` // >= 1
	BackoffMin  string `json:"backoff_min,omitempty"`  // >= 0
	BackoffMax  string `json:"backoff_max,omitempty"`  // >= backoff_min
	Delay       string `json:"delay,omitempty"`        // >= 0
	// IdempotencyKey and IdempotencyWindow map to WithIdempotencyKey.
	IdempotencyKey    string `json:"idempotency_key,omitempty"`
	IdempotencyWindow string `json:"idempotency_window,omitempty"` // > 0
}

// MaxSettingDuration bounds every duration of Settings: a year.
const MaxSettingDuration = 365 * 24 * time.Hour

// PriorityNames are the names ParsePriority accepts, PriorityLow first.
var PriorityNames = [NumPriorities]string{"low", "normal", "high", "critical"}

// String returns the priority's name, or its number when out of range.
func (p Priority) String() string {
	if p >= 0 && p < NumPriorities {
		return PriorityNames[p]
	}
	return strconv.Itoa(int(p))
}

// ParsePriority parses a priority name (low, normal, high, critical) or
// number (0 to 3).
func ParsePriority(s string) (Priority, error) {
	for i, n := range PriorityNames {
		if strings.EqualFold(s, n) || s == strconv.Itoa(i) {
			return Priority(i), nil
		}
	}
	return 0, fmt.Errorf("%w: priority %q: want low, normal, high, critical, or 0 to 3", ErrBadInput, s)
}

// Options returns the options s describes, or an error wrapping ErrBadInput
// that lists every bad field and what it accepts.
func (s *Settings) Options() ([]Option, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadInput}, args...)...))
	}
	dur := func(field, v string, positive bool) time.Duration {
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		want := "a duration from 0 to 8760h such as \"30s\" or \"1m30s\""
		if positive {
			want = "a positive duration up to 8760h such as \"30s\" or \"1m30s\""
		}
		switch {
		case err != nil, d < 0, positive && d == 0, d > MaxSettingDuration:
			bad("%s %q: want %s", field, v, want)
			return 0
		}
		return d
	}
	var opts []Option
	if s.Queue != "" {
		if err := CheckName("queue", s.Queue); err != nil {
			errs = append(errs, err)
		}
		opts = append(opts, WithQueue(s.Queue))
	}
	if s.Priority != "" {
		if p, err := ParsePriority(s.Priority); err != nil {
			errs = append(errs, err)
		} else {
			opts = append(opts, WithPriority(p))
		}
	}
	if d := dur("timeout", s.Timeout, true); d > 0 {
		opts = append(opts, WithTimeout(d))
	}
	if s.Deadline != "" {
		if t, err := time.Parse(time.RFC3339, s.Deadline); err != nil {
			bad("deadline %q: want an RFC 3339 time such as \"2026-01-02T15:04:05Z\"", s.Deadline)
		} else {
			opts = append(opts, WithDeadline(t))
		}
	}
	switch {
	case s.MaxAttempts < 0:
		bad("max_attempts %d: want at least 1 (or 0 for the default %d)", s.MaxAttempts, DefaultMaxAttempts)
	case s.MaxAttempts > 1000:
		bad("max_attempts %d: want at most 1000", s.MaxAttempts)
	case s.MaxAttempts > 0:
		opts = append(opts, WithMaxAttempts(s.MaxAttempts))
	}
	if s.BackoffMin != "" || s.BackoffMax != "" {
		lo, hi := DefaultBackoffMin, DefaultBackoffMax
		if s.BackoffMin != "" {
			lo = dur("backoff_min", s.BackoffMin, false)
		}
		if s.BackoffMax != "" {
			hi = dur("backoff_max", s.BackoffMax, false)
		}
		if hi < lo {
			bad("backoff_max %v is below backoff_min %v: want backoff_min <= backoff_max", hi, lo)
		} else {
			opts = append(opts, WithBackoff(lo, hi))
		}
	}
	if d := dur("delay", s.Delay, false); d > 0 {
		opts = append(opts, WithDelay(d))
	}
	if s.IdempotencyKey != "" {
		if len(s.IdempotencyKey) > 256 {
			bad("idempotency key of %d bytes: want at most 256", len(s.IdempotencyKey))
		}
		opts = append(opts, WithIdempotencyKey(s.IdempotencyKey, dur("idempotency_window", s.IdempotencyWindow, true)))
	} else if s.IdempotencyWindow != "" {
		bad("idempotency_window without idempotency_key: set both or neither")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return opts, nil
}

// CheckName returns an error wrapping ErrBadInput unless name is a usable
// queue or kind name: 1 to 128 bytes of letters, digits, '-', '_' and '.'.
// what names the field in the message.
func CheckName(what, name string) error {
	ok := name != "" && len(name) <= 128
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("%w: %s name %q: want 1 to 128 letters, digits, '-', '_' or '.'", ErrBadInput, what, name)
	}
	return nil
}
