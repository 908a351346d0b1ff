package metrics_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/queue/metrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMetrics runs a batch whose tasks succeed, fail once then succeed, and fail for
// good, and reads every series back from a registry the test owns: the names
// and meanings the queue's metrics had before they moved here.
func TestMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	m := metrics.New()
	if err := m.Watch(broker); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}

	kind := queue.NewKind[string, string]("metered")
	w, err := queue.NewWorker(broker, &queue.WorkerConfig{Concurrency: 2, Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	var flaky atomic.Int32
	queue.HandleFunc(w, kind, func(ctx context.Context, in string) (string, error) {
		switch in {
		case "flaky":
			if flaky.Add(1) == 1 {
				return "", errors.New("first attempt fails")
			}
		case "broken":
			return "", queue.Permanent(errors.New("never works"))
		}
		return in, nil
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)

	c, err := queue.NewClient(broker, &queue.ClientConfig{Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	b, err := queue.EnqueueBatch(ctx, c, kind, []string{"fine", "flaky", "broken"},
		queue.WithMaxAttempts(3), queue.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.AwaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil || !errors.Is(res[2].Err, queue.ErrPermanent) {
		t.Fatalf("results %+v", res)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.MetricFamily{}
	for _, f := range families {
		got[f.GetName()] = f
	}
	value := func(name string, labels map[string]string) (float64, bool) {
		f := got[name]
		if f == nil {
			return 0, false
		}
	metrics:
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.GetCounter().GetValue(), true
			case mt.Gauge != nil:
				return mt.GetGauge().GetValue(), true
			case mt.Histogram != nil:
				return float64(mt.GetHistogram().GetSampleCount()), true
			}
		}
		return 0, false
	}
	series := map[string]struct {
		labels map[string]string
		want   float64
	}{
		"gather_queue_tasks_enqueued_total":      {map[string]string{"queue": "default", "kind": "metered"}, 3},
		"gather_queue_tasks_started_total":       {map[string]string{"kind": "metered"}, 4},
		"gather_queue_tasks_succeeded_total":     {map[string]string{"kind": "metered"}, 2},
		"gather_queue_tasks_failed_total":        {map[string]string{"kind": "metered"}, 2},
		"gather_queue_tasks_retried_total":       {map[string]string{"kind": "metered"}, 1},
		"gather_queue_tasks_dead_lettered_total": {map[string]string{"kind": "metered"}, 1},
		"gather_queue_tasks_in_flight":           {map[string]string{"kind": "metered"}, 0},
		"gather_queue_task_run_seconds":          {map[string]string{"kind": "metered"}, 4},
		"gather_queue_task_wait_seconds":         {map[string]string{"kind": "metered"}, 4},
		"gather_queue_depth":                     {map[string]string{"queue": "default", "level": "normal"}, 0},
	}
	for name, s := range series {
		v, ok := value(name, s.labels)
		if !ok {
			t.Errorf("%s%v: no such series", name, s.labels)
			continue
		}
		if v != s.want {
			t.Errorf("%s%v = %v, want %v", name, s.labels, v, s.want)
		}
	}
}

// TestWatchUnsupported: a broker that reports no depth is refused, saying why.
func TestWatchUnsupported(t *testing.T) {
	t.Parallel()
	broker, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	m := metrics.New()
	bare := struct{ queue.Broker }{broker} // hides the optional interfaces
	if err := m.Watch(bare); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Watch of a broker without Stats or Inspector: %v, want errors.ErrUnsupported", err)
	}
}

// TestObserveAllocs: once a queue and kind were seen, an event costs no
// allocation.
func TestObserveAllocs(t *testing.T) {
	m := metrics.New()
	events := []queue.Event{
		{Type: queue.EventEnqueued, Queue: "q", Kind: "k", Count: 3},
		{Type: queue.EventStarted, Queue: "q", Kind: "k", Elapsed: time.Millisecond},
		{Type: queue.EventSucceeded, Queue: "q", Kind: "k", Elapsed: time.Millisecond},
		{Type: queue.EventFailed, Queue: "q", Kind: "k", Err: errors.New("x")},
		{Type: queue.EventRetried, Queue: "q", Kind: "k"},
		{Type: queue.EventDeadLettered, Queue: "q", Kind: "k"},
	}
	for _, e := range events {
		m.Observe(e)
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, e := range events {
			m.Observe(e)
		}
	}); n != 0 {
		t.Errorf("%v allocations for %d events", n, len(events))
	}
}
