package queue

import (
	"testing"
	"time"
)

// TestBackoffFarOff: retry delays near the largest duration stay within
// [max/2, max] instead of overflowing to a negative delay (a retry at once).
func TestBackoffFarOff(t *testing.T) {
	const most = time.Duration(1<<63 - 1)
	for _, m := range []Message{
		{BackoffMin: 200 * 365 * 24 * time.Hour, BackoffMax: most, Attempt: 3},
		{BackoffMin: most / 3, BackoffMax: most, Attempt: 10},
		{BackoffMin: most, BackoffMax: most, Attempt: 2},
	} {
		for range 100 {
			if d := backoff(&m); d < m.BackoffMax/2 || d > m.BackoffMax {
				t.Fatalf("backoff(min %v, max %v, attempt %d) = %v, want within [max/2, max]", m.BackoffMin, m.BackoffMax, m.Attempt, d)
			}
		}
	}
	m := Message{BackoffMin: time.Second, BackoffMax: time.Minute, Attempt: 3}
	if d := backoff(&m); d < 2*time.Second || d > 4*time.Second {
		t.Fatalf("backoff(1s, 1m, attempt 3) = %v, want within [2s, 4s]", d)
	}
}
