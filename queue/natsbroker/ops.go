package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// pubWindow bounds the asynchronous publishes one call keeps in flight, well
// under nats.go's default limit of 4000 so that concurrent calls do not
// stall each other.
const pubWindow = 512

// publisher pipelines asynchronous publishes and collects their acks. An
// acknowledgement that does not come within the JetStream client's default
// timeout (a publish lost while a cluster node stopped or the connection
// was re-established) or before ctx ends is an error, and the publisher
// stops waiting for the rest: nats.go never fails such a future by itself.
type publisher struct {
	ctx     context.Context
	js      jetstream.JetStream
	futures []jetstream.PubAckFuture
	seqs    []uint64 // stream sequences of acknowledged messages
	err     error
	waited  int
	timer   *time.Timer
}

func newPublisher(ctx context.Context, js jetstream.JetStream, n int) *publisher {
	return &publisher{ctx: ctx, js: js, futures: make([]jetstream.PubAckFuture, 0, n)}
}

var errNoAck = errors.New("no acknowledgement from the server in time")

func (p *publisher) publish(m *nats.Msg, opts ...jetstream.PublishOpt) {
	if p.err != nil {
		return
	}
	if len(p.futures)-p.waited >= pubWindow {
		p.waitOne()
		if p.err != nil {
			return
		}
	}
	f, err := p.js.PublishMsgAsync(m, opts...)
	if err != nil {
		p.err = err
		return
	}
	p.futures = append(p.futures, f)
}

// await waits for one acknowledgement, at most the client's default
// timeout.
func (p *publisher) await(f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	d := p.js.Options().DefaultTimeout
	if d <= 0 {
		d = 5 * time.Second
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case a := <-f.Ok():
		return a, nil
	case err := <-f.Err():
		return nil, err
	case <-p.ctx.Done():
		return nil, context.Cause(p.ctx)
	case <-p.timer.C:
		return nil, errNoAck
	}
}

func (p *publisher) waitOne() {
	f := p.futures[p.waited]
	p.waited++
	a, err := p.await(f)
	switch {
	case err == nil:
		p.seqs = append(p.seqs, a.Sequence)
	case errors.Is(err, errNoAck) || p.ctx.Err() != nil:
		// The rest would wait as long: give up on them (their messages
		// may or may not be stored).
		p.waited = len(p.futures)
		fallthrough
	default:
		if p.err == nil {
			p.err = err
		}
	}
}

// wait waits for every publish and returns the first error.
func (p *publisher) wait() error {
	for p.waited < len(p.futures) {
		p.waitOne()
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	return p.err
}

// Enqueue implements queue.Broker. It records the batch, then publishes one
// message per task (pipelined), then wakes idle workers. If a publish fails
// it deletes the tasks already stored (all or none); a full queue's error
// wraps queue.ErrQueueFull.
func (b *Broker) Enqueue(ctx context.Context, s *queue.Submission) (string, error) {
	n := len(s.Payloads)
	switch {
	case n == 0:
		return "", fmt.Errorf("natsbroker: enqueue: %w: a batch needs at least one task", queue.ErrBadInput)
	case s.Priority < 0 || s.Priority >= queue.NumPriorities:
		return "", fmt.Errorf("natsbroker: enqueue: %w: priority %d out of range [0, %d]", queue.ErrBadInput, s.Priority, queue.NumPriorities-1)
	case s.BatchID == "":
		return "", fmt.Errorf("natsbroker: enqueue: %w: empty batch ID", queue.ErrBadInput)
	}
	q, err := b.queue(ctx, s.Queue)
	if err != nil {
		return "", err
	}
	if n > q.maxDepth {
		return "", fmt.Errorf("natsbroker: enqueue %d tasks on queue %q bounded at %d: %w", n, s.Queue, q.maxDepth, queue.ErrQueueFull)
	}
	var idemSeq uint64
	if s.IdempotencyKey != "" {
		id, seq, err := b.claimKey(ctx, q, s)
		if err != nil || id != s.BatchID {
			return id, err
		}
		idemSeq = seq
	}
	brec := batchRecord{Size: n, Kind: s.Kind, Queue: s.Queue, Created: time.Now()}
	pre := b.preSubscribe(s.BatchID, &brec)
	rec, _ := json.Marshal(brec)
	// The batch record (first write wins: a batch ID in use is refused) and
	// the tasks are published in one pipeline: one round trip, not two.
	recFut, err := b.js.PublishMsgAsync(&nats.Msg{Subject: b.batchSubj(s.BatchID), Data: rec}, jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil {
		b.dropPre(s.BatchID, pre)
		b.deleteState(idemSeq)
		return "", fmt.Errorf("natsbroker: enqueue: recording batch %s: %w", s.BatchID, err)
	}
	delayed := s.RunAt.After(time.Now())
	subj := b.levelSubj(q, s.Priority)
	if delayed {
		subj = b.delaySubj(q, s.Priority)
	}
	p := newPublisher(ctx, b.js, min(n, pubWindow*2))
	var buf []byte
	for i := range n {
		start := len(buf)
		if cap(buf)-start < 128+len(s.Payloads[i]) {
			buf = make([]byte, 0, max(64<<10, 256+len(s.Payloads[i])))
			start = 0
		}
		buf = appendEnvelope(buf, s, i)
		m := &nats.Msg{Subject: subj, Data: buf[start:len(buf):len(buf)], Header: nats.Header{hdrTask: []string{queue.TaskID(s.BatchID, i)}}}
		p.publish(m)
	}
	var recSeq uint64
	recAck, recErr := p.await(recFut)
	if recErr == nil {
		recSeq = recAck.Sequence
	}
	if err := p.wait(); err != nil || recErr != nil {
		// All or none: take back what was stored.
		b.dropPre(s.BatchID, pre)
		for _, seq := range p.seqs {
			if derr := q.stream.DeleteMsg(context.WithoutCancel(ctx), seq); derr != nil && !errors.Is(derr, jetstream.ErrMsgNotFound) {
				b.log.Error("natsbroker: rolling back a failed enqueue", "batch", s.BatchID, "seq", seq, "err", derr)
			}
		}
		b.deleteState(recSeq, idemSeq)
		switch {
		case isWrongLastSeq(recErr):
			return "", fmt.Errorf("natsbroker: enqueue: batch ID %s is in use", s.BatchID)
		case recErr != nil:
			return "", fmt.Errorf("natsbroker: enqueue: recording batch %s: %w", s.BatchID, recErr)
		case isFull(err):
			return "", fmt.Errorf("natsbroker: enqueue %d tasks on queue %q bounded at %d: %w", n, s.Queue, q.maxDepth, queue.ErrQueueFull)
		}
		return "", fmt.Errorf("natsbroker: enqueue %d tasks on queue %q: %w", n, s.Queue, err)
	}
	if delayed {
		b.wakeLater(s.RunAt)
	} else {
		b.publishLevelWake(q, s.Priority)
	}
	return s.BatchID, nil
}

// claimKey records s's idempotency key, first write wins. It returns
// s.BatchID and the key record's sequence when the key is new, or the batch
// ID that holds it.
func (b *Broker) claimKey(ctx context.Context, q *bqueue, s *queue.Submission) (string, uint64, error) {
	subj := b.prefix + ".i." + q.tok + "." + tok(s.IdempotencyKey)
	ttl := max(s.IdempotencyTTL, time.Second) // the server's TTL granularity
	for range 3 {
		ack, err := b.js.Publish(ctx, subj, []byte(s.BatchID), jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithMsgTTL(ttl))
		if err == nil {
			return s.BatchID, ack.Sequence, nil
		}
		if !isWrongLastSeq(err) {
			return "", 0, fmt.Errorf("natsbroker: enqueue: recording idempotency key %q: %w", s.IdempotencyKey, err)
		}
		m, err := b.state.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return "", 0, fmt.Errorf("natsbroker: enqueue: reading idempotency key %q: %w", s.IdempotencyKey, err)
		}
		id := string(m.Data)
		if _, _, err := b.batchRecord(ctx, id); err == nil {
			return id, 0, nil
		}
		// The key outlived its batch (or its enqueue failed): take it over.
		b.deleteState(m.Sequence)
	}
	return "", 0, fmt.Errorf("natsbroker: enqueue: idempotency key %q is contended", s.IdempotencyKey)
}

func (b *Broker) deleteState(seqs ...uint64) {
	for _, seq := range seqs {
		if seq == 0 {
			continue
		}
		if err := b.state.DeleteMsg(context.Background(), seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			b.log.Error("natsbroker: deleting a state record", "seq", seq, "err", err)
		}
	}
}

// ---- leases ----

const (
	dLive uint8 = iota
	dDone
	dExpired
)

// lease is the claim of one Claim call: its messages and, for leases
// shorter than AckWait, the timer that hands them back when it expires.
type lease struct {
	b       *Broker
	mu      sync.Mutex
	expires time.Time
	// serverBy is the earliest the server may deliver the messages again
	// on its own (AckWait after the claim or the last heartbeat was sent,
	// less skew): from then on the lease counts as expired, so that a late
	// Retry, Extend or hand-back never negatively acknowledges or extends
	// the copy the server gave another worker (JetStream matches an ack to
	// its message, not to its delivery).
	serverBy time.Time
	timer    *time.Timer
	msgs     []jetstream.Msg
	state    []uint8
	open     int
}

// skew is how much earlier than AckWait after a claim or heartbeat was sent
// this process stops trusting its lease: for the server's clock and the
// time a heartbeat takes to arrive.
func (b *Broker) skew() time.Duration { return min(b.ackWait/10, 500*time.Millisecond) }

// staleLocked reports, with l.mu held, whether the server may have
// delivered the lease's messages again; it marks the live ones expired.
func (l *lease) staleLocked(now time.Time) bool {
	if now.Before(l.serverBy) {
		return false
	}
	for i, st := range l.state {
		if st == dLive {
			l.state[i] = dExpired
		}
	}
	l.open = 0
	if l.timer != nil {
		l.timer.Stop()
	}
	return true
}

// grace is how long after its Expires a lease is handed back when its
// holder was not heard from: half the lease, at most a second, so that a
// heartbeat delayed by a busy machine does not cause a redelivery.
func grace(d time.Duration) time.Duration { return min(d/2, time.Second) }

func (l *lease) onExpire() {
	l.mu.Lock()
	now := time.Now()
	if l.open == 0 || now.Before(l.expires.Add(grace(0))) || l.staleLocked(now) {
		// Nothing held, extended meanwhile, or the server may already
		// have delivered the messages again: a negative acknowledgement
		// now would hand back the new copy.
		l.mu.Unlock()
		return
	}
	var naks []jetstream.Msg
	for i, st := range l.state {
		if st == dLive {
			l.state[i] = dExpired
			naks = append(naks, l.msgs[i])
		}
	}
	l.open = 0
	l.mu.Unlock()
	for _, m := range naks {
		if err := m.Nak(); err != nil {
			l.b.log.Warn("natsbroker: handing back an expired lease", "err", err)
		}
	}
	l.b.wakeAfterAck()
}

// take ends delivery i's part in the lease. It returns its message and
// whether the delivery was still live (not completed, retried or expired).
func (l *lease) take(i uint64) (jetstream.Msg, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= uint64(len(l.msgs)) {
		return nil, false
	}
	if l.state[i] == dLive {
		l.staleLocked(time.Now())
	}
	live := l.state[i] == dLive
	if l.state[i] == dLive {
		l.state[i] = dDone
		l.open--
		if l.open == 0 && l.timer != nil {
			l.timer.Stop()
		}
	}
	return l.msgs[i], live
}

func leaseOf(d *queue.Delivery) (*lease, error) {
	l, ok := d.Ref.(*lease)
	if !ok || d.Seq >= uint64(len(l.msgs)) {
		return nil, fmt.Errorf("natsbroker: delivery of task %s is not from this broker", d.ID())
	}
	return l, nil
}

// Claim implements queue.Broker: a no-wait fetch from the level's durable
// pull consumer. Delayed tasks that came due are first moved to their
// level. A message that does not decode is dead-lettered with the reason,
// and the claim goes on without it.
func (b *Broker) Claim(ctx context.Context, name string, level queue.Priority, dur time.Duration, dst []queue.Delivery) (int, error) {
	if level < 0 || level >= queue.NumPriorities {
		return 0, fmt.Errorf("natsbroker: claim: priority %d out of range [0, %d]", level, queue.NumPriorities-1)
	}
	if len(dst) == 0 {
		return 0, nil
	}
	q, err := b.queue(ctx, name)
	if err != nil {
		return 0, err
	}
	if q.promote.Load() {
		b.promote(ctx, q)
	}
	start := time.Now().UnixNano()
	gen := q.gen[level].Load()
	if at := q.emptyAt[level].Load(); at != 0 && start-at < int64(b.recheck) && q.emptyGen[level].Load() == gen {
		return 0, nil // found empty, and no wake-up since
	}
	mb, err := q.levels[level].FetchNoWait(len(dst))
	if err != nil {
		return 0, fmt.Errorf("natsbroker: claim from %s level %d: %w", name, level, err)
	}
	recent := start-q.lastEnq[level].Load() < int64(recentEnqueue)
	if recent {
		// Just after an enqueue a consumer may not have seen the new
		// messages yet (a replica lags; even a single server counts a
		// consumer's pending messages asynchronously) and answer a no-wait
		// fetch with "none": ask
		// again with a short bounded wait rather than report an empty queue.
		// The wait asks for one message, so it returns as soon as one
		// comes (a pull for more holds what it got until it is filled or
		// expires), then takes whatever else is ready without waiting.
		var msgs []jetstream.Msg
		for msg := range mb.Messages() {
			msgs = append(msgs, msg)
		}
		berr := mb.Error()
		if len(msgs) == 0 && (berr == nil || errors.Is(berr, jetstream.ErrNoMessages)) {
			one, err := q.levels[level].Fetch(1, jetstream.FetchMaxWait(recentWait))
			if err != nil {
				return 0, fmt.Errorf("natsbroker: claim from %s level %d: %w", name, level, err)
			}
			for msg := range one.Messages() {
				msgs = append(msgs, msg)
			}
			berr = one.Error()
			if len(msgs) == 1 && len(dst) > 1 {
				rest, err := q.levels[level].FetchNoWait(len(dst) - 1)
				if err == nil {
					for msg := range rest.Messages() {
						msgs = append(msgs, msg)
					}
				}
			}
		}
		mb = &sliceBatch{msgs: msgs, err: berr}
	}
	now := time.Now()
	d := min(dur, b.ackWait)
	l := &lease{b: b, expires: now.Add(d), msgs: make([]jetstream.Msg, 0, len(dst)),
		serverBy: time.Unix(0, start).Add(b.ackWait - b.skew())}
	n := 0
	for msg := range mb.Messages() {
		dv := &dst[n]
		*dv = queue.Delivery{}
		meta, err := msg.Metadata()
		if err != nil {
			b.buryBad(ctx, q, msg, 0, "no JetStream metadata: "+err.Error())
			continue
		}
		if err := decodeEnvelope(msg.Data(), &dv.Message); err != nil {
			b.buryBad(ctx, q, msg, meta.NumDelivered, err.Error())
			continue
		}
		if hdr := msg.Headers().Get(hdrTask); hdr != dv.ID() {
			b.buryBad(ctx, q, msg, meta.NumDelivered, fmt.Sprintf("header %s is %q, the envelope says task %s", hdrTask, hdr, dv.ID()))
			continue
		}
		dv.Attempt = int(meta.NumDelivered)
		dv.Expires = l.expires
		dv.Canceled = b.canceled(ctx, dv.BatchID)
		dv.Ref = l
		dv.Seq = uint64(len(l.msgs))
		l.msgs = append(l.msgs, msg)
		n++
	}
	if err := mb.Error(); err != nil && n == 0 && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
		return 0, fmt.Errorf("natsbroker: claim from %s level %d: %w", name, level, err)
	}
	if n == 0 && !recent && q.gen[level].Load() == gen {
		// Nothing, and no wake-up for the level since the claim started
		// (one coming later changes gen, which voids the mark); not just
		// after an enqueue, when the consumer may lag. emptyGen first:
		// whoever reads the new emptyAt reads it too.
		q.emptyGen[level].Store(gen)
		q.emptyAt[level].Store(time.Now().UnixNano())
	}
	if n > 0 {
		l.state = make([]uint8, n)
		l.open = n
		if dur < b.ackWait {
			l.mu.Lock()
			l.timer = time.AfterFunc(d+grace(d), l.onExpire)
			l.mu.Unlock()
		}
	}
	return n, nil
}

// promote moves q's delayed tasks that came due to their level subjects,
// and puts the others back until they are due.
func (b *Broker) promote(ctx context.Context, q *bqueue) {
	if !q.promoting.CompareAndSwap(false, true) {
		return
	}
	defer q.promoting.Store(false)
	q.promote.Store(false)
	const chunk = 256
	moved := 0
	for {
		mb, err := q.delay.FetchNoWait(chunk)
		if err != nil {
			b.log.Warn("natsbroker: fetching delayed tasks", "queue", q.name, "err", err)
			q.promote.Store(true)
			return
		}
		p := newPublisher(ctx, b.js, 0)
		var acks []jetstream.Msg
		k := 0
		now := time.Now()
		for msg := range mb.Messages() {
			k++
			var m queue.Message
			if err := decodeEnvelope(msg.Data(), &m); err != nil {
				b.buryBad(ctx, q, msg, 0, err.Error())
				continue
			}
			if wait := m.RunAt.Sub(now); wait > 0 {
				if err := msg.NakWithDelay(wait); err != nil {
					b.log.Warn("natsbroker: delaying a task", "task", m.ID(), "err", err)
				}
				b.wakeLater(m.RunAt)
				continue
			}
			id := m.ID()
			p.publish(&nats.Msg{Subject: b.levelSubj(q, m.Priority), Data: msg.Data(), Header: nats.Header{hdrTask: []string{id}}},
				jetstream.WithMsgID(id+"@"+strconv.FormatInt(m.RunAt.UnixNano(), 36)))
			acks = append(acks, msg)
		}
		if err := p.wait(); err != nil {
			// Not acknowledged: the delayed messages come back after AckWait.
			b.log.Warn("natsbroker: promoting delayed tasks", "queue", q.name, "err", err)
			q.promote.Store(true)
			return
		}
		for _, msg := range acks {
			_ = msg.Ack()
		}
		moved += len(acks)
		if k < chunk {
			break
		}
	}
	if moved > 0 {
		b.publishWake(false)
	}
}

// Extend implements queue.Broker: it tells the server the tasks are in
// progress (resetting AckWait) and moves the local lease expiry. A lease
// the server may already have given up on (AckWait since the claim or the
// last heartbeat) is not extended: its messages may be another worker's.
func (b *Broker) Extend(ctx context.Context, dur time.Duration, ds []*queue.Delivery) error {
	now := time.Now()
	d := min(dur, b.ackWait)
	var last *lease
	for _, dv := range ds {
		l, err := leaseOf(dv)
		if err != nil {
			return err
		}
		l.mu.Lock()
		live := l.state[dv.Seq] == dLive && !l.staleLocked(now)
		if live && l != last {
			l.expires = now.Add(d)
			l.serverBy = now.Add(b.ackWait - b.skew())
			if l.timer != nil {
				l.timer.Reset(d + grace(d))
			}
			last = l
		}
		msg := l.msgs[dv.Seq]
		l.mu.Unlock()
		if live {
			if err := msg.InProgress(); err != nil {
				return fmt.Errorf("natsbroker: extend lease of task %s: %w", dv.ID(), err)
			}
		}
	}
	return nil
}

// Complete implements queue.Broker. Outcomes are appended to their batch's
// results subject, several per message; the first outcome of a task in the
// stream wins (Subscribe drops later ones), so a task that ran twice is
// recorded once, and every reader agrees on which. The task messages are
// acknowledged once the results are stored.
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
		msg, _ := l.take(c.Delivery.Seq)
		// Acknowledging a stale delivery is harmless: the outcome is stored.
		if err := msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			errs = append(errs, fmt.Errorf("natsbroker: acknowledging task %s: %w", c.Delivery.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// Retry implements queue.Broker with a negative acknowledgement, delayed
// until at: the server delivers the task again then, and counts the
// delivery as an attempt even for a release (failure nil), since JetStream
// cannot uncount one. A failure is kept for the dead-letter record.
func (b *Broker) Retry(ctx context.Context, d *queue.Delivery, at time.Time, failure *queue.AttemptError) error {
	l, err := leaseOf(d)
	if err != nil {
		return err
	}
	msg, live := l.take(d.Seq)
	if !live {
		return nil
	}
	if failure != nil {
		data, _ := json.Marshal(failure)
		if _, err := b.js.Publish(ctx, b.attSubj(d.BatchID, d.Index), data); err != nil {
			b.log.Warn("natsbroker: recording a failed attempt", "task", d.ID(), "err", err)
		}
	}
	if wait := time.Until(at); wait > 0 {
		if err := msg.NakWithDelay(wait); err != nil {
			return fmt.Errorf("natsbroker: retry task %s: %w", d.ID(), err)
		}
		b.wakeLater(at)
		b.wakeLater(at.Add(30 * time.Millisecond))
		return nil
	}
	if err := msg.Nak(); err != nil {
		return fmt.Errorf("natsbroker: retry task %s: %w", d.ID(), err)
	}
	b.wakeAfterAck()
	return nil
}

// Cancel implements queue.Broker: it marks the batch cancelled (for claims
// to come), appends one cancel marker to its results (every task without an
// outcome before it reads as cancelled), and tells every broker of the
// prefix, which closes the Canceled channel of running deliveries.
func (b *Broker) Cancel(ctx context.Context, id string) error {
	r, seq, err := b.batchRecord(ctx, id)
	if err != nil {
		return fmt.Errorf("natsbroker: cancel: %w", err)
	}
	if r.Canceled {
		return nil
	}
	r.Canceled = true
	rec, _ := json.Marshal(r)
	if _, err := b.js.Publish(ctx, b.batchSubj(id), rec, jetstream.WithExpectLastSequencePerSubject(seq)); err != nil {
		if isWrongLastSeq(err) {
			return nil // cancelled concurrently
		}
		return fmt.Errorf("natsbroker: cancel batch %s: %w", id, err)
	}
	if _, err := b.js.Publish(ctx, b.resSubj(id), startResults(nil, resCancel)); err != nil {
		return fmt.Errorf("natsbroker: cancel batch %s: %w", id, err)
	}
	b.markCanceled(id)
	if err := b.nc.Publish(b.cancSubj, []byte(id)); err != nil {
		return fmt.Errorf("natsbroker: cancel batch %s: announcing: %w", id, err)
	}
	return nil
}

// After an enqueue was announced (recentEnqueue), an empty no-wait fetch is
// retried once with a wait of recentWait: on a cluster the consumer may lag
// the stream by a moment.
const (
	recentEnqueue = 100 * time.Millisecond
	recentWait    = 20 * time.Millisecond
)

// sliceBatch replays messages already taken from a MessageBatch.
type sliceBatch struct {
	msgs []jetstream.Msg
	err  error
}

func (s *sliceBatch) Messages() <-chan jetstream.Msg {
	ch := make(chan jetstream.Msg, len(s.msgs))
	for _, m := range s.msgs {
		ch <- m
	}
	close(ch)
	return ch
}

func (s *sliceBatch) Error() error { return s.err }
