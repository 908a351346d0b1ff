package natsbroker_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/queuetest"
)

var beatKind = queue.NewKind[string, string]("natsbroker_test.beat")

// runScheduler is the "scheduler" role: a Scheduler ticking every second
// that enqueues one beatKind task per tick.
func runScheduler() int {
	ctx := context.Background()
	nc, err := nats.Connect(os.Getenv(urlEnv), nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	js, _ := jetstream.New(nc)
	b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: os.Getenv(prefixEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := queue.NewScheduler(b, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	every, _ := queue.Every(time.Second)
	if err := queue.Periodic(s, "beat", every, beatKind, "beat"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Shutdown(ctx)
	return 0
}

// TestPeriodicAcrossProcesses: two scheduler processes run a schedule
// ticking every second; one is SIGKILLed after ten seconds; over twenty
// seconds every tick gets exactly one task.
func TestPeriodicAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes and runs 20 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(90*time.Second))
	defer cancel()
	s := listening(ctx, t)
	js := connect(t, s)
	const prefix = "periodic"
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix})
	ticks := make(chan time.Time, 64) // at most 25 ticks come, one a second
	seen := func(next queue.RunFunc) queue.RunFunc {
		return func(ctx context.Context, m *queue.Message, dst []byte) ([]byte, error) {
			at, err := time.Parse(time.RFC3339Nano, m.Headers[queue.HeaderPeriodicTick])
			if err != nil {
				t.Errorf("a periodic task without its tick: headers %v", m.Headers)
			}
			ticks <- at
			return next(ctx, m, dst)
		}
	}
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 2, Middleware: []queue.Middleware{seen}})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, beatKind, func(ctx context.Context, s string) (string, error) { return s, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })

	env := []string{roleEnv + "=scheduler", urlEnv + "=" + s.ClientURL(), prefixEnv + "=" + prefix}
	s1, s2 := startChild(t, env...), startChild(t, env...)
	s1.expect(t, "ready")
	s2.expect(t, "ready")
	began := time.Now()
	runs := map[time.Time]int{}
	killed := false
	for {
		var at time.Time
		select {
		case at = <-ticks:
		case <-ctx.Done():
			t.Fatalf("ticks stopped coming: %v", ctx.Err())
		}
		runs[at]++
		if !killed && at.Sub(began) >= 10*time.Second {
			s1.kill() // SIGKILL, midway
			killed = true
		}
		if at.Sub(began) >= 20*time.Second {
			break
		}
	}
	s2.kill()
	var order []time.Time
	for at, n := range runs {
		if n != 1 {
			t.Errorf("tick %v ran %d times, want once", at, n)
		}
		order = append(order, at)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Before(order[j]) })
	for i := 1; i < len(order); i++ {
		if gap := order[i].Sub(order[i-1]); gap != time.Second {
			t.Errorf("ticks %v and %v: %v apart, want every second's tick", order[i-1], order[i], gap)
		}
	}
	if len(order) < 20 {
		t.Fatalf("%d ticks ran, want at least 20", len(order))
	}
	t.Logf("%d ticks from %v to %v, each once; one scheduler killed after ten seconds", len(order), order[0].Format(time.TimeOnly), order[len(order)-1].Format(time.TimeOnly))
}
