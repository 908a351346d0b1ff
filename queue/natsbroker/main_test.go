package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/queue/queuetest"
)

func TestMain(m *testing.M) {
	switch role := os.Getenv(roleEnv); role {
	case "":
	case "crashworker":
		os.Exit(runCrashWorker())
	default:
		os.Exit(runRole(role))
	}
	goleak.VerifyTestMain(m)
}

// embedded starts a standalone embedded server in a temporary directory,
// shut down at cleanup.
func embedded(t testing.TB, syncAlways bool) *natsserver.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	s, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir(), SyncAlways: syncAlways})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// listening starts an embedded server with a loopback TCP listener, for
// tests whose other processes connect to it, shut down at cleanup.
func listening(ctx context.Context, t testing.TB) *natsserver.Server {
	t.Helper()
	s, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t testing.TB, s *natsserver.Server) jetstream.JetStream {
	t.Helper()
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

var prefixes atomic.Int64

// newBroker returns a broker with a prefix of its own on js, closed at
// cleanup.
func newBroker(t testing.TB, js jetstream.JetStream, cfg natsbroker.Config) *natsbroker.Broker {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("t%d", prefixes.Add(1))
		if cfg.StateMaxBytes == 0 {
			// The server reserves a stream's byte cap out of its store
			// when it creates the stream, and the conformance suites
			// make a prefix per subtest on one server: the default GiB
			// each would pass a small disk's share.
			cfg.StateMaxBytes = 64 << 20
		}
	}
	// On a cluster starved of CPU, a leader election can leave JetStream
	// unavailable for a while (503) or a setup request unanswered: setting
	// up is tried again until a liveness bound, so that the broker under
	// test starts on settled streams. Any other error fails at once.
	giveUp := time.Now().Add(queuetest.Liveness(3 * time.Minute))
	for {
		ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(30*time.Second))
		b, err := natsbroker.New(ctx, js, &cfg)
		cancel()
		if err == nil {
			t.Cleanup(func() { b.Close() })
			return b
		}
		var api *jetstream.APIError
		transient := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &api) && api.Code == 503
		if !transient || time.Now().After(giveUp) {
			t.Fatal(err)
		}
		t.Logf("setting up a broker: %v; trying again", err)
		time.Sleep(time.Second) // waiting out a leader election: nothing announces its end
	}
}

// testBroker starts an embedded server and returns a connection's JetStream,
// a broker on it with cfg and a client of it, and a context for the test.
func testBroker(t *testing.T, cfg natsbroker.Config) (jetstream.JetStream, *natsbroker.Broker, *queue.Client, context.Context) {
	t.Helper()
	js := connect(t, embedded(t, false))
	b := newBroker(t, js, cfg)
	c, err := queue.NewClient(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	t.Cleanup(cancel)
	return js, b, c, ctx
}

var _ queue.Broker = (*natsbroker.Broker)(nil)
