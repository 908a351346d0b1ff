package membroker

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather/queue"
)

// TestIdempotencyKeysForgotten: expired idempotency keys that are never used
// again are forgotten, so the keys held stay bounded by those live.
func TestIdempotencyKeysForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for round := range 10 {
			for i := range 1000 {
				s := &queue.Submission{BatchID: fmt.Sprintf("%d-%d", round, i), Queue: queue.DefaultQueue, Kind: "k", MaxAttempts: 1,
					IdempotencyKey: fmt.Sprintf("key-%d-%d", round, i), IdempotencyTTL: time.Minute, Payloads: [][]byte{nil}}
				if _, err := b.Enqueue(t.Context(), s); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(2 * time.Minute)
		}
		b.mu.Lock()
		n := len(b.idem)
		b.mu.Unlock()
		if n > 2000 {
			t.Fatalf("%d idempotency keys held after 10 rounds of 1,000 that each expired: want at most 2,000", n)
		}
	})
}
