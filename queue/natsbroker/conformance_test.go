package natsbroker_test

import (
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestConformance runs the whole queue conformance suite against an
// embedded server (file store): one server, a broker with its own prefix
// (so its own streams) per subtest. Acknowledgements are asynchronous
// (an ack is a fire-and-forget publish), so a finished task may count
// against its bound for a moment after its outcome is readable: AsyncRelease.
func TestConformance(t *testing.T) {
	s := embedded(t, false)
	js := connect(t, s)
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		return newBroker(t, js, natsbroker.Config{QueueMaxDepth: map[string]int{"bounded": 100}})
	}, queuetest.BoundedQueue("bounded", 100), queuetest.AsyncRelease(queuetest.Liveness(20*time.Second)))
}
