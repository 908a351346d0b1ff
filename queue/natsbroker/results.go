package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

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
// when this broker just enqueued the batch (see preSubscribe). The first
// outcome of each index wins: every reader reads the results subject in
// stream order and drops later ones, so a task that ran twice is recorded
// once, and every process agrees on which run counts. A cancel marker
// stands for every index without an outcome before it.
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
		b.takePreLocked(id, ps)
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
// many are kept, for how long, the bytes they may hold together until
// Subscribe takes them (a flag per task, and the results the feed brought;
// the oldest is dropped beyond it), and the largest batch that gets one.
const (
	preMax   = 64
	preTTL   = 2 * time.Second
	preBytes = 32 << 20
	preSize  = 1 << 20
)

// preSubscribe registers a subscription to batch id with the results feed
// when the feed is running (this broker has subscribed before), for the
// Subscribe that follows an Enqueue: called before the batch's tasks are
// published, it sees every outcome the feed brings, so that Subscribe costs
// no round trip (no batch record to read, nothing stored before to replay).
// It returns nil when the feed is not running or the batch is larger than
// preSize. Kept are the preMax newest, for preTTL, while the results they
// hold stay under preBytes; an older one is dropped and its Subscribe reads
// the stream as any other. Attach from another broker, or after the entry
// was dropped, is unchanged.
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
		b.dropPreLocked(b.preq[0], old)
		b.preq = b.preq[1:]
	}
	s.created, s.ahead, s.held = now, true, len(s.seen)
	b.preHeld += s.held
	b.pre[id] = s
	b.preq = append(b.preq, id)
	set := b.fsubs[s.subj]
	if set == nil {
		set = map[*subscription]struct{}{}
		b.fsubs[s.subj] = set
	}
	set[s] = struct{}{}
	if b.trimPreLocked(); !s.ahead {
		return nil // dropped at once: too large beside the others
	}
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
	b.dropPreLocked(id, s)
	b.unregLocked(s)
}

// takePreLocked hands over s, registered ahead for batch id, to the caller;
// b.fmu is held. Its results stay with it, no longer counted as held ahead.
func (b *Broker) takePreLocked(id string, s *subscription) {
	if s == nil || b.pre[id] != s {
		return
	}
	delete(b.pre, id)
	b.preHeld -= s.held
	s.ahead, s.held = false, 0
}

// dropPreLocked forgets s, registered ahead for batch id, and unregisters
// it from the feed; b.fmu is held. Its batch's Subscribe reads the stream.
func (b *Broker) dropPreLocked(id string, s *subscription) {
	if s == nil || b.pre[id] != s {
		return
	}
	b.takePreLocked(id, s)
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
		if s.ahead {
			s.held += len(fm.data)
			b.preHeld += len(fm.data)
		}
	}
	b.trimPreLocked()
	b.fmu.Unlock()
}

// trimPreLocked drops the oldest subscriptions registered ahead while they
// hold more than preBytes; b.fmu is held.
func (b *Broker) trimPreLocked() {
	for b.preHeld > preBytes && len(b.preq) > 0 { // every byte held is of one in preq
		b.dropPreLocked(b.preq[0], b.pre[b.preq[0]])
		b.preq = b.preq[1:]
	}
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
	pending []queue.Outcome // decoded; those from head on not yet returned
	head    int
	cancel  bool   // a cancel marker was read: fill the rest
	fill    int    // next index to fill after a cancel marker
	replay  bool   // still reading what was stored before
	cursor  uint64 // the next stream sequence to take

	timer   *time.Timer // bounds a wait on the feed (Config.IdleRecheck)
	created time.Time   // when preSubscribe registered it
	ahead   bool        // registered ahead, not yet taken by Subscribe (b.fmu)
	held    int         // bytes held while ahead: len(seen), and inbox's (b.fmu)

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
		n := copy(dst, s.pending[s.head:])
		s.head += n
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
		s.pending, s.head = s.pending[:0], 0 // all returned: reuse the room
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
