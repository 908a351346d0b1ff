package natsbroker

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// promote moves q's delayed messages that came due to their level subjects,
// and puts the others back until they are due. Delayed tasks are moved to
// their level by whichever broker claims next once they are due; a
// duplicate move is dropped by the stream's de-duplication, and a move into
// full levels is tried again a second later (promoteLater). The delayed
// tasks' stream is apart from the levels' so that such a move needs no
// place under the bound that the task itself holds.
func (b *Broker) promote(ctx context.Context, q *bqueue) {
	if !q.promoting.CompareAndSwap(false, true) {
		return
	}
	defer q.promoting.Store(false)
	q.promote.Store(false)
	const chunk = 256
	moved := 0
	defer func() {
		if moved > 0 {
			b.publishWake(false)
		}
	}()
	type promo struct {
		msg jetstream.Msg
		f   jetstream.PubAckFuture
	}
	for {
		mb, err := q.delay.FetchNoWait(chunk)
		if err != nil {
			b.log.Warn("natsbroker: fetching delayed tasks", "queue", q.name, "err", err)
			q.promote.Store(true)
			return
		}
		var (
			ps     []promo
			failed []jetstream.Msg
			ferr   error
			e      envelope
		)
		k := 0
		now := time.Now()
		for msg := range mb.Messages() {
			k++
			if err := decodeEnvelope(msg.Data(), &e); err != nil {
				b.buryBad(ctx, q, msg, 0, err.Error())
				continue
			}
			id := queue.TaskID(e.BatchID, e.Index)
			if wait := e.Due.Sub(now); wait > 0 {
				if err := msg.NakWithDelay(wait); err != nil {
					b.log.Warn("natsbroker: delaying a task", "task", id, "err", err)
				}
				b.wakeLater(e.Due)
				continue
			}
			h := taskHeader(e.BatchID, e.Index, e.Count)
			if bh := msg.Headers().Get(hdrBatch); bh != "" {
				h[hdrBatch] = []string{bh}
			}
			f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: b.levelSubj(q, e.Priority, e.Count), Data: msg.Data(), Header: h},
				jetstream.WithMsgID(id+"+"+strconv.Itoa(e.Count)+"@"+strconv.FormatInt(e.Due.UnixNano(), 36)))
			if err != nil {
				failed, ferr = append(failed, msg), err
				continue
			}
			ps = append(ps, promo{msg, f})
		}
		// Each delayed message is removed once its copy on the level is
		// stored (or was already: a duplicate), and only then.
		for _, p := range ps {
			if err := b.awaitPub(p.f); err != nil {
				failed, ferr = append(failed, p.msg), err
				continue
			}
			_ = p.msg.Ack()
			moved++
		}
		if len(failed) > 0 {
			// Tried again in a moment (the levels may be full).
			b.log.Warn("natsbroker: promoting delayed tasks", "queue", q.name, "tasks", len(failed), "err", ferr)
			again := min(time.Second, b.ackWait)
			for _, msg := range failed {
				_ = msg.NakWithDelay(again)
			}
			b.promoteLater(q, again+again/10)
			return
		}
		if k < chunk {
			return
		}
	}
}

// promoteLater has this broker's next claim of q promote after d, and wakes
// its idle workers then: a retry of a promotion that failed, which other
// brokers need not hear of.
func (b *Broker) promoteLater(q *bqueue, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || q.retryT != nil {
		return
	}
	q.retryT = time.AfterFunc(d, func() {
		q.promote.Store(true)
		for l := range queue.NumPriorities {
			q.maybe(l)
		}
		b.mu.Lock()
		q.retryT = nil
		b.wakeLocked()
		b.mu.Unlock()
	})
}

func (b *Broker) setPromote() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		q.promote.Store(true)
	}
}
