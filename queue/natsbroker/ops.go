package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// promote moves q's delayed messages that came due to their level subjects,
// and puts the others back until they are due.
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
	p := newPublisher(ctx, b.js, len(cs))
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
	var errs []error
	for k := range cs {
		c := &cs[k]
		l, _ := leaseOf(c.Delivery)
		lm, live, last := l.take(c.Delivery.Seq, nil)
		switch {
		case last:
			if err := b.finish(lm); err != nil {
				errs = append(errs, fmt.Errorf("task %s: %w", c.Delivery.ID(), err))
			}
		case !live && lm.count == 1:
			// A stale delivery of a task alone: acknowledging it is
			// harmless, its outcome is stored. (A message of several
			// tasks is not: others of them may be unfinished.)
			if err := lm.msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				errs = append(errs, fmt.Errorf("natsbroker: acknowledging task %s: %w", c.Delivery.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
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
// then, and counts the delivery as an attempt even for a release (failure
// nil), since JetStream cannot uncount one. A task that came with others
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
	lm, live, last := l.take(d.Seq, mv)
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
// counts.
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
