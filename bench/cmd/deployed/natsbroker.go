package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// noop is the task of every Go system's natsbroker rows: nothing in, nothing out.
var noop = queue.NewKind[struct{}, struct{}]("bench.deployed.noop")

// unpacked is the natsbroker-unpacked rows' Config: one task per message, as the
// raw JetStream rows have it. Workers and producers use the same Config.
var unpacked = &natsbroker.Config{PackSize: 1}

// natsConn connects to the NATS server at url over TCP.
func natsConn(url string) (*nats.Conn, jetstream.JetStream, error) {
	if url == "" {
		return nil, nil, fmt.Errorf("%w: -nats is required", errUsage)
	}
	nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("bench-%d", os.Getpid())))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// startNatsWorker starts a queue.Worker with every default on its own broker over
// nc, and returns its stop.
func startNatsWorker(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, cfg *natsbroker.Config) (func(context.Context) error, error) {
	br, err := natsbroker.New(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	w, err := queue.NewWorker(br, nil)
	if err != nil {
		return nil, errors.Join(err, br.Close())
	}
	queue.HandleFunc(w, noop, func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
	if err := w.Start(); err != nil {
		return nil, errors.Join(err, br.Close())
	}
	return func(ctx context.Context) error {
		err := w.Shutdown(ctx)
		err = errors.Join(err, br.Close())
		nc.Close()
		return err
	}, nil
}

// natsbrokerWorker is a worker process of gather's queue: a queue.Worker with
// every default on natsbroker with cfg, over one TCP connection.
func natsbrokerWorker(cfg *natsbroker.Config) func(context.Context, addrs) (func(context.Context) error, error) {
	return func(ctx context.Context, a addrs) (func(context.Context) error, error) {
		nc, js, err := natsConn(a.nats)
		if err != nil {
			return nil, err
		}
		stop, err := startNatsWorker(ctx, nc, js, cfg)
		if err != nil {
			nc.Close()
		}
		return stop, err
	}
}

// natsRig is gather's producer: queue.EnqueueBatch, then Batch.AwaitSettled.
type natsRig struct {
	client *queue.Client
	closes []func()
}

func (r *natsRig) gather(ctx context.Context, n int) error {
	b, err := queue.EnqueueBatch(ctx, r.client, noop, make([]struct{}, n))
	if err != nil {
		return err
	}
	res, err := b.AwaitSettled(ctx)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			return fmt.Errorf("a no-op task failed: %w", r.Err)
		}
	}
	return nil
}

// close runs the rig's closes in reverse order.
func (r *natsRig) close() {
	for i := len(r.closes) - 1; i >= 0; i-- {
		r.closes[i]()
	}
}

// startClient gives the rig its client: a queue.Client on a natsbroker broker on
// js with cfg, which the rig closes.
func (r *natsRig) startClient(ctx context.Context, js jetstream.JetStream, cfg *natsbroker.Config) error {
	br, err := natsbroker.New(ctx, js, cfg)
	if err != nil {
		return err
	}
	r.closes = append(r.closes, func() { _ = br.Close() })
	r.client, err = queue.NewClient(br, nil)
	return err
}

// natsbrokerProducer is the producer process of gather's queue: a queue.Client on
// natsbroker with cfg, over one TCP connection.
func natsbrokerProducer(cfg *natsbroker.Config) func(context.Context, addrs, int) (rig, error) {
	return func(ctx context.Context, a addrs, _ int) (rig, error) {
		nc, js, err := natsConn(a.nats)
		if err != nil {
			return nil, err
		}
		r := &natsRig{closes: []func(){nc.Close}}
		if err := r.startClient(ctx, js, cfg); err != nil {
			r.close()
			return nil, err
		}
		return r, nil
	}
}

// inprocessProducer is the in-process row, as BenchmarkBroker measures it: gather's
// embedded nats-server (natsserver, file store in a temporary directory, no
// listener), the given number of queue.Workers and the producer's client, all in
// this process, each on its own in-process connection and broker.
func inprocessProducer(ctx context.Context, _ addrs, workers int) (rig, error) {
	dir, err := os.MkdirTemp("", "deployed-inprocess-")
	if err != nil {
		return nil, err
	}
	r := &natsRig{closes: []func(){func() { os.RemoveAll(dir) }}}
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: dir})
	if err != nil {
		r.close()
		return nil, err
	}
	r.closes = append(r.closes, srv.Shutdown)
	connect := func() (*nats.Conn, jetstream.JetStream, error) {
		nc, err := srv.Connect()
		if err != nil {
			return nil, nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		return nc, js, nil
	}
	for range workers {
		nc, js, err := connect()
		if err != nil {
			r.close()
			return nil, err
		}
		stop, err := startNatsWorker(ctx, nc, js, nil)
		if err != nil {
			nc.Close()
			r.close()
			return nil, err
		}
		r.closes = append(r.closes, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := stop(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "natsbroker-inprocess: worker shutdown:", err)
			}
		})
	}
	nc, js, err := connect()
	if err != nil {
		r.close()
		return nil, err
	}
	r.closes = append(r.closes, nc.Close)
	if err := r.startClient(ctx, js, nil); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}
