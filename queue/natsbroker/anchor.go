package natsbroker

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A queue's anchor keeps its stream's file store from replacing a file per
// task. The file store keeps a stream in block files of 4 MiB; when an
// acknowledgement removes the last message of the stream's newest block,
// it writes a new block file (with a tombstone for the last sequence) and
// removes the old one. A work queue that empties after every task (a
// lightly loaded queue, lone tasks one after another) paid that per task:
// profiled, a third of all CPU of a lone task's round trip, server and
// clients together, and the next enqueue's store waited for it. The anchor
// is a message on "<prefix>.q.<queue>.anchor" that no consumer takes (the
// level consumers take "<prefix>.q.<queue>.<level>[.<k>]"), so the block
// holding it never empties. Blocks fill, and the stream moves on to a new
// one: a broker that has stored anchorBytes or anchorMsgs in the stream
// since the anchor moves it (moveAnchor). Every broker on the queue does
// this from what it sees, so with many producers the anchor moves more
// often, and a stream whose newest block has no anchor for a while pays
// the files as before: a slower path, never a wrong one.
//
// Depth counts level subjects only, and nothing claims the anchor. A
// bounded queue (Config.MaxDepth or QueueMaxDepth) has none: its bound
// counts the stream's messages. Nor does a stream in memory, which has no
// files.
const (
	anchorTok   = "anchor"
	anchorBytes = 1 << 20
	anchorMsgs  = 4096
)

// anchorSubj is queue q's anchor subject.
func (b *Broker) anchorSubj(q *bqueue) string { return b.prefix + ".q." + q.tok + "." + anchorTok }

// anchored reports whether queue q keeps an anchor.
func (b *Broker) anchored(q *bqueue) bool {
	return b.storage == jetstream.FileStorage && !q.bounded
}

// placeAnchor finds queue q's anchor, or stores the first one. A failure
// leaves the queue without one until an enqueue moves it.
func (b *Broker) placeAnchor(ctx context.Context, q *bqueue) {
	m, err := q.stream.GetLastMsgForSubject(ctx, b.anchorSubj(q))
	switch {
	case err == nil:
		q.anchor.Store(m.Sequence)
	case errors.Is(err, jetstream.ErrMsgNotFound):
		b.storeAnchor(ctx, q, 0)
	}
}

// storeAnchor stores a new anchor for queue q whose last one is at stream
// sequence old (0: none), unless another broker stored one since, whose
// sequence it then learns. It reports whether this one was stored.
func (b *Broker) storeAnchor(ctx context.Context, q *bqueue, old uint64) bool {
	subj := b.anchorSubj(q)
	ack, err := b.js.PublishMsg(ctx, &nats.Msg{Subject: subj}, jetstream.WithExpectLastSequencePerSubject(old))
	switch {
	case err == nil:
		q.anchor.Store(ack.Sequence)
		return true
	case isWrongLastSeq(err):
		if m, err := q.stream.GetLastMsgForSubject(ctx, subj); err == nil {
			q.anchor.Store(m.Sequence)
		}
	default:
		b.log.Debug("natsbroker: storing a queue's anchor", "queue", q.name, "err", err)
	}
	return false
}

// stored counts what an enqueue stored in queue q's stream (messages of
// bytes, the last at stream sequence last), and moves the anchor once
// enough has come after it.
func (b *Broker) stored(q *bqueue, bytes int64, last uint64) {
	if !b.anchored(q) {
		return
	}
	since := q.sinceAnchor.Add(bytes)
	old := q.anchor.Load()
	if since < anchorBytes && last < old+anchorMsgs {
		return
	}
	if !q.anchoring.CompareAndSwap(false, true) {
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		q.anchoring.Store(false)
		return
	}
	b.bg.Go(func() {
		defer q.anchoring.Store(false)
		b.moveAnchor(q, old)
	})
	b.mu.Unlock()
}

// moveAnchor stores a new anchor for queue q after the one at old, then
// removes every anchor but the newest (those of an earlier move a broker
// did not finish too).
func (b *Broker) moveAnchor(q *bqueue, old uint64) {
	ctx, cancel := context.WithTimeout(b.bgCtx, b.readTimeout())
	defer cancel()
	q.sinceAnchor.Store(0)
	if !b.storeAnchor(ctx, q, old) {
		return
	}
	if err := q.stream.Purge(ctx, jetstream.WithPurgeSubject(b.anchorSubj(q)), jetstream.WithPurgeKeep(1)); err != nil {
		b.log.Debug("natsbroker: removing a queue's old anchor", "queue", q.name, "err", err)
	}
}
