package otelqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestNATS runs the trace checks on natsbroker with an embedded server:
// the trace context crosses the wire in the tasks' headers.
func TestNATS(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	s, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsbroker.New(ctx, js, &natsbroker.Config{StateMaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checkTraces(t, b)
}
