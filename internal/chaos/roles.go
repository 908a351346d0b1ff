package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// RoleEnv is the environment variable that names the role a re-executed
// binary plays; the other variables below configure it.
const RoleEnv = "GATHER_CHAOS_ROLE"

const (
	envURLs     = "GATHER_CHAOS_URLS"     // the servers' client URLs, comma separated
	envDir      = "GATHER_CHAOS_DIR"      // server: data directory; others: history directory
	envName     = "GATHER_CHAOS_NAME"     // server: its name; worker: its name in execution IDs
	envListen   = "GATHER_CHAOS_LISTEN"   // server: client address
	envRoute    = "GATHER_CHAOS_ROUTE"    // server: route address (cluster form)
	envRoutes   = "GATHER_CHAOS_ROUTES"   // server: every route URL (cluster form)
	envReplicas = "GATHER_CHAOS_REPLICAS" // producer, worker: streams' replicas
	envLanes    = "GATHER_CHAOS_LANES"    // producer: batches in flight
	envMaxBatch = "GATHER_CHAOS_MAXBATCH" // producer: the largest batch
	envHang     = "GATHER_CHAOS_HANG"     // producer: how long an await may take before it is a hang
	envSeed     = "GATHER_CHAOS_SEED"     // producer: its random seed
	envNoSync   = "GATHER_CHAOS_NOSYNC"   // server: "1" for the default sync interval instead of SyncAlways
)

// The roles RunRole plays.
const (
	roleServer   = "server"
	roleWorker   = "worker"
	roleProducer = "producer"
)

// prefix is the broker prefix of a run.
const prefix = "chaos"

// lease is the workers' lease and the brokers' AckWait: what a killed
// worker's tasks wait before they run again.
const lease = 2 * time.Second

// out is a task's output: Expected(input), and the execution that made it.
type out struct {
	V int64  `json:"v"`
	X string `json:"x"`
}

var kind = queue.NewKind[int64, out]("chaos.task")

// RunRole plays the role a re-executed binary was given in RoleEnv, with
// the configuration Run put in the other variables, and returns the exit
// code. A role runs until its standard input closes (Run closes it, or
// Run's process died) or it is killed. Call it first in TestMain or main:
//
//	if role := os.Getenv(chaos.RoleEnv); role != "" {
//		os.Exit(chaos.RunRole(role))
//	}
func RunRole(role string) int {
	var err error
	switch role {
	case roleServer:
		err = serve()
	case roleWorker:
		err = work()
	case roleProducer:
		err = produce()
	default:
		err = fmt.Errorf("unknown role %q: want %s, %s or %s", role, roleServer, roleWorker, roleProducer)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos %s: %v\n", role, err)
		return 1
	}
	return 0
}

// stdinClosed returns a channel closed when standard input ends: Run
// closed it, or Run's process died.
func stdinClosed() <-chan struct{} {
	done := make(chan struct{})
	go func() { // ends with the process: it owns the process's stdin
		defer close(done)
		_, _ = io.Copy(io.Discard, os.Stdin)
	}()
	return done
}

// stopLine is what Run writes to the producer's standard input to have it
// finish: stop enqueueing, end its awaits, re-read every batch.
const stopLine = "stop"

// stopRequested returns a channel closed when Run asks the producer to
// finish. When standard input ends instead (Run's process died), the
// producer exits at once, so that it never outlives Run by its awaits.
func stopRequested() <-chan struct{} {
	stop := make(chan struct{})
	go func() { // ends with the process: it owns the process's stdin
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == stopLine {
				close(stop)
				break
			}
		}
		_, _ = io.Copy(io.Discard, os.Stdin)
		fmt.Fprintln(os.Stderr, "chaos producer: standard input closed: exiting")
		os.Exit(1)
	}()
	return stop
}

func serve() error {
	cfg := &natsserver.Config{
		Dir:        os.Getenv(envDir),
		Name:       os.Getenv(envName),
		SyncAlways: os.Getenv(envNoSync) != "1",
		Listen:     os.Getenv(envListen),
	}
	if route := os.Getenv(envRoute); route != "" {
		cfg.Cluster = &natsserver.Cluster{Name: "chaos", Listen: route, Routes: strings.Split(os.Getenv(envRoutes), ",")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s, err := natsserver.Start(ctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	fmt.Println("ready")
	<-stdinClosed()
	s.Shutdown()
	return nil
}

// connect connects to the servers, riding out their restarts, and makes a
// broker; it retries until the servers answer or a minute passed.
func connect(name string) (*nats.Conn, *natsbroker.Broker, error) {
	nc, err := nats.Connect(os.Getenv(envURLs), nats.Name(name), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(10*time.Second))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	replicas, _ := strconv.Atoi(os.Getenv(envReplicas))
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := natsbroker.New(ctx, js, &natsbroker.Config{Prefix: prefix, Replicas: max(replicas, 1), AckWait: lease})
		cancel()
		if err == nil {
			return nc, b, nil
		}
		if time.Now().After(deadline) {
			nc.Close()
			return nil, nil, err
		}
		time.Sleep(200 * time.Millisecond) // the servers are restarting: nothing to wait on but time
	}
}

func work() error {
	name := os.Getenv(envName)
	f, err := os.OpenFile(filepath.Join(os.Getenv(envDir), execPrefix+name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	nc, b, err := connect("chaos worker " + name)
	if err != nil {
		return err
	}
	defer nc.Close()
	defer b.Close()
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4, Lease: lease})
	if err != nil {
		return err
	}
	var runs atomic.Int64
	bufs := sync.Pool{New: func() any { return new([]byte) }}
	record := func(e Exec) error {
		bp := bufs.Get().(*[]byte)
		defer bufs.Put(bp)
		*bp = appendExec((*bp)[:0], e)
		_, err := f.Write(*bp) // one write per line, O_APPEND: never torn by another runner
		return err
	}
	queue.HandleFunc(w, kind, func(ctx context.Context, in int64) (out, error) {
		x := name + "." + strconv.FormatInt(runs.Add(1), 10)
		if err := record(Exec{In: in, X: x, T: time.Now().UnixNano()}); err != nil {
			return out{}, err
		}
		// Work that takes a while, so that a kill lands mid-task.
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		if err := record(Exec{In: in, X: x, T: time.Now().UnixNano(), End: true}); err != nil {
			return out{}, err
		}
		if in < 0 {
			return out{}, queue.Permanent(errors.New(FailError(x)))
		}
		return out{V: Expected(in), X: x}, nil
	})
	if err := w.Start(); err != nil {
		return err
	}
	fmt.Println("ready")
	<-stdinClosed()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.Shutdown(ctx)
}

// producer enqueues and awaits batches in lanes until told to stop.
type producer struct {
	log      *jsonLog
	c        *queue.Client // enqueues, and awaits what it enqueued
	attach   *queue.Client // another connection: attaches by ID
	maxBatch int
	hang     time.Duration
	next     atomic.Int64 // the next unused input

	mu       sync.Mutex
	accepted []string // batch IDs, for the final re-read
}

func produce() error {
	dir := os.Getenv(envDir)
	l, err := openLog(filepath.Join(dir, producerFile))
	if err != nil {
		return err
	}
	defer l.Close()
	p := &producer{log: l}
	p.maxBatch, _ = strconv.Atoi(os.Getenv(envMaxBatch))
	p.hang, _ = time.ParseDuration(os.Getenv(envHang))
	lanes, _ := strconv.Atoi(os.Getenv(envLanes))
	seed, _ := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	if p.maxBatch < 1 || p.hang <= 0 || lanes < 1 {
		return fmt.Errorf("%s, %s and %s must be positive", envMaxBatch, envHang, envLanes)
	}
	nc1, b1, err := connect("chaos producer")
	if err != nil {
		return err
	}
	defer nc1.Close()
	defer b1.Close()
	nc2, b2, err := connect("chaos attacher")
	if err != nil {
		return err
	}
	defer nc2.Close()
	defer b2.Close()
	if p.c, err = queue.NewClient(b1, nil); err != nil {
		return err
	}
	if p.attach, err = queue.NewClient(b2, nil); err != nil {
		return err
	}

	stop := stopRequested()
	var wg sync.WaitGroup
	for i := range lanes {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() { p.lane(rng, stop) })
	}
	fmt.Println("ready")
	wg.Wait()
	fmt.Println("stopped")
	p.final(lanes)
	fmt.Println("done")
	return nil
}

var modes = []string{ModeAwait, ModeSettled, ModeResults, ModeAttachAwait, ModeAttachSettled, ModeAttachResults}

// settles reports whether mode returns every outcome, failures included.
func settles(mode string) bool { return mode != ModeAwait && mode != ModeAttachAwait }

func (p *producer) lane(rng *rand.Rand, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		n := 1 + rng.IntN(p.maxBatch)
		if rng.IntN(4) > 0 {
			n = 1 + rng.IntN(max(p.maxBatch/10, 1)) // mostly small batches, now and then a large one
		}
		base := p.next.Add(int64(n)) - int64(n)
		ins := make([]int64, n)
		for i := range ins {
			ins[i] = base + int64(i)
		}
		mode := modes[rng.IntN(len(modes))]
		e := Enqueue{Base: base, N: n}
		if settles(mode) && rng.IntN(4) == 0 {
			// Some tasks fail by design: their failures must come back
			// at their index, once, like values. (Not in the fail-fast
			// modes, where the first failure cancels the rest.)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(n)
				if ins[i] >= 0 {
					ins[i] = FailInput(ins[i])
					e.Fail = append(e.Fail, i)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		e.Start = time.Now().UnixNano()
		batch, err := queue.EnqueueBatch(ctx, p.c, kind, ins)
		cancel()
		e.End = time.Now().UnixNano()
		if err != nil {
			e.Err = err.Error()
			p.write(record{Enq: &e})
			time.Sleep(100 * time.Millisecond) // the server is down: try again in a moment
			continue
		}
		e.Batch = batch.ID()
		p.write(record{Enq: &e})
		p.mu.Lock()
		p.accepted = append(p.accepted, e.Batch)
		p.mu.Unlock()
		p.await(batch.ID(), batch, mode, time.Now().Add(p.hang))
	}
}

func (p *producer) write(r record) {
	if err := p.log.write(r); err != nil {
		fmt.Fprintln(os.Stderr, "chaos producer: recording:", err)
	}
}

// await awaits batch id in mode until an await returns without error or the
// deadline passes (a hang), recording each attempt. It attaches on the
// second connection in the attach modes, after an error, and when batch
// is nil.
func (p *producer) await(id string, batch *queue.Batch[out], mode string, deadline time.Time) {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		o := Observation{Batch: id, Mode: mode, Start: time.Now().UnixNano()}
		err := p.observe(ctx, id, batch, &o, attempt > 0)
		cancel()
		o.End = time.Now().UnixNano()
		if err != nil {
			o.Err = err.Error()
			o.Results = nil
			o.Hang = !time.Now().Before(deadline)
		}
		p.write(record{Obs: &o})
		if err == nil || o.Hang {
			return
		}
		time.Sleep(100 * time.Millisecond) // an await failed (the server restarting): try again in a moment
	}
}

func (p *producer) observe(ctx context.Context, id string, batch *queue.Batch[out], o *Observation, again bool) error {
	mode := o.Mode
	if batch == nil || again || strings.HasPrefix(mode, "attach-") {
		var err error
		if batch, err = queue.Attach(ctx, p.attach, kind, id); err != nil {
			return err
		}
	}
	switch mode {
	case ModeAwait, ModeAttachAwait:
		res, err := batch.Await(ctx)
		if err != nil {
			return err
		}
		o.Results = make([]Seen, len(res))
		for i, r := range res {
			o.Results[i] = Seen{I: i, V: r.V, X: r.X}
		}
	case ModeSettled, ModeAttachSettled, ModeFinal:
		res, err := batch.AwaitSettled(ctx)
		if err != nil {
			return err
		}
		o.Results = make([]Seen, len(res))
		for i, r := range res {
			o.Results[i] = Seen{I: i, V: r.Value.V, X: r.Value.X}
			if r.Err != nil {
				o.Results[i].Err = r.Err.Error()
			}
		}
	case ModeResults, ModeAttachResults:
		o.Results = make([]Seen, 0, batch.Len())
		for i, r := range batch.Results(ctx) {
			if i < 0 {
				return r.Err
			}
			s := Seen{I: i, V: r.Value.V, X: r.Value.X}
			if r.Err != nil {
				s.Err = r.Err.Error()
			}
			o.Results = append(o.Results, s)
		}
	default:
		return errors.New("unknown mode " + mode)
	}
	return nil
}

// final re-reads every accepted batch once more, on the second connection,
// with AwaitSettled: every reader must agree on each task's result.
func (p *producer) final(lanes int) {
	ids := make(chan string)
	var wg sync.WaitGroup
	for range lanes {
		wg.Go(func() {
			for id := range ids {
				p.await(id, nil, ModeFinal, time.Now().Add(p.hang))
			}
		})
	}
	p.mu.Lock()
	all := p.accepted
	p.mu.Unlock()
	for _, id := range all {
		ids <- id
	}
	close(ids)
	wg.Wait()
}
