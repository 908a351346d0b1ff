package natsbroker_test

import (
	"testing"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestConformance runs the whole queue conformance suite against an
// embedded server (file store): one server, a broker with its own prefix
// (so its own streams) per subtest.
func TestConformance(t *testing.T) {
	s := embedded(t, false)
	js := connect(t, s)
	queuetest.Run(t, func(t *testing.T) queue.Broker {
		return newBroker(t, js, natsbroker.Config{QueueMaxDepth: map[string]int{"bounded": 100}})
	}, queuetest.BoundedQueue("bounded", 100))
}
