package natsbroker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// The tests of packing (Config.PackSize): a batch of n tasks is stored in
// messages of min(PackSize, n/64) consecutive tasks, leases and acks are per
// message, retries and outcomes per task.

const packN = 1024 // 64 messages of 16 tasks with the default PackSize

// packSubjects returns the messages per subject of the named queue's
// streams, the levels' and the delayed tasks' (subjects with none, and the
// queue's anchor, left out).
func packSubjects(t *testing.T, ctx context.Context, js jetstream.JetStream, prefix, name string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, kind := range []string{"q", "qd"} {
		st, err := js.Stream(ctx, prefix+"_"+kind+"_"+name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+"."+kind+"."+name+".>"))
		if err != nil {
			t.Fatal(err)
		}
		for s, n := range info.State.Subjects {
			if n > 0 && !strings.HasSuffix(s, anchorSuffix) {
				out[s] = n
			}
		}
	}
	return out
}

// waitSubjects polls the stream's subjects until they are want: moves are
// published asynchronously and acks are applied a moment after they are
// sent, and nothing signals either.
func waitSubjects(t *testing.T, ctx context.Context, js jetstream.JetStream, prefix, name string, want map[string]uint64) {
	t.Helper()
	deadline := time.Now().Add(queuetest.Liveness(30 * time.Second))
	for {
		got := packSubjects(t, ctx, js, prefix, name)
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages per subject of queue %q: %v, want %v", name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitDepth polls Depth until it is want (Depth lags acks a moment).
func waitDepth(t *testing.T, ctx context.Context, b *natsbroker.Broker, name string, want [queue.NumPriorities]int) {
	t.Helper()
	deadline := time.Now().Add(queuetest.Liveness(30 * time.Second))
	for {
		got, err := b.Depth(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Depth(%q) = %v, want %v", name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkDrained checks that the packN tasks of batch id each have their
// outcome 2i, once, and that the queue is empty: Depth zero, no message left.
func checkDrained(t *testing.T, ctx context.Context, js jetstream.JetStream, b *natsbroker.Broker, prefix, id string) {
	t.Helper()
	checkOutputs(t, outcomes(t, ctx, b, id, packN), double)
	waitDepth(t, ctx, b, queue.DefaultQueue, normalDepth(0))
	waitSubjects(t, ctx, js, prefix, "default", map[string]uint64{})
}

// claimSome claims into dst, waiting for a wake-up whenever a claim returns
// nothing, until one returns something.
func claimSome(t *testing.T, ctx context.Context, b *natsbroker.Broker, lease time.Duration, dst []queue.Delivery) int {
	t.Helper()
	for {
		// Notify before the claim, so that a wake-up between the two is
		// not missed; its context ends when the wait does, as a worker's.
		nctx, cancel := context.WithCancel(ctx)
		ch, err := b.Notify(nctx, []string{queue.DefaultQueue})
		if err != nil {
			t.Fatal(err)
		}
		n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, lease, dst)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			cancel()
			return n
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no task came: %v", ctx.Err())
		}
		cancel()
	}
}

// claimAll claims n tasks, room at a time, and checks that none of them was
// claimed twice.
func claimAll(t *testing.T, ctx context.Context, b *natsbroker.Broker, lease time.Duration, n, room int) []queue.Delivery {
	t.Helper()
	ds := make([]queue.Delivery, n)
	seen := map[int]bool{}
	for got := 0; got < n; {
		k := claimSome(t, ctx, b, lease, ds[got:min(got+room, n)])
		for _, d := range ds[got : got+k] {
			if seen[d.Index] {
				t.Fatalf("task %d claimed twice (attempt %d)", d.Index, d.Attempt)
			}
			seen[d.Index] = true
		}
		got += k
	}
	return ds
}

// checkDelivery checks a delivery of a procKind task whose input is its
// index (ints).
func checkDelivery(t *testing.T, d *queue.Delivery, batch string, attempt int) {
	t.Helper()
	if d.BatchID != batch || d.Queue != queue.DefaultQueue || d.Priority != queue.PriorityNormal {
		t.Fatalf("delivery of task %s on queue %q level %d: want batch %s, queue %q, level %d",
			d.ID(), d.Queue, d.Priority, batch, queue.DefaultQueue, queue.PriorityNormal)
	}
	if want := strconv.Itoa(d.Index); string(d.Payload) != want {
		t.Fatalf("task %s: payload %q, want %q", d.ID(), d.Payload, want)
	}
	if d.Attempt != attempt {
		t.Fatalf("task %s: Attempt %d, want %d", d.ID(), d.Attempt, attempt)
	}
}

func output(v int) []byte { return []byte(`{"v":` + strconv.Itoa(v) + `}`) }

// completeWith completes every delivery of ds with the output v(index).
func completeWith(t *testing.T, ctx context.Context, b *natsbroker.Broker, ds []queue.Delivery, v func(i int) int) {
	t.Helper()
	cs := make([]queue.Completion, len(ds))
	for i := range ds {
		cs[i] = queue.Completion{Delivery: &ds[i], Outcome: queue.Outcome{Index: ds[i].Index, Output: output(v(ds[i].Index))}}
	}
	if err := b.Complete(ctx, cs); err != nil {
		t.Fatal(err)
	}
}

func double(i int) int { return 2 * i }

// outcomes follows batch id to its end and returns its outcomes by index,
// failing on an outcome returned twice or a missing one.
func outcomes(t *testing.T, ctx context.Context, b *natsbroker.Broker, id string, n int) []queue.Outcome {
	t.Helper()
	sub, err := b.Subscribe(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Size() != n {
		t.Fatalf("batch of %d tasks, want %d", sub.Size(), n)
	}
	res := make([]queue.Outcome, n)
	seen := make([]bool, n)
	count := 0
	buf := make([]queue.Outcome, 100)
	for {
		k, err := sub.Next(ctx, buf)
		for _, o := range buf[:k] {
			if o.Index < 0 || o.Index >= n {
				t.Fatalf("outcome of task %d of a batch of %d", o.Index, n)
			}
			if seen[o.Index] {
				t.Fatalf("outcome of task %d returned twice", o.Index)
			}
			seen[o.Index] = true
			o.Output = bytes.Clone(o.Output)
			res[o.Index] = o
			count++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if count != n {
		t.Fatalf("%d outcomes, want %d", count, n)
	}
	return res
}

// checkOutputs checks that every outcome succeeded with output want(index).
func checkOutputs(t *testing.T, res []queue.Outcome, want func(i int) int) {
	t.Helper()
	for i, o := range res {
		if o.Err != nil {
			t.Fatalf("task %d failed: %v", i, o.Err)
		}
		var out procOut
		if err := json.Unmarshal(o.Output, &out); err != nil || out.V != want(i) {
			t.Fatalf("task %d: output %q (%v), want v %d", i, o.Output, err, want(i))
		}
	}
}

func normalDepth(n int) [queue.NumPriorities]int {
	var d [queue.NumPriorities]int
	d[queue.PriorityNormal] = n
	return d
}

// TestPackWorkerRunsPackedBatch: a batch of 1,024 tasks goes out in 64
// messages of 16, Depth counts its tasks (not its messages), a normal
// worker runs every task exactly once with the right result, and the
// queue is empty afterwards.
func TestPackWorkerRunsPackedBatch(t *testing.T) {
	t.Parallel()
	const prefix = "packrun"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	// Enqueue returns once every message is stored: both are exact now.
	if got, want := packSubjects(t, ctx, js, prefix, "default"), map[string]uint64{prefix + ".q.default.1.16": 64}; !maps.Equal(got, want) {
		t.Fatalf("messages per subject: %v, want %v", got, want)
	}
	if d, err := b.Depth(ctx, queue.DefaultQueue); err != nil || d != normalDepth(packN) {
		t.Fatalf("Depth right after enqueueing = %v, %v; want %v", d, err, normalDepth(packN))
	}
	runs := make([]atomic.Int32, packN)
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) {
		runs[n].Add(1)
		return procOut{V: 2 * n}, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
		defer scancel()
		if err := w.Shutdown(sctx); err != nil {
			t.Error(err)
		}
	}()
	res, err := batch.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.V != 2*i {
			t.Fatalf("task %d = %d, want %d", i, r.V, 2*i)
		}
	}
	for i := range runs {
		if k := runs[i].Load(); k != 1 {
			t.Fatalf("task %d ran %d times, want once", i, k)
		}
	}
	checkDrained(t, ctx, js, b, prefix, batch.ID())
}

// TestPackClaimSmallRoomMovesRest: a claim with room for fewer tasks than a
// message carries takes the first ones of the message and moves the rest to
// a message of their own ("...1.<rest>"), at the back of the level, keeping
// their attempts: each of the batch's tasks is claimed once, at attempt 1,
// and completing them all records every outcome once.
func TestPackClaimSmallRoomMovesRest(t *testing.T) {
	t.Parallel()
	const prefix = "packroom"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	var one [1]queue.Delivery
	if n := claimSome(t, ctx, b, time.Minute, one[:]); n != 1 {
		t.Fatalf("Claim with room 1 = %d tasks", n)
	}
	if one[0].Index != 0 {
		t.Fatalf("Claim with room 1 took task %d, want 0 (the first of the first message)", one[0].Index)
	}
	checkDelivery(t, &one[0], batch.ID(), 1)
	// Tasks 1-15 moved to a message of their own; the message they came in
	// stays until task 0 is finished.
	waitSubjects(t, ctx, js, prefix, "default", map[string]uint64{prefix + ".q.default.1.16": 64, prefix + ".q.default.1.15": 1})

	var three [3]queue.Delivery
	if n := claimSome(t, ctx, b, time.Minute, three[:]); n != 3 {
		t.Fatalf("Claim with room 3 = %d tasks", n)
	}
	for j := range three {
		if three[j].Index != 16+j {
			t.Fatalf("Claim with room 3: task %d at %d, want %d (consecutive, from the second message)", three[j].Index, j, 16+j)
		}
		checkDelivery(t, &three[j], batch.ID(), 1)
	}
	waitSubjects(t, ctx, js, prefix, "default", map[string]uint64{
		prefix + ".q.default.1.16": 64, prefix + ".q.default.1.15": 1, prefix + ".q.default.1.13": 1})

	// The rest, moved tasks included, with room for all of it: no move.
	rest := claimAll(t, ctx, b, time.Minute, packN-4, packN)
	seen := map[int]bool{0: true, 16: true, 17: true, 18: true}
	for i := range rest {
		d := &rest[i]
		if seen[d.Index] {
			t.Fatalf("task %d claimed again (attempt %d)", d.Index, d.Attempt)
		}
		seen[d.Index] = true
		checkDelivery(t, d, batch.ID(), 1) // moves keep attempts: this is still the first
	}
	if len(seen) != packN {
		t.Fatalf("%d distinct tasks claimed, want %d", len(seen), packN)
	}
	// Finishing the claimed part of a split message acknowledges it: the
	// tasks moved out of it are counted once, in their own messages.
	completeWith(t, ctx, b, one[:], double)
	completeWith(t, ctx, b, three[:], double)
	waitDepth(t, ctx, b, queue.DefaultQueue, normalDepth(packN-4))
	waitSubjects(t, ctx, js, prefix, "default", map[string]uint64{
		prefix + ".q.default.1.16": 62, prefix + ".q.default.1.15": 1, prefix + ".q.default.1.13": 1})
	completeWith(t, ctx, b, rest, double)
	checkDrained(t, ctx, js, b, prefix, batch.ID())
}

// TestPackRetryOneTask: a task retried out of a message of 16 comes back
// alone, with one more attempt after a failure and the same attempt after
// a release (failure nil); one retried with a delay is not claimable
// before it is due, and comes when it is, woken by Notify.
func TestPackRetryOneTask(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	js := connect(t, s)
	const prefix = "packretry"
	// IdleRecheck well above the retry delay: the delayed task must come on
	// the wake-up its retry scheduled, not on a periodic recheck.
	const recheck = 3 * time.Second
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, IdleRecheck: recheck})
	c, _ := queue.NewClient(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	// Three messages of 16, then every other task, so that a retried task
	// is the only one left to claim.
	var packs [3][16]queue.Delivery
	for p := range packs {
		if n := claimSome(t, ctx, b, time.Minute, packs[p][:]); n != 16 {
			t.Fatalf("Claim of 16 = %d tasks", n)
		}
		for j := range packs[p] {
			if want := 16*p + j; packs[p][j].Index != want {
				t.Fatalf("message %d: task %d at %d, want %d", p, packs[p][j].Index, j, want)
			}
			checkDelivery(t, &packs[p][j], batch.ID(), 1)
		}
	}
	rest := claimAll(t, ctx, b, time.Minute, packN-48, packN)
	for i := range rest {
		if rest[i].Index < 48 {
			t.Fatalf("task %d claimed again", rest[i].Index)
		}
	}
	completeWith(t, ctx, b, rest, double)

	// others completes every task of a message but one.
	others := func(p *[16]queue.Delivery, skip int) {
		t.Helper()
		var ds []queue.Delivery
		for j := range p {
			if j != skip {
				ds = append(ds, p[j])
			}
		}
		// Copies will do: Complete goes by a delivery's Ref and Seq.
		completeWith(t, ctx, b, ds, double)
	}
	// claimOnly claims and expects exactly task want at attempt.
	claimOnly := func(want, attempt int) *queue.Delivery {
		t.Helper()
		dst := make([]queue.Delivery, 16)
		if n := claimSome(t, ctx, b, time.Minute, dst); n != 1 {
			t.Fatalf("claimed %d tasks, want task %d alone", n, want)
		}
		if dst[0].Index != want {
			t.Fatalf("claimed task %d, want %d", dst[0].Index, want)
		}
		checkDelivery(t, &dst[0], batch.ID(), attempt)
		return &dst[0]
	}

	// A failure: retried now, it comes back alone at attempt 2.
	if err := b.Retry(ctx, &packs[0][5], time.Now(), &queue.AttemptError{Attempt: 1, At: time.Now(), Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	others(&packs[0], 5)
	d := claimOnly(5, 2)
	completeWith(t, ctx, b, []queue.Delivery{*d}, double)

	// A release: it comes back alone at the same attempt.
	if err := b.Retry(ctx, &packs[1][3], time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	others(&packs[1], 3)
	d = claimOnly(19, 1)
	completeWith(t, ctx, b, []queue.Delivery{*d}, double)

	// A delayed retry: not claimable before it is due.
	at := time.Now().Add(300 * time.Millisecond)
	if err := b.Retry(ctx, &packs[2][0], at, &queue.AttemptError{Attempt: 1, At: time.Now(), Error: "later"}); err != nil {
		t.Fatal(err)
	}
	others(&packs[2], 0)
	// It waits alone on the level's delay subject, its message acknowledged
	// (promotion only happens on a claim, so this holds past its due time).
	waitSubjects(t, ctx, js, prefix, "default", map[string]uint64{prefix + ".qd.default.1": 1})
	if d, err := b.Depth(ctx, queue.DefaultQueue); err != nil || d != normalDepth(1) {
		t.Fatalf("Depth with one delayed task = %v, %v; want %v", d, err, normalDepth(1))
	}
	dst := make([]queue.Delivery, 16)
	for {
		ch, err := b.Notify(ctx, []string{queue.DefaultQueue})
		if err != nil {
			t.Fatal(err)
		}
		n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if n > 0 {
			if now.Before(at) {
				t.Fatalf("delayed retry claimed %v before it is due", at.Sub(now))
			}
			if n != 1 || dst[0].Index != 32 {
				t.Fatalf("claimed %d tasks, the first %d: want task 32 alone", n, dst[0].Index)
			}
			checkDelivery(t, &dst[0], batch.ID(), 2)
			if late := now.Sub(at); late > recheck-time.Second {
				t.Fatalf("delayed retry claimed %v after it was due: its wake-up did not come (IdleRecheck %v)", late, recheck)
			}
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("no wake-up for the delayed retry")
		}
	}
	completeWith(t, ctx, b, dst[:1], double)

	checkDrained(t, ctx, js, b, prefix, batch.ID())
}

// TestPackLocalLeaseExpiry: a message claimed with a lease shorter than
// AckWait and not finished in time hands back its unfinished tasks when the
// local lease expires: they come again at attempt 2, in a message of their
// own, and the tasks finished meanwhile do not run again.
func TestPackLocalLeaseExpiry(t *testing.T) {
	t.Parallel()
	const prefix = "packlease"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	const lease = 300 * time.Millisecond
	var pack [16]queue.Delivery
	claimed := time.Now()
	if n := claimSome(t, ctx, b, lease, pack[:]); n != 16 {
		t.Fatalf("Claim of 16 = %d tasks", n)
	}
	returned := time.Now()
	for j := range pack {
		if pack[j].Index != j {
			t.Fatalf("task %d at %d, want %d", pack[j].Index, j, j)
		}
		checkDelivery(t, &pack[j], batch.ID(), 1)
		if e := pack[j].Expires; e.Before(claimed.Add(lease)) || e.After(returned.Add(lease)) {
			t.Fatalf("task %d's lease expires %v after the claim (which took %v), want %v", j, e.Sub(claimed), returned.Sub(claimed), lease)
		}
	}
	// Half of the message finishes in time; the other half never does.
	completeWith(t, ctx, b, pack[:8], double)
	// Everything else, on a long lease, finished: only the expired message
	// can come again.
	rest := claimAll(t, ctx, b, time.Minute, packN-16, packN)
	for i := range rest {
		if rest[i].Index < 16 {
			t.Fatalf("task %d claimed again while its lease had not expired (%v since the claim)", rest[i].Index, time.Since(claimed))
		}
		checkDelivery(t, &rest[i], batch.ID(), 1)
	}
	completeWith(t, ctx, b, rest, double)

	again := make([]queue.Delivery, 64)
	n := claimSome(t, ctx, b, time.Minute, again)
	if since := time.Since(claimed); since < lease {
		t.Fatalf("the message came back %v after the claim, before its lease of %v expired", since, lease)
	}
	// Only the unfinished half comes back (moved to a message of its own),
	// counting the expired delivery as an attempt; the finished half does
	// not run again.
	if n != 8 {
		t.Fatalf("after the lease expired, claimed %d tasks; want the 8 unfinished ones", n)
	}
	for j := range again[:n] {
		if again[j].Index != 8+j {
			t.Fatalf("after the lease expired: task %d at %d, want %d", again[j].Index, j, 8+j)
		}
		checkDelivery(t, &again[j], batch.ID(), 2)
	}
	completeWith(t, ctx, b, again[:n], double)
	checkDrained(t, ctx, js, b, prefix, batch.ID())
}

// logRecorder keeps the messages of the records logged to it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var sb strings.Builder
	sb.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&sb, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, sb.String())
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// TestPackBadWireData: a message on a packed subject that does not decode
// is dead-lettered, and every task its headers name (Gather-Task, then
// Gather-Count of them, clamped to the batch) fails with bad_input, no more;
// good tasks behind it still run.
func TestPackBadWireData(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	js := connect(t, s)
	const prefix = "packbad"
	logs := &logRecorder{}
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, Logger: slog.New(logs)})
	c, _ := queue.NewClient(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	// Batches whose real tasks wait far in the future: the junk messages
	// below claim to carry some of their tasks.
	victim, err := queue.EnqueueBatch(ctx, c, procKind, ints(5), queue.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	small, err := queue.EnqueueBatch(ctx, c, procKind, ints(2), queue.WithDelay(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	junk := func(subj, first, count string) {
		t.Helper()
		m := &nats.Msg{Subject: subj, Data: []byte("junk"), Header: nats.Header{"Gather-Task": []string{first}, "Gather-Count": []string{count}}}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	junk(prefix+".q.default.1.3", queue.TaskID(victim.ID(), 1), "3") // tasks 1-3 of 5
	junk(prefix+".q.default.1.5", queue.TaskID(small.ID(), 0), "5")  // 5 tasks of a batch of 2
	good, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))   // packed, behind the junk
	if err != nil {
		t.Fatal(err)
	}
	// Follow the victim before anything runs.
	sub, err := b.Subscribe(ctx, victim.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: 2 * n}, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), queuetest.Liveness(time.Minute))
		defer scancel()
		if err := w.Shutdown(sctx); err != nil {
			t.Error(err)
		}
	}()
	res, err := good.Await(ctx)
	if err != nil {
		t.Fatalf("good batch behind the bad messages: %v", err)
	}
	for i, r := range res {
		if r.V != 2*i {
			t.Fatalf("good task %d = %d, want %d", i, r.V, 2*i)
		}
	}

	// The three tasks the junk names fail with bad_input.
	checkBad := func(o queue.Outcome) {
		t.Helper()
		if o.Err == nil || o.Err.Code != queue.CodeBadInput || !errors.Is(o.Err, queue.ErrBadInput) ||
			!strings.Contains(o.Err.Message, "bad wire data") || !strings.Contains(o.Err.Message, "no GQ magic") {
			t.Fatalf("task %d: outcome %+v (%v), want bad_input saying bad wire data and no GQ magic", o.Index, o, o.Err)
		}
	}
	got := map[int]bool{}
	buf := make([]queue.Outcome, 8)
	for len(got) < 3 {
		k, err := sub.Next(ctx, buf)
		if err != nil {
			t.Fatalf("victim's outcomes: %v after %v", err, got)
		}
		for _, o := range buf[:k] {
			checkBad(o)
			got[o.Index] = true
		}
	}
	if !maps.Equal(got, map[int]bool{1: true, 2: true, 3: true}) {
		t.Fatalf("victim tasks with an outcome: %v, want 1, 2, 3", got)
	}
	// No other task of the victim has an outcome: cancelled now, tasks 0
	// and 4 read as cancelled (an outcome recorded before the marker wins).
	if err := victim.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	settled, err := victim.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range settled {
		switch {
		case i == 0 || i == 4:
			if !errors.Is(r.Err, queue.ErrCanceled) {
				t.Fatalf("victim task %d: %v, want cancelled (the junk does not name it)", i, r.Err)
			}
		default:
			if !errors.Is(r.Err, queue.ErrBadInput) || !strings.Contains(r.Err.Error(), "bad wire data") {
				t.Fatalf("victim task %d: %v, want ErrBadInput saying bad wire data", i, r.Err)
			}
		}
	}
	// Gather-Count 5 on a batch of 2: clamped, both fail, and the results
	// message holds no index beyond the batch (a subscriber would log that
	// it does not decode).
	settled, err = small.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range settled {
		if !errors.Is(r.Err, queue.ErrBadInput) || !strings.Contains(r.Err.Error(), "bad wire data") {
			t.Fatalf("small batch task %d: %v, want ErrBadInput saying bad wire data", i, r.Err)
		}
	}
	for _, m := range logs.all() {
		if strings.Contains(m, "does not decode") {
			t.Fatalf("logged %q: a results message with outcomes beyond its batch", m)
		}
	}

	dls, err := c.DeadLetters(ctx, queue.DefaultQueue, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 {
		t.Fatalf("%d dead letters, want 2: %+v", len(dls), dls)
	}
	byBatch := map[string]queue.DeadLetter{}
	for _, dl := range dls {
		byBatch[dl.BatchID] = dl
	}
	for _, want := range []struct {
		id    string
		index int
	}{{victim.ID(), 1}, {small.ID(), 0}} {
		dl, ok := byBatch[want.id]
		if !ok {
			t.Fatalf("no dead letter for batch %s: %+v", want.id, dls)
		}
		if dl.Index != want.index || string(dl.Payload) != "junk" || len(dl.Attempts) != 1 ||
			!strings.Contains(dl.Attempts[0].Error, "bad wire data") || !strings.Contains(dl.Attempts[0].Error, "no GQ magic") {
			t.Fatalf("dead letter %+v: want task %d, the junk as payload, one attempt saying bad wire data and no GQ magic", dl, want.index)
		}
	}
}

// TestPackConfig: PackSize out of [0, 1024] is refused; a batch goes out in
// messages of min(PackSize, n/64) tasks (the last one holding the rest),
// so PackSize 1 and batches under 128 tasks store one task per message, and
// a claim with little room then moves nothing.
func TestPackConfig(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	js := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	for _, ps := range []int{-1, 1025} {
		b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: "packbadcfg", PackSize: ps})
		if err == nil {
			b.Close()
			t.Fatalf("PackSize %d accepted", ps)
		}
		rng := fmt.Sprintf("0 (default %d) to 1024", natsbroker.DefaultPackSize)
		if !errors.Is(err, queue.ErrBadConfig) || !strings.Contains(err.Error(), "PackSize is "+strconv.Itoa(ps)) ||
			!strings.Contains(err.Error(), rng) {
			t.Fatalf("PackSize %d: %v; want ErrBadConfig naming PackSize and the range %s", ps, err, rng)
		}
	}

	for _, tc := range []struct {
		prefix   string
		packSize int
		n        int
		want     map[string]uint64 // subject suffix after "<prefix>.q.default."
	}{
		{"packcfg1", 1, packN, map[string]uint64{"1": packN}},
		{"packcfgdef", 0, packN, map[string]uint64{"1.16": 64}},
		{"packcfgdefmax", 0, 64 * natsbroker.DefaultPackSize * 2, map[string]uint64{"1." + strconv.Itoa(natsbroker.DefaultPackSize): 128}},
		{"packcfg4", 4, packN, map[string]uint64{"1.4": 256}},
		{"packcfgmax", 1024, packN, map[string]uint64{"1.16": 64}}, // n/64 bounds it
		{"packcfg200", 0, 200, map[string]uint64{"1.3": 66, "1.2": 1}},
		{"packcfg127", 0, 127, map[string]uint64{"1": 127}},
		{"packcfg128", 0, 128, map[string]uint64{"1.2": 64}},
	} {
		b := newBroker(t, js, natsbroker.Config{Prefix: tc.prefix, PackSize: tc.packSize})
		c, _ := queue.NewClient(b, nil)
		batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(tc.n))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint64{}
		for k, v := range tc.want {
			want[tc.prefix+".q.default."+k] = v
		}
		if got := packSubjects(t, ctx, js, tc.prefix, "default"); !maps.Equal(got, want) {
			t.Fatalf("PackSize %d, %d tasks: messages per subject %v, want %v", tc.packSize, tc.n, got, want)
		}
		if d, err := b.Depth(ctx, queue.DefaultQueue); err != nil || d != normalDepth(tc.n) {
			t.Fatalf("PackSize %d, %d tasks: Depth = %v, %v; want %v", tc.packSize, tc.n, d, err, normalDepth(tc.n))
		}
		if tc.packSize != 1 {
			continue
		}
		// One task per message: a claim with room 1 takes a whole message
		// and moves nothing.
		var one [1]queue.Delivery
		if n := claimSome(t, ctx, b, time.Minute, one[:]); n != 1 || one[0].Index != 0 {
			t.Fatalf("PackSize 1: Claim with room 1 = %d tasks, the first %d; want task 0", n, one[0].Index)
		}
		checkDelivery(t, &one[0], batch.ID(), 1)
		completeWith(t, ctx, b, one[:], double)
		waitSubjects(t, ctx, js, tc.prefix, "default", map[string]uint64{tc.prefix + ".q.default.1": packN - 1})
	}
}

// TestPackBoundedQueueUnpacked: a queue with a bound (QueueMaxDepth, or
// MaxDepth for every queue) stores one task per message, since the server
// bounds messages; the others of the same broker are still packed.
func TestPackBoundedQueueUnpacked(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	js := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()

	const prefix = "packbound"
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, QueueMaxDepth: map[string]int{"b": 5000}})
	c, _ := queue.NewClient(b, nil)
	if _, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN), queue.WithQueue("b")); err != nil {
		t.Fatal(err)
	}
	if _, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN)); err != nil {
		t.Fatal(err)
	}
	if got, want := packSubjects(t, ctx, js, prefix, "b"), map[string]uint64{prefix + ".q.b.1": packN}; !maps.Equal(got, want) {
		t.Fatalf("bounded queue: messages per subject %v, want %v", got, want)
	}
	if got, want := packSubjects(t, ctx, js, prefix, "default"), map[string]uint64{prefix + ".q.default.1.16": 64}; !maps.Equal(got, want) {
		t.Fatalf("unbounded queue of the same broker: messages per subject %v, want %v", got, want)
	}
	if d, err := b.Depth(ctx, "b"); err != nil || d != normalDepth(packN) {
		t.Fatalf("Depth(b) = %v, %v; want %v", d, err, normalDepth(packN))
	}

	const prefix2 = "packboundall"
	b2 := newBroker(t, js, natsbroker.Config{Prefix: prefix2, MaxDepth: 5000})
	c2, _ := queue.NewClient(b2, nil)
	if _, err := queue.EnqueueBatch(ctx, c2, procKind, ints(packN)); err != nil {
		t.Fatal(err)
	}
	if got, want := packSubjects(t, ctx, js, prefix2, "default"), map[string]uint64{prefix2 + ".q.default.1": packN}; !maps.Equal(got, want) {
		t.Fatalf("MaxDepth set: messages per subject %v, want %v", got, want)
	}
}

// TestPackDelayedBatch: a delayed batch is packed on its level's delay
// subject (".d<level>.<k>"), Depth counts its tasks, none is claimable
// before it is due, and once due every message is moved whole to its
// level: each task comes once, at attempt 1.
func TestPackDelayedBatch(t *testing.T) {
	t.Parallel()
	const prefix = "packdelay"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	const delay = 400 * time.Millisecond
	due := time.Now().Add(delay)
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN), queue.WithDelay(delay))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := packSubjects(t, ctx, js, prefix, "default"), map[string]uint64{prefix + ".qd.default.1.16": 64}; !maps.Equal(got, want) {
		t.Fatalf("messages per subject: %v, want %v", got, want)
	}
	if d, err := b.Depth(ctx, queue.DefaultQueue); err != nil || d != normalDepth(packN) {
		t.Fatalf("Depth of the delayed batch = %v, %v; want %v", d, err, normalDepth(packN))
	}
	dst := make([]queue.Delivery, packN)
	got := 0
	for got < packN {
		ch, err := b.Notify(ctx, []string{queue.DefaultQueue})
		if err != nil {
			t.Fatal(err)
		}
		n, err := b.Claim(ctx, queue.DefaultQueue, queue.PriorityNormal, time.Minute, dst[got:])
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && time.Now().Before(due) {
			t.Fatalf("claimed %d tasks of the delayed batch %v before they are due", n, time.Until(due))
		}
		got += n
		if n > 0 {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%d tasks of the delayed batch came, want %d", got, packN)
		}
	}
	seen := make([]bool, packN)
	for i := range dst {
		if seen[dst[i].Index] {
			t.Fatalf("task %d claimed twice", dst[i].Index)
		}
		seen[dst[i].Index] = true
		checkDelivery(t, &dst[i], batch.ID(), 1)
	}
	completeWith(t, ctx, b, dst, double)
	checkDrained(t, ctx, js, b, prefix, batch.ID())
}

// TestPackRetryDueAfterSiblingLeaseExpires: a task retried out of a message
// with a delay (its backoff) must not run before that delay, even when the
// lease of the message it came in expires before its siblings finish
// (queue.Broker.Retry: "run again at or after at"). The retry moved it to a
// message of its own, due in an hour; the expired lease must hand back only
// the unfinished tasks of the message it came in, not it.
func TestPackRetryDueAfterSiblingLeaseExpires(t *testing.T) {
	t.Parallel()
	const prefix = "packretryexp"
	_, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	const lease = 300 * time.Millisecond
	var pack [16]queue.Delivery
	if n := claimSome(t, ctx, b, lease, pack[:]); n != 16 {
		t.Fatalf("Claim of 16 = %d tasks", n)
	}
	rest := claimAll(t, ctx, b, time.Minute, packN-16, packN)
	completeWith(t, ctx, b, rest, double)
	// Task 5 fails and is retried in an hour; 0-4 and 6-14 finish; 15
	// does not finish within the lease.
	if err := b.Retry(ctx, &pack[5], time.Now().Add(time.Hour), &queue.AttemptError{Attempt: 1, At: time.Now(), Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	completeWith(t, ctx, b, pack[:5], double)
	completeWith(t, ctx, b, pack[6:15], double)

	// What the expiry hands back.
	again := make([]queue.Delivery, 64)
	n := claimSome(t, ctx, b, time.Minute, again)
	var idx []int
	for _, d := range again[:n] {
		idx = append(idx, d.Index)
	}
	for _, d := range again[:n] {
		if d.Index == 5 {
			t.Errorf("after its siblings' lease expired, task 5, retried to run in an hour, was delivered now (attempt %d); delivered: %v", d.Attempt, idx)
		}
	}
	if !slices.Contains(idx, 15) {
		t.Errorf("after the lease expired, delivered %v: want task 15 (unfinished) among them", idx)
	}
	for _, d := range again[:n] {
		if d.Index == 15 {
			checkDelivery(t, &d, batch.ID(), 2)
		}
	}
	completeWith(t, ctx, b, again[:n], double)
}

// TestPackClaimAfterSmallMessages: a claim sized by single-task messages
// (the level's last claim saw one task per message) that meets packs
// fetches more messages than it has room for; those it cannot take are
// kept for the level's next claim, in order, neither moved to the back nor
// counted as an attempt. Kept messages nobody claims are handed back after
// a moment, to any broker.
func TestPackClaimAfterSmallMessages(t *testing.T) {
	t.Parallel()
	const prefix = "packover"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix, AckWait: 2 * time.Second})
	small, err := queue.Enqueue(ctx, c, procKind, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]queue.Delivery
	if n := claimSome(t, ctx, b, time.Minute, one[:]); n != 1 || one[0].ID() != small.ID() {
		t.Fatalf("claimed %d tasks (%s), want the lone task", n, one[0].ID())
	}
	completeWith(t, ctx, b, one[:], double)
	big, err := queue.EnqueueBatch(ctx, c, procKind, ints(2048)) // 128 messages of 16
	if err != nil {
		t.Fatal(err)
	}
	for want := 0; want < 256; want += 64 {
		var dst [64]queue.Delivery
		n := claimSome(t, ctx, b, time.Minute, dst[:])
		if n != 64 {
			t.Fatalf("claim %d returned %d tasks, want 64", want/64, n)
		}
		for j := range dst[:n] {
			if dst[j].Index != want+j {
				t.Fatalf("claim %d: task %d at %d, want task %d: packs were reordered", want/64, dst[j].Index, j, want+j)
			}
			checkDelivery(t, &dst[j], big.ID(), 1)
		}
		completeWith(t, ctx, b, dst[:n], double)
	}
	// Whatever this broker kept from its over-sized fetches is handed back
	// within a second (AckWait/4) for another broker (on the same connection
	// here) to claim.
	other := newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: 2 * time.Second})
	rest := claimAll(t, ctx, other, time.Minute, 2048-256, 512)
	for i := range rest {
		if rest[i].Index < 256 {
			t.Fatalf("task %d claimed again", rest[i].Index)
		}
		if rest[i].Attempt > 2 {
			t.Fatalf("task %d at attempt %d: at most one hand-back of a kept message counts", rest[i].Index, rest[i].Attempt)
		}
		checkDelivery(t, &rest[i], big.ID(), rest[i].Attempt)
	}
	completeWith(t, ctx, other, rest, double)
	checkOutputs(t, outcomes(t, ctx, b, big.ID(), 2048), double)
}

// TestPackClaimDoesNotSplitForTheRest: a claim that has whole messages
// already does not fetch one more only to split it (storing its rest again
// and holding its acknowledgement until that is stored): with room for one
// and a half messages it takes one.
func TestPackClaimDoesNotSplitForTheRest(t *testing.T) {
	t.Parallel()
	const prefix = "packnosplit"
	js, b, c, ctx := testBroker(t, natsbroker.Config{Prefix: prefix})
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(packN))
	if err != nil {
		t.Fatal(err)
	}
	var room [24]queue.Delivery
	n := claimSome(t, ctx, b, time.Minute, room[:])
	if n != 16 {
		t.Fatalf("Claim with room 24 = %d tasks, want 16 (one message of 16, none split)", n)
	}
	for j := range n {
		checkDelivery(t, &room[j], batch.ID(), 1)
	}
	completeWith(t, ctx, b, room[:n], double)
	waitSubjects(t, ctx, js, prefix, "default", map[string]uint64{prefix + ".q.default.1.16": 63})
	rest := claimAll(t, ctx, b, time.Minute, packN-16, packN)
	completeWith(t, ctx, b, rest, double)
	checkDrained(t, ctx, js, b, prefix, batch.ID())
}
