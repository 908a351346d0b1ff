package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// Issue 12's speed goal: dashboard updates reach the page within 250 ms
// p99 at 10,000 tasks/s, without lowering the queue's throughput by more
// than 5%. The benchmarks run gather serve's shape in one process: an
// embedded NATS server, a natsbroker worker and a client on connections of
// their own, and the API with the dashboard over real HTTP; the "page" is
// a Go client reading /dashboard/events.
//
//   - BenchmarkThroughput/{none,observer,page,page-batches}: batches of
//     10,000 no-op tasks enqueued and awaited one after another (tasks/s):
//     without a dashboard, with the dashboard observing and no page open,
//     with a page open on the queues (the default view), and with a page
//     open on the batch list, for which the broker reads every result of
//     the running batches once more. Compare their tasks/s.
//   - BenchmarkUpdateLatency: tasks at 10,000 a second (a batch of 1,000
//     every 100 ms) with a page open on the queues; for each task, the time from its
//     handler's return (the worker's EventSucceeded) to the page reading a
//     "stats" event that counts it (p50-ms, p99-ms). The page's clock is
//     this process's, so there is no skew. The counts are the fastest
//     section (a frame at most every FrameInterval); the broker's views
//     (depth, the batch list) follow at their read spacing, 500 and 250 ms.

var benchNoop = queue.NewKind[int, int]("bench.noop")

// benchEnv is the serve shape of the benchmarks.
type benchEnv struct {
	client *queue.Client
	srv    *httptest.Server
	dash   *dashboard.Dashboard
}

// stampRing records when each task succeeded, by the order of its event.
const stampRing = 1 << 20

type stamps struct {
	n  atomic.Uint64
	at [stampRing]atomic.Int64
}

func (s *stamps) Observe(e queue.Event) {
	if e.Type == queue.EventSucceeded {
		i := s.n.Add(1) - 1
		s.at[i%stampRing].Store(time.Now().UnixNano())
	}
}

func newBenchEnv(b *testing.B, withDash bool, stamp queue.Observer) *benchEnv {
	b.Helper()
	ctx := context.Background()
	srv, err := natsserver.Start(ctx, &natsserver.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	broker := func() *natsbroker.Broker {
		nc, err := srv.Connect()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		nb, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { nb.Close() })
		return nb
	}
	wb, cb := broker(), broker()
	e := &benchEnv{}
	var obs queue.Observer
	if withDash {
		if e.dash, err = dashboard.New(&dashboard.Config{Inspector: cb, Prefix: "bench"}); err != nil {
			b.Fatal(err)
		}
		obs = e.dash
	}
	w, err := queue.NewWorker(wb, &queue.WorkerConfig{Concurrency: 4, Observer: queue.MultiObserver(stamp, obs)})
	if err != nil {
		b.Fatal(err)
	}
	queue.HandleFunc(w, benchNoop, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	if e.client, err = queue.NewClient(cb, &queue.ClientConfig{Observer: obs}); err != nil {
		b.Fatal(err)
	}
	if withDash {
		api, err := httpapi.New(&httpapi.Config{Client: e.client, UI: e.dash})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { api.Close() })
		e.srv = httptest.NewServer(api)
		b.Cleanup(e.srv.Close)
		b.Cleanup(func() { e.dash.Close() }) // ends the streams before the server's Close
	}
	return e
}

// page reads the dashboard's stream, calling onStats with the succeeded
// count of each "stats" event and the time it was read. stop ends it and
// waits for its goroutine.
func (e *benchEnv) page(b *testing.B, view string, onStats func(succeeded uint64, at time.Time)) (stop func()) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{}
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/dashboard/events?view="+view, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		rd := bufio.NewReaderSize(resp.Body, 64<<10)
		var name string
		var ev struct {
			Queues map[string]struct {
				Succeeded uint64 `json:"succeeded"`
			} `json:"queues"`
		}
		for {
			line, err := rd.ReadSlice('\n')
			if err != nil {
				return
			}
			s := strings.TrimSuffix(string(line), "\n")
			switch {
			case strings.HasPrefix(s, "event: "):
				name = s[len("event: "):]
			case strings.HasPrefix(s, "data: ") && name == "stats":
				at := time.Now()
				if json.Unmarshal([]byte(s[len("data: "):]), &ev) == nil && onStats != nil {
					onStats(ev.Queues[queue.DefaultQueue].Succeeded, at)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
		tr.CloseIdleConnections()
	}
}

func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []string{"none", "observer", "page", "page-batches"} {
		b.Run(mode, func(b *testing.B) {
			e := newBenchEnv(b, mode != "none", nil)
			switch mode {
			case "page":
				defer e.page(b, "queues", nil)()
			case "page-batches":
				defer e.page(b, "batches", nil)()
			}
			ctx := context.Background()
			in := make([]int, 10_000)
			b.ReportAllocs()
			for b.Loop() {
				batch, err := queue.EnqueueBatch(ctx, e.client, benchNoop, in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := batch.Await(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(in)*b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}

func BenchmarkUpdateLatency(b *testing.B) {
	st := &stamps{}
	e := newBenchEnv(b, true, st)
	var mu sync.Mutex
	var lat []time.Duration
	var seen uint64
	var lost atomic.Int64 // tasks whose stamp the ring overwrote before the page saw them
	stop := e.page(b, "queues", func(n uint64, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for ; seen < n; seen++ {
			if st.n.Load()-seen > stampRing {
				lost.Add(1)
				continue
			}
			if t := st.at[seen%stampRing].Load(); t != 0 {
				lat = append(lat, at.Sub(time.Unix(0, t)))
			}
		}
	})
	ctx := context.Background()
	const perBatch, every = 1000, 100 * time.Millisecond // 10,000 tasks/s
	in := make([]int, perBatch)
	var batches []*queue.Batch[int]
	start := time.Now()
	i := 0
	for b.Loop() {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every))) // pace the producer, not a wait for a result
		i++
		batch, err := queue.EnqueueBatch(ctx, e.client, benchNoop, in)
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, batch)
	}
	for _, batch := range batches {
		if _, err := batch.Await(ctx); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	total := uint64(perBatch * len(batches))
	// The page's last update comes within a frame or two of the last task.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := seen
		mu.Unlock()
		if got >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if seen < total {
		b.Fatalf("the page saw %d of %d tasks", seen, total)
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(float64(total)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(float64(lost.Load()), "lost")
}

// BenchmarkObserve: the cost of one event to the dashboard, from two
// goroutines at once (the hot path of every task).
func BenchmarkObserve(b *testing.B) {
	d, err := dashboard.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ev := queue.Event{Type: queue.EventSucceeded, Queue: queue.DefaultQueue, Kind: "echo", Elapsed: time.Millisecond}
	d.Observe(ev)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Observe(ev)
		}
	})
}
