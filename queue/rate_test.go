package queue_test

import (
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

// TestGCRA: a fresh bucket gives its burst at once, then nothing until a
// token is due, saying how long; tokens come back at the rate, never
// more than the burst; a request for fewer than are there takes that many.
func TestGCRA(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	const rate, burst = 100.0, 5 // a token every 10 ms
	tat, took, wait := queue.GCRA(0, now, 8, rate, burst)
	if took != burst || wait != 0 {
		t.Fatalf("fresh bucket: took %d, wait %v; want %d, 0", took, wait, burst)
	}
	if _, took, wait = queue.GCRA(tat, now, 1, rate, burst); took != 0 || wait != 10*time.Millisecond {
		t.Fatalf("empty bucket: took %d, wait %v; want 0, 10ms", took, wait)
	}
	if tat, took, _ = queue.GCRA(tat, now.Add(25*time.Millisecond), 8, rate, burst); took != 2 {
		t.Fatalf("25 ms later: took %d, want 2", took)
	}
	if _, took, _ = queue.GCRA(tat, now.Add(time.Hour), 100, rate, burst); took != burst {
		t.Fatalf("an hour later: took %d, want the burst, %d", took, burst)
	}
	if _, took, _ = queue.GCRA(tat, now.Add(time.Hour), 3, rate, burst); took != 3 {
		t.Fatalf("asking for 3 of %d: took %d", burst, took)
	}
	// Over a long run the tokens taken follow the rate.
	total := 0
	var tt int64
	for ms := range 10_000 {
		var k int
		tt, k, _ = queue.GCRA(tt, now.Add(time.Duration(ms)*time.Millisecond), 1, rate, burst)
		total += k
	}
	if want := burst + 999; total < want-1 || total > want+1 {
		t.Fatalf("10 s asking every millisecond: %d tokens, want about %d", total, want)
	}
}

// TestGCRAReturn: tokens given back can be taken again at once, but a
// bucket never holds more than its burst, however many come back.
func TestGCRAReturn(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	const rate, burst = 100.0, 5
	tat, _, _ := queue.GCRA(0, now, burst, rate, burst)
	tat = queue.GCRAReturn(tat, now, 2, rate)
	if _, took, _ := queue.GCRA(tat, now, burst, rate, burst); took != 2 {
		t.Fatalf("after giving 2 back: took %d, want 2", took)
	}
	for _, n := range []int{burst, 1000, 1 << 62} {
		full := queue.GCRAReturn(tat, now, n, rate)
		if _, took, _ := queue.GCRA(full, now, 2*burst, rate, burst); took != burst {
			t.Fatalf("after giving %d back: took %d, want the burst %d", n, took, burst)
		}
	}
}
