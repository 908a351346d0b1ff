package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// deployment is one gather serve process and its worker processes. Its
// stop method stops them all; every method but stop is safe for concurrent
// use.
type deployment struct {
	serve   *exec.Cmd
	workers []*exec.Cmd
	api     string // http://127.0.0.1:port
	token   string
	client  *http.Client
	exited  chan error // serve's Wait result, read by stop
	log     *logLimit  // the processes' stderr
}

// shownLines is how many lines of the gather processes' logs a deployment
// passes on; the others are counted.
const shownLines = 20

// logLimit passes the first shownLines lines written to it on to w and
// counts them all. It is safe for concurrent use.
type logLimit struct {
	mu    sync.Mutex
	w     io.Writer
	lines int64
}

func (l *logLimit) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines < shownLines {
		l.w.Write(p)
	}
	l.lines += int64(bytes.Count(p, []byte("\n")))
	return len(p), nil
}

// logLines is the number of lines the deployment's processes have logged
// (at --log-level warn: warnings and errors).
func (d *deployment) logLines() int64 {
	d.log.mu.Lock()
	defer d.log.mu.Unlock()
	return d.log.lines
}

// start starts gather serve with a store in dir, no built-in workers, its
// API and NATS port on loopback with tokens, and c.workers gather worker
// processes; it returns once the API answers and a batch has been run by the
// workers, all with --retention retention. extra are more flags for serve.
func start(ctx context.Context, c *config, dir string, retention time.Duration, stderr io.Writer, extra ...string) (*deployment, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	d := &deployment{token: randomToken(), log: &logLimit{w: stderr}}
	natsToken := randomToken()
	addrFile := filepath.Join(dir, "addr.json")
	if err := os.Remove(addrFile); err != nil && !os.IsNotExist(err) {
		return nil, err // a stale one would name another server
	}
	args := append([]string{"serve", "--data", filepath.Join(dir, "data"), "--workers", "0",
		"--addr", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--addr-file", addrFile,
		"--result-ttl", c.resultTTL.String(), "--retention", retention.String(), "--log-level", "warn"}, extra...)
	// The tokens go in the environment, where ps does not show them.
	d.serve = command(c.gather, args, d.log, "GATHER_TOKEN="+d.token, "GATHER_NATS_TOKEN="+natsToken)
	if err := d.serve.Start(); err != nil {
		return nil, fmt.Errorf("starting gather serve: %w", err)
	}
	d.exited = make(chan error, 1) // the one Wait of serve
	go func() { d.exited <- d.serve.Wait() }()
	var addrs struct{ HTTP, NATS string }
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil && json.Unmarshal(b, &addrs) == nil && addrs.HTTP != "" {
			break
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			d.stop()
			return nil, fmt.Errorf("gather serve exited before listening: %v", err)
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.api = addrs.HTTP
	d.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}}
	for range c.workers {
		wargs := []string{"worker", "--nats", addrs.NATS,
			"--retention", retention.String(), "--log-level", "warn"}
		if c.concurrency > 0 {
			wargs = append(wargs, "--concurrency", strconv.Itoa(c.concurrency))
		}
		w := command(c.gather, wargs, d.log, "GATHER_NATS_TOKEN="+natsToken)
		if err := w.Start(); err != nil {
			d.stop()
			return nil, fmt.Errorf("starting gather worker: %w", err)
		}
		d.workers = append(d.workers, w)
	}
	// A first batch proves the workers are connected.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := d.await(wctx, batchBody(0, 3, 0), 3, 0); err != nil {
		d.stop()
		return nil, fmt.Errorf("first batch: %w", err)
	}
	return d, nil
}

// command returns an exec.Cmd of the gather binary that the kernel kills
// when this process dies, with its stderr passed on and env added to this
// process's environment.
func command(bin string, args []string, stderr io.Writer, env ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// stop sends SIGTERM to the workers and the server, waits 15 s for each,
// then kills it.
func (d *deployment) stop() {
	for _, w := range d.workers {
		w.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range d.workers {
		done := make(chan struct{})
		go func() { w.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			w.Process.Kill()
			<-done
		}
	}
	d.serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err // stop may be called again
	case <-time.After(15 * time.Second):
		d.serve.Process.Kill()
		d.exited <- <-d.exited
	}
	if d.client != nil {
		d.client.CloseIdleConnections()
	}
	if n := d.logLines(); n > shownLines {
		fmt.Fprintf(d.log.w, "httpload: the gather processes logged %d lines at warn or above; the first %d are shown\n", n, shownLines)
	}
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// request makes a request to the API with the token.
func (d *deployment) request(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.api+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return d.client.Do(req)
}

// batchReply is the part of a batch's JSON that the load test reads.
type batchReply struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Results []struct {
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
	} `json:"results"`
}

// errFull is a 429 answer; retryAfter says whether it had Retry-After.
type errFull struct{ retryAfter bool }

func (e *errFull) Error() string { return "429 queue full" }

// await posts body with ?wait and waits on GET until the batch is done;
// it returns the number of results whose value is not first+index (the
// items are the numbers first, first+1, ...; wrong is -1 when first < 0 and
// nothing is checked) and an *errFull on 429.
func (d *deployment) await(ctx context.Context, body []byte, size, first int) (wrong int, err error) {
	resp, err := d.request(ctx, "POST", "/v1/batches?wait=60s", body)
	if err != nil {
		return 0, err
	}
	for {
		var rep batchReply
		if err := decode(resp, &rep); err != nil {
			return 0, err
		}
		if resp.StatusCode == http.StatusOK {
			return check(&rep, size, first, false)
		}
		if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusCreated {
			return 0, fmt.Errorf("batch %s: status %d", rep.ID, resp.StatusCode)
		}
		if resp, err = d.request(ctx, "GET", "/v1/batches/"+rep.ID+"?wait=60s", nil); err != nil {
			return 0, err
		}
	}
}

// decode reads a JSON answer; a 429 becomes *errFull, another status of
// 400 or more an error with the body.
func decode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return &errFull{retryAfter: resp.Header.Get("Retry-After") != ""}
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, v)
}

// check counts the results of a finished batch that are not ok or whose
// value is not first plus their index (with slept, the value's "value",
// as the sleep kind returns it).
func check(rep *batchReply, size, first int, slept bool) (int, error) {
	if len(rep.Results) != size {
		return 0, fmt.Errorf("batch %s (%s): %d results for %d items", rep.ID, rep.Status, len(rep.Results), size)
	}
	wrong := 0
	for i, r := range rep.Results {
		v := r.Value
		if slept {
			var s struct{ Value json.RawMessage }
			if json.Unmarshal(v, &s) != nil {
				s.Value = nil
			}
			v = s.Value
		}
		if !r.OK || string(v) != strconv.Itoa(first+i) {
			wrong++
		}
	}
	return wrong, nil
}

// memory is one sample of the server's memory, in MiB.
type memory struct {
	RSS  float64 `json:"rss_mib"`  // VmRSS
	HWM  float64 `json:"hwm_mib"`  // VmHWM, the peak RSS so far
	Heap float64 `json:"heap_mib"` // go_memstats_heap_inuse_bytes
}

// memory samples the server's memory.
func (d *deployment) memory(ctx context.Context) (memory, error) {
	var m memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.serve.Process.Pid))
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return m, fmt.Errorf("/proc status %s %q: %w", k, v, err)
		}
		if k == "VmRSS" {
			m.RSS = kb / 1024
		} else {
			m.HWM = kb / 1024
		}
	}
	heap, err := d.metric(ctx, "go_memstats_heap_inuse_bytes")
	m.Heap = heap / (1 << 20)
	return m, err
}

// metric reads the value of an unlabelled metric from the server's /metrics.
func (d *deployment) metric(ctx context.Context, name string) (float64, error) {
	resp, err := d.request(ctx, "GET", "/metrics", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("/metrics %s %q: %w", name, v, err)
			}
			return f, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// expired waits until the results of a phase have expired from the API
// (twice -result-ttl: the API sweeps about that often) and from the streams
// (-retention) and -settle more, then until the server has run two garbage
// collections that began after that (the second frees what the first
// moved to sync.Pool's victim caches), and samples its memory. An idle Go
// process collects only every 2 minutes, so meanwhile it makes the server
// allocate garbage that nothing keeps (GET /v1/openapi.json, from 4
// goroutines): the heap in use is the figure to read, since the resident
// set grows with that garbage. It returns the sample and the number of
// those requests.
func (d *deployment) expired(ctx context.Context, c *config, stderr io.Writer, phase string) (memory, int64, error) {
	wait := max(2*c.resultTTL, c.retention) + 2*time.Second + c.settle
	fmt.Fprintf(stderr, "httpload: %s: waiting %v for the results to expire, then for a garbage collection\n", phase, wait)
	select {
	case <-ctx.Done():
		return memory{}, 0, ctx.Err()
	case <-time.After(wait):
	}
	return d.collected(ctx)
}

// collected waits until the server has run two garbage collections that
// began after the call (see expired), and samples its memory.
func (d *deployment) collected(ctx context.Context) (memory, int64, error) {
	gcs, err := d.metric(ctx, "go_gc_duration_seconds_count")
	if err != nil {
		return memory{}, 0, err
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for gctx.Err() == nil {
				resp, err := d.request(gctx, "GET", "/v1/openapi.json", nil)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		})
	}
	for {
		now, err := d.metric(gctx, "go_gc_duration_seconds_count")
		if err != nil {
			cancel()
			wg.Wait()
			return memory{}, n.Load(), fmt.Errorf("waiting for a garbage collection: %w", err)
		}
		if now >= gcs+2 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	m, err := d.memory(ctx)
	return m, n.Load(), err
}
