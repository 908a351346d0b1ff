package bench_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/bench/internal/peers"
)

// jsRig is the raw JetStream peer of package peers (the ceiling; it describes the
// protocol) on an embedded nats-server with a file store in a temporary directory
// (default sync interval), no listener; the producer and the worker each have their
// own in-process connection.
type jsRig struct {
	srv     *server.Server
	pc, wc  *nats.Conn // producer's and worker's connections
	js      jetstream.JetStream
	stream  jetstream.Stream
	cc      jetstream.ConsumeContext
	results *peers.JSResults

	pumped  *countdown   // acks of pump tasks
	pubErrs atomic.Int64 // failed async publishes
	ackErrs atomic.Int64 // failed acks or result publishes
	lastErr atomic.Value // the last asynchronous error of a connection (a slow consumer)
}

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
	r := &jsRig{srv: srv, pumped: newCountdown()}
	connect := func() *nats.Conn {
		nc, err := nats.Connect("", nats.InProcessServer(srv), nats.ErrorHandler(r.asyncErr))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	r.pc, r.wc = connect(), connect()
	r.results, err = peers.NewJSResults(r.pc)
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
	r.stream, err = r.js.CreateStream(ctx, peers.JSStream)
	if err != nil {
		b.Fatal(err)
	}
	wjs, err := jetstream.New(r.wc)
	if err != nil {
		b.Fatal(err)
	}
	cons, err := wjs.CreateOrUpdateConsumer(ctx, peers.JSStream.Name, peers.JSConsumer)
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
	reply := m.Headers().Get(peers.JSReply)
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

// publish publishes n tasks with hdr (nil or a gather's) and waits for their
// publish acks.
func (r *jsRig) publish(ctx context.Context, n int, hdr nats.Header) error {
	if err := peers.JSPublish(ctx, r.js, n, hdr); err != nil {
		return err
	}
	return r.check()
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
		if err := peers.Sleep(ctx, 100*time.Microsecond); err != nil {
			return fmt.Errorf("%d acked messages still in the stream: %w", info.State.Msgs, err)
		}
	}
}

func (r *jsRig) gather(ctx context.Context, n int) error {
	return r.results.Gather(ctx, n, func(hdr nats.Header) error { return r.publish(ctx, n, hdr) })
}
