package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

// inspector returns the broker's queue.Inspector, or skips the test.
func (e *env) inspector() queue.Inspector {
	in, ok := e.b.(queue.Inspector)
	if !ok {
		e.t.Skipf("broker %T does not implement queue.Inspector", e.b)
	}
	return in
}

// skipUnsupported skips the test when err wraps errors.ErrUnsupported.
func skipUnsupported(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("inspection unsupported: %v", err)
	}
}

// testInspectQueues: Queues lists every queue sorted by name, with its
// unfinished tasks per level and those claimed now.
func testInspectQueues(t *testing.T, e *env) {
	in := e.inspector()
	ctx := e.ctx()
	try(queue.EnqueueBatch(ctx, e.c, double, ints(3), queue.WithQueue("iq-b"), queue.WithPriority(queue.PriorityHigh))).get(t)
	try(queue.EnqueueBatch(ctx, e.c, double, ints(2), queue.WithQueue("iq-a"))).get(t)
	find := func(what string) map[string]queue.QueueInfo {
		t.Helper()
		qs, err := in.Queues(ctx)
		skipUnsupported(t, err)
		if err != nil {
			t.Fatalf("Queues %s: %v", what, err)
		}
		if !slices.IsSortedFunc(qs, func(a, b queue.QueueInfo) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatalf("Queues %s not sorted by name: %+v", what, qs)
		}
		m := map[string]queue.QueueInfo{}
		for _, q := range qs {
			if _, dup := m[q.Name]; dup {
				t.Fatalf("Queues %s lists %q twice", what, q.Name)
			}
			m[q.Name] = q
		}
		return m
	}
	m := find("after enqueueing")
	a, b := m["iq-a"], m["iq-b"]
	if a.Depth != [queue.NumPriorities]int{0, 2, 0, 0} || b.Depth != [queue.NumPriorities]int{0, 0, 3, 0} {
		t.Fatalf("depths: iq-a %v, iq-b %v; want [0 2 0 0] and [0 0 3 0]", a.Depth, b.Depth)
	}
	if a.InFlight != 0 || b.InFlight != 0 {
		t.Fatalf("in flight before any claim: iq-a %d, iq-b %d", a.InFlight, b.InFlight)
	}
	var dst [1]queue.Delivery
	if n, err := e.b.Claim(ctx, "iq-b", queue.PriorityHigh, time.Minute, dst[:]); n != 1 || err != nil {
		t.Fatalf("Claim = %d, %v; want 1", n, err)
	}
	m = find("with a task claimed")
	if got := m["iq-b"]; got.InFlight != 1 || got.Depth != [queue.NumPriorities]int{0, 0, 3, 0} {
		t.Fatalf("iq-b with a task claimed: %+v, want 1 in flight and depth [0 0 3 0]", got)
	}
	if err := e.b.Complete(ctx, []queue.Completion{{Delivery: &dst[0], Outcome: queue.Outcome{Index: dst[0].Index, Output: []byte("0")}}}); err != nil {
		t.Fatal(err)
	}
	e.released(func() error {
		if got := find("after a completion")["iq-b"]; got.InFlight != 0 || got.Depth != [queue.NumPriorities]int{0, 0, 2, 0} {
			return fmt.Errorf("iq-b after a completion: %+v, want none in flight and depth [0 0 2 0]", got)
		}
		return nil
	})
}

// allBatches follows Batches' cursor to the end, a page of limit at a time,
// and returns every batch in order.
func allBatches(t *testing.T, ctx context.Context, in queue.Inspector, f queue.BatchFilter) []queue.BatchInfo {
	t.Helper()
	var all []queue.BatchInfo
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("Batches(%+v): no end after 10,000 pages", f)
		}
		page, next, err := in.Batches(ctx, f)
		skipUnsupported(t, err)
		if err != nil {
			t.Fatalf("Batches(%+v): %v", f, err)
		}
		if len(page) > f.PageLimit() {
			t.Fatalf("Batches(%+v): a page of %d", f, len(page))
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		if next == f.After {
			t.Fatalf("Batches(%+v): next cursor is the one given: no progress", f)
		}
		f.After = next
	}
}

func ids(bs []queue.BatchInfo) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.ID
	}
	return out
}

// testInspectBatches: Batches lists newest first with a cursor, filtered by
// queue and state, with counts of outcomes; Batch gives each task's state;
// bad filters and cursors are refused.
func testInspectBatches(t *testing.T, e *env) {
	in := e.inspector()
	ctx := e.ctx()
	before := time.Now().Add(-time.Second)
	failing := func(ctx context.Context, n int) (int, error) {
		if n < 0 {
			return 0, queue.Permanent(errors.New("negative"))
		}
		return 2 * n, nil
	}
	e.worker(&queue.WorkerConfig{Concurrency: 2, Queues: []string{"ib"}}, func(w *queue.Worker) { queue.HandleFunc(w, double, failing) })
	// a: finished, one done and one failed; b: cancelled before it ran; c:
	// on a queue nobody serves, pending, then running.
	a := try(queue.EnqueueBatch(ctx, e.c, double, []int{1, -1}, queue.WithQueue("ib"))).get(t)
	try(a.AwaitSettled(ctx)).get(t)
	b := try(queue.EnqueueBatch(ctx, e.c, double, ints(3), queue.WithQueue("ib"), queue.WithDelay(time.Hour))).get(t)
	if err := b.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	try(b.AwaitSettled(ctx)).get(t)
	c := try(queue.Enqueue(ctx, e.c, echo, "x", queue.WithQueue("ib-idle"))).get(t)

	// Every batch, newest first, one at a time and all at once.
	want := []string{c.BatchID(), b.ID(), a.ID()}
	for _, limit := range []int{0, 1, 2} {
		if got := ids(allBatches(t, ctx, in, queue.BatchFilter{Limit: limit})); !slices.Equal(got, want) {
			t.Fatalf("Batches with limit %d: %v, want %v", limit, got, want)
		}
	}
	all := allBatches(t, ctx, in, queue.BatchFilter{})
	wantInfo := []queue.BatchInfo{
		{ID: c.BatchID(), Kind: echo.Name(), Queue: "ib-idle", Size: 1},
		{ID: b.ID(), Kind: double.Name(), Queue: "ib", Size: 3, Canceled: 3},
		{ID: a.ID(), Kind: double.Name(), Queue: "ib", Size: 2, Done: 1, Failed: 1},
	}
	for i, got := range all {
		w := wantInfo[i]
		if got.Created.Before(before) || got.Created.After(time.Now().Add(time.Second)) {
			t.Errorf("batch %s created %v: not about now", got.ID, got.Created)
		}
		w.Created = got.Created
		if got != w {
			t.Errorf("batch %d: %+v, want %+v", i, got, w)
		}
	}
	if !all[0].Created.After(all[2].Created) && !all[0].Created.Equal(all[2].Created) {
		t.Errorf("newest batch created %v before the oldest %v", all[0].Created, all[2].Created)
	}
	if all[0].Finished() || !all[1].Finished() || !all[2].Finished() {
		t.Errorf("Finished: %v %v %v, want false true true", all[0].Finished(), all[1].Finished(), all[2].Finished())
	}
	for _, tc := range []struct {
		f    queue.BatchFilter
		want []string
	}{
		{queue.BatchFilter{Queue: "ib"}, []string{b.ID(), a.ID()}},
		{queue.BatchFilter{Queue: "ib", Limit: 1}, []string{b.ID(), a.ID()}},
		{queue.BatchFilter{State: "running"}, []string{c.BatchID()}},
		{queue.BatchFilter{State: "finished", Limit: 1}, []string{b.ID(), a.ID()}},
		{queue.BatchFilter{Queue: "ib", State: "running"}, nil},
		{queue.BatchFilter{Queue: "nowhere"}, nil},
	} {
		if got := ids(allBatches(t, ctx, in, tc.f)); !slices.Equal(got, tc.want) {
			t.Errorf("Batches(%+v): %v, want %v", tc.f, got, tc.want)
		}
	}

	// One batch, task by task.
	detail := func(id string) *queue.BatchDetail {
		t.Helper()
		d, err := in.Batch(ctx, id)
		if err != nil {
			t.Fatalf("Batch(%s): %v", id, err)
		}
		return d
	}
	if d := detail(a.ID()); d.ID != a.ID() || d.Size != 2 || !slices.Equal(d.States, []queue.TaskState{queue.TaskDone, queue.TaskFailed}) {
		t.Errorf("Batch(a): %+v, want states [done failed]", d)
	}
	if d := detail(b.ID()); !slices.Equal(d.States, []queue.TaskState{queue.TaskCanceled, queue.TaskCanceled, queue.TaskCanceled}) {
		t.Errorf("Batch(b): states %v, want all canceled", d.States)
	}
	if d := detail(c.BatchID()); d.Kind != echo.Name() || !slices.Equal(d.States, []queue.TaskState{queue.TaskPending}) {
		t.Errorf("Batch(c): %+v, want one pending task of kind %s", d, echo.Name())
	}
	var dst [1]queue.Delivery
	if n, err := e.b.Claim(ctx, "ib-idle", queue.PriorityNormal, time.Minute, dst[:]); n != 1 || err != nil {
		t.Fatalf("Claim = %d, %v; want 1", n, err)
	}
	if d := detail(c.BatchID()); !slices.Equal(d.States, []queue.TaskState{queue.TaskRunning}) {
		t.Errorf("Batch(c) claimed: states %v, want [running]", d.States)
	}
	if err := e.b.Complete(ctx, []queue.Completion{{Delivery: &dst[0], Outcome: queue.Outcome{Index: 0, Output: []byte(`"x"`)}}}); err != nil {
		t.Fatal(err)
	}
	if d := detail(c.BatchID()); !slices.Equal(d.States, []queue.TaskState{queue.TaskDone}) || d.Done != 1 || !d.Finished() {
		t.Errorf("Batch(c) completed: %+v, want [done]", d)
	}
	if _, err := in.Batch(ctx, "no-such-batch"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Batch of an unknown ID: %v, want ErrNotFound", err)
	}

	// Bad filters say what is wrong; nothing is listed.
	for _, f := range []queue.BatchFilter{
		{State: "done"}, {Limit: -1}, {Limit: queue.MaxPageLimit + 1}, {After: "not a cursor"}, {After: "-1"},
	} {
		page, _, err := in.Batches(ctx, f)
		if !errors.Is(err, queue.ErrBadInput) || page != nil {
			t.Errorf("Batches(%+v) = %d batches, %v; want ErrBadInput", f, len(page), err)
		}
	}
}

// allDeadLetters follows FindDeadLetters' cursor to the end.
func allDeadLetters(t *testing.T, ctx context.Context, in queue.Inspector, f queue.DeadLetterFilter) []string {
	t.Helper()
	var all []string
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("FindDeadLetters(%+v): no end after 10,000 pages", f)
		}
		page, next, err := in.FindDeadLetters(ctx, f)
		skipUnsupported(t, err)
		if err != nil {
			t.Fatalf("FindDeadLetters(%+v): %v", f, err)
		}
		if len(page) > f.PageLimit() {
			t.Fatalf("FindDeadLetters(%+v): a page of %d", f, len(page))
		}
		for _, d := range page {
			all = append(all, d.ID())
		}
		if next == "" {
			return all
		}
		if next == f.After {
			t.Fatalf("FindDeadLetters(%+v): next cursor is the one given: no progress", f)
		}
		f.After = next
	}
}

// testInspectDeadLetters: FindDeadLetters lists oldest first with a cursor,
// filtered by queue, kind and error text (ignoring case).
func testInspectDeadLetters(t *testing.T, e *env) {
	in := e.inspector()
	ctx := e.ctx()
	refuse := func(ctx context.Context, n int) (int, error) {
		return 0, queue.Permanent(fmt.Errorf("refused %d", n))
	}
	e.worker(&queue.WorkerConfig{Concurrency: 1, Queues: []string{"idl", "idl-2"}}, func(w *queue.Worker) {
		queue.HandleFunc(w, double, refuse)
		queue.HandleFunc(w, echo, func(ctx context.Context, s string) (string, error) {
			return "", queue.Permanent(errors.New("echo refused " + s))
		})
	})
	// One at a time, so that the order they are dead-lettered in is known.
	var tasks []string
	deadOne := func(id string, wait func(context.Context) error) {
		t.Helper()
		if err := wait(ctx); !errors.Is(err, queue.ErrPermanent) {
			t.Fatalf("task %s: %v, want a permanent failure", id, err)
		}
		tasks = append(tasks, id)
	}
	for i, q := range []string{"idl", "idl", "idl-2"} {
		task := try(queue.Enqueue(ctx, e.c, double, i+1, queue.WithQueue(q))).get(t)
		deadOne(task.ID(), func(ctx context.Context) error { _, err := task.Await(ctx); return err })
	}
	et := try(queue.Enqueue(ctx, e.c, echo, "x", queue.WithQueue("idl"))).get(t)
	deadOne(et.ID(), func(ctx context.Context) error { _, err := et.Await(ctx); return err })

	for _, tc := range []struct {
		f    queue.DeadLetterFilter
		want []string
	}{
		{queue.DeadLetterFilter{}, tasks},
		{queue.DeadLetterFilter{Limit: 1}, tasks},
		{queue.DeadLetterFilter{Queue: "idl"}, []string{tasks[0], tasks[1], tasks[3]}},
		{queue.DeadLetterFilter{Queue: "idl", Limit: 2}, []string{tasks[0], tasks[1], tasks[3]}},
		{queue.DeadLetterFilter{Kind: echo.Name()}, []string{tasks[3]}},
		{queue.DeadLetterFilter{Queue: "idl", Kind: double.Name()}, []string{tasks[0], tasks[1]}},
		{queue.DeadLetterFilter{ErrorContains: "REFUSED 2"}, []string{tasks[1]}},
		{queue.DeadLetterFilter{ErrorContains: "refused", Queue: "idl-2"}, []string{tasks[2]}},
		{queue.DeadLetterFilter{ErrorContains: "no such error"}, nil},
		{queue.DeadLetterFilter{Queue: "nowhere"}, nil},
	} {
		if got := allDeadLetters(t, ctx, in, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("FindDeadLetters(%+v): %v, want %v", tc.f, got, tc.want)
		}
	}
	page, _, err := in.FindDeadLetters(ctx, queue.DeadLetterFilter{Queue: "idl", Limit: 1})
	if err != nil || len(page) != 1 {
		t.Fatalf("FindDeadLetters: %d, %v", len(page), err)
	}
	if in, err := double.Input(&page[0].Message); err != nil || in != 1 || len(page[0].Attempts) == 0 {
		t.Errorf("dead letter %+v: want input 1 and its attempts", page[0])
	}
	for _, f := range []queue.DeadLetterFilter{{Limit: -1}, {Limit: queue.MaxPageLimit + 1}, {After: "not a cursor"}} {
		page, _, err := in.FindDeadLetters(ctx, f)
		if !errors.Is(err, queue.ErrBadInput) || page != nil {
			t.Errorf("FindDeadLetters(%+v) = %d, %v; want ErrBadInput", f, len(page), err)
		}
	}
}
