package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// Subscribe implements queue.Broker on the broker's shared results feed:
// one ordered consumer on every results subject of the prefix, started on
// the first Subscribe, which hands each results message with its stream
// sequence to the live subscriptions of its batch. A subscription registers
// with the feed first, then replays what was stored before by reading its
// batch's results subject from the stream leader, message by message from
// sequence 1 until there is none; a message the feed brings with a sequence
// the replay already passed is dropped. Anything stored after the replay's
// last read has a higher sequence and was stored after the registration, so
// the feed brings it: nothing is missed, nothing is returned twice, and the
// outcomes come in stream order. The feed only makes outcomes arrive
// early: a subscription that hears nothing from it for Config.IdleRecheck
// reads the stream from its cursor again, so a feed that lost messages
// (its consumer reset while a cluster node stopped) costs latency, never an
// outcome. Following a batch therefore costs no consumer of its own: one
// round trip to subscribe (the batch record and the first replay read go
// together) and one per further stored results message to replay, or none
// when this broker just enqueued the batch (see preSubscribe). The first outcome of each index wins; a
// cancel marker stands for every index without an outcome.
func (b *Broker) Subscribe(ctx context.Context, id string) (queue.Subscription, error) {
	if err := b.startFeed(ctx); err != nil {
		return nil, fmt.Errorf("natsbroker: subscribe to batch %s: %w", id, err)
	}
	s := &subscription{b: b, id: id, subj: b.resSubj(id), replay: true, cursor: 1, signal: make(chan struct{}, 1)}
	b.fmu.Lock()
	if b.fclosed {
		b.fmu.Unlock()
		return nil, fmt.Errorf("natsbroker: subscribe to batch %s: %w", id, errClosed)
	}
	if ps := b.pre[id]; ps != nil {
		// Registered by this broker's Enqueue before any task of the
		// batch was published: the feed has brought every outcome
		// stored since, so there is nothing to replay or look up.
		delete(b.pre, id)
		b.fmu.Unlock()
		return ps, nil
	}
	set := b.fsubs[s.subj]
	if set == nil {
		set = map[*subscription]struct{}{}
		b.fsubs[s.subj] = set
	}
	set[s] = struct{}{}
	b.fmu.Unlock()
	// Registered: now the batch record and the replay's first read, at
	// once, so that subscribing costs one round trip, not two.
	var (
		r    *batchRecord
		rerr error
		wg   sync.WaitGroup
	)
	wg.Go(func() { r, _, rerr = b.batchRecord(ctx, id) })
	rctx, cancel := context.WithTimeout(ctx, b.readTimeout())
	m, merr := b.state.GetMsg(rctx, 1, jetstream.WithGetMsgSubject(s.subj))
	cancel()
	wg.Wait()
	if rerr != nil {
		s.Close()
		return nil, fmt.Errorf("natsbroker: subscribe: %w", rerr)
	}
	s.rec, s.seen = r, make([]bool, r.Size)
	switch {
	case merr == nil:
		s.cursor = m.Sequence + 1
		s.decode(m.Data)
	case errors.Is(merr, jetstream.ErrMsgNotFound):
		s.replay = false
	}
	// On another error the replay stays on: Next reads from the cursor.
	return s, nil
}

// Bounds on the subscriptions Enqueue registers ahead (preSubscribe): how
// many are kept, for how long, and the largest batch that gets one (its
// outcomes are buffered until Subscribe takes it or it is dropped).
const (
	preMax  = 64
	preTTL  = 2 * time.Second
	preSize = 4096
)

// preSubscribe registers a subscription to batch id with the results feed
// when the feed is running (this broker has subscribed before), for the
// Subscribe that follows an Enqueue: called before the batch's tasks are
// published, it sees every outcome the feed brings, so that Subscribe costs
// no round trip (no batch record to read, nothing stored before to replay).
// It returns nil when the feed is not running or the batch is large. Kept
// are the preMax newest, for preTTL; an older one is dropped and its
// Subscribe reads the stream as any other. Attach from another broker, or
// after the entry was dropped, is unchanged.
func (b *Broker) preSubscribe(id string, rec *batchRecord) *subscription {
	if rec.Size > preSize {
		return nil
	}
	s := &subscription{b: b, id: id, subj: b.resSubj(id), cursor: 1, signal: make(chan struct{}, 1),
		rec: rec, seen: make([]bool, rec.Size)}
	now := time.Now()
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if b.fcc == nil || b.fclosed || b.pre[id] != nil {
		return nil
	}
	for len(b.preq) > 0 {
		old := b.pre[b.preq[0]]
		if old != nil && len(b.pre) < preMax && now.Sub(old.created) < preTTL {
			break
		}
		if old != nil {
			delete(b.pre, b.preq[0])
			b.unregLocked(old)
		}
		b.preq = b.preq[1:]
	}
	s.created = now
	b.pre[id] = s
	b.preq = append(b.preq, id)
	set := b.fsubs[s.subj]
	if set == nil {
		set = map[*subscription]struct{}{}
		b.fsubs[s.subj] = set
	}
	set[s] = struct{}{}
	return s
}

// dropPre forgets the subscription preSubscribe registered for a batch whose
// enqueue failed.
func (b *Broker) dropPre(id string, s *subscription) {
	if s == nil {
		return
	}
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if b.pre[id] == s {
		delete(b.pre, id)
	}
	b.unregLocked(s)
}

// unregLocked removes s from the feed; b.fmu is held.
func (b *Broker) unregLocked(s *subscription) {
	if set := b.fsubs[s.subj]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(b.fsubs, s.subj)
		}
	}
}

// readTimeout bounds one read of a subscription: the JetStream client's
// default timeout, at most 5 s.
func (b *Broker) readTimeout() time.Duration {
	d := b.js.Options().DefaultTimeout
	if d <= 0 || d > 5*time.Second {
		d = 5 * time.Second
	}
	return d
}

// startFeed starts the shared results feed if it is not running: an
// ordered consumer on "<prefix>.r.*" from the state stream's next sequence
// (so that a reset before its first message still starts there).
func (b *Broker) startFeed(ctx context.Context) error {
	b.fstart.Lock()
	defer b.fstart.Unlock()
	b.fmu.Lock()
	running, closed := b.fcc != nil, b.fclosed
	b.fmu.Unlock()
	if closed {
		return errClosed
	}
	if running {
		return nil
	}
	info, err := b.state.Info(ctx)
	if err != nil {
		return err
	}
	cons, err := b.js.OrderedConsumer(ctx, b.stateName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.prefix + ".r.*"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    info.State.LastSeq + 1,
	})
	if err != nil {
		return err
	}
	cc, err := cons.Consume(b.onFeed, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.log.Warn("natsbroker: results feed", "err", err)
	}))
	if err != nil {
		return err
	}
	b.fmu.Lock()
	defer b.fmu.Unlock()
	if b.fclosed { // closed meanwhile
		cc.Stop()
		<-cc.Closed()
		return errClosed
	}
	b.fcc = cc
	return nil
}

// onFeed hands a results message to the live subscriptions of its batch.
func (b *Broker) onFeed(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		b.log.Error("natsbroker: results feed message without metadata", "err", err)
		return
	}
	fm := feedMsg{seq: meta.Sequence.Stream, data: msg.Data()}
	b.fmu.Lock()
	for s := range b.fsubs[msg.Subject()] {
		s.push(fm)
	}
	b.fmu.Unlock()
}

// stopFeed stops the results feed and wakes every subscription (Close).
func (b *Broker) stopFeed() {
	b.fstart.Lock()
	defer b.fstart.Unlock()
	b.fmu.Lock()
	b.fclosed = true
	cc := b.fcc
	b.fcc = nil
	for _, set := range b.fsubs {
		for s := range set {
			s.wake()
		}
	}
	b.fmu.Unlock()
	if cc != nil {
		cc.Stop()
		<-cc.Closed()
	}
}

type feedMsg struct {
	seq  uint64
	data []byte
}

type subscription struct {
	b       *Broker
	id      string
	subj    string
	rec     *batchRecord
	seen    []bool
	count   int
	pending []queue.Outcome // decoded, not yet returned
	cancel  bool            // a cancel marker was read: fill the rest
	fill    int             // next index to fill after a cancel marker
	replay  bool            // still reading what was stored before
	cursor  uint64          // the next stream sequence to take

	timer   *time.Timer // bounds a wait on the feed (Config.IdleRecheck)
	created time.Time   // when preSubscribe registered it

	mu     sync.Mutex
	inbox  []feedMsg // from the feed, in stream order; at most the batch's results
	signal chan struct{}
}

func (s *subscription) push(m feedMsg) {
	s.mu.Lock()
	s.inbox = append(s.inbox, m)
	s.mu.Unlock()
	s.wake()
}

// wake signals Next; the buffer of one keeps a signal sent while Next is
// not waiting, and a full buffer already holds one.
func (s *subscription) wake() {
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *subscription) Size() int     { return s.rec.Size }
func (s *subscription) Kind() string  { return s.rec.Kind }
func (s *subscription) Queue() string { return s.rec.Queue }

func (s *subscription) Close() error {
	if s.timer != nil {
		s.timer.Stop()
	}
	b := s.b
	b.fmu.Lock()
	b.unregLocked(s)
	b.fmu.Unlock()
	return nil
}

var canceledFailure = queue.Failure{Code: queue.CodeCanceled, Message: "batch canceled"}

func (s *subscription) Next(ctx context.Context, dst []queue.Outcome) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for {
		n := 0
		for n < len(dst) && len(s.pending) > 0 {
			dst[n] = s.pending[0]
			s.pending = s.pending[1:]
			n++
		}
		for s.cancel && n < len(dst) && s.fill < len(s.seen) {
			if !s.seen[s.fill] {
				s.seen[s.fill] = true
				s.count++
				f := canceledFailure
				dst[n] = queue.Outcome{Index: s.fill, Err: &f}
				n++
			}
			s.fill++
		}
		if n > 0 {
			return n, nil
		}
		if s.count == len(s.seen) {
			return 0, io.EOF
		}
		s.pending = s.pending[:0]
		if s.replay {
			// Each read is bounded on its own: a request whose reply was
			// lost (its server stopped, the connection moved to another
			// node) is asked again rather than waited for until ctx ends.
			rctx, cancel := context.WithTimeout(ctx, s.b.readTimeout())
			m, err := s.b.state.GetMsg(rctx, s.cursor, jetstream.WithGetMsgSubject(s.subj))
			cancel()
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				s.replay = false
			case err != nil && ctx.Err() != nil:
				return 0, context.Cause(ctx)
			case err != nil && rctx.Err() != nil:
				s.b.log.Warn("natsbroker: reading results again after a timeout", "batch", s.id)
			case err != nil:
				return 0, fmt.Errorf("natsbroker: replaying batch %s: %w", s.id, err)
			default:
				s.cursor = m.Sequence + 1
				s.decode(m.Data)
			}
			continue
		}
		s.mu.Lock()
		inbox := s.inbox
		s.inbox = nil
		s.mu.Unlock()
		for _, m := range inbox {
			if m.seq >= s.cursor {
				s.cursor = m.seq + 1
				s.decode(m.data)
			}
		}
		if len(inbox) > 0 {
			continue
		}
		s.b.fmu.Lock()
		closed := s.b.fclosed
		s.b.fmu.Unlock()
		if closed {
			return 0, fmt.Errorf("natsbroker: following batch %s: %w", s.id, errClosed)
		}
		if s.timer == nil {
			s.timer = time.NewTimer(s.b.recheck)
		} else {
			s.timer.Reset(s.b.recheck)
		}
		select {
		case <-s.signal:
		case <-s.timer.C:
			// Nothing from the feed for a while: read the stream from the
			// cursor, in case the feed lost messages (its consumer was
			// reset while a cluster node stopped, or it failed).
			s.replay = true
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// decode adds the outcomes of a results message not seen before to
// pending.
func (s *subscription) decode(data []byte) {
	cancel, err := decodeResults(data, len(s.seen), func(o queue.Outcome) {
		if !s.seen[o.Index] {
			s.seen[o.Index] = true
			s.count++
			s.pending = append(s.pending, o)
		}
	})
	if err != nil {
		s.b.log.Error("natsbroker: skipping a results message that does not decode", "batch", s.id, "err", err)
	}
	if cancel {
		s.cancel = true
	}
}

// ---- dead letters ----

// bury keeps a dead task, with its recorded attempts, in the dead-letter
// subject of its queue.
func (b *Broker) bury(ctx context.Context, c *queue.Completion) error {
	d := c.Delivery
	now := time.Now()
	dl := queue.DeadLetter{Message: d.Message, At: now}
	asub := b.attSubj(d.BatchID, d.Index)
	for seq := uint64(1); ; {
		m, err := b.state.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(asub))
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				b.log.Warn("natsbroker: reading attempts", "task", d.ID(), "err", err)
			}
			break
		}
		var a queue.AttemptError
		if json.Unmarshal(m.Data, &a) == nil {
			dl.Attempts = append(dl.Attempts, a)
		}
		seq = m.Sequence + 1
	}
	if f := c.Outcome.Err; f != nil {
		dl.Attempts = append(dl.Attempts, queue.AttemptError{Attempt: d.Attempt, At: now, Error: string(f.Code) + ": " + f.Message})
	}
	data, err := b.deadLetterData(&dl)
	if err != nil {
		return fmt.Errorf("natsbroker: dead-lettering task %s: %w", d.ID(), err)
	}
	if _, err := b.js.Publish(ctx, b.deadSubj(d.Queue, d.BatchID, d.Index), data); err != nil {
		return fmt.Errorf("natsbroker: dead-lettering task %s: %w", d.ID(), err)
	}
	if err := b.state.Purge(ctx, jetstream.WithPurgeSubject(asub)); err != nil {
		b.log.Warn("natsbroker: purging attempts", "task", d.ID(), "err", err)
	}
	return nil
}

// buryBad dead-letters a task message that does not decode, with the
// reason, records a failure for the tasks its Gather-Task and Gather-Count
// headers name (so their batch still completes; indices past the batch's
// size are ignored), and removes it from the queue.
func (b *Broker) buryBad(ctx context.Context, q *bqueue, msg taskMsg, delivered uint64, reason string) {
	now := time.Now()
	reason = "natsbroker: bad wire data: " + reason
	var dl queue.DeadLetter
	dl.Queue, dl.Payload, dl.At, dl.Attempt = q.name, msg.Data(), now, int(delivered)
	dl.Attempts = []queue.AttemptError{{Attempt: int(delivered), At: now, Error: reason}}
	id := msg.Headers().Get(hdrTask)
	batch, index, err := queue.ParseTaskID(id)
	if err == nil {
		err = checkID(batch) // a subject is built from it
	}
	if err == nil {
		dl.BatchID, dl.Index = batch, index
		count := 1
		if c := msg.Headers().Get(hdrCount); c != "" {
			if k, err := strconv.Atoi(c); err == nil && k > 1 && k <= maxPack {
				count = k
			}
		}
		if rec, _, err := b.batchRecord(ctx, batch); err == nil {
			count = min(count, rec.Size-index)
		}
		buf := startResults(nil, resOutcomes)
		for i := range max(count, 0) {
			buf = appendOutcome(buf, &queue.Outcome{Index: index + i, Err: &queue.Failure{Code: queue.CodeBadInput, Message: reason, Attempts: int(delivered)}})
		}
		if count > 0 { // else not a task of that batch
			if _, err := b.js.Publish(ctx, b.resSubj(batch), buf); err != nil {
				b.log.Error("natsbroker: recording the failure of a bad task message", "task", id, "err", err)
			}
		}
	} else {
		seq := uint64(0)
		if meta, err := msg.Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
		dl.BatchID = "bad-" + q.tok + "-" + strconv.FormatUint(seq, 10)
		reason += fmt.Sprintf(" (and header %s is %q: %v)", hdrTask, clip(id), err)
		dl.Attempts[0].Error = reason
	}
	b.log.Error("natsbroker: dead-lettering a task message", "queue", q.name, "task", clip(id), "reason", reason)
	data, err := b.deadLetterData(&dl)
	if err != nil {
		b.log.Error("natsbroker: dead-lettering a bad task message", "err", err)
		_ = msg.Term()
		return
	}
	if _, err := b.js.Publish(ctx, b.deadSubj(q.name, dl.BatchID, dl.Index), data); err != nil {
		// Keep it rather than lose it; it comes back later.
		b.log.Error("natsbroker: dead-lettering a bad task message", "err", err)
		_ = msg.NakWithDelay(b.ackWait)
		return
	}
	_ = msg.Term()
}

// inputNotKept starts the note of a dead letter stored without its input.
const inputNotKept = "natsbroker: input not kept"

// deadLetterData encodes dl for the state stream within the server's
// max_payload: a dead letter that would not fit (its input is stored in
// base64, its attempts' errors up to 64 KiB each) is stored without its
// input and, if need be, without its oldest attempts' errors, with a note
// saying so; such a dead letter can be listed, not re-driven. Storing it
// whole would fail, and so would the Complete that buries it, forever.
func (b *Broker) deadLetterData(dl *queue.DeadLetter) ([]byte, error) {
	limit := int(b.nc.MaxPayload()) - 256
	data, err := json.Marshal(dl)
	if err != nil || len(data) <= limit {
		return data, err
	}
	note := queue.AttemptError{At: dl.At, Error: fmt.Sprintf("%s: the dead letter was %d bytes, past the server's max_payload of %d: its input (%d bytes)",
		inputNotKept, len(data), b.nc.MaxPayload(), len(dl.Payload))}
	atts := dl.Attempts
	dl.Payload = nil
	for dropped := 0; ; dropped++ {
		n := note
		if dropped > 0 {
			n.Error += fmt.Sprintf(" and the errors of its %d oldest attempts are not kept", dropped)
		} else {
			n.Error += " is not kept"
		}
		dl.Attempts = append(slices.Clone(atts[dropped:]), n)
		if data, err = json.Marshal(dl); err != nil || len(data) <= limit || dropped == len(atts) {
			break
		}
	}
	if err == nil && len(data) > limit {
		err = fmt.Errorf("dead letter of %d bytes past the server's max_payload of %d", len(data), b.nc.MaxPayload())
	}
	return data, err
}

// DeadLetters implements queue.DeadLetterer.
func (b *Broker) DeadLetters(ctx context.Context, name, after string, limit int) ([]queue.DeadLetter, error) {
	filter := b.prefix + ".d." + tok(name) + ".>"
	seq := uint64(1)
	if after != "" {
		batch, index, err := queue.ParseTaskID(after)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		if checkID(batch) != nil || b.CheckQueue(name) != nil {
			return nil, nil // no dead letter has that ID or queue
		}
		m, err := b.state.GetLastMsgForSubject(ctx, b.deadSubj(name, batch, index))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		seq = m.Sequence + 1
	}
	if b.CheckQueue(name) != nil {
		return nil, nil // no queue has that name
	}
	var out []queue.DeadLetter
	for limit <= 0 || len(out) < limit {
		m, err := b.state.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		seq = m.Sequence + 1
		var dl queue.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			b.log.Error("natsbroker: skipping a dead letter that does not decode", "seq", m.Sequence, "err", err)
			continue
		}
		out = append(out, dl)
	}
	return out, nil
}

// Redrive implements queue.DeadLetterer. It removes the dead letter first
// (so two concurrent redrives enqueue once) and puts it back if the enqueue
// fails.
func (b *Broker) Redrive(ctx context.Context, id string) (string, error) {
	batch, index, err := queue.ParseTaskID(id)
	if err != nil {
		return "", fmt.Errorf("natsbroker: redrive: %w", err)
	}
	if err := checkID(batch); err != nil {
		return "", fmt.Errorf("natsbroker: redrive %s: %w", clip(id), err)
	}
	subj := b.prefix + ".d.*." + tok(batch) + "." + strconv.Itoa(index)
	m, err := b.state.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, err)
	}
	var dl queue.DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		return "", fmt.Errorf("natsbroker: redrive %s: bad dead letter: %v", id, err)
	}
	for _, a := range dl.Attempts {
		if strings.HasPrefix(a.Error, inputNotKept) {
			return "", fmt.Errorf("natsbroker: redrive %s: %w: the dead letter does not hold its input (too large to keep): it can be listed, not re-driven", id, queue.ErrBadInput)
		}
	}
	if err := b.state.DeleteMsg(ctx, m.Sequence); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", fmt.Errorf("natsbroker: redrive %s: %w", id, queue.ErrNotFound)
		}
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, err)
	}
	msg := &dl.Message
	s := &queue.Submission{
		BatchID: newID(), Queue: msg.Queue, Kind: msg.Kind, Priority: msg.Priority, MaxAttempts: max(msg.MaxAttempts, 1),
		Timeout: msg.Timeout, BackoffMin: msg.BackoffMin, BackoffMax: msg.BackoffMax, EnqueuedAt: time.Now(),
		Headers: msg.Headers, Payloads: [][]byte{msg.Payload},
	}
	nid, err := b.Enqueue(ctx, s)
	if err != nil {
		if _, perr := b.js.PublishMsg(context.WithoutCancel(ctx), &nats.Msg{Subject: m.Subject, Data: m.Data}); perr != nil {
			b.log.Error("natsbroker: restoring a dead letter after a failed redrive", "task", id, "err", perr)
		}
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, err)
	}
	return nid, nil
}
