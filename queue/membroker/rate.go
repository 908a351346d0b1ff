package membroker

import (
	"context"
	"fmt"
	"time"

	"github.com/gather-go/gather/queue"
)

var _ queue.RateLimiter = (*Broker)(nil)

// TakeTokens implements queue.RateLimiter, with queue.GCRA over one time
// per bucket.
func (b *Broker) TakeTokens(ctx context.Context, name string, n int, rate float64, burst int) (int, time.Duration, error) {
	if n < 1 || !(rate > 0 && rate <= queue.MaxRate) || burst < 1 || burst > queue.MaxBurst {
		return 0, 0, fmt.Errorf("membroker: take tokens of %q: %w: n %d, rate %v, burst %d: want n and burst at least 1, burst at most %d, rate above 0 and at most %g",
			name, queue.ErrBadInput, n, rate, burst, queue.MaxBurst, float64(queue.MaxRate))
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, 0, errClosed
	}
	if b.buckets == nil {
		b.buckets = map[string]int64{}
	}
	tat, took, wait := queue.GCRA(b.buckets[name], now, n, rate, burst)
	b.buckets[name] = tat
	return took, wait, nil
}

// ReturnTokens implements queue.RateLimiter, with queue.GCRAReturn.
func (b *Broker) ReturnTokens(ctx context.Context, name string, n int, rate float64) error {
	if n < 1 || !(rate > 0 && rate <= queue.MaxRate) {
		return fmt.Errorf("membroker: return tokens of %q: %w: n %d, rate %v: want n at least 1, rate above 0 and at most %g",
			name, queue.ErrBadInput, n, rate, float64(queue.MaxRate))
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if tat, ok := b.buckets[name]; ok {
		b.buckets[name] = queue.GCRAReturn(tat, now, n, rate)
	}
	return nil
}
