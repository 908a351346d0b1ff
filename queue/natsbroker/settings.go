package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// The settings every process of a prefix must agree on, recorded in the
// state stream's metadata (AckWait) or the queue streams' (the bound), or
// read from the streams themselves.
const (
	mdAckWait  = "gather.ack_wait"
	mdMaxDepth = "gather.max_depth" // a number, or "none" for the default
)

// setFlags records which shared settings the Config set (see Config).
type setFlags struct {
	replicas, memory, ackWait, retention, stateMaxB, stateMaxM bool
}

// minAckWait is the shortest Config.AckWait: a worker heartbeats every
// third of it.
const minAckWait = 10 * time.Millisecond

// minRetention is the shortest Config.Retention: batch state kept for less
// would be gone before most awaits read it.
const minRetention = time.Second

// minIdleRecheck is the shortest Config.IdleRecheck: an idle worker claims
// at least this long apart (a nanosecond was a busy loop).
const minIdleRecheck = time.Millisecond

// setupState creates the state stream, "<prefix>_state": one limits stream
// (kept for Config.Retention) that holds the rest, one subject per use: the
// batch record (size, kind, queue, cancelled; written first-write-wins, so
// a batch ID is used once), the batch's results (several outcomes per
// message, written before the task is acknowledged), idempotency keys
// (first-write-wins with a per-message TTL), the errors of failed attempts,
// and dead letters.
//
// It creates the stream, or agrees with the one another
// process created (see Config): the settings this broker's Config left at
// their zero value take the recorded ones, and one it set that differs is
// an error naming both.
func (b *Broker) setupState(ctx context.Context) (jetstream.Stream, error) {
	want := func() jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        b.stateName,
			Description: "gather task queue: batches, results, idempotency keys, attempts, dead letters",
			Subjects:    []string{b.prefix + ".b.*", b.prefix + ".r.*", b.prefix + ".i.*.*", b.prefix + ".a.*.*", b.prefix + ".d.*.*.*"},
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      b.retention,
			MaxBytes:    b.stateMaxB,
			MaxMsgs:     b.stateMaxM,
			Discard:     jetstream.DiscardOld,
			Storage:     b.storage,
			Replicas:    b.replicas,
			AllowMsgTTL: true,
			// No direct gets: on a cluster they may be answered by a replica
			// that has not caught up, and a batch just enqueued would read as
			// not found. Reads go through the stream leader.
			AllowDirect: false,
			Metadata:    map[string]string{mdAckWait: b.ackWait.String()},
		}
	}
	for range 3 {
		st, err := b.js.Stream(ctx, b.stateName)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = b.js.CreateStream(ctx, want())
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another process made it meanwhile: agree with it
			}
		}
		if err != nil {
			return nil, fmt.Errorf("natsbroker: setting up stream %s: %w", b.stateName, err)
		}
		have := st.CachedInfo().Config
		if err := b.agreeState(&have); err != nil {
			return nil, err
		}
		w := want()
		if !sameState(&have, &w) {
			if st, err = b.js.UpdateStream(ctx, w); err != nil {
				return nil, fmt.Errorf("natsbroker: updating stream %s: %w", b.stateName, err)
			}
		}
		return st, nil
	}
	return nil, fmt.Errorf("natsbroker: setting up stream %s: created and deleted concurrently", b.stateName)
}

// agreeState takes the recorded shared settings of the prefix from its
// state stream's config for those the Config left unset, and returns an
// error naming both values of each one it set differently.
func (b *Broker) agreeState(have *jetstream.StreamConfig) error {
	var errs []error
	agree := func(field string, set bool, ours, theirs any, take func()) {
		if ours == theirs {
			return
		}
		if set {
			errs = append(errs, fmt.Errorf("natsbroker: %w: Config.%s is %v but prefix %q has %v, recorded by the process that set up stream %s: every process of a prefix must agree; leave it 0 to take the recorded value, or use another prefix",
				queue.ErrBadConfig, field, ours, b.prefix, theirs, b.stateName))
			return
		}
		take()
	}
	agree("Replicas", b.set.replicas, b.replicas, have.Replicas, func() { b.replicas = have.Replicas })
	agree("Memory", b.set.memory, b.storage == jetstream.MemoryStorage, have.Storage == jetstream.MemoryStorage,
		func() { b.storage = have.Storage })
	agree("Retention", b.set.retention, b.retention, have.MaxAge, func() { b.retention = have.MaxAge })
	// A stream set up before the caps were recorded has none: it gets ours.
	recorded := have.Metadata[mdAckWait] != ""
	if have.MaxBytes > 0 || recorded {
		agree("StateMaxBytes", b.set.stateMaxB, b.stateMaxB, have.MaxBytes, func() { b.stateMaxB = have.MaxBytes })
	}
	if have.MaxMsgs > 0 || recorded {
		agree("StateMaxMsgs", b.set.stateMaxM, b.stateMaxM, have.MaxMsgs, func() { b.stateMaxM = have.MaxMsgs })
	}
	if v, ok := have.Metadata[mdAckWait]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < minAckWait {
			errs = append(errs, fmt.Errorf("natsbroker: stream %s: metadata %s is %q: want a duration of at least %v", b.stateName, mdAckWait, v, minAckWait))
		} else {
			agree("AckWait", b.set.ackWait, b.ackWait, d, func() { b.ackWait = d })
		}
	}
	return errors.Join(errs...)
}

// sameState reports whether the state stream's config has what w sets.
func sameState(have, w *jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, w.Subjects) && have.Description == w.Description &&
		have.MaxAge == w.MaxAge && have.MaxBytes == w.MaxBytes && have.MaxMsgs == w.MaxMsgs &&
		have.Discard == w.Discard && have.Replicas == w.Replicas && have.AllowMsgTTL == w.AllowMsgTTL &&
		have.AllowDirect == w.AllowDirect && have.Metadata[mdAckWait] == w.Metadata[mdAckWait]
}

// errRace is setupQueue's: a stream was created meanwhile by another
// process; agree with it.
var errRace = errors.New("natsbroker: stream created concurrently")

// setupQueue creates q's two work-queue streams, or agrees with the ones
// another process created (see Config): the levels, and the delayed tasks,
// apart so that promoting a delayed task into a level needs no place under
// the bound that the delayed task itself holds. It sets q.maxDepth and
// q.pack from the bound agreed on.
func (b *Broker) setupQueue(ctx context.Context, q *bqueue) error {
	sname, dname := b.prefix+"_q_"+q.tok, b.prefix+"_qd_"+q.tok
	for range 3 {
		q.maxDepth, q.pack = b.maxDepth, b.pack
		n, bounded := b.qdepth[q.name]
		if bounded {
			q.maxDepth = n
		}
		set := bounded || b.bounded // the bound this process's Config gives
		// The bound recorded with the levels' stream by the first
		// process that used the queue: taken when this Config gives
		// none, an error naming both when it gives another.
		recorded := "none"
		if set {
			recorded = strconv.Itoa(q.maxDepth)
		}
		exists := false
		switch st, err := b.js.Stream(ctx, sname); {
		case err == nil:
			exists = true
			have := st.CachedInfo().Config
			theirs, ok := have.Metadata[mdMaxDepth]
			if !ok { // set up before bounds were recorded
				theirs = "none"
				if have.MaxMsgs != DefaultMaxDepth {
					theirs = strconv.FormatInt(have.MaxMsgs, 10)
				}
			}
			switch {
			case theirs == recorded:
			case set:
				return fmt.Errorf("natsbroker: %w: queue %q: this Config gives it a bound of %s but its stream %s has %s, recorded by the process that set it up: every process of a prefix must agree; leave the queue out of MaxDepth and QueueMaxDepth to take the recorded bound, or edit the stream (metadata %s and max messages)",
					queue.ErrBadConfig, clip(q.name), recorded, sname, boundText(theirs), mdMaxDepth)
			case theirs == "none":
				q.maxDepth = DefaultMaxDepth
			default:
				n, err := strconv.Atoi(theirs)
				if err != nil || n < 1 {
					return fmt.Errorf("natsbroker: stream %s: metadata %s is %q: want a positive number or \"none\"", sname, mdMaxDepth, theirs)
				}
				q.maxDepth, set, recorded = n, true, theirs
			}
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Errorf("natsbroker: reading stream %s: %w", sname, err)
		}
		q.bounded = set
		if set {
			q.pack = 1 // a bound counts messages: one task each
		}
		mkStream := func(name, what, subjects string) (jetstream.Stream, error) {
			cfg := jetstream.StreamConfig{
				Name:        name,
				Description: "gather task queue " + strconv.Quote(q.name) + what,
				Subjects:    []string{subjects},
				Retention:   jetstream.WorkQueuePolicy,
				MaxMsgs:     int64(q.maxDepth),
				Discard:     jetstream.DiscardNew,
				Storage:     b.storage,
				Replicas:    b.replicas,
				Duplicates:  time.Minute,
				Metadata:    map[string]string{mdMaxDepth: recorded},
			}
			if exists {
				return b.js.CreateOrUpdateStream(ctx, cfg)
			}
			// Created, not updated: a process setting the queue up at
			// the same moment must not overwrite this one's bound.
			st, err := b.js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return nil, errRace
			}
			return st, err
		}
		var wg sync.WaitGroup
		var serr, derr error
		wg.Go(func() { q.stream, serr = mkStream(sname, "", b.prefix+".q."+q.tok+".>") })
		wg.Go(func() { q.dstream, derr = mkStream(dname, ", delayed tasks", b.prefix+".qd."+q.tok+".>") })
		wg.Wait()
		if errors.Is(serr, errRace) || errors.Is(derr, errRace) {
			continue
		}
		if serr != nil {
			return fmt.Errorf("natsbroker: creating stream %s: %w", sname, serr)
		}
		if derr != nil {
			return fmt.Errorf("natsbroker: creating stream %s: %w", dname, derr)
		}
		return nil
	}
	return fmt.Errorf("natsbroker: setting up queue %q: its streams were created and changed concurrently", clip(q.name))
}

// boundText describes a recorded bound for an error.
func boundText(recorded string) string {
	if recorded == "none" {
		return "no bound"
	}
	return "a bound of " + recorded
}
