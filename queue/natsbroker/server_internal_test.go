package natsbroker

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// startJS starts an embedded server in a temporary directory for the
// package's internal tests and returns the JetStream of a connection to
// it; both are closed at cleanup.
func startJS(ctx context.Context, t *testing.T) jetstream.JetStream {
	t.Helper()
	s, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// clientBroker returns a Broker on js with cfg, closed at cleanup, and a
// queue.Client on it.
func clientBroker(ctx context.Context, t *testing.T, js jetstream.JetStream, cfg *Config) (*Broker, *queue.Client) {
	t.Helper()
	b, err := New(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b, c
}
