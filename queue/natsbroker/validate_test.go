package natsbroker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestClaimChecksWhereEnvelopesCameFrom: a well-formed envelope on the
// wrong queue's subject, or naming tasks past its batch's size, is
// dead-lettered with the reason and never handed out (a hand-back or retry
// of it would create another queue's stream, and outcomes past a batch's
// size would break its results).
func TestClaimChecksWhereEnvelopesCameFrom(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	js := startJS(ctx, t)
	b, err := New(ctx, js, &Config{Prefix: "where"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kind := queue.NewKind[int, int]("where.double")
	c, _ := queue.NewClient(b, nil)
	good, err := queue.EnqueueBatch(ctx, c, kind, []int{1, 2}, queue.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := b.queue(ctx, queue.DefaultQueue)
	subj := b.levelSubj(q, queue.PriorityNormal, 1)
	m := queue.Message{BatchID: good.ID(), Index: 0, Queue: "elsewhere", Kind: kind.Name(), Priority: queue.PriorityNormal, MaxAttempts: 1}
	publish := func(m queue.Message, k int) {
		t.Helper()
		payloads := make([][]byte, k)
		for i := range payloads {
			payloads[i] = []byte("1")
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: packSubj(subj, k), Data: appendEnvelope(nil, &m, 0, time.Time{}, payloads),
			Header: taskHeader(m.BatchID, m.Index, k)}); err != nil {
			t.Fatal(err)
		}
	}
	publish(m, 1) // another queue's task on this queue's subject
	m.Queue, m.Index = queue.DefaultQueue, 1
	publish(m, 3) // tasks 1 to 3 of a batch of 2
	var dst [8]queue.Delivery
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst[:])
		if err != nil || n != 0 {
			t.Fatalf("Claim = %d, %v; want the bad messages dead-lettered, nothing handed out", n, err)
		}
		dls, err := b.DeadLetters(ctx, queue.DefaultQueue, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 2 {
			var reasons []string
			for _, dl := range dls {
				reasons = append(reasons, dl.Attempts[0].Error)
			}
			all := strings.Join(reasons, "\n")
			for _, want := range []string{`the envelope says queue "elsewhere"`, "tasks 1 to 3 of a batch of 2"} {
				if !strings.Contains(all, want) {
					t.Errorf("dead letter reasons %q: none says %q", reasons, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 2", len(dls))
		}
		time.Sleep(20 * time.Millisecond) // the claim after an enqueue may find nothing yet; nothing signals it
	}
	if _, err := b.js.Stream(ctx, "where_q_elsewhere"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a stream for the queue the bad envelope named: %v", err)
	}
}
