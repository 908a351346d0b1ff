package membroker_test

import (
	"strings"
	"testing"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/queuetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		b, err := membroker.New(&membroker.Config{QueueMaxDepth: map[string]int{"bounded": 100}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, queuetest.InBubble(), queuetest.BoundedQueue("bounded", 100))
}

// TestConformanceRealClock runs the suite the way network brokers do, on the
// real clock, to keep that mode of the suite honest.
func TestConformanceRealClock(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		b, err := membroker.New(&membroker.Config{QueueMaxDepth: map[string]int{"bounded": 100}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}, queuetest.BoundedQueue("bounded", 100))
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := membroker.New(&membroker.Config{MaxDepth: -1, Retention: -1, QueueMaxDepth: map[string]int{"q": 0}})
	if err == nil {
		t.Fatal("New accepted a negative MaxDepth")
	}
	for _, want := range []string{"MaxDepth is -1", "Retention is -1ns", `QueueMaxDepth["q"] is 0`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
