package natsbroker

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// Idle pulls. A worker that waits for work (Notify) has a pull request of
// one message waiting on each level of each queue it serves, so that the
// server hands it the next task as soon as it is stored. Without them an
// idle worker learns of a task from the enqueue's wake-up and then asks for
// it: a lone task pays a wake-up, a request and its answer where a waiting
// request pays one delivery (on a link of 250 µs each way,
// BenchmarkRoundTripIdle: 7.4 ms without, 5.4 ms with; raw JetStream's
// 5.2 ms). A message that comes is kept for the level's next claim (the
// level's spares), which takes it first; with a lone task, the last its
// consumer had ready, the claim returns at once, without asking the server
// for more (see Claim). Other claims of the level are told it may have
// more (bqueue.maybe), and ask. A task that comes when no runner is free
// for it goes back to its level, keeping its attempts (moveBack).
//
// They are made while a runner of the worker waits (Notify, until its
// context ends) and for levels quiet for recentEnqueue (see armIdleLocked).
// A request waits idlePullFor at most and is made again while a runner
// still waits; one the server dropped (a restart) is made again after the
// connection's reconnect or its expiry, whichever is first. A consumer
// holds 512 waiting requests by default (its MaxWaiting), and each idle
// worker broker has one per level it serves: past about 500 worker
// processes per queue the requests that do not fit are refused (status
// 409) and those workers learn of work by wake-ups, as they do without idle
// pulls (see the package doc's Limits).
type idlePull struct {
	// until is when (Unix ns) the request out lasts to; 0: none out.
	// Written under Broker.mu, as is answered, closed when the request out
	// is answered.
	until    atomic.Int64
	answered chan struct{}
	reply    string
	sub      *nats.Subscription
	q        *bqueue
	level    queue.Priority
}

// awayHold is how long a task an idle pull brought is kept when no runner
// waited for it (see onIdle).
const awayHold = 50 * time.Millisecond

// idlePullFor is how long an idle pull request waits at most.
const idlePullFor = 500 * time.Millisecond

// idleReq is the request of every idle pull: one message, waiting.
var idleReq = []byte(`{"batch":1,"expires":` + strconv.FormatInt(int64(idlePullFor), 10) + `}`)

// armIdleLocked makes the idle pulls of the named queues that have none
// out, and returns them; the caller sends them (sendIdle) once it has let go
// of b.mu. Queues this broker has not claimed from yet, and paused ones,
// get none. A level with an enqueue announced within recentEnqueue gets
// none yet: its claims wait for tasks at the server already (see fetch),
// and a worker that takes one task after another finds the next one that
// way, with no request left out to take it first. A timer makes them once
// the level has been quiet that long, if a worker still waits.
func (b *Broker) armIdleLocked(queues []string, out []*idlePull) []*idlePull {
	now := time.Now().UnixNano()
	var next int64 // when the first level skipped as busy is quiet
	if rc := b.nc.Stats().Reconnects; rc != b.idleRC {
		// The requests out may have died with the connection.
		b.idleRC = rc
		for _, ip := range b.idles {
			ip.until.Store(0)
		}
	}
	for _, name := range queues {
		q := b.queues[name]
		if q == nil || b.ctl.isPaused(name) {
			continue
		}
		for l := range q.idle {
			ip := &q.idle[l]
			if ip.until.Load() > now {
				continue
			}
			if quiet := q.lastEnq[l].Load() + int64(recentEnqueue); quiet > now {
				if next == 0 || quiet < next {
					next = quiet
				}
				continue
			}
			if ip.sub == nil {
				// Its own subscription: a task message comes with its own
				// subject, so only the subscription tells the request.
				ip.q, ip.level, ip.reply = q, queue.Priority(l), b.nc.NewInbox()
				sub, err := b.nc.Subscribe(ip.reply, func(m *nats.Msg) { b.onIdle(ip, m) })
				if err != nil {
					b.log.Warn("natsbroker: subscribing to idle pull replies", "err", err)
					return out
				}
				ip.sub = sub
				b.subs = append(b.subs, sub) // Close unsubscribes it
				b.idles = append(b.idles, ip)
			}
			ip.until.Store(now + int64(idlePullFor))
			ip.answered = make(chan struct{})
			out = append(out, ip)
		}
	}
	if next != 0 && (b.idleAt == 0 || next < b.idleAt) {
		b.idleAt = next
		d := time.Duration(next - now)
		if b.idleT == nil {
			b.idleT = time.AfterFunc(d, b.onIdleTimer)
		} else {
			b.idleT.Reset(d)
		}
	}
	return out
}

// onIdleTimer makes the idle pulls armIdleLocked skipped as busy, if a
// worker still waits.
func (b *Broker) onIdleTimer() {
	b.mu.Lock()
	b.idleAt = 0
	if b.closed || b.waiters == 0 {
		b.mu.Unlock()
		return
	}
	ips := b.armIdleLocked(b.idleQueues, nil)
	b.mu.Unlock()
	b.sendIdle(ips)
}

// sendIdle sends the requests armIdleLocked made.
func (b *Broker) sendIdle(ips []*idlePull) {
	for _, ip := range ips {
		if err := b.nc.PublishRequest(ip.q.next[ip.level], ip.reply, idleReq); err != nil {
			ip.until.Store(0)
			b.log.Warn("natsbroker: sending an idle pull request", "err", err)
			return
		}
	}
}

// onIdle takes what answers an idle pull: a task message, kept for the
// level's next claim, or the request's end, after which it is made again
// if a worker still waits.
func (b *Broker) onIdle(ip *idlePull, m *nats.Msg) {
	b.mu.Lock()
	answered := ip.answered
	ip.until.Store(0)
	ip.answered = nil
	status := pullStatus(m)
	if status != "" {
		var again []*idlePull
		if status == "408" && !b.closed && b.waiters > 0 && !strings.Contains(m.Header.Get("Description"), "Interest") {
			again = b.armIdleLocked([]string{ip.q.name}, nil)
		}
		b.mu.Unlock()
		if answered != nil {
			close(answered)
		}
		b.sendIdle(again)
		return
	}
	// Kept for the level's next claim. With no runner waiting for work (nor
	// a claim for this answer) it is kept for awayHold only: a runner may
	// be between its wait and its claim, or every one may have become busy
	// since the request was made, and then it goes back for another
	// worker (moveBack).
	closed, away := b.closed, b.waiters == 0
	b.mu.Unlock()
	b.idleTasks.Add(1)
	f := fetched{msg: &pulled{m: m, nc: b.nc}, at: time.Now().UnixNano(), idle: true}
	switch {
	case closed:
		b.handBackFetched(f)
	case away:
		ip.q.maybe(int(ip.level))
		ip.q.spare[ip.level].putFor(b, []fetched{f}, awayHold)
	default:
		ip.q.maybe(int(ip.level))
		ip.q.spare[ip.level].put(b, []fetched{f})
	}
	if answered != nil {
		close(answered)
	}
}

// handBackFetched hands back a fetched message that no claim took: one that came
// to an idle pull by moveBack, any other with a negative acknowledgement
// (a delivery JetStream counts, so an attempt; see spareList).
func (b *Broker) handBackFetched(f fetched) {
	if b.leaseGone(f.at, 0) {
		return // it may be another's copy now (see Claim)
	}
	b.mu.Lock()
	closed := b.closed // Close does not wait for moves
	b.mu.Unlock()
	if f.idle && !closed {
		b.moveBack(f)
		return
	}
	if err := f.msg.Nak(); err != nil {
		b.log.Warn("natsbroker: handing back a fetched message", "err", err)
	}
}

// moveBack hands back a message that came to an idle pull and that no
// runner of this worker takes, without counting the delivery as an attempt
// (an idle pull asks for the next task before a runner is free for it, and
// can do so at every idle spell): a copy with the same tasks and headers,
// and the attempts made before this delivery, goes to the back of its
// level, then the message is acknowledged. The
// copy's message ID is the message's stream sequence, so a second move of
// the same message (its acknowledgement lost in a crash) is dropped as a
// duplicate. If the copy cannot be stored, the message is handed back with
// a negative acknowledgement.
func (b *Broker) moveBack(f fetched) {
	p, ok := f.msg.(*pulled)
	if !ok {
		return
	}
	delivered, seq, err := parseAckReply(p.m.Reply)
	var e envelope
	if err == nil {
		err = decodeEnvelope(p.m.Data, &e)
	}
	if err == nil {
		// The copy carries the attempts made before this delivery.
		payloads := make([][]byte, e.Count)
		for i := range payloads {
			payloads[i] = e.next()
		}
		h := make(nats.Header, len(p.m.Header)+1)
		for k, v := range p.m.Header {
			h[k] = v
		}
		h[jetstream.MsgIDHeader] = []string{"ib." + strconv.FormatUint(seq, 10)}
		ctx, cancel := context.WithTimeout(context.Background(), b.readTimeout())
		_, err = b.js.PublishMsg(ctx, &nats.Msg{Subject: p.m.Subject,
			Data: appendEnvelope(nil, &e.Message, e.Attempts+int(delivered)-1, e.Due, payloads), Header: h})
		cancel()
		if err == nil {
			if err := p.Ack(); err != nil {
				b.log.Warn("natsbroker: acknowledging a message moved back", "err", err)
			}
			b.wakeAfterAck()
			return
		}
	}
	b.log.Warn("natsbroker: moving back a task an idle pull brought; handing it back", "err", err)
	if err := p.Nak(); err != nil {
		b.log.Warn("natsbroker: handing back a message", "err", err)
	}
}

// awaitIdle waits up to d for the answer to level l's idle pull, if one is
// out: an enqueue was just announced, and the level's first task goes to
// it. A claim that fetched instead would get the tasks after it first.
func (b *Broker) awaitIdle(ctx context.Context, q *bqueue, l queue.Priority, d time.Duration) {
	b.mu.Lock()
	ch := q.idle[l].answered
	if ch != nil {
		b.waiters++ // the answer is kept for this claim
	}
	b.mu.Unlock()
	if ch == nil {
		return
	}
	defer func() {
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// alone reports whether a message that answered a pull is a batch of one
// task and was the last message its consumer had ready when it was
// delivered (its reply subject counts those after it; see parseAckReply for
// the subject's forms): a claim that has it need not ask for more. (A task
// of a larger batch has others coming, which the consumer may not have
// stored yet.)
func alone(m taskMsg) bool {
	p, ok := m.(*pulled)
	if !ok || !strings.HasPrefix(p.m.Header.Get(hdrBatch), "1 ") {
		return false
	}
	rest, ok := strings.CutPrefix(p.m.Reply, "$JS.ACK.")
	if !ok {
		return false
	}
	tok := strings.Split(rest, ".")
	switch len(tok) {
	case 7:
		return tok[6] == "0"
	case 9, 10:
		return tok[8] == "0"
	}
	return false
}

// waiting reports whether level l of q has an idle pull out at now (Unix
// ns): the level's next task goes to it (see Claim). It takes the claim's
// clock reading: claims are the hot path.
func (q *bqueue) waiting(l queue.Priority, now int64) bool {
	return q.idle[l].until.Load() > now
}
