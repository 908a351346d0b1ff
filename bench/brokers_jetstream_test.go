package bench_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsRig is the ceiling: a fair, fast gather written by hand on raw JetStream, with
// nothing of gather's queue (no envelope, no priorities, no retries, no batch state,
// no durable results). An embedded nats-server with a file store in a temporary
// directory (default sync interval), no listener; the producer and the worker each
// have their own in-process connection.
//
// Tasks go to a work-queue stream (a message is removed when acknowledged) and are
// pulled by one durable consumer with explicit acks. The producer publishes
// asynchronously and waits for every publish ack. For a gather each task's header
// names a core-NATS inbox subject of the batch, under the one subscription the
// producer keeps; the worker acks each task and then publishes the task's index to
// that subject, and the producer counts distinct indices until it has all N (so a
// redelivered task is counted once).
type jsRig struct {
	srv    *server.Server
	pc, wc *nats.Conn // producer's and worker's connections
	js     jetstream.JetStream
	stream jetstream.Stream
	cc     jetstream.ConsumeContext

	pumped  *countdown   // acks of pump tasks
	pubErrs atomic.Int64 // failed async publishes
	ackErrs atomic.Int64 // failed acks or result publishes
	lastErr atomic.Value // the last asynchronous error of a connection (a slow consumer)

	// The producer's one results subscription, on inbox.*: a gather's results come
	// to inbox.<its key>. (A subscription per gather would cost a SUB and an UNSUB,
	// and the server's subject cache, each time.)
	inbox   string
	seq     uint64 // the last gather's key; the producer's goroutine only
	mu      sync.Mutex
	batches map[string]*jsBatch // by key; guarded by mu
}

const (
	jsStream  = "BENCH"
	jsSubject = "bench.task"
	jsReply   = "Bench-Reply" // the header naming a gather's inbox
)

func setupJetStream(b *testing.B) brokerRig {
	srv, err := server.NewServer(&server.Options{
		ServerName: "bench",
		JetStream:  true,
		StoreDir:   b.TempDir(),
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server not ready in 10s")
	}
	r := &jsRig{srv: srv, pumped: newCountdown(), inbox: nats.NewInbox(), batches: map[string]*jsBatch{}}
	connect := func() *nats.Conn {
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.ErrorHandler(r.asyncErr))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	r.pc, r.wc = connect(), connect()
	sub, err := r.pc.Subscribe(r.inbox+".*", r.result)
	if err == nil {
		err = sub.SetPendingLimits(-1, -1)
	}
	if err != nil {
		b.Fatal(err)
	}
	r.js, err = jetstream.New(r.pc, jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) {
		r.pubErrs.Add(1)
	}))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.stream, err = r.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      jsStream,
		Subjects:  []string{jsSubject},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		b.Fatal(err)
	}
	wjs, err := jetstream.New(r.wc)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := wjs.CreateOrUpdateConsumer(ctx, jsStream, jetstream.ConsumerConfig{
		Durable:   "workers",
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   30 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	r.cc, err = cons.Consume(r.work)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.cc.Stop) // registered last, so it runs before the connections close
	return r
}

// work is the worker: it runs the no-op task, acks it, and sends its result to a
// waiting producer.
func (r *jsRig) work(m jetstream.Msg) {
	reply := m.Headers().Get(jsReply)
	if err := m.Ack(); err != nil {
		r.ackErrs.Add(1)
		return
	}
	if reply == "" {
		r.pumped.add()
		return
	}
	if err := r.wc.Publish(reply, m.Data()); err != nil {
		r.ackErrs.Add(1)
	}
}

func (r *jsRig) asyncErr(_ *nats.Conn, _ *nats.Subscription, err error) { r.lastErr.Store(err) }

func (r *jsRig) reset(ctx context.Context) error { return r.check() }

func (r *jsRig) check() error {
	if err, _ := r.lastErr.Load().(error); err != nil {
		return fmt.Errorf("asynchronous error: %w", err)
	}
	if n := r.pubErrs.Load(); n > 0 {
		return fmt.Errorf("%d async publishes failed", n)
	}
	if n := r.ackErrs.Load(); n > 0 {
		return fmt.Errorf("%d acks or result publishes failed", n)
	}
	return nil
}

// publish publishes n tasks asynchronously, with hdr (nil or a gather's inbox), and
// waits for their publish acks.
func (r *jsRig) publish(ctx context.Context, n int, hdr nats.Header) error {
	for i := range n {
		data := binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(i))
		if _, err := r.js.PublishMsgAsync(&nats.Msg{Subject: jsSubject, Header: hdr, Data: data},
			jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
		return r.check()
	case <-ctx.Done():
		return fmt.Errorf("waiting for publish acks: %w", ctx.Err())
	}
}

// pump counts the worker's acks, then waits until the stream has removed every
// acknowledged message (acks are asynchronous: this is when the server has applied
// them).
func (r *jsRig) pump(ctx context.Context, n int) error {
	r.pumped.expect(n)
	if err := r.publish(ctx, n, nil); err != nil {
		return err
	}
	if err := r.pumped.wait(ctx); err != nil {
		return err
	}
	for {
		info, err := r.stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs == 0 {
			return r.check()
		}
		if err := sleepCtx(ctx, 100*time.Microsecond); err != nil {
			return fmt.Errorf("%d acked messages still in the stream: %w", info.State.Msgs, err)
		}
	}
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
	if err := r.publish(ctx, n, nats.Header{jsReply: []string{r.inbox + "." + key}}); err != nil {
		return err
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return errors.New("jetstream: results missing: " + ctx.Err().Error())
	}
}

// jsBatch is a gather waiting for its results. Only the results subscription's
// goroutine touches seen and left.
type jsBatch struct {
	seen []bool
	left int
	done chan struct{} // closed when every index has a result
}

// result is the producer's results subscription: it counts each index of its batch
// once.
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
