package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/bench/internal/peers"
)

// The raw JetStream rows are the ceiling, BenchmarkBroker's jsRig split into
// processes (package peers describes the protocol): every worker process consumes
// from the one durable consumer that all share, acks each task and publishes its
// data to the task's peers.JSReply subject; the producer publishes with
// peers.JSPublish and counts results with a peers.JSResults.

// jsSetup creates the stream and the shared consumer, or finds them as another
// process created them.
func jsSetup(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	if _, err := js.CreateOrUpdateStream(ctx, peers.JSStream); err != nil {
		return nil, err
	}
	return js.CreateOrUpdateConsumer(ctx, peers.JSStream.Name, peers.JSConsumer)
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
		reply := m.Headers().Get(peers.JSReply)
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
	results *peers.JSResults
	pubErrs atomic.Int64 // failed async publishes
	lastErr atomic.Value // the connection's last asynchronous error (a slow consumer)
}

func jetstreamProducer(ctx context.Context, a addrs, _ int) (rig, error) {
	r := &jsRig{}
	var err error
	r.nc, err = nats.Connect(a.nats, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		r.lastErr.Store(err)
	}))
	if err != nil {
		return nil, err
	}
	r.results, err = peers.NewJSResults(r.nc)
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
	return r.results.Gather(ctx, n, func(hdr nats.Header) error {
		if err := peers.JSPublish(ctx, r.js, n, hdr); err != nil {
			return err
		}
		return r.check()
	})
}
