package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config configures Run. A nil *Config means every default.
type Config struct {
	// Duration is how long faults are injected; the producer then stops
	// enqueueing, finishes its awaits and re-reads every batch. Default 1
	// minute.
	Duration time.Duration
	// Cluster runs three servers in a cluster with R3 streams and kills
	// one at a time, instead of one server that is killed. Default false.
	Cluster bool
	// NoSync runs the servers with the default sync interval instead of
	// SyncAlways: a killed process must still lose nothing, since what the
	// server acknowledged is in the kernel's page cache. Default false.
	NoSync bool
	// Workers is how many worker processes run at once. Default 2.
	Workers int
	// Lanes is how many batches the producer has in flight. Default 4.
	Lanes int
	// MaxBatch is the largest batch; most are at most a tenth of it.
	// Default 1000 (larger than 64 × the pack size, so large batches are
	// packed).
	MaxBatch int
	// Hang is how long an await may take before it counts as a hang.
	// Default 2 minutes.
	Hang time.Duration
	// WorkerKills is the mean time between worker kills; ServerKills
	// between kills of the server (or of a node). Defaults 3 s and 12 s;
	// negative: none of that kind, to measure one kind of fault alone.
	WorkerKills, ServerKills time.Duration
	// Dir holds the history and the servers' data. Default: a temporary
	// directory, removed when the run passed.
	Dir string
	// Seed seeds the faults and the producer. Default: random.
	Seed uint64
	// Command is how a role is started: the binary and its arguments, run
	// with RoleEnv set. Default: this binary with "-test.run=^$", for a
	// test binary whose TestMain calls RunRole.
	Command []string
	// Log receives a line per fault and phase. Default: discard.
	Log io.Writer
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Duration, time.Minute)
	def(&c.Hang, 2*time.Minute)
	if c.WorkerKills == 0 {
		c.WorkerKills = 3 * time.Second
	}
	if c.ServerKills == 0 {
		c.ServerKills = 12 * time.Second
	}
	if c.Workers < 1 {
		c.Workers = 2
	}
	if c.Lanes < 1 {
		c.Lanes = 4
	}
	if c.MaxBatch < 1 {
		c.MaxBatch = 1000
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if len(c.Command) == 0 {
		c.Command = []string{os.Args[0], "-test.run=^$"}
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// Run runs the chaos test (see the package doc) and checks its history.
// It returns the report, and an error when the harness itself failed (a
// server that did not start, a producer that did not finish): the report
// then covers what was recorded. Every process it started has been
// killed when it returns. Run blocks for about Duration, plus the time
// the producer takes to finish and re-read.
func Run(ctx context.Context, cfg *Config) (*Report, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c = c.withDefaults()
	dir := c.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "gather-chaos-"); err != nil {
			return nil, err
		}
	}
	hist := filepath.Join(dir, "history")
	logs := filepath.Join(dir, "logs")
	if old, _ := os.ReadDir(hist); len(old) > 0 {
		return nil, fmt.Errorf("chaos: %s holds a history already: give Run an empty directory", hist)
	}
	for _, d := range []string{hist, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	r := &runner{c: c, dir: dir, hist: hist, logs: logs, rng: rand.New(rand.NewPCG(c.Seed, 1))}
	fmt.Fprintf(c.Log, "chaos: seed %d, directory %s\n", c.Seed, dir)
	defer r.killAll()
	runErr := r.run(ctx)
	r.killAll()
	h, err := ReadHistory(hist)
	if err != nil {
		return nil, errors.Join(runErr, fmt.Errorf("chaos: reading the history: %w", err))
	}
	rep := Check(h)
	if runErr == nil && rep.OK() && c.Dir == "" {
		_ = os.RemoveAll(dir)
	}
	return rep, runErr
}

// runner is one Run's processes.
type runner struct {
	c                Config
	dir, hist, logs  string
	rng              *rand.Rand
	faults           *jsonLog
	servers          []*child // one, or the cluster's three
	serverEnv        [][]string
	urls             string
	workers          []*child
	producer         *child
	workerN, serverN int
}

// child is a process playing a role.
type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string   // its standard output, line by line
	done  chan struct{} // closed when its standard output ends
}

func (r *runner) start(role, name string, env ...string) (*child, error) {
	cmd := exec.Command(r.c.Command[0], r.c.Command[1:]...)
	cmd.Env = append(os.Environ(), append([]string{RoleEnv + "=" + role}, env...)...)
	errf, err := os.OpenFile(filepath.Join(r.logs, name+".stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer errf.Close() // the child holds its own descriptor
	cmd.Stderr = errf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan struct{})}
	go func() { // owned by c: ends when the process's stdout closes, which kill waits for
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody reads the rest
			}
		}
	}()
	return c, nil
}

// expect waits for the line want.
func (c *child) expect(ctx context.Context, want string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-c.lines:
			if l == want {
				return nil
			}
		case <-c.done:
			return fmt.Errorf("chaos: %s exited before saying %q", c.name, want)
		case <-t.C:
			return fmt.Errorf("chaos: %s did not say %q within %v", c.name, want, timeout)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// kill SIGKILLs the process and reaps it; it may be called twice.
func (c *child) kill() {
	if c == nil || c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.stdin.Close()
	<-c.done
	_ = c.cmd.Wait()
}

func (r *runner) killAll() {
	r.producer.kill()
	for _, w := range r.workers {
		w.kill()
	}
	for _, s := range r.servers {
		s.kill()
	}
	if r.faults != nil {
		_ = r.faults.Close()
		r.faults = nil
	}
}

func (r *runner) fault(kind, target string) {
	fmt.Fprintf(r.c.Log, "chaos: %s %s %s\n", time.Now().Format("15:04:05.000"), kind, target)
	if err := r.faults.write(Fault{T: time.Now().UnixNano(), Kind: kind, Target: target}); err != nil {
		fmt.Fprintln(r.c.Log, "chaos: recording a fault:", err)
	}
}

// freePorts returns n loopback addresses that were free a moment ago.
func freePorts(n int) ([]string, error) {
	var addrs []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

const startTimeout = time.Minute

func (r *runner) run(ctx context.Context) error {
	var err error
	if r.faults, err = openLog(filepath.Join(r.hist, faultsFile)); err != nil {
		return err
	}
	nodes := 1
	if r.c.Cluster {
		nodes = 3
	}
	clients, err := freePorts(nodes)
	if err != nil {
		return err
	}
	var routes, routeURLs []string
	if r.c.Cluster {
		if routes, err = freePorts(nodes); err != nil {
			return err
		}
		for _, a := range routes {
			routeURLs = append(routeURLs, "nats://"+a)
		}
	}
	var urls []string
	for i := range nodes {
		env := []string{
			envDir + "=" + filepath.Join(r.dir, "data", "n"+strconv.Itoa(i)),
			envName + "=n" + strconv.Itoa(i),
			envListen + "=" + clients[i],
		}
		if r.c.NoSync {
			env = append(env, envNoSync+"=1")
		}
		if r.c.Cluster {
			env = append(env, envRoute+"="+routes[i], envRoutes+"="+strings.Join(routeURLs, ","))
		}
		r.serverEnv = append(r.serverEnv, env)
		urls = append(urls, "nats://"+clients[i])
	}
	r.urls = strings.Join(urls, ",")
	r.servers = make([]*child, nodes)
	for i := range nodes { // a cluster's nodes wait for each other: start them all, then wait
		if r.servers[i], err = r.start(roleServer, r.serverName(i), r.serverEnv[i]...); err != nil {
			return err
		}
	}
	for _, s := range r.servers {
		if err := s.expect(ctx, "ready", startTimeout); err != nil {
			return err
		}
	}
	replicas := strconv.Itoa(nodes)
	common := []string{envURLs + "=" + r.urls, envDir + "=" + r.hist, envReplicas + "=" + replicas}
	if r.producer, err = r.start(roleProducer, "producer", append(common,
		envLanes+"="+strconv.Itoa(r.c.Lanes), envMaxBatch+"="+strconv.Itoa(r.c.MaxBatch),
		envHang+"="+r.c.Hang.String(), envSeed+"="+strconv.FormatUint(r.c.Seed, 10))...); err != nil {
		return err
	}
	if err := r.producer.expect(ctx, "ready", startTimeout); err != nil {
		return err
	}
	r.workers = make([]*child, r.c.Workers)
	for i := range r.workers {
		if r.workers[i], err = r.startWorker(); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.c.Log, "chaos: %d server(s), producer and %d workers running; faults for %v\n", nodes, r.c.Workers, r.c.Duration)

	end := time.NewTimer(r.c.Duration)
	defer end.Stop()
	wk := r.faultTimer(r.c.WorkerKills)
	defer wk.Stop()
	sk := r.faultTimer(r.c.ServerKills)
	defer sk.Stop()
faults:
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-end.C:
			break faults
		case <-wk.C:
			i := r.rng.IntN(len(r.workers))
			w := r.workers[i]
			w.kill()
			r.fault(FaultWorkerKill, w.name)
			if r.workers[i], err = r.startWorker(); err != nil {
				return err
			}
			wk.Reset(r.jitter(r.c.WorkerKills))
		case <-sk.C:
			i := r.rng.IntN(nodes)
			s := r.servers[i]
			s.kill()
			kind := FaultServerKill
			if r.c.Cluster {
				kind = FaultNodeKill
			}
			r.fault(kind, s.name)
			time.Sleep(time.Duration(r.rng.IntN(2000)) * time.Millisecond) // down for a while
			if r.servers[i], err = r.start(roleServer, r.serverName(i), r.serverEnv[i]...); err != nil {
				return err
			}
			if err := r.servers[i].expect(ctx, "ready", startTimeout); err != nil {
				return err
			}
			r.fault(FaultServerStart, r.servers[i].name)
			sk.Reset(r.jitter(r.c.ServerKills))
		}
	}
	// Every server and worker is up: let the producer finish.
	fmt.Fprintln(r.c.Log, "chaos: faults over; the producer finishes its awaits and re-reads every batch")
	if _, err := io.WriteString(r.producer.stdin, stopLine+"\n"); err != nil {
		return fmt.Errorf("chaos: telling the producer to stop: %w", err)
	}
	if err := r.producer.expect(ctx, "stopped", r.c.Hang+time.Minute); err != nil {
		return fmt.Errorf("chaos: the producer did not finish its awaits: %w", err)
	}
	if err := r.producer.expect(ctx, "done", 2*r.c.Hang+5*time.Minute); err != nil {
		return fmt.Errorf("chaos: the producer did not finish re-reading: %w", err)
	}
	return nil
}

func (r *runner) serverName(i int) string {
	r.serverN++
	return fmt.Sprintf("server-n%d-%d", i, r.serverN)
}

// startWorker starts a worker with a new name; it does not wait for it to
// be ready (a worker started while the server is down connects when it
// comes back).
func (r *runner) startWorker() (*child, error) {
	r.workerN++
	name := "w" + strconv.Itoa(r.workerN)
	w, err := r.start(roleWorker, name, envURLs+"="+r.urls, envDir+"="+r.hist, envName+"="+name,
		envReplicas+"="+strconv.Itoa(len(r.servers)))
	if err == nil {
		r.fault(FaultWorkerStart, name)
	}
	return w, err
}

// faultTimer returns a timer that fires after about mean, or never when
// mean is negative.
func (r *runner) faultTimer(mean time.Duration) *time.Timer {
	t := time.NewTimer(r.jitter(max(mean, time.Second)))
	if mean < 0 {
		t.Stop()
	}
	return t
}

// jitter returns a random duration around mean: from half to one and a
// half of it.
func (r *runner) jitter(mean time.Duration) time.Duration {
	return mean/2 + time.Duration(r.rng.Int64N(int64(mean)+1))
}
