package natsbroker_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// A distributed gather on an embedded server: the worker and the client
// could as well be in other processes (or on other machines, with
// natsserver.Config.Listen or a NATS cluster), each with its own broker on
// its own connection.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "gather-example")
	defer os.RemoveAll(dir)
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: dir}) // in-process, no port
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	broker := func() *natsbroker.Broker { // one connection and broker each
		nc, err := srv.Connect()
		if err != nil {
			panic(err)
		}
		js, _ := jetstream.New(nc)
		b, err := natsbroker.New(ctx, js, nil)
		if err != nil {
			panic(err)
		}
		closers = append(closers, nc.Close, func() { b.Close() })
		return b
	}

	upper := queue.NewKind[string, string]("upper")
	worker, _ := queue.NewWorker(broker(), nil)
	queue.HandleFunc(worker, upper, func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	})
	worker.Start()
	defer worker.Shutdown(ctx)

	client, _ := queue.NewClient(broker(), nil)
	batch, err := queue.EnqueueBatch(ctx, client, upper, []string{"bid", "ask", "last"})
	if err != nil {
		panic(err)
	}
	results, err := batch.Await(ctx) // in input order
	fmt.Println(results, err)
	// Output: [BID ASK LAST] <nil>
}
