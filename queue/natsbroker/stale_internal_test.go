package natsbroker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// slowMeta is a fetched task message whose Metadata takes a while: it
// stands for the round trips a claim may make per message (a batch record,
// recorded outcomes) on a busy machine or a server just restarted.
type slowMeta struct {
	taskMsg
	delay time.Duration
}

func (m slowMeta) Metadata() (*jetstream.MsgMetadata, error) {
	time.Sleep(m.delay)
	return m.taskMsg.Metadata()
}

// TestClaimOutlastingLease: a claim that took longer than the server's lease
// on a message it holds does not hand the message's tasks out (the server
// may have delivered it again meanwhile, so the task would run twice), and
// leaves the message to come again rather than losing it.
func TestClaimOutlastingLease(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps past a lease")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := startJS(ctx, t)
	const ackWait = time.Second
	b, c := clientBroker(ctx, t, js, &Config{Prefix: "stale", AckWait: ackWait, StateMaxBytes: 64 << 20})
	kind := queue.NewKind[int, int]("natsbroker.stale")
	if _, err := queue.EnqueueBatch(ctx, c, kind, []int{7}); err != nil {
		t.Fatal(err)
	}
	level := queue.PriorityNormal
	q, err := b.queue(ctx, queue.DefaultQueue)
	if err != nil {
		t.Fatal(err)
	}
	// The message, fetched as a claim fetches it, is kept for the next
	// claim, whose check of it then outlasts the server's lease.
	var msgs []taskMsg
	for len(msgs) == 0 && ctx.Err() == nil {
		if msgs, err = b.pull.fetch(ctx, q.next[level], 1, time.Second, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	q.spare[level].put(b, []fetched{{msg: slowMeta{msgs[0], ackWait + ackWait/2}, at: time.Now().UnixNano()}})
	dst := make([]queue.Delivery, 4)
	n, err := b.Claim(ctx, queue.DefaultQueue, level, ackWait, dst)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a claim that outlasted the server's lease handed out %d tasks (attempt %d): the server may have delivered them again", n, dst[0].Attempt)
	}
	// The message comes again, as a further delivery.
	for ctx.Err() == nil {
		n, err := b.Claim(ctx, queue.DefaultQueue, level, ackWait, dst)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if dst[0].Attempt != 2 {
				t.Fatalf("the message came again as attempt %d, want 2", dst[0].Attempt)
			}
			if err := b.Complete(ctx, []queue.Completion{{Delivery: &dst[0], Outcome: queue.Outcome{Output: []byte("7")}}}); err != nil {
				t.Fatal(err)
			}
			return
		}
		time.Sleep(50 * time.Millisecond) // polling the consumer: the redelivery has no signal here
	}
	t.Fatal("the message left by the stale claim never came again")
}
