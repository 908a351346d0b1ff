package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// Complete implements queue.Broker. Outcomes are appended to their batch's
// results subject, several per message; the first outcome of a task in the
// stream wins (Subscribe drops later ones), so a task that ran twice is
// recorded once, and every reader agrees on which. A task message is
// acknowledged once the outcomes of all its tasks are stored.
func (b *Broker) Complete(ctx context.Context, cs []queue.Completion) error {
	type group struct {
		id  string
		buf []byte
	}
	var groups []group
	// Dead letters first: once an outcome is recorded, its awaiter may look
	// for the dead letter.
	for k := range cs {
		if c := &cs[k]; c.Dead {
			if _, err := leaseOf(c.Delivery); err != nil {
				return err
			}
			if err := b.bury(ctx, c); err != nil {
				return err
			}
		}
	}
	p := newPublisher(ctx, b.js, 1) // a message per batch, mostly one
	maxMsg := int(b.nc.MaxPayload())
	flush := func(g *group) {
		if len(g.buf) > 4 {
			p.publish(&nats.Msg{Subject: b.resSubj(g.id), Data: g.buf})
		}
		g.buf = startResults(nil, resOutcomes)
	}
	for k := range cs {
		c := &cs[k]
		if _, err := leaseOf(c.Delivery); err != nil {
			return err
		}
		gi := -1
		for i := range groups {
			if groups[i].id == c.Delivery.BatchID {
				gi = i
				break
			}
		}
		if gi < 0 {
			groups = append(groups, group{id: c.Delivery.BatchID, buf: startResults(make([]byte, 0, 512), resOutcomes)})
			gi = len(groups) - 1
		}
		o := c.Outcome
		o.Index = c.Delivery.Index
		if n := len(groups[gi].buf); n > 4 && n+len(o.Output)+failureLen(o.Err)+resOverhead > maxMsg {
			flush(&groups[gi]) // a message must fit max_payload
		}
		groups[gi].buf = appendOutcome(groups[gi].buf, &o)
		if len(groups[gi].buf) > 256<<10 {
			flush(&groups[gi])
		}
	}
	for i := range groups {
		flush(&groups[i])
	}
	if err := p.wait(); err != nil {
		return fmt.Errorf("natsbroker: recording %d outcomes: %w", len(cs), err)
	}
	b.markFinished(cs)
	var errs []error
	now := time.Now()
	for k := range cs {
		c := &cs[k]
		l, _ := leaseOf(c.Delivery)
		lm, live, last := l.take(c.Delivery.Seq, nil, now)
		if err := b.settle(lm, live, last); err != nil {
			errs = append(errs, fmt.Errorf("task %s: %w", c.Delivery.ID(), err))
		}
		if last {
			now = time.Now() // finish may have waited for moves to be stored
		}
	}
	return errors.Join(errs...)
}

// settle ends the message of a delivery of a task with a recorded outcome,
// as lease.take left it: the message is finished when this was its last
// live delivery; a stale delivery of a task alone is acknowledged, which is
// harmless since its outcome is stored (a message of several tasks is not:
// others of them may be unfinished).
func (b *Broker) settle(lm *leaseMsg, live, last bool) error {
	switch {
	case last:
		return b.finish(lm)
	case !live && lm.count == 1:
		if err := lm.msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return fmt.Errorf("natsbroker: acknowledging a task message: %w", err)
		}
	}
	return nil
}

// failureLen bounds the bytes f adds to a results message.
func failureLen(f *queue.Failure) int {
	if f == nil {
		return 0
	}
	return len(f.Code) + len(f.Message) + 20
}

// Retry implements queue.Broker. A task alone in its message gets a
// negative acknowledgement delayed until at: the server delivers it again
// then (JetStream's delivery count is then the attempt number), and counts
// the delivery as an attempt even for a release (failure nil), since
// JetStream cannot uncount one. A task that came with others
// moves to a message of its own, due at at, with its attempts (less one for
// a release). A failure is kept for the dead-letter record.
func (b *Broker) Retry(ctx context.Context, d *queue.Delivery, at time.Time, failure *queue.AttemptError) error {
	l, err := leaseOf(d)
	if err != nil {
		return err
	}
	// The delivery ends now, before anything is published: an expiry
	// meanwhile must not hand the task back too. A task of several is
	// recorded as moving out of its message, which is not acknowledged
	// before the move is published and stored.
	var mv *move
	alone := l.msgs[l.of[d.Seq]].count == 1
	if !alone {
		mv = &move{done: make(chan struct{})}
	}
	lm, live, last := l.take(d.Seq, mv, time.Now())
	if !live {
		return nil
	}
	record := func() {
		if failure != nil {
			data, _ := json.Marshal(failure)
			if _, err := b.js.Publish(ctx, b.attSubj(d.BatchID, d.Index), data); err != nil {
				b.log.Warn("natsbroker: recording a failed attempt", "task", d.ID(), "err", err)
			}
		}
	}
	if alone {
		record()
		if wait := time.Until(at); wait > 0 {
			if err := lm.msg.NakWithDelay(wait); err != nil {
				return fmt.Errorf("natsbroker: retry task %s: %w", d.ID(), err)
			}
			b.wakeLater(at)
			b.wakeLater(at.Add(30 * time.Millisecond))
			return nil
		}
		if err := lm.msg.Nak(); err != nil {
			return fmt.Errorf("natsbroker: retry task %s: %w", d.ID(), err)
		}
		b.wakeAfterAck()
		return nil
	}
	attempts := d.Attempt
	if failure == nil {
		attempts-- // a release is not an attempt
	}
	delayed := at.After(time.Now())
	due := time.Time{}
	if delayed {
		due = at
	}
	q, err := b.queue(ctx, d.Queue)
	if err == nil {
		mv.f, err = b.js.PublishMsgAsync(&nats.Msg{Subject: b.taskSubj(q, d.Priority, 1, delayed),
			Data: appendEnvelope(nil, &d.Message, max(attempts, 0), due, [][]byte{d.Payload}), Header: moveHeader(d.BatchID, d.Index, 1)})
	}
	mv.err = err
	close(mv.done)
	record() // after the move is out: its message waits for the move, not for this
	if last {
		if err := b.finish(lm); err != nil {
			return fmt.Errorf("natsbroker: retry task %s: %w", d.ID(), err)
		}
	}
	if err != nil {
		// Its message is handed back whole when its last task finishes.
		return fmt.Errorf("natsbroker: retry task %s: %w", d.ID(), err)
	}
	if delayed {
		b.wakeLater(at)
		b.wakeLater(at.Add(30 * time.Millisecond))
	} else {
		b.publishLevelWake(q, d.Priority)
	}
	return nil
}

// Cancel implements queue.Broker: it marks the batch cancelled (for claims
// to come), appends a cancel marker to its results (every task without an
// outcome before the first marker reads as cancelled), and tells every
// broker of the prefix, which closes the Canceled channel of the batch's
// deliveries, flushing that notice before it returns. Calling it again
// repeats the marker and the notice, so a Cancel that failed after marking
// the record can be retried to completion; the first marker is the one that
// counts. The marker stands for every task without an outcome before it:
// O(1), not O(batch).
func (b *Broker) Cancel(ctx context.Context, id string) error {
	r, seq, err := b.batchRecord(ctx, id)
	if err != nil {
		return fmt.Errorf("natsbroker: cancel: %w", err)
	}
	if !r.Canceled {
		r.Canceled = true
		rec, _ := json.Marshal(r)
		_, err := b.js.Publish(ctx, b.batchSubj(id), rec, jetstream.WithExpectLastSequencePerSubject(seq))
		if isWrongLastSeq(err) {
			// The record changed since it was read: a concurrent Cancel
			// (go on all the same), or an enqueue that failed and took the
			// batch back.
			if r, _, err = b.batchRecord(ctx, id); err == nil && !r.Canceled {
				err = fmt.Errorf("the batch record changed while it was cancelled")
			}
		}
		if err != nil {
			return fmt.Errorf("natsbroker: cancel batch %s: %w", id, err)
		}
	}
	if _, err := b.js.Publish(ctx, b.resSubj(id), startResults(nil, resCancel)); err != nil {
		return fmt.Errorf("natsbroker: cancel batch %s: %w", id, err)
	}
	b.markCanceled(id)
	if err := b.nc.Publish(b.cancSubj, []byte(id)); err != nil {
		return fmt.Errorf("natsbroker: cancel batch %s: announcing: %w", id, err)
	}
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok { // FlushWithContext requires one
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("natsbroker: cancel batch %s: announcing: %w", id, err)
	}
	return nil
}
