package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	var size int64 // the messages' bytes
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
		size += int64(len(buf) - start)
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
			if derr := st.DeleteMsg(context.WithoutCancel(ctx), seq); derr != nil && !gone(derr) {
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
	if !delayed {
		b.stored(q, size, p.seqs[len(p.seqs)-1])
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

// packFor returns how many tasks each message of a batch of n carries. A
// message carries one task or, for a large batch, a pack of consecutive
// tasks (Config.PackSize; a batch of n tasks goes out in messages of
// min(PackSize, n/64) tasks): what JetStream stores, delivers, acknowledges
// and removes is a message, and that was most of a task's cost. The pack
// size is the last token of the subject (see levelSubj).
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
		if err := b.state.DeleteMsg(context.Background(), seq); err != nil && !gone(err) {
			b.log.Error("natsbroker: deleting a state record", "seq", seq, "err", err)
		}
	}
}

// gone reports whether a message deletion failed because the message is
// not there (already acknowledged, deleted or expired): nothing to undo.
// The client reports that as ErrMsgDeleteUnsuccessful with the server's
// text, not as ErrMsgNotFound, so the text is what tells.
func gone(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(err.Error(), "no message found")
}
