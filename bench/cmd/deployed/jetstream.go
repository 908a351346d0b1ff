package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The raw JetStream rows are the ceiling: a fair, fast gather written by hand on
// JetStream, with nothing of gather's queue (no envelope, priorities, retries,
// batch state or durable results), as BenchmarkBroker's jsRig, split into
// processes. Tasks go to a work-queue stream, one message per task, pulled by one
// durable consumer that every worker process shares (explicit acks). The producer
// publishes asynchronously and waits for the publish acks; each task's header names
// a core-NATS subject of its batch under the producer's one inbox subscription; a
// worker acks the task and then publishes the task's index there; the producer
// counts distinct indices until it has all N.
const (
	jsStream  = "BENCH"
	jsSubject = "bench.task"
	jsReply   = "Bench-Reply" // the header naming a batch's result subject
)

// jsSetup creates the stream and the shared consumer, or finds them as another
// process created them.
func jsSetup(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      jsStream,
		Subjects:  []string{jsSubject},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	}); err != nil {
		return nil, err
	}
	return js.CreateOrUpdateConsumer(ctx, jsStream, jetstream.ConsumerConfig{
		Durable:   "workers",
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
	})
}

func jetstreamWorker(ctx context.Context, a addrs) (func(context.Context) error, error) {
	nc, js, err := natsConn(a.nats)
	if err != nil {
		return nil, err
	}
	cons, err := jsSetup(ctx, js)
	if err != nil {
		nc.Close()
		return nil, err
	}
	var failed atomic.Int64
	cc, err := cons.Consume(func(m jetstream.Msg) {
		reply := m.Headers().Get(jsReply)
		if err := m.Ack(); err != nil {
			failed.Add(1)
			return
		}
		if err := nc.Publish(reply, m.Data()); err != nil {
			failed.Add(1)
		}
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return func(context.Context) error {
		cc.Stop()
		<-cc.Closed()
		nc.Close()
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%d acks or result publishes failed", n)
		}
		return nil
	}, nil
}

type jsRig struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	inbox   string
	seq     uint64       // the last batch's key; the producer's goroutine only
	pubErrs atomic.Int64 // failed async publishes
	lastErr atomic.Value // the connection's last asynchronous error (a slow consumer)
	mu      sync.Mutex
	batches map[string]*jsBatch // by key; guarded by mu
}

// jsBatch is a batch waiting for its results. Only the results subscription's
// goroutine touches seen and left.
type jsBatch struct {
	seen []bool
	left int
	done chan struct{} // closed when every index has a result
}

func jetstreamProducer(ctx context.Context, a addrs, _ int) (rig, error) {
	r := &jsRig{inbox: nats.NewInbox(), batches: map[string]*jsBatch{}}
	var err error
	r.nc, err = nats.Connect(a.nats, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		r.lastErr.Store(err)
	}))
	if err != nil {
		return nil, err
	}
	sub, err := r.nc.Subscribe(r.inbox+".*", r.result)
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err == nil {
		r.js, err = jetstream.New(r.nc, jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {
			r.pubErrs.Add(1)
		}))
	}
	if err == nil {
		_, err = jsSetup(ctx, r.js)
	}
	if err != nil {
		r.nc.Close()
		return nil, err
	}
	return r, nil
}

func (r *jsRig) close() { r.nc.Close() }

func (r *jsRig) check() error {
	if err, _ := r.lastErr.Load().(error); err != nil {
		return fmt.Errorf("asynchronous error: %w", err)
	}
	if n := r.pubErrs.Load(); n > 0 {
		return fmt.Errorf("%d async publishes failed", n)
	}
	return nil
}

func (r *jsRig) gather(ctx context.Context, n int) error {
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
	hdr := nats.Header{jsReply: []string{r.inbox + "." + key}}
	for i := range n {
		data := binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(i))
		if _, err := r.js.PublishMsgAsync(&nats.Msg{Subject: jsSubject, Header: hdr, Data: data},
			jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("waiting for publish acks: %w", ctx.Err())
	}
	if err := r.check(); err != nil {
		return err
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return errors.New("jetstream: results missing: " + ctx.Err().Error())
	}
}

// result is the producer's results subscription: it counts each index of its
// batch once (a redelivered task's second result is ignored).
func (r *jsRig) result(m *nats.Msg) {
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
