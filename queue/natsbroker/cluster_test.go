package natsbroker_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/queue/queuetest"
)

// cluster is a 3-node JetStream cluster on loopback ports, in this process.
type cluster struct {
	nodes []*natsserver.Server
	urls  []string
}

// startCluster starts three servers that route to the first one, and
// waits until JetStream has a meta leader and takes R3 streams.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	dir := t.TempDir()
	c := &cluster{}
	// Every node lists every route (its own is ignored), on ports picked
	// free just before.
	var ports, routes []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().String())
		routes = append(routes, "nats://"+l.Addr().String())
		l.Close()
	}
	for i := range 3 {
		s, err := natsserver.Start(ctx, &natsserver.Config{
			Dir:     filepath.Join(dir, fmt.Sprint(i)),
			Name:    fmt.Sprintf("n%d", i),
			Listen:  "127.0.0.1:0",
			Cluster: &natsserver.Cluster{Name: "gather-test", Listen: ports[i], Routes: routes},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Shutdown)
		c.nodes = append(c.nodes, s)
		c.urls = append(c.urls, s.ClientURL())
	}
	// JetStream is ready when an R3 stream can be made.
	js := c.connect(t)
	for {
		actx, acancel := context.WithTimeout(ctx, time.Second)
		_, err := js.CreateOrUpdateStream(actx, jetstream.StreamConfig{Name: "ready", Subjects: []string{"ready"}, Replicas: 3, Storage: jetstream.MemoryStorage})
		acancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("cluster not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling a server's readiness: there is no event to wait on
	}
	if err := js.DeleteStream(ctx, "ready"); err != nil {
		t.Fatal(err)
	}
	return c
}

// connect returns a JetStream client connected to any node, which fails
// over to the others.
func (c *cluster) connect(t testing.TB) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(strings.Join(c.urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestConformanceCluster runs the whole suite against a 3-node cluster with
// R3 streams: the same code, replicated. Its time unit is 100 ms, not the
// suite's 20 ms: every subtest shares two loaded cores with two other
// servers' replication, and the windows the timed subtests measure (a
// deadline from enqueue to run, a delay, a lease) must stay well above
// that noise. On R3 an acknowledged task leaves the work-queue stream a
// moment after its outcome is readable, so its bound is freed
// asynchronously: AsyncRelease allows that (usually a moment; its bound
// is a liveness bound, 30 s scaled by GATHER_TEST_SLOW).
func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t)
	js := c.connect(t)
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		return newBroker(t, js, natsbroker.Config{Replicas: 3, QueueMaxDepth: map[string]int{"bounded": 100}})
	}, queuetest.BoundedQueue("bounded", 100), queuetest.TimeUnit(100*time.Millisecond), queuetest.AsyncRelease(queuetest.Liveness(30*time.Second)))
}

// TestClusterNodeStopsMidBatch: a batch runs on a 3-node cluster (R3) with
// two workers on their own connections; one node is shut down mid-batch.
// The batch completes with every result, each delivered once.
func TestClusterNodeStopsMidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	cfg := natsbroker.Config{Prefix: "stopnode", Replicas: 3, AckWait: 2 * time.Second}
	b := newBroker(t, c.connect(t), cfg)
	client, _ := queue.NewClient(b, nil)
	for range 2 {
		wb := newBroker(t, c.connect(t), cfg)
		w, _ := queue.NewWorker(wb, &queue.WorkerConfig{Concurrency: 4, Lease: 2 * time.Second})
		queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) {
			time.Sleep(time.Millisecond) // work that takes a while, so that the stop lands mid-batch
			return procOut{V: 2 * n}, nil
		})
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
			defer scancel()
			_ = w.Shutdown(sctx)
		})
	}
	const n = 400
	batch, err := queue.EnqueueBatch(ctx, client, procKind, ints(n))
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, n)
	count := 0
	for i, r := range batch.Results(ctx) {
		if r.Err != nil || r.Value.V != 2*i || seen[i] {
			if i < 0 {
				// Say where the missing tasks are: still queued, or
				// recorded but not delivered to this subscription.
				dctx, dcancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
				depth, derr := b.Depth(dctx, queue.DefaultQueue)
				recorded := 0
				if sub, err := b.Subscribe(dctx, batch.ID()); err == nil {
					buf := make([]queue.Outcome, 64)
					for {
						k, err := sub.Next(dctx, buf)
						recorded += k
						if err != nil {
							break
						}
					}
					sub.Close()
				}
				dcancel()
				t.Fatalf("after %d of %d outcomes: %v; queue depth %v (%v), %d outcomes recorded", count, n, r.Err, depth, derr, recorded)
			}
			t.Fatalf("task %d: %+v, %v (seen before: %v)", i, r.Value, r.Err, seen[i])
		}
		seen[i] = true
		count++
		if count == n/4 {
			c.nodes[1].Shutdown()
		}
	}
	if count != n {
		t.Fatalf("%d outcomes, want %d", count, n)
	}
}
