package natsbroker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
)

// The crash test: the server is a process of its own (the "server" role,
// SyncAlways, a fixed store directory and port), killed and restarted while
// two worker processes (the "crashworker" role) run packed batches over
// loopback TCP. Each worker process appends a line per execution to a file
// of its own, which outlives the server's downtime.

const (
	// crashLogEnv names the worker's execution log (and, beside it, its
	// log).
	crashLogEnv = "NATSBROKER_TEST_EXECLOG"
	// crashKeepEnv, when set, is a directory where the crash test keeps
	// the execution logs, the workers' logs and the server's store, for a
	// look after a failure.
	crashKeepEnv = "NATSBROKER_TEST_KEEP"
)

// crashAckWait is the lease of the crash test: long enough for a busy
// machine's heartbeats, short enough that redeliveries come soon.
const crashAckWait = 2 * time.Second

// crashDown is how long the server stays down after each kill: longer than
// a lease, so that the leases held at the kill run out (and the workers'
// heartbeats, outcomes and acknowledgements meanwhile fail or wait in their
// connections' buffers).
const crashDown = 3 * time.Second

// crashIn names a task of the crash test: batch number and index.
type crashIn struct {
	B int `json:"b"`
	I int `json:"i"`
}

type crashOut struct {
	V int `json:"v"`
}

var crashKind = queue.NewKind[crashIn, crashOut]("natsbroker_test.crash")

func crashValue(in crashIn) int { return in.B*1_000_003 + 7*in.I }

// runCrashWorker is the "crashworker" role: a worker that records every
// execution, until stdin closes; then it shuts down gracefully.
func runCrashWorker() int {
	ctx := context.Background()
	path := os.Getenv(crashLogEnv)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer f.Close()
	lf, err := os.OpenFile(path+".log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer lf.Close()
	log := slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nc, err := nats.Connect(os.Getenv(urlEnv), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: os.Getenv(prefixEnv), AckWait: crashAckWait, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer b.Close()
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4, Lease: crashAckWait, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	queue.HandleFunc(w, crashKind, func(ctx context.Context, in crashIn) (crashOut, error) {
		// One write per execution, appended: whole lines, whatever the
		// other runners do.
		if _, err := f.Write(fmt.Appendf(nil, "%d %d %d\n", in.B, in.I, time.Now().UnixNano())); err != nil {
			return crashOut{}, err
		}
		time.Sleep(time.Millisecond) // work that takes a while, so that a kill lands mid-run
		return crashOut{crashValue(in)}, nil
	})
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// progress counts the distinct outcomes the producer has seen and closes a
// channel when the count passes each threshold.
type progress struct {
	mu    sync.Mutex
	n     int
	at    []int
	reach []chan struct{}
}

func newProgress(at ...int) *progress {
	p := &progress{at: at}
	for range at {
		p.reach = append(p.reach, make(chan struct{}))
	}
	return p
}

func (p *progress) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	for k, a := range p.at {
		if p.n == a {
			close(p.reach[k])
		}
	}
}

// TestServerCrashNoDuplicateStorm kills the server process three times while
// two worker processes run packed batches, restarting it on the same store
// each time, and checks the cost: every batch gets every result, right; a
// task whose outcome the producer had seen does not run again; a crash costs
// a task one extra run at most; and once every batch is finished the work
// streams empty, with no run after.
func TestServerCrashNoDuplicateStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	var wg sync.WaitGroup // the batches' followers
	defer wg.Wait()
	defer cancel()
	began := time.Now()
	dir, logs, addr, prefix := t.TempDir(), t.TempDir(), freeAddr(t), "crash"
	if d := os.Getenv(crashKeepEnv); d != "" {
		logs, dir = d, filepath.Join(d, "store")
	}
	srvEnv := []string{roleEnv + "=server", dirEnv + "=" + dir, listenEnv + "=" + addr}
	srv := startChild(t, srvEnv...)
	srv.expect(t, "ready")
	url := "nats://" + addr
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	// Two producers' brokers on the same queue: one packs large batches
	// (the default), the other stores each task alone.
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: crashAckWait})
	c, _ := queue.NewClient(b, nil)
	alone, _ := queue.NewClient(newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: crashAckWait, PackSize: 1}), nil)

	var workers []*child
	var execLogs []string
	for k := range 2 {
		path := filepath.Join(logs, "worker"+strconv.Itoa(k))
		execLogs = append(execLogs, path)
		w := startChild(t, roleEnv+"=crashworker", urlEnv+"="+url, prefixEnv+"="+prefix, crashLogEnv+"="+path)
		w.expect(t, "ready")
		workers = append(workers, w)
	}
	defer func() {
		if t.Failed() {
			for _, p := range execLogs {
				if data, err := os.ReadFile(p + ".log"); err == nil {
					lines := strings.Split(strings.TrimSpace(string(data)), "\n")
					t.Logf("%s: %d log lines, the last ones:\n%s", filepath.Base(p), len(lines), strings.Join(lines[max(0, len(lines)-20):], "\n"))
				}
			}
		}
	}()

	const nb, n = 3, 1024 // the first two in messages of 16 tasks, the last one task a message
	total := nb * n
	prog := newProgress(total/5, total*9/20, total*7/10)
	batches := make([]*queue.Batch[crashOut], nb)
	seenAt := make([][]int64, nb) // when the producer had each outcome (Unix ns)
	for k := range nb {
		in := make([]crashIn, n)
		for i := range in {
			in[i] = crashIn{k, i}
		}
		by := c
		if k == nb-1 {
			by = alone
		}
		if batches[k], err = queue.EnqueueBatch(ctx, by, crashKind, in); err != nil {
			t.Fatal(err)
		}
		seenAt[k] = make([]int64, n)
	}
	errs := make([]error, nb)
	for k, batch := range batches {
		wg.Go(func() {
			// Follow the batch through the crashes: a follow that fails
			// while the server is down starts again.
			got := 0
			for got < n {
				for i, r := range batch.Results(ctx) {
					if i < 0 {
						if ctx.Err() != nil {
							errs[k] = r.Err
							return
						}
						t.Logf("batch %d: following again after: %v", k, r.Err)
						select {
						case <-time.After(100 * time.Millisecond):
						case <-ctx.Done():
						}
						break
					}
					if seenAt[k][i] != 0 {
						continue
					}
					seenAt[k][i] = time.Now().UnixNano()
					got++
					prog.add()
					if r.Err != nil || r.Value.V != crashValue(crashIn{k, i}) {
						errs[k] = fmt.Errorf("task %d: %+v, %v", i, r.Value, r.Err)
						return
					}
				}
			}
		})
	}

	var kills []int64
	for k, reach := range prog.reach {
		select {
		case <-reach:
		case <-ctx.Done():
			t.Fatalf("crash %d: only %d of %d outcomes came", k+1, prog.count(), total)
		}
		kills = append(kills, time.Now().UnixNano())
		srv.kill()
		time.Sleep(crashDown) // the server stays down a while: leases and publishes time out
		srv = startChild(t, srvEnv...)
		srv.expect(t, "ready")
		t.Logf("%v: crash %d after %d outcomes: server up again after %v", time.Since(began).Round(time.Millisecond), k+1, prog.at[k], time.Duration(time.Now().UnixNano()-kills[k]))
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("batch %d: %v", k, err)
		}
	}
	finished := time.Now().UnixNano()
	t.Logf("%v: every outcome seen", time.Since(began).Round(time.Millisecond))
	// Every batch awaited again in one call: every index, the right value.
	for k, batch := range batches {
		res, err := batch.Await(ctx)
		if err != nil {
			t.Fatalf("batch %d: %v", k, err)
		}
		for i, r := range res {
			if r.V != crashValue(crashIn{k, i}) {
				t.Fatalf("batch %d task %d = %d, want %d", k, i, r.V, crashValue(crashIn{k, i}))
			}
		}
	}

	// The redeliveries end and leave the work streams empty. Nothing
	// signals it: poll the streams, within a bound of several leases.
	streams := []string{prefix + "_q_" + queue.DefaultQueue, prefix + "_qd_" + queue.DefaultQueue}
	var left uint64
	for deadline := time.Now().Add(10 * crashAckWait); ; {
		left = 0
		for _, name := range streams {
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			left += taskMsgs(t, ctx, st)
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drained := time.Now().UnixNano()
	for _, w := range workers {
		_ = w.stdin.Close()
		<-w.done
		if err := w.cmd.Wait(); err != nil {
			t.Errorf("worker: %v", err)
		}
	}

	// The executions.
	runs := make([][][]int64, nb)
	for k := range runs {
		runs[k] = make([][]int64, n)
	}
	who := map[[2]int][]int{} // the workers that ran a task, in file order
	execs := 0
	for wi, p := range execLogs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var bk, i int
			var at int64
			if _, err := fmt.Sscanf(sc.Text(), "%d %d %d", &bk, &i, &at); err != nil || bk < 0 || bk >= nb || i < 0 || i >= n {
				t.Fatalf("%s: bad line %q", p, sc.Text())
			}
			runs[bk][i] = append(runs[bk][i], at)
			who[[2]int{bk, i}] = append(who[[2]int{bk, i}], wi)
			execs++
		}
		f.Close()
	}
	sinceBegan := func(ts ...int64) []time.Duration {
		var ds []time.Duration
		for _, at := range ts {
			ds = append(ds, time.Duration(at-began.UnixNano()).Round(time.Millisecond))
		}
		return ds
	}
	hist := map[int]int{}
	var afterSeen, late, over []string
	for k := range nb {
		for i, rs := range runs[k] {
			hist[len(rs)]++
			if len(rs) == 0 {
				t.Errorf("batch %d task %d never ran, yet has an outcome", k, i)
				continue
			}
			// Each crash from a little before its first run (a claim
			// made before the crash may run after it) to its last may
			// cost it one run more.
			slices.Sort(rs)
			crashes := 0
			for _, at := range kills {
				if at >= rs[0]-int64(5*time.Second) && at <= rs[len(rs)-1] {
					crashes++
				}
			}
			if len(rs) > 1+crashes {
				over = append(over, fmt.Sprintf("%d/%d ran at %v (by workers %v, outcome seen at %v) across %d crashes",
					k, i, sinceBegan(rs...), who[[2]int{k, i}], sinceBegan(seenAt[k][i]), crashes))
			}
			for _, at := range rs {
				// Two seconds of grace: a run claimed just before the
				// outcome was recorded elsewhere may start after it,
				// on a busy machine a while after.
				if at > seenAt[k][i]+int64(2*time.Second) {
					afterSeen = append(afterSeen, fmt.Sprintf("%d/%d ran at %v (by workers %v), its outcome seen at %v",
						k, i, sinceBegan(rs...), who[[2]int{k, i}], sinceBegan(seenAt[k][i])))
				}
				if at > finished+int64(2*time.Second) {
					late = append(late, fmt.Sprintf("%d/%d", k, i))
				}
			}
		}
	}
	t.Logf("crashes at %v", sinceBegan(kills...))
	t.Logf("%d executions of %d tasks after %d crashes; tasks by runs: %v; streams drained %v after the last outcome",
		execs, total, len(kills), hist, time.Duration(drained-finished))
	if left != 0 {
		t.Errorf("%d messages left in the work streams %v after every batch finished", left, streams)
	}
	if len(over) > 0 {
		t.Errorf("%d tasks ran more than once per crash: %v", len(over), over[:min(len(over), 10)])
	}
	if len(afterSeen) > 0 {
		t.Errorf("%d runs of tasks whose outcome was recorded: %v", len(afterSeen), afterSeen[:min(len(afterSeen), 10)])
	}
	if len(late) > 0 {
		t.Errorf("%d runs after every batch had finished: %v", len(late), late[:min(len(late), 10)])
	}
}
