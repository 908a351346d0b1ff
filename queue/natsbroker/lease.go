package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

const (
	dLive uint8 = iota
	dDone
	dExpired
)

// lease is the claim of one Claim call: its messages, the deliveries of
// their tasks and, for leases shorter than AckWait, the timer that hands
// them back when it expires. A lease is the level consumer's AckWait,
// renewed by InProgress (see Config.AckWait for leases shorter than it).
// Leases and acknowledgements are per message; retries, attempts and
// outcomes per task.
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

// leaseMsg is one claimed message. It is acknowledged once all its tasks
// are finished and what moved out of it is stored, and handed back whole if
// a move failed. A local lease that expires moves the message's unfinished
// tasks to a message of their own likewise (see lease.onExpire).
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
	// fin, for a message checked against its batch's outcomes when
	// claimed, is what this broker knows of them: its tasks are looked up
	// again before they run (see Finished).
	fin *finished
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
			Header: moveHeader(m.BatchID, m.Index, run)})
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
// now is the caller's clock reading, taken after anything it waited for (a
// Complete of many deliveries reads the clock once, not once each).
func (l *lease) take(i uint64, mv *move, now time.Time) (lm *leaseMsg, live, last bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lm = &l.msgs[l.of[i]]
	if l.state[i] != dLive || l.staleLocked(now) {
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
