package natsbroker_test

import (
	"context"
	"flag"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// benchSpy adds a connection to the benchmarks' servers that counts, by
// kind, the messages the producer and the worker exchange with the server.
// It costs the server a copy of each, so it is off for timed figures.
var benchSpy = flag.Bool("spy", false, "benchmarks: count pull requests, acknowledgements and result messages per task (slows the server)")

var noop = queue.NewKind[int, int]("bench.noop")

// benchConn is a way the benchmarks connect to their server: in-process,
// over loopback TCP to its listener, or over TCP through a proxy that delays
// every byte each way (a slower link).
type benchConn struct {
	name  string
	tcp   bool
	delay time.Duration // each way; only with tcp
}

var benchConns = []benchConn{{"inproc", false, 0}, {"tcp", true, 0}, {"tcp-250µs", true, 250 * time.Microsecond}}

// benchServer starts an embedded server (file store) reached as conn says,
// and returns how to connect to it (each connection closed at cleanup).
func benchServer(b testing.TB, conn benchConn) func() *nats.Conn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	scfg := &natsserver.Config{Dir: b.TempDir()}
	if conn.tcp {
		scfg.Listen = "127.0.0.1:0"
	}
	s, err := natsserver.Start(ctx, scfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Shutdown)
	url := s.ClientURL()
	if conn.delay > 0 {
		url = delayProxy(b, strings.TrimPrefix(url, "nats://"), conn.delay)
	}
	return func() *nats.Conn {
		var nc *nats.Conn
		var err error
		if conn.tcp {
			nc, err = nats.Connect(url)
		} else {
			nc, err = s.Connect()
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
}

// delayProxy forwards the TCP connections made to the URL it returns to
// addr, each chunk read written d later, each way; it stops at cleanup
// (registered before the clients', so it runs after they closed).
func delayProxy(b testing.TB, addr string, d time.Duration) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	// pipe copies src to dst with the delay, on two goroutines of wg: a
	// reader that stamps each chunk, and a writer that writes it when due.
	// Either ending closes both connections, which ends the other side.
	pipe := func(dst, src net.Conn) {
		type chunk struct {
			due  time.Time
			data []byte
		}
		// Bounded: a full line holds the reader, as a slow link would.
		ch := make(chan chunk, 1024)
		wg.Go(func() {
			defer close(ch)
			for {
				buf := make([]byte, 32<<10)
				n, err := src.Read(buf)
				if n > 0 {
					ch <- chunk{time.Now().Add(d), buf[:n]}
				}
				if err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			defer dst.Close()
			defer src.Close()
			for c := range ch {
				time.Sleep(time.Until(c.due)) // the link's delay
				if _, err := dst.Write(c.data); err != nil {
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			pipe(s, c)
			pipe(c, s)
		}
	})
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "nats://" + ln.Addr().String()
}

// benchRig is an embedded server (file store), a worker on its own
// connection and a client on another, as a producer and a worker process
// would have: in-process connections, or TCP over loopback to the server's
// listener, as separate processes would connect.
type benchRig struct {
	c        *queue.Client
	wnc, pnc *nats.Conn
	spy      *spy // nil without -spy
}

// newBenchRig starts a rig whose worker has cfg (nil: the defaults).
func newBenchRig(b testing.TB, conn benchConn, cfg *queue.WorkerConfig) *benchRig {
	b.Helper()
	dial := benchServer(b, conn)
	js := func(nc *nats.Conn) jetstream.JetStream {
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		return js
	}
	r := &benchRig{wnc: dial(), pnc: dial()}
	if *benchSpy {
		r.spy = newSpy(b, dial(), "bench")
	}
	wb := newBroker(b, js(r.wnc), natsbroker.Config{Prefix: "bench"})
	w, err := queue.NewWorker(wb, cfg)
	if err != nil {
		b.Fatal(err)
	}
	queue.HandleFunc(w, noop, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	r.c, err = queue.NewClient(newBroker(b, js(r.pnc), natsbroker.Config{Prefix: "bench"}), nil)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// spy counts the messages of a prefix's queue by kind, on a connection of
// its own subscribed to all of them.
type spy struct {
	pulls, acks, results, wakes, tasks, gets atomic.Int64
}

func newSpy(b testing.TB, nc *nats.Conn, prefix string) *spy {
	s := &spy{}
	for subj, n := range map[string]*atomic.Int64{
		"$JS.API.CONSUMER.MSG.NEXT.>": &s.pulls,
		"$JS.ACK.>":                   &s.acks,
		"$JS.API.STREAM.MSG.GET.>":    &s.gets, // batch records read, results replayed
		prefix + ".r.*":               &s.results,
		prefix + ".wake":              &s.wakes,
		prefix + ".q.>":               &s.tasks, // enqueued, and moved out of packs a claim split
	} {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			if n != &s.acks || strings.HasPrefix(string(m.Data), "+ACK") {
				n.Add(1)
			}
		})
		if err == nil {
			err = sub.SetPendingLimits(-1, -1)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	return s
}

// counts is a snapshot of a rig's message counters and of the process's
// CPU time (server, producer and worker together).
type counts struct {
	cpu                                  time.Duration
	cpuOK                                bool
	wIn, wOut, pIn, pOut                 uint64
	pulls, acks, res, wakes, tasks, gets int64
}

func (r *benchRig) counts() counts {
	ws, ps := r.wnc.Stats(), r.pnc.Stats()
	c := counts{wIn: ws.InMsgs, wOut: ws.OutMsgs, pIn: ps.InMsgs, pOut: ps.OutMsgs}
	c.cpu, c.cpuOK = cpuTime()
	if r.spy != nil {
		// Let the spy's copies of what was sent so far arrive.
		_ = r.wnc.Flush()
		_ = r.pnc.Flush()
		c.pulls, c.acks, c.res, c.wakes, c.tasks = r.spy.pulls.Load(), r.spy.acks.Load(), r.spy.results.Load(), r.spy.wakes.Load(), r.spy.tasks.Load()
		c.gets = r.spy.gets.Load()
	}
	return c
}

// report reports the messages per task since c0 (the spy's counts lag a
// little: its copies travel on another connection).
func (r *benchRig) report(b *testing.B, c0 counts, tasks int) {
	c1 := r.counts()
	per := func(d int64) float64 { return float64(d) / float64(tasks) }
	if c0.cpuOK && c1.cpuOK {
		b.ReportMetric(per(int64(c1.cpu-c0.cpu))/1e3, "cpu-µs/task")
	}
	b.ReportMetric(per(int64(c1.wIn-c0.wIn)), "worker-in/task")
	b.ReportMetric(per(int64(c1.wOut-c0.wOut)), "worker-out/task")
	b.ReportMetric(per(int64(c1.pIn-c0.pIn)+int64(c1.pOut-c0.pOut)), "producer-msgs/task")
	if r.spy != nil {
		b.ReportMetric(per(c1.pulls-c0.pulls), "pulls/task")
		b.ReportMetric(per(c1.acks-c0.acks), "acks/task")
		b.ReportMetric(per(c1.res-c0.res), "result-msgs/task")
		b.ReportMetric(per(c1.wakes-c0.wakes), "wakes/task")
		b.ReportMetric(per(c1.tasks-c0.tasks), "task-msgs/task")
		b.ReportMetric(per(c1.gets-c0.gets), "gets/task")
	}
}

// reportLatency reports the p50 and p99 of ds in unit.
func reportLatency(b *testing.B, ds []time.Duration, unit time.Duration, name string) {
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	at := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / float64(unit) }
	b.ReportMetric(at(0.50), "p50-"+name)
	b.ReportMetric(at(0.99), "p99-"+name)
}

// BenchmarkRoundTrip: enqueue one no-op task and wait for its result, with
// the worker and the client on in-process connections (issue 4's goal: p50
// under 200 µs) and over loopback TCP (issue 10's: at most 1.5 times raw
// JetStream's).
func BenchmarkRoundTrip(b *testing.B) { benchLone(b, 0) }

// BenchmarkRoundTripIdle is BenchmarkRoundTrip for a task that finds the
// worker idle: each comes 150 ms after the last one's result (longer than a
// claim waits for tasks just announced, recentEnqueue), so the worker learns
// of it from the enqueue's wake-up and then asks for it: a round trip more
// than a task that comes while the worker's claim waits at the server.
func BenchmarkRoundTripIdle(b *testing.B) { benchLone(b, idleGap) }

// benchLone measures lone tasks, each gap after the last one's result.
func benchLone(b *testing.B, gap time.Duration) {
	for _, conn := range benchConns {
		b.Run("conn="+conn.name, func(b *testing.B) {
			r := newBenchRig(b, conn, nil)
			ctx := context.Background()
			ds := make([]time.Duration, 0, 1024)
			c0 := r.counts()
			b.ReportAllocs()
			for b.Loop() {
				if gap > 0 {
					b.StopTimer()
					time.Sleep(gap)
					b.StartTimer()
				}
				start := time.Now()
				task, err := queue.Enqueue(ctx, r.c, noop, 1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := task.Await(ctx); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			reportLatency(b, ds, time.Microsecond, "µs")
			if gap == 0 { // the counts of an idle spell are its heartbeats'
				r.report(b, c0, b.N)
			}
		})
	}
}

// idleGap is the idle benchmarks' time between a result and the next task.
const idleGap = 150 * time.Millisecond

// BenchmarkAwait1000: enqueue a batch of 1,000 no-op tasks and await it
// (issue 4's goal: p50 under 15 ms in-process; issue 10's: at most raw
// JetStream's time over TCP).
func BenchmarkAwait1000(b *testing.B) { benchAwait(b, 1000) }

// BenchmarkThroughput: batches of 10,000 no-op tasks, each awaited whole, on
// one worker with the default config (issue 10's goals over TCP: at least
// twice raw JetStream's tasks/s, and at least half the in-process figure).
func BenchmarkThroughput(b *testing.B) { benchAwait(b, 10000) }

func benchAwait(b *testing.B, n int) {
	for _, conn := range benchConns {
		b.Run("conn="+conn.name, func(b *testing.B) {
			r := newBenchRig(b, conn, nil)
			ctx := context.Background()
			in := make([]int, n)
			var ds []time.Duration
			c0 := r.counts()
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				batch, err := queue.EnqueueBatch(ctx, r.c, noop, in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := batch.Await(ctx); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
			reportLatency(b, ds, time.Millisecond, "ms")
			r.report(b, c0, n*b.N)
		})
	}
}

// BenchmarkRawRoundTrip is the yardstick of BenchmarkRoundTrip, and
// BenchmarkRawAwait1000 and BenchmarkRawThroughput of BenchmarkAwait1000 and
// BenchmarkThroughput: the same shapes on raw JetStream, with nothing of the
// queue (one message per task in a work-queue stream, published
// asynchronously; a durable pull consumer that the worker consumes with the
// JetStream client's Consume; an acknowledgement, then the result as a
// core-NATS reply to an inbox the producer counts replies on).
func BenchmarkRawRoundTrip(b *testing.B) { benchRaw(b, 1, 0) }

// BenchmarkRawRoundTripIdle is BenchmarkRoundTripIdle's yardstick: a lone
// task 150 ms after the last one's result.
func BenchmarkRawRoundTripIdle(b *testing.B) { benchRaw(b, 1, idleGap) }

func BenchmarkRawAwait1000(b *testing.B) { benchRaw(b, 1000, 0) }

func BenchmarkRawThroughput(b *testing.B) { benchRaw(b, 10000, 0) }

// benchRaw measures rounds of n tasks, each gap after the last.
func benchRaw(b *testing.B, n int, gap time.Duration) {
	for _, conn := range benchConns {
		b.Run("conn="+conn.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			server := benchServer(b, conn)
			dial := func() (*nats.Conn, jetstream.JetStream) {
				nc := server()
				js, err := jetstream.New(nc)
				if err != nil {
					b.Fatal(err)
				}
				return nc, js
			}
			pnc, pjs := dial()
			wnc, wjs := dial()
			if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.task"},
				Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
				b.Fatal(err)
			}
			cons, err := wjs.CreateOrUpdateConsumer(ctx, "RAW", jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				b.Fatal(err)
			}
			cc, err := cons.Consume(func(m jetstream.Msg) {
				if m.Ack() == nil {
					_ = wnc.Publish(m.Headers().Get("Reply"), m.Data())
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(cc.Stop)
			inbox := nats.NewInbox()
			replies := make(chan *nats.Msg, n)
			sub, err := pnc.ChanSubscribe(inbox, replies)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = sub.Unsubscribe() })
			hdr := nats.Header{"Reply": []string{inbox}}
			round := func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				for range n {
					if _, err := pjs.PublishMsgAsync(&nats.Msg{Subject: "raw.task", Data: []byte("1"), Header: hdr},
						jetstream.WithStallWait(time.Minute)); err != nil {
						b.Fatal(err)
					}
				}
				select {
				case <-pjs.PublishAsyncComplete():
				case <-ctx.Done():
					b.Fatal("publish acknowledgements missing")
				}
				for range n {
					select {
					case <-replies:
					case <-ctx.Done():
						b.Fatal("replies missing")
					}
				}
			}
			round() // warm-up
			var ds []time.Duration
			cpu0, ok0 := cpuTime()
			b.ReportAllocs()
			for b.Loop() {
				if gap > 0 {
					b.StopTimer()
					time.Sleep(gap)
					b.StartTimer()
				}
				start := time.Now()
				round()
				ds = append(ds, time.Since(start))
			}
			if cpu1, ok1 := cpuTime(); ok0 && ok1 && gap == 0 { // not the idle spells' heartbeats
				b.ReportMetric(float64(cpu1-cpu0)/1e3/float64(n*b.N), "cpu-µs/task")
			}
			if n == 1 {
				reportLatency(b, ds, time.Microsecond, "µs")
				return
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
			reportLatency(b, ds, time.Millisecond, "ms")
		})
	}
}
