package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// suspectWindow is how long after its connection was re-established (or a
// claim failed, or a check found finished tasks) a broker checks every
// message it claims.
const suspectWindow = 5 * time.Second

// suspect reports whether a message delivered delivered times, with tasks
// carrying attempts, may hold tasks that have an outcome.
//
// After a server crash the consumers deliver again messages whose tasks
// have run: those held when it stopped, whose acknowledgements were lost,
// after AckWait (as a further delivery), and those delivered in the last
// moment before it stopped, which the consumer had not yet stored as
// delivered (as a first delivery, at once: a consumer stores what it
// delivered about ten times a second). Publishes a client buffered while
// it was disconnected (outcomes, moves, acknowledgements) reach the
// restarted server. A claim therefore checks a message that may have been
// delivered before against its batch's recorded outcomes: a delivery count
// above one, tasks that carry attempts (moved out of another message), or
// any message while this broker is suspicious (suspectWindow after its
// connection was re-established or a claim failed, and after a check that
// found finished tasks). Finished tasks are never handed out: a message all
// of whose tasks are finished is acknowledged; one only some of whose tasks
// are has the others moved to messages of their own and is acknowledged
// once they are stored. Since copies of one task claimed close together all
// pass, a task of a checked message is looked up again just before it runs
// (Finished), in what this broker knows. A message that cannot be checked
// (the batch's record or results cannot be read: the server is going away
// or just came back) is handed back for a second, and one whose check
// outlasted the server's lease on it is left to come again. A check costs a
// round trip to the state stream's leader, and a short-lived consumer to
// read the batch's results when some were stored since this broker last
// read them; the first check of a batch reads all of it. Away from crashes,
// only retried and handed-back tasks are checked.
func (b *Broker) suspect(delivered uint64, attempts int) bool {
	return delivered > 1 || attempts > 0 || time.Now().UnixNano() < b.suspectUntil.Load()
}

// suspectFor has the broker check every message it claims for
// suspectWindow from now.
func (b *Broker) suspectFor() {
	b.suspectUntil.Store(time.Now().Add(suspectWindow).UnixNano())
}

// moveHeader is taskHeader for tasks [first, first+k) of a batch moved out
// of the message they were in, with the message ID that makes a second move
// of the same tasks a duplicate: the range, not the message it came from,
// names it, since after a crash the same tasks can come in two messages
// (one moved before the crash, the one it came from delivered again).
// Dropping such a copy loses nothing: the first one stays until its tasks
// have outcomes or have moved on.
//
// Tasks moved out of a message (the part a claim had no room for, a retried
// task of a pack, the unfinished part of an expired lease or of a message
// with finished tasks) carry a message ID made of their range, so that when
// the message comes again (its acknowledgement lost in a crash) and the
// same tasks move again within the queue's duplicate window (a minute), the
// stream drops the copy instead of starting a second chain of moves.
func moveHeader(batch string, first, k int) nats.Header {
	h := taskHeader(batch, first, k)
	h[jetstream.MsgIDHeader] = []string{"mv." + h.Get(hdrTask) + "." + strconv.Itoa(k)}
	return h
}

// finished is what a broker knows of a batch's recorded outcomes: which
// tasks have one, read from its results subject up to cursor, and those
// this broker recorded itself (see markFinished). Knowledge only grows: an
// outcome, once recorded, stays the task's. The bits are atomic so that a
// worker's check before it runs a task (Finished) and a Complete never wait
// for a read of the stream, which holds mu.
type finished struct {
	mu     sync.Mutex // held while reading the stream
	bits   []atomic.Uint64
	all    atomic.Bool // a cancel marker was read: every task has its outcome
	cursor uint64      // the next stream sequence to read (0: none read)
}

func (f *finished) has(i int) bool {
	return f.all.Load() || (i >= 0 && i/64 < len(f.bits) && f.bits[i/64].Load()&(1<<(i%64)) != 0)
}

func (f *finished) set(i int) {
	if i >= 0 && i/64 < len(f.bits) {
		f.bits[i/64].Or(1 << (i % 64))
	}
}

// of returns which of tasks [first, first+k) are finished, and how many.
func (f *finished) of(first, k int) ([]bool, int) {
	out := make([]bool, k)
	n := 0
	for j := range out {
		if f.has(first + j) {
			out[j] = true
			n++
		}
	}
	return out, n
}

// addFinished reads a results message of a batch of size tasks.
func (b *Broker) addFinished(f *finished, id string, size int, data []byte) {
	cancel, err := decodeResults(data, size, func(o queue.Outcome) { f.set(o.Index) })
	if err != nil {
		b.log.Warn("natsbroker: skipping a results message that does not decode", "batch", id, "err", err)
	}
	if cancel {
		f.all.Store(true)
		b.markCanceled(id)
	}
}

// finishedFor returns what this broker knows of the outcomes of batch id
// (size tasks), keeping it from now on.
func (b *Broker) finishedFor(id string, size int) *finished {
	b.mu.Lock()
	defer b.mu.Unlock()
	bi := b.batches[id]
	if bi == nil {
		bi = b.addBatchLocked(id, time.Now())
	}
	if bi.fin == nil || len(bi.fin.bits)*64 < size {
		bi.fin = &finished{bits: make([]atomic.Uint64, (size+63)/64)}
		b.checked.Store(true)
	}
	return bi.fin
}

// markFinished notes the outcomes of cs, just recorded by this broker, in
// what it knows of their batches' outcomes, for the batches it keeps that
// knowledge of (those it checked a claimed message of): a copy of one of
// those tasks that a runner holds is then dropped before it runs (see
// Finished).
func (b *Broker) markFinished(cs []queue.Completion) {
	if !b.checked.Load() {
		return // no batch's outcomes kept (a broker that never checked a claim)
	}
	var (
		id string
		f  *finished
	)
	for k := range cs {
		d := cs[k].Delivery
		if k == 0 || d.BatchID != id {
			id, f = d.BatchID, nil
			b.mu.Lock()
			if bi := b.batches[id]; bi != nil {
				f = bi.fin
			}
			b.mu.Unlock()
		}
		if f != nil {
			f.set(d.Index)
		}
	}
}

var _ queue.Rechecker = (*Broker)(nil)

// Finished implements queue.Rechecker. After a crash the same task can be
// claimed in two messages (see suspect): each passes its check when claimed
// if neither has run yet, and a runner holding one runs it after the other
// ran. So a task from a message that was checked is looked up again, in
// what this broker knows (no round trip), just before it runs: one whose
// outcome is recorded (by this broker, or read since) is settled without
// recording anything, as Complete would, and does not run.
func (b *Broker) Finished(d *queue.Delivery) bool {
	l, ok := d.Ref.(*lease)
	if !ok || l.b != b || d.Seq >= uint64(len(l.of)) {
		return false
	}
	lm := &l.msgs[l.of[d.Seq]]
	if lm.fin == nil || !lm.fin.has(d.Index) {
		return false
	}
	if err := b.settle(l.take(d.Seq, nil, time.Now())); err != nil {
		b.log.Warn("natsbroker: settling a task whose outcome is recorded", "task", d.ID(), "err", err)
	}
	return true
}

// finishedOf returns which of tasks [first, first+k) of the batch id (size
// tasks) whose outcomes f holds have a recorded outcome, with how many do;
// it reads what was recorded since this broker last looked.
func (b *Broker) finishedOf(ctx context.Context, f *finished, id string, size, first, k int) ([]bool, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if out, n := f.of(first, k); n == k {
		return out, n, nil // finished stays finished: nothing to ask
	}
	rctx, cancel := context.WithTimeout(ctx, 2*b.readTimeout())
	defer cancel()
	subj := b.resSubj(id)
	last, err := b.state.GetLastMsgForSubject(rctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return make([]bool, k), 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if last.Sequence < f.cursor {
		out, n := f.of(first, k)
		return out, n, nil
	}
	b.addFinished(f, id, size, last.Data)
	if f.cursor == last.Sequence {
		f.cursor++
	}
	if out, n := f.of(first, k); n == k || f.cursor > last.Sequence {
		return out, n, nil
	}
	// Results were stored since the last read: read them all, with a
	// consumer of their own (one message a round trip would not do for a
	// batch with thousands of results messages).
	cons, err := b.state.CreateConsumer(rctx, jetstream.ConsumerConfig{
		FilterSubject:     subj,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(f.cursor, 1),
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, 0, err
	}
	defer func() {
		if err := b.state.DeleteConsumer(context.WithoutCancel(rctx), cons.CachedInfo().Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			b.log.Warn("natsbroker: deleting a consumer that read a batch's results", "batch", id, "err", err)
		}
	}()
	// Until the last results message is read: what is ready at once, and
	// when nothing is (a server just restarted may answer "none" though
	// the consumer has messages to deliver), a wait for the next one, of
	// which there is at least one.
	for f.cursor <= last.Sequence {
		got, err := b.fetchFinished(cons.FetchNoWait, 512, f, id, size)
		if err == nil && got == 0 {
			got, err = b.fetchFinished(func(n int) (jetstream.MessageBatch, error) {
				return cons.Fetch(n, jetstream.FetchMaxWait(b.readTimeout()))
			}, 1, f, id, size)
		}
		if err != nil {
			return nil, 0, err
		}
		if got == 0 {
			break
		}
	}
	if f.cursor <= last.Sequence {
		return nil, 0, fmt.Errorf("reading the results of batch %s: stopped at sequence %d of %d", id, f.cursor, last.Sequence)
	}
	out, n := f.of(first, k)
	return out, n, nil
}

// fetchFinished reads up to n results messages with fetch into f.
func (b *Broker) fetchFinished(fetch func(n int) (jetstream.MessageBatch, error), n int, f *finished, id string, size int) (int, error) {
	mb, err := fetch(n)
	if err != nil {
		return 0, err
	}
	got := 0
	for m := range mb.Messages() {
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		got++
		b.addFinished(f, id, size, m.Data())
		f.cursor = meta.Sequence.Stream + 1
	}
	if err := mb.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
		return got, err
	}
	return got, nil
}

// checkLater hands back a message that could not be checked: most likely
// the server is going away or just came back. It comes again in a moment
// (when this hand-back is lost, after AckWait), and is checked then.
func (b *Broker) checkLater(msg taskMsg) {
	if err := msg.NakWithDelay(min(time.Second, b.ackWait)); err != nil {
		b.log.Warn("natsbroker: handing back a message", "err", err)
	}
	b.suspectFor()
}

// dropFinished checks a claimed message against its batch's recorded
// outcomes (its envelope in c.e, not read further yet; attempt is this
// delivery's). It reports whether it handled the message: acknowledged, all
// its tasks being finished, or its unfinished tasks moved to messages of
// their own and then acknowledged (or handed back whole if a move failed).
// When the outcomes cannot be read, the message is handed back.
func (c *claim) dropFinished(ctx context.Context, msg taskMsg, size, attempt int) bool {
	b, e := c.b, &c.e
	c.fin = b.finishedFor(e.BatchID, size)
	fin, n, err := b.finishedOf(ctx, c.fin, e.BatchID, size, e.Index, e.Count)
	if err != nil {
		b.log.Warn("natsbroker: reading a batch's outcomes to skip its finished tasks; handing the message back", "batch", e.BatchID, "err", err)
		b.checkLater(msg)
		return true
	}
	if n == 0 {
		return false
	}
	b.suspectFor() // more of the same may come
	c.skipped += n
	var fs []jetstream.PubAckFuture
	if n < e.Count {
		payloads := make([][]byte, e.Count)
		for j := range payloads {
			payloads[j] = e.next()
		}
		for j := 0; j < e.Count; {
			if fin[j] {
				j++
				continue
			}
			run := 1
			for j+run < e.Count && !fin[j+run] {
				run++
			}
			m := e.Message
			m.Index += j
			f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: b.levelSubj(c.q, c.level, run),
				Data: appendEnvelope(nil, &m, attempt-1, e.Due, payloads[j:j+run]), Header: moveHeader(m.BatchID, m.Index, run)})
			if err != nil {
				b.log.Warn("natsbroker: moving the unfinished tasks of a message; handing it back", "err", err)
				_ = msg.Nak()
				return true
			}
			fs = append(fs, f)
			c.moved += run
			j += run
		}
	}
	for _, f := range fs {
		if err := b.awaitPub(f); err != nil {
			b.log.Warn("natsbroker: moving the unfinished tasks of a message; handing it back", "err", err)
			_ = msg.Nak()
			return true
		}
	}
	if err := msg.Ack(); err != nil {
		b.log.Warn("natsbroker: acknowledging a message of finished tasks", "err", err)
	}
	return true
}
