package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// natsRig is gather's queue on queue/natsbroker, as a program uses it by default (or
// with the Config given: the natsbroker-unpacked row stores one task per message): an
// embedded server (natsserver, file store in a temporary directory, no listener), a
// producer's client and a worker, each with its own in-process connection and broker,
// as two processes would have.
//
// Its pump is a whole batch awaited: natsbroker records a task's outcome and acks its
// message together, so Await is how a producer learns the acknowledgements, and the
// throughput row includes the result path that the raw JetStream one does not.
type natsRig struct {
	client *queue.Client
}

// brokerNoop is the no-op task kind of BenchmarkBroker: nothing in, nothing out
// ("{}" with the default JSON codec).
var brokerNoop = queue.NewKind[struct{}, struct{}]("bench.broker.noop")

func setupNatsbroker(b *testing.B, cfg *natsbroker.Config) brokerRig {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	broker := func() *natsbroker.Broker {
		nc, err := srv.Connect()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		br, err := natsbroker.New(ctx, js, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { br.Close() })
		return br
	}
	pb, wb := broker(), broker()
	w, err := queue.NewWorker(wb, nil)
	if err != nil {
		b.Fatal(err)
	}
	queue.HandleFunc(w, brokerNoop, func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			b.Error("natsbroker worker shutdown: ", err)
		}
	})
	c, err := queue.NewClient(pb, nil)
	if err != nil {
		b.Fatal(err)
	}
	return &natsRig{client: c}
}

// reset has nothing to do: every earlier batch was awaited, so the queue is empty.
func (r *natsRig) reset(context.Context) error { return nil }

func (r *natsRig) pump(ctx context.Context, n int) error { return r.gather(ctx, n) }

func (r *natsRig) gather(ctx context.Context, n int) error {
	batch, err := queue.EnqueueBatch(ctx, r.client, brokerNoop, make([]struct{}, n))
	if err != nil {
		return err
	}
	_, err = batch.Await(ctx)
	return err
}
