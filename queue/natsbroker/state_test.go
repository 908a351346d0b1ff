package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

// runTasks runs n tasks through a worker on b, in batches of size, and
// returns the batch IDs, oldest first.
func runTasks(tb testing.TB, ctx context.Context, b *natsbroker.Broker, n, size int) []string {
	tb.Helper()
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4})
	if err != nil {
		tb.Fatal(err)
	}
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: n}, nil })
	if err := w.Start(); err != nil {
		tb.Fatal(err)
	}
	defer w.Shutdown(ctx)
	c, err := queue.NewClient(b, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for range n / size {
		bt, err := queue.EnqueueBatch(ctx, c, procKind, ints(size))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := bt.Await(ctx); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, bt.ID())
	}
	return ids
}

// TestStateCaps: the state stream holds at most StateMaxMsgs messages;
// past it the oldest batches' state goes first (they are no longer found),
// the newest stays.
func TestStateCaps(t *testing.T) {
	t.Parallel()
	const prefix = "caps"
	js, b, _, ctx := testBroker(t, natsbroker.Config{Prefix: prefix, StateMaxMsgs: 100})
	ids := runTasks(t, ctx, b, 300, 1)
	st, err := js.Stream(ctx, prefix+"_state")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs > 100 || info.Config.Discard != jetstream.DiscardOld {
		t.Fatalf("state stream: %+v, %v; want at most 100 messages, the oldest discarded", info.State, err)
	}
	c, _ := queue.NewClient(b, nil)
	if _, err := queue.Attach(ctx, c, procKind, ids[0]); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the oldest of 300 batches past a cap of 100 messages: Attach = %v, want ErrNotFound", err)
	}
	if _, err := queue.Attach(ctx, c, procKind, ids[len(ids)-1]); err != nil {
		t.Errorf("the newest batch: Attach = %v", err)
	}
}

// BenchmarkStateBytes measures what the state stream holds per finished
// task while it is kept for Retention (batch records, results; outputs of a
// few bytes), run alone and in batches of 1,000, on an embedded server's
// file store:
//
//	go test -run '^$' -bench StateBytes -benchtime 1x ./queue/natsbroker/
func BenchmarkStateBytes(b *testing.B) {
	js := connect(b, embedded(b, false))
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(5*time.Minute))
	defer cancel()
	for _, tc := range []struct{ n, size int }{{2000, 1}, {20000, 1000}} {
		b.Run(fmt.Sprintf("batch=%d", tc.size), func(b *testing.B) {
			for b.Loop() {
				prefix := fmt.Sprintf("bytes%d", prefixes.Add(1))
				br := newBroker(b, js, natsbroker.Config{Prefix: prefix})
				runTasks(b, ctx, br, tc.n, tc.size)
				st, err := js.Stream(ctx, prefix+"_state")
				if err != nil {
					b.Fatal(err)
				}
				info, err := st.Info(ctx)
				if err != nil {
					b.Fatal(err)
				}
				per := float64(info.State.Bytes) / float64(tc.n)
				b.ReportMetric(per, "B/task")
				b.ReportMetric(per*1e6/(1<<20), "MiB/Mtasks")
				b.ReportMetric(float64(info.State.Msgs)/float64(tc.n), "msgs/task")
				br.Close()
			}
		})
	}
}

// TestInputsWithinMaxPayload: on a server whose max_payload is 16 KiB, a
// batch whose packs of 16 would pass it goes out in smaller packs and
// runs; an input that cannot fit a message alone is refused with the
// limit, before anything is stored.
func TestInputsWithinMaxPayload(t *testing.T) {
	t.Parallel()
	b := newBroker(t, smallServer(t), natsbroker.Config{Prefix: "maxpay"})
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	c, _ := queue.NewClient(b, nil)
	if _, err := queue.Enqueue(ctx, c, echoKind, strings.Repeat("x", 17<<10)); !errors.Is(err, queue.ErrBadInput) ||
		!strings.Contains(err.Error(), "max_payload of 16384 bytes") {
		t.Fatalf("an input of 17 KiB on a server with max_payload 16 KiB: %v, want ErrBadInput stating the limit", err)
	}
	if d, err := b.Depth(ctx, queue.DefaultQueue); err != nil || d != ([queue.NumPriorities]int{}) {
		t.Fatalf("Depth after the refused input = %v, %v; want nothing stored", d, err)
	}
	ins := make([]string, 1024) // packs of 16 would be 32 KiB
	for i := range ins {
		ins[i] = strings.Repeat(strconv.Itoa(i%10), 2000)
	}
	bt, err := queue.EnqueueBatch(ctx, c, echoKind, ins)
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, echoKind, func(ctx context.Context, s string) (string, error) { return s[:1], nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	out, err := bt.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o != strconv.Itoa(i%10) {
			t.Fatalf("output %d = %q", i, o)
		}
	}
}

var echoKind = queue.NewKind[string, string]("natsbroker_test.echo")

// smallServer starts an embedded server whose max_payload is 16 KiB, shut
// down at cleanup, and returns a connection's JetStream.
func smallServer(t *testing.T) jetstream.JetStream {
	t.Helper()
	s, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), NoSigs: true, DontListen: true, Port: -1,
		MaxPayload: 16 << 10, JetStreamMaxMemory: -1, JetStreamMaxStore: -1})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(20 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestOutcomesWithinMaxPayload: on a server whose max_payload is 16 KiB,
// outputs that fit one by one are recorded even when a Complete carries
// more than fit one message; an output that cannot fit fails its task
// permanently, saying so; a dead letter too large to keep whole is kept
// without its input, which a Redrive then refuses. Each of these used to
// fail every Complete of its tasks, which ran again forever.
func TestOutcomesWithinMaxPayload(t *testing.T) {
	t.Parallel()
	b := newBroker(t, smallServer(t), natsbroker.Config{Prefix: "maxout"})
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	c, _ := queue.NewClient(b, nil)
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, echoKind, func(ctx context.Context, s string) (string, error) {
		switch {
		case strings.HasPrefix(s, "fail"):
			return "", queue.Permanent(errors.New("refused"))
		case strings.HasPrefix(s, "big"):
			return strings.Repeat("o", 17<<10), nil
		}
		return strings.Repeat(s[:1], 5000), nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	ins := make([]string, 200) // claimed and completed together, 5,000 bytes of output each
	for i := range ins {
		ins[i] = strconv.Itoa(i % 10)
	}
	out, err := try(queue.EnqueueBatch(ctx, c, echoKind, ins)).get(t).Await(ctx)
	if err != nil || len(out) != len(ins) || out[199] != strings.Repeat("9", 5000) {
		t.Fatalf("outputs of 5,000 bytes: %d, %v", len(out), err)
	}
	if _, err := try(queue.Enqueue(ctx, c, echoKind, "big")).get(t).Await(ctx); !errors.Is(err, queue.ErrPermanent) ||
		!strings.Contains(err.Error(), "output of 17410 bytes") {
		t.Fatalf("an output past max_payload: %v, want ErrPermanent naming its size", err)
	}
	task := try(queue.Enqueue(ctx, c, echoKind, "fail"+strings.Repeat("i", 12<<10))).get(t)
	if _, err := task.Await(ctx); !errors.Is(err, queue.ErrPermanent) {
		t.Fatalf("a task with a 12 KiB input failing permanently: %v, want its failure", err)
	}
	dls, err := b.DeadLetters(ctx, queue.DefaultQueue, "", 10)
	if err != nil || len(dls) != 2 {
		t.Fatalf("dead letters: %d, %v; want the two failed tasks", len(dls), err)
	}
	dl := dls[1]
	if dl.ID() != task.ID() || dl.Payload != nil || !strings.Contains(dl.Attempts[len(dl.Attempts)-1].Error, "input (12294 bytes) is not kept") {
		t.Fatalf("the large task's dead letter: %s, %d bytes of input, attempts %+v; want it without its input, saying so", dl.ID(), len(dl.Payload), dl.Attempts)
	}
	if _, err := b.Redrive(ctx, dl.ID()); !errors.Is(err, queue.ErrBadInput) || !strings.Contains(err.Error(), "not re-driven") {
		t.Fatalf("redriving a dead letter kept without its input: %v, want ErrBadInput saying why", err)
	}
}
