package peers

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The raw JetStream peer is the ceiling: a fair, fast gather written by hand on
// JetStream, with nothing of gather's queue (no envelope, priorities, retries,
// batch state or durable results). Tasks go to a work-queue stream (JSStream: a
// message is removed when acknowledged), one message per task, pulled by one
// durable consumer (JSConsumer) with explicit acks. The producer publishes
// asynchronously and waits for every publish ack (JSPublish). For a gather each
// task's JSReply header names a core-NATS subject of its batch under the
// producer's one results subscription (JSResults); the worker acks the task and
// then publishes the task's data, its index, there; the producer counts distinct
// indices until it has all N (so a redelivered task is counted once).
const (
	JSSubject = "bench.task"
	JSReply   = "Bench-Reply" // the header naming a gather's results subject
)

// JSStream is the stream's configuration.
var JSStream = jetstream.StreamConfig{
	Name:      "BENCH",
	Subjects:  []string{JSSubject},
	Retention: jetstream.WorkQueuePolicy,
	Storage:   jetstream.FileStorage,
}

// JSConsumer is the workers' shared consumer's configuration.
var JSConsumer = jetstream.ConsumerConfig{
	Durable:   "workers",
	AckPolicy: jetstream.AckExplicitPolicy,
	AckWait:   30 * time.Second,
}

// JSPublish publishes n tasks asynchronously, with hdr (nil or a gather's
// JSReply), and waits for their publish acks. A failed publish is reported to
// js's PublishAsyncErrHandler, not here.
func JSPublish(ctx context.Context, js jetstream.JetStream, n int, hdr nats.Header) error {
	for i := range n {
		data := binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(i))
		if _, err := js.PublishMsgAsync(&nats.Msg{Subject: JSSubject, Header: hdr, Data: data},
			jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for publish acks: %w", ctx.Err())
	}
}

// JSResults is a producer's one results subscription, on inbox.*: a gather's
// results come to inbox.<its key>. (A subscription per gather would cost a SUB
// and an UNSUB, and the server's subject cache, each time.) Make one with
// NewJSResults; Gather is for one goroutine at a time.
type JSResults struct {
	inbox   string
	seq     uint64 // the last gather's key; Gather's goroutine only
	mu      sync.Mutex
	batches map[string]*jsBatch // by key; guarded by mu
}

// jsBatch is a gather waiting for its results. Only the results subscription's
// goroutine touches seen and left.
type jsBatch struct {
	seen []bool
	left int
	done chan struct{} // closed when every index has a result
}

// NewJSResults subscribes to a new inbox on nc, without pending limits.
func NewJSResults(nc *nats.Conn) (*JSResults, error) {
	r := &JSResults{inbox: nats.NewInbox(), batches: map[string]*jsBatch{}}
	sub, err := nc.Subscribe(r.inbox+".*", r.result)
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Gather calls publish with the JSReply header of a new batch of n tasks and
// waits until each of its n indices has a result.
func (r *JSResults) Gather(ctx context.Context, n int, publish func(nats.Header) error) error {
	r.seq++
	key := strconv.FormatUint(r.seq, 36)
	w := &jsBatch{seen: make([]bool, n), left: n, done: make(chan struct{})}
	r.mu.Lock()
	r.batches[key] = w
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.batches, key)
		r.mu.Unlock()
	}()
	if err := publish(nats.Header{JSReply: []string{r.inbox + "." + key}}); err != nil {
		return err
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return errors.New("jetstream: results missing: " + ctx.Err().Error())
	}
}

// result counts each index of its batch once.
func (r *JSResults) result(m *nats.Msg) {
	r.mu.Lock()
	w := r.batches[m.Subject[len(r.inbox)+1:]]
	r.mu.Unlock()
	if w == nil || len(m.Data) != 8 {
		return // a late duplicate of a finished batch, or not ours
	}
	i := binary.BigEndian.Uint64(m.Data)
	if i < uint64(len(w.seen)) && !w.seen[i] {
		w.seen[i] = true
		if w.left--; w.left == 0 {
			close(w.done)
		}
	}
}
