package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// peerSystems are the systems whose workers and producers are the scripts in
// -peers, and the server they use.
var peerSystems = map[string]string{"celery": "redis", "bullmq": "redis"}

// allSystems is the default -systems, in the table's order.
const allSystems = "natsbroker,natsbroker-unpacked,natsbroker-inprocess,jetstream,asynq,river,celery,bullmq"

// driver runs every system with every worker count, one at a time.
type driver struct {
	self    string // this program, for the natsd, worker and produce roles
	a       addrs  // Redis and PostgreSQL; NATS is started per run
	m       measureFlags
	peers   string // directory of celery_bench.py and bullmq_bench.mjs
	python  string
	node    string
	speed   string // label of the run: "full", or "half" under deployed.sh --half
	dir     string // for the NATS stores
	out     *json.Encoder
	stdout  io.Writer
	running []*proc // started and not yet stopped, oldest first
}

// drive is the driver role.
func drive(ctx context.Context, args []string, stdout io.Writer) error {
	// Children get SIGKILL when the thread that started them exits (Pdeathsig):
	// keep every start on this goroutine's one thread, which lives as long as the
	// process.
	runtime.LockOSThread()
	fs := flag.NewFlagSet("drive", flag.ContinueOnError)
	systems := fs.String("systems", allSystems, "comma-separated systems to measure, in this order")
	workerCounts := fs.String("workers", "1,2", "comma-separated numbers of worker processes")
	count := fs.Int("count", 1, "rounds: each round runs every system and worker count once")
	warmup := fs.Int("warmup", 0, "rounds run first with their results left out (a system's first round after its server started runs slower)")
	d := &driver{stdout: stdout, out: json.NewEncoder(stdout)}
	fs.StringVar(&d.a.redis, "redis", os.Getenv("GATHER_BENCH_REDIS"), "redis-server address, host:port (default $GATHER_BENCH_REDIS)")
	fs.StringVar(&d.a.postgres, "postgres", os.Getenv("GATHER_BENCH_POSTGRES"), "PostgreSQL URL (default $GATHER_BENCH_POSTGRES)")
	fs.StringVar(&d.peers, "peers", "peers", "directory of celery_bench.py and bullmq_bench.mjs (with node_modules)")
	fs.StringVar(&d.python, "python", "/usr/bin/python3", "the Python that has Debian's python3-celery and python3-redis")
	fs.StringVar(&d.node, "node", "node", "node, for BullMQ")
	fs.StringVar(&d.speed, "speed", "full", "label of this run's machine speed, copied into every result")
	d.m.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if _, err := d.m.ns(); err != nil {
		return err
	}
	names := strings.Split(*systems, ",")
	for _, s := range names {
		if _, ok := goSystems[s]; !ok && peerSystems[s] == "" {
			return fmt.Errorf("%w: -systems: unknown system %q: want some of %s", errUsage, s, allSystems)
		}
	}
	var counts []int
	for f := range strings.SplitSeq(*workerCounts, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("%w: -workers: %q is not a positive integer", errUsage, f)
		}
		counts = append(counts, n)
	}
	if *count < 1 {
		return fmt.Errorf("%w: -count %d: want 1 or more", errUsage, *count)
	}
	if *warmup < 0 {
		return fmt.Errorf("%w: -warmup %d: want 0 or more", errUsage, *warmup)
	}
	var err error
	if d.self, err = os.Executable(); err != nil {
		return err
	}
	if d.dir, err = os.MkdirTemp("", "deployed-"); err != nil {
		return err
	}
	defer os.RemoveAll(d.dir)
	defer d.stopAll()

	failed := 0
	for round := 1 - *warmup; round <= *count; round++ {
		for _, sys := range names {
			for _, w := range counts {
				if round < 1 {
					d.note("warm-up run system=%s workers=%d speed=%s (results left out)", sys, w, d.speed)
				} else {
					d.note("run system=%s workers=%d speed=%s round=%d/%d", sys, w, d.speed, round, *count)
				}
				err := d.run(ctx, sys, w, round)
				d.stopAll()
				if ctx.Err() != nil {
					return context.Cause(ctx)
				}
				if err != nil {
					failed++
					d.note("FAILED system=%s workers=%d speed=%s round=%d: %s", sys, w, d.speed, round, oneLine(err))
				}
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d run(s) failed: their figures are missing", failed)
	}
	return nil
}

// note writes a comment line to stdout, with the results, and to stderr, for the
// person watching.
func (d *driver) note(format string, args ...any) {
	line := "# " + fmt.Sprintf(format, args...) + "\n"
	fmt.Fprint(d.stdout, line)
	fmt.Fprint(os.Stderr, line)
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// run measures one system with w worker processes: reset or start its server,
// start the workers, run the producer to its end.
func (d *driver) run(ctx context.Context, sys string, w int, round int) error {
	a := d.a
	server := peerSystems[sys]
	if g, ok := goSystems[sys]; ok {
		server = g.server
	}
	setup, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	switch server {
	case "nats":
		dir := filepath.Join(d.dir, fmt.Sprintf("%s-%d-%d", sys, w, round))
		url, err := d.start(setup, "natsd", []string{d.self, "natsd", "-dir", dir}, syscall.SIGTERM)
		if err != nil {
			return err
		}
		if a.nats, _ = strings.CutPrefix(url, "ready "); !strings.HasPrefix(a.nats, "nats://") {
			return fmt.Errorf("natsd said %q: want \"ready nats://...\"", url)
		}
	case "redis":
		if a.redis == "" {
			return errors.New("no redis-server: give -redis or set GATHER_BENCH_REDIS (deployed.sh does)")
		}
		rdb := redis.NewClient(&redis.Options{Addr: a.redis})
		err := rdb.FlushAll(setup).Err()
		rdb.Close()
		if err != nil {
			return fmt.Errorf("flushing redis-server %s: %w", a.redis, err)
		}
	case "postgres":
		if a.postgres == "" {
			return errors.New("no PostgreSQL: give -postgres or set GATHER_BENCH_POSTGRES (deployed.sh does)")
		}
		if err := riverReset(setup, a.postgres); err != nil {
			return err
		}
	}

	shape := "tcp"
	if server == "" {
		shape = "in-process" // the producer runs the server and the workers itself
	} else {
		for i := range w {
			argv, err := d.workerArgv(sys, a, i)
			if err != nil {
				return err
			}
			// Celery's warm shutdown (SIGTERM) takes seconds; its cold one (SIGQUIT)
			// is as good once the producer has awaited every task.
			term := syscall.SIGTERM
			if sys == "celery" {
				term = syscall.SIGQUIT
			}
			if line, err := d.start(setup, fmt.Sprintf("%s worker %d", sys, i+1), argv, term); err != nil {
				return err
			} else if line != "ready" {
				return fmt.Errorf("%s worker %d said %q: want \"ready\"", sys, i+1, line)
			}
		}
	}

	extra := map[string]any{"shape": shape, "workers": w, "speed": d.speed, "round": round}
	results := 0
	onLine := func(line string) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			fmt.Fprintf(os.Stderr, "%s producer: %s\n", sys, line)
			return
		}
		results++
		if round < 1 {
			return // a warm-up round's
		}
		for k, v := range extra {
			m[k] = v
		}
		if err := d.out.Encode(m); err != nil {
			fmt.Fprintln(os.Stderr, "deployed: writing a result:", err)
		}
	}
	p, err := d.startProc(sys+" producer", d.producerArgv(sys, a, w), false, onLine)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if p.err != nil {
		return fmt.Errorf("producer: %w", p.err)
	}
	if results == 0 {
		return errors.New("producer printed no result")
	}
	return nil
}

func (d *driver) workerArgv(sys string, a addrs, i int) ([]string, error) {
	switch sys {
	case "celery":
		return []string{d.python, filepath.Join(d.peers, "celery_bench.py"), "worker",
			"--redis", "redis://" + a.redis + "/0", "--name", fmt.Sprintf("w%d", i+1)}, nil
	case "bullmq":
		return []string{d.node, filepath.Join(d.peers, "bullmq_bench.mjs"), "worker", "--redis", a.redis}, nil
	}
	return []string{d.self, "worker", "-system", sys, "-nats", a.nats, "-redis", a.redis, "-postgres", a.postgres}, nil
}

func (d *driver) producerArgv(sys string, a addrs, w int) []string {
	m := []string{"--sizes", d.m.sizes, "--chunk", strconv.Itoa(d.m.chunk),
		"--benchtime", strconv.FormatFloat(d.m.benchtime.Seconds(), 'f', -1, 64),
		"--timeout", strconv.FormatFloat(d.m.timeout.Seconds(), 'f', -1, 64)}
	switch sys {
	case "celery":
		return append([]string{d.python, filepath.Join(d.peers, "celery_bench.py"), "produce",
			"--redis", "redis://" + a.redis + "/0"}, m...)
	case "bullmq":
		return append([]string{d.node, filepath.Join(d.peers, "bullmq_bench.mjs"), "produce", "--redis", a.redis}, m...)
	}
	return []string{d.self, "produce", "-system", sys, "-workers", strconv.Itoa(w),
		"-nats", a.nats, "-redis", a.redis, "-postgres", a.postgres,
		"-sizes", d.m.sizes, "-chunk", strconv.Itoa(d.m.chunk),
		"-benchtime", d.m.benchtime.String(), "-timeout", d.m.timeout.String()}
}

// proc is a child process in its own process group. Its stdin stays open while it
// should run: a child that sees its end knows the driver is gone.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.Closer
	term  syscall.Signal // what asks it to stop
	ready chan string    // the "ready" line of stdout (size 1: written once)
	done  chan struct{}  // closed once the process has exited and err is set
	err   error
}

// start starts a server or worker process and returns the line of its stdout
// that says that it is ready ("ready", or "ready " and an address); every other
// line goes to stderr. Its stop sends it term.
func (d *driver) start(ctx context.Context, name string, argv []string, term syscall.Signal) (string, error) {
	p, err := d.startProc(name, argv, true, func(line string) { fmt.Fprintf(os.Stderr, "%s: %s\n", name, line) })
	if err != nil {
		return "", err
	}
	p.term = term
	select {
	case line := <-p.ready:
		return line, nil
	case <-p.done:
		return "", fmt.Errorf("%s exited before it was ready: %v", name, p.err)
	case <-ctx.Done():
		return "", fmt.Errorf("%s not ready: %w", name, context.Cause(ctx))
	}
}

// startProc starts argv. When readyLine, its first line of stdout that is
// "ready" or starts with "ready " goes to p.ready; every other line goes to
// onLine.
func (d *driver) startProc(name string, argv []string, readyLine bool, onLine func(string)) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, term: syscall.SIGTERM, ready: make(chan string, 1), done: make(chan struct{})}
	d.running = append(d.running, p)
	waiting := readyLine
	go func() { // owned by p: done is closed when it returns, and stop waits for that
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); waiting && (line == "ready" || strings.HasPrefix(line, "ready ")) {
				p.ready <- line
				waiting = false
			} else {
				onLine(line)
			}
		}
		p.err = cmd.Wait() // after every read, as exec.Cmd requires
		close(p.done)
	}()
	return p, nil
}

// stop ends p: p.term and the end of its stdin, SIGKILL to its process group
// after grace, and SIGKILL to whatever of its group is left then (a Celery
// worker's pool, which its main process stops itself when given the time).
func (p *proc) stop(grace time.Duration) {
	pg := -p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(p.term)
		_ = p.stdin.Close()
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
			fmt.Fprintf(os.Stderr, "deployed: %s did not stop in %v: killing it\n", p.name, grace)
			_ = syscall.Kill(pg, syscall.SIGKILL)
			<-p.done
		}
		t.Stop()
	}
	_ = syscall.Kill(pg, syscall.SIGKILL)
}

// stopAll stops every running process, newest first (workers before their server).
func (d *driver) stopAll() {
	for _, p := range slices.Backward(d.running) {
		p.stop(30 * time.Second)
	}
	d.running = d.running[:0]
}
