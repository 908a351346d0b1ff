package natsbroker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// requests returns how many messages js's connection has sent: during an
// inspection call with nothing else running, its requests.
func requests(js jetstream.JetStream) uint64 { return js.Conn().Stats().OutMsgs }

// TestInspectBatchesPaging lists 61 batches whose records are spread thinly
// over a state stream that holds 600 results messages between them, some
// of them rewritten by a cancellation, at several page sizes and filters:
// every batch once, newest first, and a page costs requests in proportion
// to its size, not to the stream.
func TestInspectBatchesPaging(t *testing.T) {
	t.Parallel()
	js, b, c, ctx := testBroker(t, natsbroker.Config{PackSize: 1})
	kind := queue.NewKind[int, int]("paged")
	big, err := queue.EnqueueBatch(ctx, c, kind, make([]int, 600), queue.WithQueue("big"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{big.ID()}
	byQueue := map[string][]string{}
	var canceled []string
	var dst [1]queue.Delivery
	for i := range 60 {
		q := []string{"p0", "p1"}[i%2]
		bt, err := queue.EnqueueBatch(ctx, c, kind, []int{i, i}, queue.WithQueue(q))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, bt.ID())
		byQueue[q] = append(byQueue[q], bt.ID())
		if i%7 == 3 {
			if err := bt.Cancel(ctx); err != nil {
				t.Fatal(err)
			}
			canceled = append(canceled, bt.ID())
		}
		// Ten results messages of the big batch, one outcome each.
		for range 10 {
			if n, err := b.Claim(ctx, "big", queue.PriorityNormal, time.Minute, dst[:]); n != 1 || err != nil {
				t.Fatalf("Claim = %d, %v", n, err)
			}
			if err := b.Complete(ctx, []queue.Completion{{Delivery: &dst[0], Outcome: queue.Outcome{Index: dst[0].Index, Output: []byte("0")}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	slices.Reverse(want)
	slices.Reverse(canceled)
	for q := range byQueue {
		slices.Reverse(byQueue[q])
	}
	list := func(f queue.BatchFilter) (ids []string, pages int) {
		t.Helper()
		for ; ; pages++ {
			if pages > 1000 {
				t.Fatalf("Batches(%+v): no end", f)
			}
			page, next, err := b.Batches(ctx, f)
			if err != nil {
				t.Fatalf("Batches(%+v): %v", f, err)
			}
			for _, bi := range page {
				ids = append(ids, bi.ID)
			}
			if next == "" {
				return ids, pages + 1
			}
			f.After = next
		}
	}
	for _, tc := range []struct {
		f    queue.BatchFilter
		want []string
	}{
		{queue.BatchFilter{Limit: 1}, want},
		{queue.BatchFilter{Limit: 7}, want},
		{queue.BatchFilter{}, want},
		{queue.BatchFilter{Queue: "p1", Limit: 5}, byQueue["p1"]},
		{queue.BatchFilter{State: "finished", Limit: 3}, append(canceled, big.ID())},
		{queue.BatchFilter{Queue: "big", Limit: 3}, []string{big.ID()}},
	} {
		got, pages := list(tc.f)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Batches(%+v): %d batches %v,\nwant %d %v", tc.f, len(got), got, len(tc.want), tc.want)
		}
		t.Logf("Batches(%+v): %d pages", tc.f, pages)
	}

	// The cost of one page of 7: at most 4*7+64 record reads, the state
	// stream's info, and the results of the batches not cached as
	// finished (two reads each: a message and the end). The 600 results
	// messages between the records cost nothing.
	before := requests(js)
	page, _, err := b.Batches(ctx, queue.BatchFilter{Limit: 7})
	if err != nil || len(page) != 7 {
		t.Fatalf("Batches: %d, %v", len(page), err)
	}
	calls := requests(js) - before
	t.Logf("a page of 7 batches: %d requests", calls)
	if calls > 4*7+64+1+2*7 {
		t.Errorf("a page of 7 batches took %d requests: more than its budget", calls)
	}
	// The big batch's 600 results messages were read by the listings
	// above: its detail now costs the read of its record.
	before = requests(js)
	big2, err := b.Batch(ctx, big.ID())
	if err != nil {
		t.Fatal(err)
	}
	if big2.Done != 600 || !big2.Finished() {
		t.Errorf("big batch: %d done of %d", big2.Done, big2.Size)
	}
	if calls := requests(js) - before; calls > 1 {
		t.Errorf("the detail of a finished batch read before took %d requests, want 1", calls)
	}
}

// TestInspectQueueNames: queue names that are not subject tokens come back
// as they were given.
func TestInspectQueueNames(t *testing.T) {
	t.Parallel()
	_, b, c, ctx := testBroker(t, natsbroker.Config{})
	kind := queue.NewKind[int, int]("named")
	names := []string{"a.b c", "plain", "ünï*>"}
	for _, q := range names {
		if _, err := queue.Enqueue(ctx, c, kind, 1, queue.WithQueue(q)); err != nil {
			t.Fatal(err)
		}
	}
	qs, err := b.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range qs {
		got = append(got, q.Name)
		if q.Name != queue.DefaultQueue && q.Depth[queue.PriorityNormal] != 1 {
			t.Errorf("queue %q: depth %v, want one normal task", q.Name, q.Depth)
		}
	}
	want := append([]string{queue.DefaultQueue}, names...)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Queues: %q, want %q", got, want)
	}
}

// TestInspectRunningPack: the tasks of a claimed pack read as running until
// each has its outcome; the rest of the batch as pending.
func TestInspectRunningPack(t *testing.T) {
	t.Parallel()
	_, b, c, ctx := testBroker(t, natsbroker.Config{})
	kind := queue.NewKind[int, int]("packed")
	bt, err := queue.EnqueueBatch(ctx, c, kind, make([]int, 1024)) // 64 messages of 16
	if err != nil {
		t.Fatal(err)
	}
	var dst [16]queue.Delivery
	n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst[:])
	if err != nil || n != 16 {
		t.Fatalf("Claim = %d, %v; want a pack of 16", n, err)
	}
	var cs []queue.Completion
	for i := range 8 {
		cs = append(cs, queue.Completion{Delivery: &dst[i], Outcome: queue.Outcome{Index: dst[i].Index, Output: []byte("0")}})
	}
	if err := b.Complete(ctx, cs); err != nil {
		t.Fatal(err)
	}
	d, err := b.Batch(ctx, bt.ID())
	if err != nil {
		t.Fatal(err)
	}
	count := map[queue.TaskState]int{}
	for _, s := range d.States {
		count[s]++
	}
	for i := range dst[:n] {
		want := queue.TaskRunning
		if i < 8 {
			want = queue.TaskDone
		}
		if got := d.States[dst[i].Index]; got != want {
			t.Errorf("task %d: %v, want %v", dst[i].Index, got, want)
		}
	}
	if count[queue.TaskDone] != 8 || count[queue.TaskRunning] != 8 || count[queue.TaskPending] != 1024-16 || d.Done != 8 {
		t.Errorf("states %v, done %d: want 8 done, 8 running, the rest pending", count, d.Done)
	}
}
