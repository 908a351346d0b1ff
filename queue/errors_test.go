package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// TestErrorMessages checks the whole message of errors made in package queue:
// one "queue: " prefix, the sentinel, then what was wrong. Errors that wrap a
// sentinel once printed it after a prefix of their own ("queue: queue: bad
// input: ...").
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	c, err := queue.NewClient(broker, nil)
	if err != nil {
		t.Fatal(err)
	}
	double := queue.NewKind[int, int]("double")
	echo := queue.NewKind[int, int]("echo")
	b, err := queue.EnqueueBatch(ctx, c, double, []int{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	small, err := queue.NewClient(broker, &queue.ClientConfig{MaxPayload: 1})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		call     func() error
		sentinel error
		want     string
	}{
		{"NewClient", func() error { _, err := queue.NewClient(nil, nil); return err },
			queue.ErrBadConfig, "queue: bad config: NewClient with a nil Broker"},
		{"empty batch", func() error { _, err := queue.EnqueueBatch(ctx, c, double, nil); return err },
			queue.ErrBadInput, `queue: bad input: EnqueueBatch of kind "double" with no inputs: a batch needs at least one task`},
		{"empty queue name", func() error { _, err := queue.Enqueue(ctx, c, double, 1, queue.WithQueue("")); return err },
			queue.ErrBadInput, "queue: bad input: empty queue name"},
		{"zero option", func() error { _, err := queue.Enqueue(ctx, c, double, 1, queue.Option{}); return err },
			queue.ErrBadInput, "queue: bad input: zero Option: use the With functions"},
		{"payload too large", func() error { _, err := queue.Enqueue(ctx, small, double, 10); return err },
			queue.ErrBadInput, `queue: bad input: input 0 of kind "double" is 2 bytes encoded: the limit is 1 (ClientConfig.MaxPayload)`},
		{"attach to another kind", func() error { _, err := queue.Attach(ctx, c, echo, b.ID()); return err },
			queue.ErrBadInput, `queue: bad input: batch ` + b.ID() + ` holds tasks of kind "double", not "echo"`},
		{"bad task ID", func() error { _, _, err := queue.ParseTaskID("x"); return err },
			queue.ErrBadInput, `queue: bad input: bad task ID "x": want <batch ID>/<index>`},
	} {
		err := tc.call()
		if err == nil {
			t.Errorf("%s: no error, want %q", tc.name, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("%s: error %q, want %q", tc.name, err, tc.want)
		}
		if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: error %q does not match %v", tc.name, err, tc.sentinel)
		}
		if strings.Contains(err.Error(), "queue: queue:") {
			t.Errorf("%s: error %q repeats its prefix", tc.name, err)
		}
	}
}
