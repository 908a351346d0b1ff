package natsbroker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
	"github.com/gather-go/gather/queue/queuetest"
)

// The fault tests re-execute the test binary in a role, chosen by these
// environment variables.
const (
	roleEnv   = "NATSBROKER_TEST_ROLE" // "worker" or "server"
	urlEnv    = "NATSBROKER_TEST_URL"
	prefixEnv = "NATSBROKER_TEST_PREFIX"
	dirEnv    = "NATSBROKER_TEST_DIR"
	listenEnv = "NATSBROKER_TEST_LISTEN"
	countEnv  = "NATSBROKER_TEST_ENQUEUE"
)

// procOut is what a task returns: its doubled input and the worker's PID.
type procOut struct {
	V   int `json:"v"`
	PID int `json:"pid"`
}

var procKind = queue.NewKind[int, procOut]("natsbroker_test.proc")

// testAckWait is the lease that outlives a killed worker in these tests.
const testAckWait = time.Second

func runRole(role string) int {
	ctx := context.Background()
	switch role {
	case "worker":
		nc, err := nats.Connect(os.Getenv(urlEnv), nats.MaxReconnects(-1))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		js, _ := jetstream.New(nc)
		b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: os.Getenv(prefixEnv), AckWait: testAckWait})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4, Lease: testAckWait})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		pid := os.Getpid()
		queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) {
			time.Sleep(2 * time.Millisecond) // work that takes a while, so that a kill lands mid-batch
			return procOut{2 * n, pid}, nil
		})
		if err := w.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Println("ready")
		// Run until killed, or until stdin closes (the parent died).
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "limited":
		return runLimited()
	case "scheduler":
		return runScheduler()
	case "server":
		s, err := natsserver.Start(ctx, &natsserver.Config{Dir: os.Getenv(dirEnv), SyncAlways: true, Listen: os.Getenv(listenEnv)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		if n, _ := strconv.Atoi(os.Getenv(countEnv)); n > 0 {
			nc, err := s.Connect()
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
			c, _ := queue.NewClient(b, nil)
			in := make([]int, n)
			for i := range in {
				in[i] = i
			}
			batch, err := queue.EnqueueBatch(ctx, c, procKind, in)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 2
			}
			fmt.Println("batch", batch.ID())
		}
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// child is a re-executed test binary in a role.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{}
}

func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody reads the rest
			}
		}
	}()
	t.Cleanup(c.kill)
	return c
}

// expect waits for a line starting with prefix and returns its rest.
func (c *child) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case l := <-c.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return strings.TrimSpace(rest)
			}
		case <-c.done:
			t.Fatalf("child exited before printing %q", prefix)
		case <-timeout.C:
			t.Fatalf("child did not print %q in time", prefix)
		}
	}
}

// kill sends SIGKILL and reaps the process; it may be called twice.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.stdin.Close()
	<-c.done
	_ = c.cmd.Wait()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func ints(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestProcessesShareBatchAndSurviveKill: one producer (this process, which
// also holds the server) and two worker processes share a batch; one worker
// is SIGKILLed mid-batch. Every task completes, with the right value, each
// outcome is delivered once, and both workers did part of the work.
func TestProcessesShareBatchAndSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	s := listening(ctx, t)
	js := connect(t, s)
	const prefix = "procs"
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix, AckWait: testAckWait})
	c, _ := queue.NewClient(b, nil)
	env := []string{roleEnv + "=worker", urlEnv + "=" + s.ClientURL(), prefixEnv + "=" + prefix}
	w1, w2 := startChild(t, env...), startChild(t, env...)
	w1.expect(t, "ready")
	w2.expect(t, "ready")

	const n = 600
	batch, err := queue.EnqueueBatch(ctx, c, procKind, ints(n))
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, n)
	pids := map[int]int{}
	count := 0
	var once sync.Once
	for i, r := range batch.Results(ctx) {
		if r.Err != nil || r.Value.V != 2*i {
			t.Fatalf("task %d: %+v, %v", i, r.Value, r.Err)
		}
		if seen[i] {
			t.Fatalf("task %d's outcome delivered twice", i)
		}
		seen[i] = true
		pids[r.Value.PID]++
		count++
		if count == n/4 {
			once.Do(w1.kill) // SIGKILL, mid-batch, with tasks leased
		}
	}
	if count != n {
		t.Fatalf("%d outcomes, want %d", count, n)
	}
	if len(pids) != 2 {
		t.Fatalf("tasks ran on %v: want both worker processes", pids)
	}
	// A second reader (a producer that re-attaches) sees each task once.
	a, err := queue.Attach(ctx, c, procKind, batch.ID())
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Await(ctx)
	if err != nil || len(res) != n {
		t.Fatalf("re-attached Await: %d results, %v", len(res), err)
	}
	t.Logf("tasks per worker PID: %v", pids)
}

// TestServerKilledAndRestarted: the process that holds the embedded server
// (SyncAlways) enqueues a batch and is SIGKILLed with every task pending; a
// new process starts the server on the same directory, and this process, a
// producer that never saw the batch, attaches to it by ID and gets every
// result: nothing was lost.
func TestServerKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), queuetest.Liveness(2*time.Minute))
	defer cancel()
	dir, addr, prefix := t.TempDir(), freeAddr(t), "restart"
	const n = 300
	srv := startChild(t, roleEnv+"=server", dirEnv+"="+dir, listenEnv+"="+addr, prefixEnv+"="+prefix, countEnv+"="+strconv.Itoa(n))
	id := srv.expect(t, "batch ")
	srv.expect(t, "ready")
	srv.kill()

	srv2 := startChild(t, roleEnv+"=server", dirEnv+"="+dir, listenEnv+"="+addr)
	srv2.expect(t, "ready")
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	b := newBroker(t, js, natsbroker.Config{Prefix: prefix})
	c, _ := queue.NewClient(b, nil)
	batch, err := queue.Attach(ctx, c, procKind, id)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4})
	queue.HandleFunc(w, procKind, func(ctx context.Context, n int) (procOut, error) { return procOut{V: 2 * n}, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	res, err := batch.Await(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.V != 2*i {
			t.Fatalf("task %d = %d, want %d", i, r.V, 2*i)
		}
	}
}
