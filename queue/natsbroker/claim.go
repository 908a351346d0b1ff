package natsbroker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/queue"
)

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
	if err := b.listenWakes(); err != nil {
		return 0, fmt.Errorf("natsbroker: claim: %w", err)
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
	if q.waiting(level, start) && start-q.lastEnq[level].Load() < int64(recentEnqueue) && q.spare[level].empty() {
		// Tasks were just announced, and the level's first goes to its
		// idle pull: taken first, it stays first.
		b.awaitIdle(ctx, q, level, recentWait)
	}
	spares := q.spare[level].take()
	// A kept message whose server lease is half gone is handed back rather
	// than handed out (kept ones wait a second at most: this is a claim that
	// itself took long).
	fresh := spares[:0]
	for _, f := range spares {
		if start-f.at < int64(b.ackWait/2) {
			fresh = append(fresh, f)
		} else {
			// If the server's lease is gone it may have delivered the
			// message again, and any acknowledgement would apply to that
			// copy: handBackFetched leaves it, and it comes again.
			b.handBackFetched(f)
		}
	}
	spares = fresh
	// A spare that answered an idle pull, a lone task and the last its
	// consumer had ready then: the claim returns with it.
	idle, last := false, false
	for _, f := range spares {
		if f.idle {
			idle, last = true, alone(f.msg)
		}
	}
	if idle {
		// It came without a fetch, which checks this after its answer.
		b.checkNotices()
	}
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
	if idle && c.seen > 0 {
		// Sized by what came to the idle pull: the level's last claim
		// may be long ago, or none.
		per = (c.tasks + c.seen - 1) / c.seen
	}
	if per < 1 {
		per = q.pack
	}
	got, recent := 0, false
	rounds := 4
	if last && c.n > 0 {
		// A task that came to an idle worker runs now: asking for more
		// would hold it up by a round trip, and the other claims this
		// wakes ask (see idlePull).
		rounds = 0
	}
	for round := 0; c.n < len(dst) && round < rounds; round++ {
		// Sized by the tasks per message the level's last claim saw, then
		// by what came: a message none of whose tasks fit is kept for the
		// next claim (q.spare). A claim that has tasks already does not
		// fetch a message it expects to split: splitting one stores its
		// rest again and holds its acknowledgement until that is stored.
		want := min((len(dst)-c.n)/per, pullMax)
		if want == 0 {
			if c.n > 0 {
				break
			}
			want = 1
		}
		// Only a claim with nothing yet waits for tasks just announced,
		// and not for those an idle pull is out for: they go to it.
		msgs, rec, err := b.fetch(ctx, q, level, want, start, round == 0 && c.n == 0 && !q.waiting(level, start))
		// The connection may have come back while the request waited (it
		// was sent again to a restarted server): check before reading.
		b.checkNotices()
		b.drainNotices()
		if round == 0 {
			recent = rec
			if err != nil && len(msgs) == 0 && c.n == 0 {
				b.suspectFor() // the server may be restarting
				q.spare[level].put(b, c.spare)
				return 0, fmt.Errorf("natsbroker: claim from %s level %d: %w", name, level, err)
			}
		}
		// An error after the first fetch ends the claim with what it has.
		got += len(msgs)
		seen0, tasks0 := c.seen, c.tasks
		for _, m := range msgs {
			c.add(ctx, fetched{msg: m, at: start})
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
	if n > 0 && time.Now().Add(d/3).After(l.serverBy) {
		// The claim took so long (its checks' round trips on a busy
		// machine or a server just back) that the server's lease on a
		// message it holds is gone, or would be before the worker's first
		// heartbeat (every lease/3): the server may have delivered it
		// again, to this broker or another. Handing the tasks out would
		// run them twice; they are left to come again instead.
		b.log.Warn("natsbroker: a claim outlasted the server's lease on its messages; leaving them to come again", "tasks", n)
		n = 0
	}
	if c.moved > 0 || c.skipped > 0 {
		// Tasks were moved (another runner may take them), or finished
		// ones dropped (this claim may come back with less than is there).
		b.publishLevelWake(q, level)
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

	skipped int       // finished tasks dropped (see dropFinished)
	fin     *finished // the outcomes the message being added was checked against
}

// fetched is a message and when it was fetched (Unix ns): the server's lease
// on it runs from then.
type fetched struct {
	msg  taskMsg
	at   int64
	idle bool // it answered an idle pull (see idlePull)
}

// spareList holds the messages of a level that a claim fetched and had no
// room for (a claim sizes its request by the tasks per message it expects,
// and messages may carry more): the level's next claim in this broker takes
// them first. Those still here after spareHold are handed back (each such
// hand-back counts an attempt: JetStream cannot uncount a delivery), but
// for those an idle pull brought, which are moved back (see moveBack).
type spareList struct {
	mu    sync.Mutex
	msgs  []fetched
	timer *time.Timer
	due   time.Time // when timer hands them back
}

func (b *Broker) spareHold() time.Duration { return min(time.Second, b.ackWait/4) }

func (s *spareList) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs) == 0
}

func (s *spareList) take() []fetched {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := s.msgs
	s.msgs = nil
	return fs
}

// put keeps fs, ahead of what is kept already, and wakes this broker's idle
// workers.
func (s *spareList) put(b *Broker, fs []fetched) { s.putFor(b, fs, b.spareHold()) }

// putFor is put, with what is kept handed back within hold.
func (s *spareList) putFor(b *Broker, fs []fetched, hold time.Duration) {
	if len(fs) == 0 {
		return
	}
	s.mu.Lock()
	s.msgs = append(fs, s.msgs...)
	due := time.Now().Add(hold)
	switch {
	case s.timer == nil:
		s.timer = time.AfterFunc(hold, func() { s.handBack(b) })
		s.due = due
	case due.Before(s.due) && s.timer.Stop():
		// (A timer that fired already hands back these too.)
		s.timer.Reset(hold)
		s.due = due
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
		b.handBackFetched(f)
	}
	if len(fs) > 0 {
		b.wakeAfterAck()
	}
}

// leaseGone reports whether the server's lease on a message fetched at
// (Unix ns) is over, or will be within margin: the server may then deliver
// it again, and an acknowledgement of any kind would apply to that copy.
func (b *Broker) leaseGone(at int64, margin time.Duration) bool {
	return time.Now().Add(margin).UnixNano() > at+int64(b.ackWait-b.skew())
}

// add adds the tasks of a message to dst and to the lease. Those that do not
// fit move to a message of their own, which keeps their attempts; a message
// none of whose tasks fit goes to c.spare, for the level's next claim in
// this broker (handed back if none comes within a second). A claim sizes
// its request by the tasks per message of the level's last claim
// (bqueue.perMsg).
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
	c.fin = nil
	if size != 0 && b.suspect(meta.NumDelivered, e.Attempts) {
		switch {
		case size < 0: // the batch's record, and so its outcomes, cannot be read now
			b.checkLater(msg)
			return
		case c.dropFinished(ctx, msg, size, attempt):
			return
		case time.Now().UnixNano() > fm.at+int64(b.ackWait-b.skew()):
			// The check outlasted the server's lease on the message: it
			// may be another worker's by now, and comes again if not.
			return
		}
	}
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
	lm := leaseMsg{msg: msg, count: e.Count, attempt: attempt, first: len(l.state), n: take, left: take, fin: c.fin}
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
			Data: appendEnvelope(nil, &m, attempt-1, e.Due, r), Header: moveHeader(m.BatchID, m.Index, len(r))})
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

// After an enqueue was announced (recentEnqueue), an empty no-wait fetch is
// retried once with a wait of recentWait: on a cluster the consumer may lag
// the stream by a moment.
const (
	recentEnqueue = 100 * time.Millisecond
	recentWait    = 20 * time.Millisecond
)
