package membroker_test

import (
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
