package natsfeed_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// connect starts an embedded server in a temporary directory and returns n
// connections to it, all closed (and the server shut down) at cleanup.
func connect(t *testing.T, n int) []*nats.Conn { return connectB(t, n) }

func connectB(t testing.TB, n int) []*nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	out := make([]*nats.Conn, n)
	for i := range out {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		out[i] = nc
	}
	return out
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It waits on a condition, never asserts a duration.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
