package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	case n > queue.MaxBatch:
		return "", fmt.Errorf("natsbroker: enqueue: %w: a batch of %d tasks: want at most %d", queue.ErrBadInput, n, queue.MaxBatch)
	case s.MaxAttempts < 1 || s.MaxAttempts > maxIndex:
		return "", fmt.Errorf("natsbroker: enqueue: %w: max attempts %d: want 1 to %d", queue.ErrBadInput, s.MaxAttempts, maxIndex)
	case s.Timeout < 0 || s.BackoffMin < 0 || s.BackoffMax < 0:
		return "", fmt.Errorf("natsbroker: enqueue: %w: timeout %v, backoff %v to %v: want no negative duration", queue.ErrBadInput, s.Timeout, s.BackoffMin, s.BackoffMax)
	case tokLen(s.BatchID) > maxIDTok:
		return "", fmt.Errorf("natsbroker: enqueue: %w: batch ID %q is %d bytes as a subject token: want at most %d", queue.ErrBadInput, clip(s.BatchID), tokLen(s.BatchID), maxIDTok)
	case s.IdempotencyKey != "" && tokLen(s.IdempotencyKey) > maxKeyTok:
		return "", fmt.Errorf("natsbroker: enqueue: %w: idempotency key %q is %d bytes as a subject token: want at most %d (letters, digits, '-' and '_' take one byte, any other byte three)",
			queue.ErrBadInput, clip(s.IdempotencyKey), tokLen(s.IdempotencyKey), maxKeyTok)
	}
	if err := queue.CheckHeaders(s.Headers); err != nil {
		return "", fmt.Errorf("natsbroker: enqueue: %w", err)
	}
	q, err := b.queue(ctx, s.Queue)
	if err != nil {
		return "", err
	}
	if n > q.maxDepth {
		return "", fmt.Errorf("natsbroker: enqueue %d tasks on queue %q bounded at %d: %w", n, s.Queue, q.maxDepth, queue.ErrQueueFull)
	}
	// Every task must fit a message of the server's max_payload with its
	// envelope (at most msgNeed) and headers; packs are cut to fit below.
	msgNeed := 192 + len(s.BatchID) + len(s.Queue) + len(s.Kind) + headersLen(s.Headers)
	maxMsg := int(b.nc.MaxPayload()) - 64 - len(s.BatchID)
	for i, pl := range s.Payloads {
		if msgNeed+10+len(pl) > maxMsg {
			return "", fmt.Errorf("natsbroker: enqueue: %w: input %d is %d bytes: with its envelope it passes the server's max_payload of %d bytes; want at most %d",
				queue.ErrBadInput, i, len(pl), b.nc.MaxPayload(), maxMsg-msgNeed-10)
		}
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
	// Read before the record is published: the sequence it names was
	// stored before the record (see trusted). Shared by the messages'
	// headers, which nothing changes.
	bh := []string{b.batchHeader(n)}
	// The batch record (first write wins: a batch ID in use is refused) and
	// the tasks are published in one pipeline: one round trip, not two.
	recFut, err := b.js.PublishMsgAsync(&nats.Msg{Subject: b.batchSubj(s.BatchID), Data: rec}, jetstream.WithExpectLastSequencePerSubject(0))
	if err != nil {
		b.dropPre(s.BatchID, pre)
		b.deleteState(idemSeq)
		return "", fmt.Errorf("natsbroker: enqueue: recording batch %s: %w", s.BatchID, err)
	}
	delayed := s.RunAt.After(time.Now())
	k := q.packFor(n)
	p := newPublisher(ctx, b.js, min((n+k-1)/k, pubWindow*2))
	tmpl := s.Message(0)
	// The envelopes are cut from buffers of up to 64 KiB, sized to what is
	// left to encode.
	left := (n + k - 1) / k * msgNeed
	for _, pl := range s.Payloads {
		left += 10 + len(pl)
	}
	var buf []byte
	for first := 0; first < n; {
		// Up to k tasks, fewer when their inputs would pass max_payload.
		end, need := first+1, msgNeed+10+len(s.Payloads[first])
		for end < min(first+k, n) && need+10+len(s.Payloads[end]) <= maxMsg {
			need += 10 + len(s.Payloads[end])
			end++
		}
		payloads := s.Payloads[first:end]
		start := len(buf)
		if cap(buf)-start < need {
			buf = make([]byte, 0, max(min(64<<10, left), need))
			start = 0
		}
		left -= need
		tmpl.Index = first
		buf = appendEnvelope(buf, &tmpl, 0, s.RunAt, payloads)
		h := taskHeader(s.BatchID, first, len(payloads))
		h[hdrBatch] = bh
		p.publish(&nats.Msg{Subject: b.taskSubj(q, s.Priority, len(payloads), delayed), Data: buf[start:len(buf):len(buf)], Header: h})
		first = end
	}
	var woke time.Time
	if !delayed {
		// Wake workers now rather than after the acknowledgements: their
		// claim overlaps the store (a claim just after an announced enqueue
		// waits up to recentWait for the tasks, see fetch). If the enqueue
		// fails, they find nothing.
		woke = time.Now()
		b.publishEnqueueWake(q, s.Priority, s.BatchID)
	}
	var recSeq uint64
	recAck, recErr := p.await(recFut)
	if recErr == nil {
		recSeq = recAck.Sequence
		b.seen(recSeq)
	}
	if err := p.wait(); err != nil || recErr != nil {
		// All or none: take back what was stored.
		b.dropPre(s.BatchID, pre)
		st := q.stream
		if delayed {
			st = q.dstream
		}
		for _, seq := range p.seqs {
			if derr := st.DeleteMsg(context.WithoutCancel(ctx), seq); derr != nil && !errors.Is(derr, jetstream.ErrMsgNotFound) {
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
	switch {
	case delayed:
		b.wakeLater(s.RunAt)
	case time.Since(woke) > recentWait/2:
		// The store took long enough that a claim woken early may have
		// given up waiting for it: wake again.
		b.publishLevelWake(q, s.Priority)
	}
	return s.BatchID, nil
}

// packFor returns how many tasks each message of a batch of n carries.
func (q *bqueue) packFor(n int) int { return max(1, min(q.pack, n/packSpread)) }

// taskHeader names the tasks a message carries.
func taskHeader(batch string, first, k int) nats.Header {
	h := nats.Header{hdrTask: []string{queue.TaskID(batch, first)}}
	if k > 1 {
		h[hdrCount] = []string{strconv.Itoa(k)}
	}
	return h
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
			return "", 0, fmt.Errorf("natsbroker: enqueue: recording idempotency key %q: %w", clip(s.IdempotencyKey), err)
		}
		m, err := b.state.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // expired meanwhile
		}
		if err != nil {
			return "", 0, fmt.Errorf("natsbroker: enqueue: reading idempotency key %q: %w", clip(s.IdempotencyKey), err)
		}
		id := string(m.Data)
		err = b.keyBatch(ctx, id)
		if err == nil {
			return id, 0, nil
		}
		if !errors.Is(err, queue.ErrNotFound) {
			// A read that failed says nothing about the batch: taking the
			// key over could run the same work twice.
			return "", 0, fmt.Errorf("natsbroker: enqueue: idempotency key %q names batch %s: %w", clip(s.IdempotencyKey), id, err)
		}
		// The key outlived its batch (or its enqueue failed): take it over.
		b.deleteState(m.Sequence)
	}
	return "", 0, fmt.Errorf("natsbroker: enqueue: idempotency key %q is contended", clip(s.IdempotencyKey))
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

// lease is the claim of one Claim call: its messages, the deliveries of
// their tasks and, for leases shorter than AckWait, the timer that hands
// them back when it expires.
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
	msgs     []leaseMsg // fixed once Claim returns
	state    []uint8    // per delivery (Delivery.Seq)
	of       []int32    // per delivery: its message in msgs
	open     int        // live deliveries
}

// leaseMsg is one claimed message.
type leaseMsg struct {
	msg     taskMsg
	count   int // tasks the message carries
	attempt int // the attempt this delivery of it is
	first   int // its first delivery in the lease (Delivery.Seq); its
	n       int // deliveries are the message's first n tasks
	left    int // its deliveries not finished yet
	// moves are the publishes of its tasks moved to messages of their own
	// (the part of it a claim had no room for, a task retried alone): the
	// message is acknowledged once they are stored, or handed back whole
	// if one failed. Appended under the lease's lock before the delivery
	// they concern is finished, so the last take sees them all.
	moves []*move
}

// move is the publish of tasks moved out of a message. Its publisher sets f
// or err, then closes done; a move made before it is recorded (Retry records
// it first, so that an expiry cannot hand the task back meanwhile) is
// published after.
type move struct {
	f    jetstream.PubAckFuture
	err  error
	done chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// published is a move whose publish has been made.
func published(f jetstream.PubAckFuture) *move { return &move{f: f, done: closedChan} }

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
	type back struct {
		lm   *leaseMsg
		live []int // offsets in the message of the tasks to hand back
	}
	var backs []back
	for m := range l.msgs {
		lm := &l.msgs[m]
		var live []int
		for j := range lm.n {
			if i := lm.first + j; l.state[i] == dLive {
				l.state[i] = dExpired
				live = append(live, j)
			}
		}
		if len(live) > 0 {
			backs = append(backs, back{lm, live})
		}
	}
	l.open = 0
	l.mu.Unlock()
	// After expiry no delivery of the lease is live: nothing else touches
	// the messages' moves.
	for _, bk := range backs {
		if len(bk.live) == bk.lm.count && len(bk.lm.moves) == 0 {
			// Every task of the message comes back: hand it back whole.
			if err := bk.lm.msg.Nak(); err != nil {
				l.b.log.Warn("natsbroker: handing back an expired lease", "err", err)
			}
			continue
		}
		l.b.handBack(bk.lm, bk.live)
	}
	l.b.wakeAfterAck()
}

// handBack ends an expired message only some of whose tasks are to come
// back (others finished, were retried, or moved): those tasks move to
// messages of their own (one per run of consecutive ones, due now, the
// expired delivery counted as an attempt, as a negative acknowledgement
// would), and the message is acknowledged once they and its earlier moves
// are stored, or handed back whole if one failed.
func (b *Broker) handBack(lm *leaseMsg, live []int) {
	var e envelope
	if err := decodeEnvelope(lm.msg.Data(), &e); err != nil { // it decoded when claimed
		_ = lm.msg.Nak()
		return
	}
	q, err := b.queue(context.Background(), e.Queue)
	if err != nil {
		b.log.Warn("natsbroker: handing back an expired lease", "err", err)
		_ = lm.msg.Nak()
		return
	}
	payloads := make([][]byte, e.Count)
	for j := range payloads {
		payloads[j] = e.next()
	}
	for k := 0; k < len(live); {
		run := 1
		for k+run < len(live) && live[k+run] == live[k]+run {
			run++
		}
		m := e.Message
		m.Index += live[k]
		f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: b.levelSubj(q, e.Priority, run),
			Data:   appendEnvelope(nil, &m, lm.attempt, time.Time{}, payloads[live[k]:live[k]+run]),
			Header: taskHeader(m.BatchID, m.Index, run)})
		if err != nil {
			b.log.Warn("natsbroker: handing back an expired lease", "err", err)
			_ = lm.msg.Nak()
			return
		}
		lm.moves = append(lm.moves, published(f))
		k += run
	}
	if err := b.finish(lm); err != nil {
		b.log.Warn("natsbroker: handing back an expired lease", "err", err)
	}
	b.publishLevelWake(q, e.Priority)
}

// take ends delivery i's part in the lease, adding move (if not nil) to its
// message's moves first. It returns the delivery's message, whether the
// delivery was live (not finished or expired), and whether it was the last
// live one of its message: the caller then ends the message with finish.
func (l *lease) take(i uint64, mv *move) (lm *leaseMsg, live, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lm = &l.msgs[l.of[i]]
	if l.state[i] != dLive || l.staleLocked(time.Now()) {
		return lm, false, false
	}
	if mv != nil {
		lm.moves = append(lm.moves, mv)
	}
	l.state[i] = dDone
	l.open--
	if l.open == 0 && l.timer != nil {
		l.timer.Stop()
	}
	lm.left--
	return lm, true, lm.left == 0
}

// finish ends a message whose deliveries are all finished: it is
// acknowledged once the tasks moved out of it are stored, and handed back
// (all its tasks come again) if one of those publishes failed.
func (b *Broker) finish(lm *leaseMsg) error {
	for _, mv := range lm.moves {
		<-mv.done
		err := mv.err
		if err == nil {
			err = b.awaitPub(mv.f)
		}
		if err != nil {
			b.log.Warn("natsbroker: moving tasks to a message of their own failed; handing back the message they came in", "err", err)
			if err := lm.msg.Nak(); err != nil {
				return fmt.Errorf("natsbroker: handing back a message: %w", err)
			}
			b.wakeAfterAck()
			return nil
		}
	}
	if err := lm.msg.Ack(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		return fmt.Errorf("natsbroker: acknowledging a task message: %w", err)
	}
	return nil
}

// awaitPub waits for one publish's acknowledgement, at most the JetStream
// client's default timeout.
func (b *Broker) awaitPub(f jetstream.PubAckFuture) error {
	d := b.js.Options().DefaultTimeout
	if d <= 0 {
		d = 5 * time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-t.C:
		return errNoAck
	}
}

func leaseOf(d *queue.Delivery) (*lease, error) {
	l, ok := d.Ref.(*lease)
	if !ok || d.Seq >= uint64(len(l.state)) {
		return nil, fmt.Errorf("natsbroker: delivery of task %s is not from this broker", d.ID())
	}
	return l, nil
}

// Claim implements queue.Broker: a no-wait fetch from the level's durable
// pull consumer, of as many messages as the room in dst takes judging by the
// tasks per message of the level's last claim. A message with more tasks
// than the room left has the rest moved to a message of its own (due now,
// at the back of the level). Delayed tasks that came due are first moved to
// their level. A message that does not decode is dead-lettered with the
// reason, and the claim goes on without it.
func (b *Broker) Claim(ctx context.Context, name string, level queue.Priority, dur time.Duration, dst []queue.Delivery) (int, error) {
	if level < 0 || level >= queue.NumPriorities {
		return 0, fmt.Errorf("natsbroker: claim: priority %d out of range [0, %d]", level, queue.NumPriorities-1)
	}
	if len(dst) == 0 || b.ctl.isPaused(name) {
		return 0, nil
	}
	q, err := b.queue(ctx, name)
	if err != nil {
		return 0, err
	}
	if q.promote.Load() {
		b.promote(ctx, q)
	}
	b.drainNotices()
	start := time.Now().UnixNano()
	gen := q.gen[level].Load()
	spares := q.spare[level].take()
	// A kept message whose server lease is half gone is handed back rather
	// than handed out (kept ones wait a second at most: this is a claim that
	// itself took long).
	fresh := spares[:0]
	for _, f := range spares {
		if start-f.at < int64(b.ackWait/2) {
			fresh = append(fresh, f)
		} else if err := f.msg.Nak(); err != nil {
			b.log.Warn("natsbroker: handing back a fetched message", "err", err)
		}
	}
	spares = fresh
	if at := q.emptyAt[level].Load(); len(spares) == 0 && at != 0 && start-at < int64(b.recheck) && q.emptyGen[level].Load() == gen {
		return 0, nil // found empty, and no wake-up since
	}
	d := min(dur, b.ackWait)
	l := &lease{b: b, expires: time.Unix(0, start).Add(d), serverBy: time.Unix(0, start).Add(b.ackWait - b.skew())}
	c := &claim{b: b, q: q, level: level, l: l, dst: dst}
	for _, f := range spares {
		c.add(ctx, f)
	}
	per := int(q.perMsg[level].Load())
	if per < 1 {
		per = q.pack
	}
	got, recent := 0, false
	for round := 0; c.n < len(dst) && round < 4; round++ {
		// Sized by the tasks per message the level's last claim saw, then
		// by what came: a message none of whose tasks fit is kept for the
		// next claim (q.spare). A claim that has tasks already does not
		// fetch a message it expects to split: splitting one stores its
		// rest again and holds its acknowledgement until that is stored.
		want := (len(dst) - c.n) / per
		if want == 0 {
			if c.n > 0 {
				break
			}
			want = 1
		}
		msgs, rec, err := b.fetch(ctx, q, level, want, start, round == 0)
		b.drainNotices()
		if round == 0 {
			recent = rec
			if err != nil && len(msgs) == 0 && c.n == 0 {
				q.spare[level].put(b, c.spare)
				return 0, fmt.Errorf("natsbroker: claim from %s level %d: %w", name, level, err)
			}
		}
		// An error after the first fetch ends the claim with what it has.
		got += len(msgs)
		seen0, tasks0 := c.seen, c.tasks
		for _, m := range msgs {
			c.add(ctx, fetched{m, start})
		}
		if len(msgs) < want || c.seen == seen0 {
			break
		}
		per = max(1, (c.tasks-tasks0+c.seen-seen0-1)/(c.seen-seen0))
	}
	q.spare[level].put(b, c.spare)
	if c.seen > 0 {
		q.perMsg[level].Store(int32((c.tasks + c.seen - 1) / c.seen))
	}
	n := c.n
	if c.moved > 0 {
		b.publishLevelWake(q, level) // tasks were moved: another runner may take them
	}
	if got == 0 && len(spares) == 0 && !recent && q.gen[level].Load() == gen {
		// Nothing, and no wake-up for the level since the claim started
		// (one coming later changes gen, which voids the mark); not just
		// after an enqueue, when the consumer may lag. emptyGen first:
		// whoever reads the new emptyAt reads it too.
		q.emptyGen[level].Store(gen)
		q.emptyAt[level].Store(time.Now().UnixNano())
	}
	if n > 0 {
		l.open = n
		if dur < b.ackWait {
			l.mu.Lock()
			l.timer = time.AfterFunc(d+grace(d), l.onExpire)
			l.mu.Unlock()
		}
		n = b.pausedDuring(ctx, name, dst[:n])
	}
	return n, nil
}

// claim is one Claim call's progress.
type claim struct {
	b     *Broker
	q     *bqueue
	level queue.Priority
	l     *lease
	dst   []queue.Delivery
	n     int       // deliveries in dst
	spare []fetched // messages none of whose tasks fit, for the next claim
	moved int       // tasks moved to messages of their own
	seen  int       // messages that decoded
	tasks int       // the tasks they carried
	e     envelope
	rest  [][]byte
}

// fetched is a message and when it was fetched (Unix ns): the server's lease
// on it runs from then.
type fetched struct {
	msg taskMsg
	at  int64
}

// spareList holds the messages of a level that a claim fetched and had no
// room for (a claim sizes its request by the tasks per message it expects,
// and messages may carry more): the level's next claim in this broker takes
// them first. Those still here after spareHold are handed back (each such
// hand-back counts an attempt: JetStream cannot uncount a delivery).
type spareList struct {
	mu    sync.Mutex
	msgs  []fetched
	timer *time.Timer
}

func (b *Broker) spareHold() time.Duration { return min(time.Second, b.ackWait/4) }

func (s *spareList) take() []fetched {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.msgs
	s.msgs = nil
	return fs
}

// put keeps fs, ahead of what is kept already, and wakes this broker's idle
// workers.
func (s *spareList) put(b *Broker, fs []fetched) {
	if len(fs) == 0 {
		return
	}
	s.mu.Lock()
	s.msgs = append(fs, s.msgs...)
	if s.timer == nil {
		s.timer = time.AfterFunc(b.spareHold(), func() { s.handBack(b) })
	}
	s.mu.Unlock()
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// handBack hands back every message kept.
func (s *spareList) handBack(b *Broker) {
	s.mu.Lock()
	fs := s.msgs
	s.msgs = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	for _, f := range fs {
		if err := f.msg.Nak(); err != nil {
			b.log.Warn("natsbroker: handing back a fetched message", "err", err)
		}
	}
	if len(fs) > 0 {
		b.wakeAfterAck()
	}
}

// add adds the tasks of a message to dst and to the lease. Those that do not
// fit move to a message of their own; a message none of whose tasks fit goes
// to c.spare.
func (c *claim) add(ctx context.Context, fm fetched) {
	b, q, l, dst, e := c.b, c.q, c.l, c.dst, &c.e
	msg := fm.msg
	meta, err := msg.Metadata()
	if err != nil {
		b.buryBad(ctx, q, msg, 0, "no JetStream metadata: "+err.Error())
		return
	}
	if err := decodeEnvelope(msg.Data(), e); err != nil {
		b.buryBad(ctx, q, msg, meta.NumDelivered, err.Error())
		return
	}
	h := msg.Headers()
	if id := queue.TaskID(e.BatchID, e.Index); h.Get(hdrTask) != id {
		b.buryBad(ctx, q, msg, meta.NumDelivered, fmt.Sprintf("header %s is %q, the envelope says task %s", hdrTask, h.Get(hdrTask), id))
		return
	}
	if hc := h.Get(hdrCount); hc != countHeader(e.Count) {
		b.buryBad(ctx, q, msg, meta.NumDelivered, fmt.Sprintf("header %s is %q, the envelope carries %d tasks", hdrCount, hc, e.Count))
		return
	}
	if e.Queue != q.name || e.Priority != c.level {
		b.buryBad(ctx, q, msg, meta.NumDelivered, fmt.Sprintf("the envelope says queue %q level %d; the message is on queue %q level %d", e.Queue, e.Priority, q.name, c.level))
		return
	}
	canceled, size := b.canceled(ctx, e.BatchID, h.Get(hdrBatch))
	if size > 0 && e.Index+e.Count > size {
		b.buryBad(ctx, q, msg, meta.NumDelivered, fmt.Sprintf("tasks %d to %d of a batch of %d", e.Index, e.Index+e.Count-1, size))
		return
	}
	c.seen++
	c.tasks += e.Count
	attempt := e.Attempts + int(meta.NumDelivered)
	take := min(e.Count, len(dst)-c.n)
	if take == 0 {
		c.spare = append(c.spare, fm)
		return
	}
	// The server's lease on the message runs from its fetch.
	if by := time.Unix(0, fm.at).Add(b.ackWait - b.skew()); by.Before(l.serverBy) {
		l.serverBy = by
	}
	for j := range take {
		dv := &dst[c.n+j]
		*dv = queue.Delivery{Message: e.Message}
		dv.Index += j
		dv.Payload = e.next()
		dv.Attempt = attempt
	}
	lm := leaseMsg{msg: msg, count: e.Count, attempt: attempt, first: len(l.state), n: take, left: take}
	if take < e.Count {
		// No room for the rest: it moves to a message of its own,
		// keeping its attempts (this delivery did not attempt it).
		r := c.rest[:0]
		for range e.Count - take {
			r = append(r, e.next())
		}
		c.rest = r
		m := e.Message
		m.Index += take
		f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: b.levelSubj(q, c.level, len(r)),
			Data: appendEnvelope(nil, &m, attempt-1, e.Due, r), Header: taskHeader(m.BatchID, m.Index, len(r))})
		if err != nil {
			b.log.Warn("natsbroker: moving the tasks a claim had no room for; handing back their message", "err", err)
			if err := msg.Nak(); err != nil {
				b.log.Warn("natsbroker: handing back a message", "err", err)
			}
			return
		}
		lm.moves = []*move{published(f)}
		c.moved += len(r)
	}
	if l.state == nil { // sized for a full claim: one allocation each
		l.state, l.of = make([]uint8, 0, len(dst)), make([]int32, 0, len(dst))
	}
	mi := int32(len(l.msgs))
	l.msgs = append(l.msgs, lm)
	for j := range take {
		dv := &dst[c.n+j]
		dv.Expires = l.expires
		dv.Canceled = canceled
		dv.Ref = l
		dv.Seq = uint64(len(l.state))
		l.state = append(l.state, dLive)
		l.of = append(l.of, mi)
	}
	c.n += take
}

// countHeader is hdrCount's value for a message of k tasks.
func countHeader(k int) string {
	if k == 1 {
		return ""
	}
	return strconv.Itoa(k)
}

// fetch takes up to want messages of the level's consumer without waiting.
// Just after an enqueue was announced (recent, on a claim's first fetch) a
// consumer may not have seen the new messages yet (a replica lags; even a
// single server counts a consumer's pending messages asynchronously, and
// Enqueue announces before its publishes are acknowledged) and answer "none":
// then the request waits up to recentWait for the first message. The
// messages that came are returned even with an error.
func (b *Broker) fetch(ctx context.Context, q *bqueue, level queue.Priority, want int, start int64, first bool) (msgs []taskMsg, recent bool, err error) {
	recent = first && start-q.lastEnq[level].Load() < int64(recentEnqueue)
	var wait time.Duration
	if recent {
		wait = recentWait
	}
	timeout := b.js.Options().DefaultTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	msgs, err = b.pull.fetch(ctx, q.next[level], want, wait, timeout)
	return msgs, recent, err
}

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

// Extend implements queue.Broker: for each lease of ds it tells the server
// that every message of the lease with a task not yet reported is in
// progress (resetting AckWait; a finished task waiting to be reported keeps
// its message too) and moves the local lease expiry. A lease the server may
// already have given up on (AckWait since the claim or the last heartbeat)
// is not extended: its messages may be another worker's.
func (b *Broker) Extend(ctx context.Context, dur time.Duration, ds []*queue.Delivery) error {
	now := time.Now()
	d := min(dur, b.ackWait)
	var (
		done []*lease
		msgs []taskMsg
	)
	for _, dv := range ds {
		l, err := leaseOf(dv)
		if err != nil {
			return err
		}
		if slices.Contains(done, l) {
			continue
		}
		done = append(done, l)
		msgs = msgs[:0]
		l.mu.Lock()
		if l.open > 0 && !l.staleLocked(now) {
			l.expires = now.Add(d)
			l.serverBy = now.Add(b.ackWait - b.skew())
			if l.timer != nil {
				l.timer.Reset(d + grace(d))
			}
			for i := range l.msgs {
				if l.msgs[i].left > 0 {
					msgs = append(msgs, l.msgs[i].msg)
				}
			}
		}
		l.mu.Unlock()
		for _, m := range msgs {
			if err := m.InProgress(); err != nil {
				return fmt.Errorf("natsbroker: extend lease of task %s: %w", dv.ID(), err)
			}
		}
	}
	return nil
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
			Data: appendEnvelope(nil, &d.Message, max(attempts, 0), due, [][]byte{d.Payload}), Header: taskHeader(d.BatchID, d.Index, 1)})
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

// After an enqueue was announced (recentEnqueue), an empty no-wait fetch is
// retried once with a wait of recentWait: on a cluster the consumer may lag
// the stream by a moment.
const (
	recentEnqueue = 100 * time.Millisecond
	recentWait    = 20 * time.Millisecond
)
