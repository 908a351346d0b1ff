package natsbroker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/queuetest"
)

// TestRecheckBeforeRun: after a crash one task can be claimed in two
// messages at once (a pack delivered again, and tasks moved out of it
// before), each passing its check when claimed since neither has run yet.
// Once one copy's outcome is recorded, the other is settled when its
// runner asks before running it (Finished), without a round trip and
// without running; a task nothing recorded runs, and a message claimed
// unchecked is never looked up.
func TestRecheckBeforeRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
	defer cancel()
	js := startJS(ctx, t)
	b, c := clientBroker(ctx, t, js, &Config{Prefix: "rck", PackSize: 16})
	kind := queue.NewKind[int, int]("natsbroker.recheck")
	level := queue.PriorityNormal
	claim := func(want int) []queue.Delivery {
		t.Helper()
		dst := make([]queue.Delivery, 32)
		for ctx.Err() == nil {
			n, err := b.Claim(ctx, queue.DefaultQueue, level, time.Minute, dst)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				if n != want {
					t.Fatalf("claimed %d tasks, want %d", n, want)
				}
				return dst[:n]
			}
			time.Sleep(10 * time.Millisecond) // the consumer may lag the enqueue
		}
		t.Fatal(ctx.Err())
		return nil
	}
	complete := func(ds []queue.Delivery) {
		t.Helper()
		cs := make([]queue.Completion, len(ds))
		for i := range ds {
			cs[i] = queue.Completion{Delivery: &ds[i], Outcome: queue.Outcome{Output: []byte("1")}}
		}
		if err := b.Complete(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}

	// Unchecked: a first delivery, away from any crash.
	if _, err := queue.EnqueueBatch(ctx, c, kind, []int{1, 2}); err != nil {
		t.Fatal(err)
	}
	plain := claim(2)
	complete(plain[:1])
	if b.Finished(&plain[0]) || b.Finished(&plain[1]) {
		t.Fatal("Finished is true for a task of a message claimed unchecked")
	}
	complete(plain[1:])

	// The pack, claimed while the broker is suspicious (as after a
	// reconnect): checked, nothing recorded.
	b.suspectFor()
	ins := make([]int, 16)
	batch, err := queue.EnqueueBatch(ctx, c, kind, ins)
	if err != nil {
		t.Fatal(err)
	}
	pack := claim(16)
	// Tasks 9 to 15 moved out of it before the crash: a copy, carrying an
	// attempt.
	q, err := b.queue(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	for _, d := range pack[9:] {
		payloads = append(payloads, d.Payload)
	}
	m := pack[9].Message
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: b.levelSubj(q, level, len(payloads)),
		Data: appendEnvelope(nil, &m, 1, time.Time{}, payloads), Header: moveHeader(m.BatchID, m.Index, len(payloads))}); err != nil {
		t.Fatal(err)
	}
	cp := claim(7)
	if cp[0].Index != 9 || cp[0].Attempt != 2 {
		t.Fatalf("the copy's first task: index %d attempt %d, want 9 and 2", cp[0].Index, cp[0].Attempt)
	}
	for i := range cp {
		if b.Finished(&cp[i]) {
			t.Fatalf("Finished is true for task %d before any copy of it ran", cp[i].Index)
		}
	}
	// The pack's copies run and are recorded; the other copies then do
	// not run.
	complete(pack)
	for i := range cp {
		if !b.Finished(&cp[i]) {
			t.Fatalf("Finished is false for task %d, whose outcome this broker recorded", cp[i].Index)
		}
	}
	if _, err := batch.Await(ctx); err != nil {
		t.Fatal(err)
	}
	// Both messages are acknowledged (a moment after the outcomes reach
	// the awaiter): nothing is left but the anchor.
	polled(ctx, t, "task messages in the work stream after every copy was settled", func() (bool, any) {
		info, err := q.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := info.State.Msgs - anchors(ctx, t, b, q)
		return n == 0, n
	})
}
