package dashboard_test

import (
	"context"
	"testing"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

type workersEvent struct {
	Workers []struct {
		ID          string   `json:"id"`
		Queues      []string `json:"queues"`
		Concurrency int      `json:"concurrency"`
		Running     int      `json:"running"`
		Processed   int      `json:"processed"`
		Failed      int      `json:"failed"`
		Connected   bool     `json:"connected"`
		Stopped     bool     `json:"stopped"`
	} `json:"workers"`
}

// TestWorkerHeartbeats runs an Announcer and a Dashboard on a real NATS
// server: the worker shows connected with its counts, then stopped.
func TestWorkerHeartbeats(t *testing.T) {
	t.Parallel()
	srv, err := natsserver.Start(context.Background(), &natsserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := newEnv(t, "", &dashboard.Config{NATS: nc, Prefix: "test"})
	s := e.open("")

	a, err := dashboard.Announce(nc, "test", []string{"default", "bulk"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	a.Observe(queue.Event{Type: queue.EventStarted})
	a.Observe(queue.Event{Type: queue.EventFailed})
	a.Observe(queue.Event{Type: queue.EventStarted})
	a.Observe(queue.Event{Type: queue.EventSucceeded})
	a.Observe(queue.Event{Type: queue.EventStarted})
	// The first heartbeat went out at Announce; the counts come with the
	// next, then Close says stopped.
	got := until(s, "workers", func(v workersEvent) bool { return len(v.Workers) == 1 && v.Workers[0].Connected })
	if w := got.Workers[0]; w.Concurrency != 8 || len(w.Queues) != 2 {
		t.Fatalf("worker %+v: want concurrency 8 on 2 queues", w)
	}
	a.Close()
	got = until(s, "workers", func(v workersEvent) bool { return len(v.Workers) == 1 && v.Workers[0].Stopped })
	if w := got.Workers[0]; w.Connected || w.Running != 1 || w.Processed != 2 || w.Failed != 1 {
		t.Fatalf("stopped worker %+v: want not connected, 1 running, 2 processed, 1 failed", w)
	}
	if _, err := dashboard.Announce(nc, "bad prefix", nil, 1); err == nil {
		t.Fatal("Announce accepted a bad prefix")
	}
}
