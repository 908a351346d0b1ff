// Package peers holds what the in-process broker benchmarks (BenchmarkBroker) and
// the deployed-shape driver (cmd/deployed) share about the peer brokers they
// measure gather against: each peer's settings, how its producer enqueues a batch,
// and how it learns that the batch finished. Use it from those two only; the
// reasons for each setting are written beside it here, once.
package peers

import (
	"context"
	"time"
)

// Percentile returns the nearest-rank p-th percentile of sorted, or 0 when sorted
// is empty.
func Percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(i, 0)]
}

// Sleep sleeps for d or until ctx ends, and then returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
