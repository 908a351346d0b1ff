package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// Rate buckets (queue.RateLimiter): bucket name is the key
// "rate.<name token>" of the control bucket, holding its theoretical
// arrival time (queue.GCRA) in Unix nanoseconds. Taking tokens reads it
// and writes the new time by compare-and-set on the revision read (two
// round trips; again when another process wrote between). Like the slots'
// leases, it assumes the processes' clocks agree.

var _ queue.RateLimiter = (*Broker)(nil)

// maxRateTries bounds the compare-and-set attempts of one TakeTokens: a
// bucket contended so hard reports a short wait instead.
const maxRateTries = 8

// TakeTokens implements queue.RateLimiter.
func (b *Broker) TakeTokens(ctx context.Context, name string, n int, rate float64, burst int) (int, time.Duration, error) {
	if n < 1 || !(rate > 0 && rate <= queue.MaxRate) || burst < 1 || burst > queue.MaxBurst {
		return 0, 0, fmt.Errorf("natsbroker: take tokens of %q: %w: n %d, rate %v, burst %d: want n and burst at least 1, burst at most %d, rate above 0 and at most %g",
			clip(name), queue.ErrBadInput, n, rate, burst, queue.MaxBurst, float64(queue.MaxRate))
	}
	key := "rate." + tok(name)
	for range maxRateTries {
		var tat int64
		var rev uint64
		e, err := b.ctl.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return 0, 0, fmt.Errorf("natsbroker: take tokens of %q: %w", clip(name), err)
		default:
			rev = e.Revision()
			tat, _ = strconv.ParseInt(string(e.Value()), 10, 64) // a value that does not parse: a fresh bucket
		}
		ntat, took, wait := queue.GCRA(tat, time.Now(), n, rate, burst)
		if took == 0 {
			return 0, wait, nil
		}
		val := []byte(strconv.FormatInt(ntat, 10))
		if rev == 0 {
			_, err = b.ctl.kv.Create(ctx, key, val)
		} else {
			_, err = b.ctl.kv.Update(ctx, key, val, rev)
		}
		switch {
		case err == nil:
			return took, 0, nil
		case errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err):
			continue // another process took tokens meanwhile
		default:
			return 0, 0, fmt.Errorf("natsbroker: take tokens of %q: %w", clip(name), err)
		}
	}
	return 0, time.Duration(1e9 / rate), nil
}
