package natsbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/queue"
)

// maybe forgets that level l was found empty: a wake-up may concern it.
func (q *bqueue) maybe(l int) {
	q.gen[l].Add(1)
	q.emptyAt[l].Store(0)
}

// maybeAll forgets every level found empty.
func (b *Broker) maybeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		for l := range queue.NumPriorities {
			q.maybe(l)
		}
	}
}

// listenWakes subscribes to the wake-up subject, once, before this broker's
// first claim or wait for work. Only claims use what wake-ups say (which
// levels may have work, that delayed tasks may be due), so a broker that
// only enqueues and awaits (a producer) never subscribes, and does not
// receive every enqueue's wake-up, its own included. It costs no round
// trip: every pull request of this broker follows the subscription on the
// same connection, so the server has the interest before it answers any
// claim, and a wake-up it routes after that is heard (as a flush would
// ensure, without holding up the first claim).
func (b *Broker) listenWakes() error {
	if b.listening.Load() {
		return nil
	}
	b.lmu.Lock()
	defer b.lmu.Unlock()
	if b.listening.Load() {
		return nil
	}
	ws, err := b.nc.Subscribe(b.wakeSubj, b.onWake)
	if err != nil {
		return fmt.Errorf("natsbroker: subscribing to %s: %w", b.wakeSubj, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = ws.Unsubscribe()
		return errClosed
	}
	b.subs = append(b.subs, ws) // Close unsubscribes it
	b.listening.Store(true)
	return nil
}

// Notify implements queue.Broker. The channel closes on a wake-up published
// by any broker of the same prefix (an enqueue, a retry, an expired lease,
// promoted delayed tasks), on a local timer for delays and retries this
// broker scheduled, and at the latest after Config.IdleRecheck. Until ctx
// ends, the broker keeps idle pulls out on the queues (see idlePull).
func (b *Broker) Notify(ctx context.Context, queues []string) (<-chan struct{}, error) {
	if err := b.listenWakes(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	wake := b.wake
	b.serving = true
	// A worker waits until ctx ends (see queue.Broker): idle pulls are
	// made while one does.
	b.waiters++
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.waiters--
		b.mu.Unlock()
	})
	if b.recheckT == nil {
		b.recheckT = time.AfterFunc(b.recheck, b.onRecheck)
	}
	var buf [2 * queue.NumPriorities]*idlePull
	b.idleQueues = queues
	ips := b.armIdleLocked(queues, buf[:0])
	b.mu.Unlock()
	b.sendIdle(ips)
	return wake, nil
}

func (b *Broker) wakeLocked() {
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

func (b *Broker) onWake(m *nats.Msg) {
	// 'l': tasks enqueued or moved ("l", level, queue); 'e': a batch
	// enqueued ("e", level, the queue's length in two bytes, queue, batch
	// ID); 'w': a retry or an expired lease; 'p': delayed tasks may be due.
	if len(m.Data) > 0 && m.Data[0] == 'p' {
		b.setPromote()
	}
	qname, batch, level := "", "", -1
	switch d := m.Data; {
	case len(d) > 2 && d[0] == 'l':
		qname, level = string(d[2:]), int(d[1])
	case len(d) > 4 && d[0] == 'e':
		if n := int(d[2])<<8 | int(d[3]); len(d) > 4+n {
			qname, batch, level = string(d[4:4+n]), string(d[4+n:]), int(d[1])
		}
	}
	if level >= 0 {
		b.mu.Lock()
		if q := b.queues[qname]; q != nil && level < queue.NumPriorities {
			q.lastEnq[level].Store(time.Now().UnixNano())
			q.maybe(level)
		}
		b.mu.Unlock()
		if batch != "" {
			b.readAhead(batch)
		}
	} else {
		b.maybeAll()
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

func (b *Broker) onRecheck() {
	b.setPromote()
	b.maybeAll()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wakeLocked()
	if b.wake == nil {
		// Nobody waits: re-armed by the next Notify.
		b.recheckT = nil
		return
	}
	b.recheckT.Reset(b.recheck)
}

// publishWake tells every broker of the prefix that work may be ready;
// promote says delayed tasks may be due. Idle workers sleep on this
// core-NATS wake-up subject, which Enqueue (before its publishes are
// acknowledged, so that claims overlap the store, and again after when the
// store was slow), Retry, expired leases and promoted delayed tasks publish
// to; delays and retries this process scheduled wake it by a timer
// (wakeLater), and Config.IdleRecheck bounds the sleep for what nobody could
// announce (a crashed process's retry or lease). There is no polling loop.
func (b *Broker) publishWake(promote bool) {
	data := []byte{'w'}
	if promote {
		data[0] = 'p'
		b.setPromote()
	}
	b.maybeAll()
	if err := b.nc.Publish(b.wakeSubj, data); err != nil {
		b.log.Warn("natsbroker: publishing a wake-up", "err", err)
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// publishLevelWake tells every broker of the prefix that tasks were
// enqueued at level l of q.
func (b *Broker) publishLevelWake(q *bqueue, l queue.Priority) {
	q.lastEnq[l].Store(time.Now().UnixNano())
	q.maybe(int(l))
	if err := b.nc.Publish(b.wakeSubj, append([]byte{'l', byte(l)}, q.name...)); err != nil {
		b.log.Warn("natsbroker: publishing a wake-up", "err", err)
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// publishEnqueueWake is publishLevelWake for a batch just enqueued: the
// wake-up names the batch too, so that idle workers read its record while
// they claim its tasks (see readAhead).
func (b *Broker) publishEnqueueWake(q *bqueue, l queue.Priority, batch string) {
	if len(q.name) > 0xffff {
		b.publishLevelWake(q, l)
		return
	}
	q.lastEnq[l].Store(time.Now().UnixNano())
	q.maybe(int(l))
	data := make([]byte, 0, 4+len(q.name)+len(batch))
	data = append(data, 'e', byte(l), byte(len(q.name)>>8), byte(len(q.name)))
	data = append(append(data, q.name...), batch...)
	if err := b.nc.Publish(b.wakeSubj, data); err != nil {
		b.log.Warn("natsbroker: publishing a wake-up", "err", err)
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// wakeLater schedules a local wake-up (and a published one, with promote)
// at t.
func (b *Broker) wakeLater(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wakeTimes.push(t)
	b.armLocked()
}

func (b *Broker) armLocked() {
	if len(b.wakeTimes) == 0 {
		return
	}
	next := b.wakeTimes[0]
	if b.wakeTimer != nil && !b.wakeAt.IsZero() && !next.Before(b.wakeAt) {
		return
	}
	b.wakeAt = next
	if b.wakeTimer == nil {
		b.wakeTimer = time.AfterFunc(time.Until(next), b.onWakeTimer)
	} else {
		b.wakeTimer.Reset(time.Until(next))
	}
}

func (b *Broker) onWakeTimer() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	now := time.Now()
	for len(b.wakeTimes) > 0 && !b.wakeTimes[0].After(now) {
		b.wakeTimes.pop()
	}
	b.wakeAt = time.Time{}
	b.armLocked()
	b.mu.Unlock()
	b.setPromote()
	b.publishWake(true)
}

// wakeAfterAck wakes workers now and twice more shortly after: acks and
// naks are processed by the server asynchronously, so a worker woken at
// once may claim before the server has made the task available again.
func (b *Broker) wakeAfterAck() {
	b.publishWake(false)
	now := time.Now()
	b.wakeLater(now.Add(3 * time.Millisecond))
	b.wakeLater(now.Add(30 * time.Millisecond))
}

type timeHeap []time.Time

func (h *timeHeap) push(t time.Time) {
	*h = append(*h, t)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].Before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *timeHeap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].Before(s[m]) {
			m = l
		}
		if r < n && s[r].Before(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
}
