package natsbroker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestPauseAfterServerRestart: the server is shut down and started again
// on the same store directory and port; a pause and a resume made through
// one broker after the restart reach another broker's watched copy (what
// its workers' claims consult), as before it.
func TestPauseAfterServerRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := &natsserver.Config{Dir: t.TempDir(), Listen: addr}
	s, err := natsserver.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown() }()
	conn := func() (*Broker, <-chan struct{}) {
		back := make(chan struct{}, 1)
		nc, err := nats.Connect("nats://"+addr, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
			nats.ReconnectHandler(func(*nats.Conn) {
				select {
				case back <- struct{}{}:
				default:
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(ctx, js, &Config{Prefix: "pauserestart"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b, back
	}
	a, aBack := conn()
	b, bBack := conn()
	seen := func(name string, paused bool) {
		t.Helper()
		for b.ctl.isPaused(name) != paused {
			// The watched copy announces nothing: poll it.
			select {
			case <-ctx.Done():
				t.Fatalf("queue %q paused %v through one broker: the other never saw it", name, paused)
			case <-time.After(time.Millisecond):
			}
		}
	}
	if err := a.Pause(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	seen("before", true)

	s.Shutdown()
	if s, err = natsserver.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, back := range []<-chan struct{}{aBack, bBack} {
		select {
		case <-back:
		case <-ctx.Done():
			t.Fatal("a connection did not reconnect to the restarted server")
		}
	}
	start := time.Now()
	if err := a.Pause(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	seen("after", true)
	if err := a.Resume(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	seen("before", false)
	t.Logf("pause and resume seen %v after the reconnect", time.Since(start))
}
