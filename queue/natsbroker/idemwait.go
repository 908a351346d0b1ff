package natsbroker

import (
	"context"
	"errors"
	"time"

	"github.com/gather-go/gather/queue"
)

// keyGrace is how long an enqueue that finds an idempotency key whose
// batch record is missing waits for the record before taking the key over:
// the enqueue that holds the key stores the record just after the key, so
// a missing record may be one on its way (two processes enqueueing the same
// key at once, as schedulers of one periodic task do each tick), not one
// that never comes. Only an enqueue that died between the two waits the
// whole time.
const keyGrace = 2 * time.Second

// keyBatch reads the batch record of id, the batch an idempotency key
// names, waiting up to keyGrace for it to appear (see keyGrace).
func (b *Broker) keyBatch(ctx context.Context, id string) error {
	deadline := time.Now().Add(keyGrace)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		_, _, err := b.batchRecord(ctx, id)
		if !errors.Is(err, queue.ErrNotFound) || !time.Now().Add(pause).Before(deadline) {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
