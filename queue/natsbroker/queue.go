package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// bqueue is one queue. Per queue there is a work-queue stream
// "<prefix>_q_<queue>" with subjects and one durable pull consumer per
// priority level (JetStream has no per-message priority; the worker's
// scheduler picks the level), and a work-queue stream "<prefix>_qd_<queue>"
// where delayed tasks wait, with one consumer (see Broker.promote).
type bqueue struct {
	name, tok string
	maxDepth  int
	bounded   bool // maxDepth is a bound set by a Config, not DefaultMaxDepth
	pack      int  // Config.PackSize, or 1 for a bounded queue
	// perMsg[l] is how many tasks the messages of level l carried in the
	// last claim (0: none yet), which sizes the next claim's fetch.
	perMsg    [queue.NumPriorities]atomic.Int32
	spare     [queue.NumPriorities]spareList
	idle      [queue.NumPriorities]idlePull // see idlePull
	stream    jetstream.Stream              // the levels
	dstream   jetstream.Stream              // delayed tasks
	levels    [queue.NumPriorities]jetstream.Consumer
	next      [queue.NumPriorities]string // each level's next-message API subject, for pull requests
	delay     jetstream.Consumer
	promote   atomic.Bool // delayed tasks may be due
	retryT    *time.Timer // a failed promotion's retry (see promoteLater); guarded by Broker.mu
	promoting atomic.Bool
	// lastEnq[l] is when an enqueue to level l was last announced (Unix ns).
	lastEnq [queue.NumPriorities]atomic.Int64
	// emptyAt[l] is when a claim last found level l empty with no wake-up
	// for it since (Unix ns; 0: unknown). For Config.IdleRecheck after it,
	// claims of the level return nothing without asking the server, as an
	// idle worker would sleep that long: a worker that drains one level
	// does not pay a round trip per empty level above it per claim.
	// gen[l] counts the wake-ups that may concern level l, so that a
	// wake-up arriving during a claim keeps the level from being marked.
	// emptyGen[l] is gen[l] when the claim that set emptyAt[l] started:
	// the mark holds only while gen[l] is still that.
	emptyAt  [queue.NumPriorities]atomic.Int64
	emptyGen [queue.NumPriorities]atomic.Uint64
	gen      [queue.NumPriorities]atomic.Uint64
	// The stream's anchor (see anchor.go): its sequence (0: none known),
	// the bytes this broker stored in the stream since it last placed or
	// learned it, and whether a move is under way.
	anchor      atomic.Uint64
	sinceAnchor atomic.Int64
	anchoring   atomic.Bool
}

// Depth implements queue.Stats: the tasks of the queue per level (ready and
// leased ones in its stream, delayed ones in its delay stream), which is
// what its bounds count, read from the streams' leaders in one request each
// from their per-subject message totals (a subject's messages carry the
// same number of tasks). A task leaves the count when its acknowledgement
// is applied: on a replicated stream a moment after its outcome is
// readable. Tasks of a cancelled batch count until a worker claims and
// drops them (delayed ones, once due), as they do against the bound. An
// unknown queue, or a name CheckQueue refuses, has depth zero; Depth never
// creates a queue's streams.
func (b *Broker) Depth(ctx context.Context, name string) ([queue.NumPriorities]int, error) {
	var d [queue.NumPriorities]int
	b.mu.Lock()
	closed, q := b.closed, b.queues[name]
	b.mu.Unlock()
	if closed {
		return d, errClosed
	}
	if b.CheckQueue(name) != nil {
		return d, nil // no queue has that name
	}
	t := tok(name)
	for i, kind := range []string{"q", "qd"} {
		var st jetstream.Stream
		switch {
		case q != nil && i == 0:
			st = q.stream
		case q != nil:
			st = q.dstream
		default:
			var err error
			st, err = b.js.Stream(ctx, b.prefix+"_"+kind+"_"+t)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			if err != nil {
				return d, fmt.Errorf("natsbroker: depth of queue %q: %w", name, err)
			}
		}
		base := b.prefix + "." + kind + "." + t + "."
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(base+">"))
		if err != nil {
			return d, fmt.Errorf("natsbroker: depth of queue %q: %w", name, err)
		}
		for subj, n := range info.State.Subjects {
			rest, ok := strings.CutPrefix(subj, base)
			if !ok {
				continue
			}
			rest, ks, packed := strings.Cut(rest, ".")
			k := 1
			if packed {
				var err error
				if k, err = strconv.Atoi(ks); err != nil || k < 1 {
					continue
				}
			}
			if l, err := strconv.Atoi(rest); err == nil && l >= 0 && l < queue.NumPriorities {
				d[l] += int(n) * k
			}
		}
	}
	return d, nil
}

// queue returns the named queue, creating its stream and consumers on
// first use.
func (b *Broker) queue(ctx context.Context, name string) (*bqueue, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	q := b.queues[name]
	b.mu.Unlock()
	if q != nil {
		return q, nil
	}
	if err := b.CheckQueue(name); err != nil {
		return nil, err
	}
	b.qmu.Lock()
	defer b.qmu.Unlock()
	b.mu.Lock()
	q = b.queues[name]
	b.mu.Unlock()
	if q != nil {
		return q, nil
	}
	q = &bqueue{name: name, tok: tok(name)}
	q.promote.Store(true)
	if err := b.setupQueue(ctx, q); err != nil {
		return nil, err
	}
	mk := func(st jetstream.Stream, durable string, subjects ...string) (jetstream.Consumer, error) {
		c, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:        durable,
			FilterSubjects: subjects,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        b.ackWait,
			MaxDeliver:     -1,
			MaxAckPending:  -1,
			Replicas:       b.replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("natsbroker: creating consumer %s on %s: %w", durable, st.CachedInfo().Config.Name, err)
		}
		return c, nil
	}
	// The five consumers are created concurrently: each is a round trip
	// and, on a file store, a few file writes.
	var wg sync.WaitGroup
	errs := make([]error, queue.NumPriorities+1)
	for l := range queue.NumPriorities {
		one, name := b.levelSubj(q, queue.Priority(l), 1), "L"+strconv.Itoa(l)
		q.next[l] = b.pull.nextSubj(b.prefix+"_q_"+q.tok, name)
		wg.Go(func() { q.levels[l], errs[l] = mk(q.stream, name, one, one+".*") })
	}
	wg.Go(func() { q.delay, errs[queue.NumPriorities] = mk(q.dstream, "delay") })
	if b.anchored(q) {
		wg.Go(func() { b.placeAnchor(ctx, q) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.queues[name] = q
	b.mu.Unlock()
	return q, nil
}
