package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// result is one phase's figures, printed as a JSON line.
type result struct {
	Phase       string  `json:"phase"`
	Round       int     `json:"round,omitempty"`
	Tasks       int64   `json:"tasks"` // tasks accepted and awaited
	Batch       int     `json:"batch"`
	Producers   int     `json:"producers"`
	Workers     int     `json:"workers"`
	Seconds     float64 `json:"seconds"`
	TasksPerSec float64 `json:"tasks_per_s"`
	P50ms       float64 `json:"p50_await_ms,omitempty"` // a batch's await, POST to results
	P99ms       float64 `json:"p99_await_ms,omitempty"`
	Wrong       int64   `json:"wrong"`  // results not ok or not equal to their input
	Lost        int64   `json:"lost"`   // accepted batches that never finished
	Errors      int64   `json:"errors"` // requests that failed otherwise
	// Refused counts 429 answers; MissingRetryAfter those without the header.
	Refused           int64             `json:"refused_429"`
	MissingRetryAfter int64             `json:"missing_retry_after"`
	SSE               int               `json:"sse_streams,omitempty"`
	SSEBytes          int64             `json:"sse_bytes,omitempty"`
	VsLoad            float64           `json:"throughput_vs_load,omitempty"` // sse: tasks/s over load's
	MaxDepth          int               `json:"max_depth,omitempty"`
	Memory            map[string]memory `json:"memory"` // start, middle, end, expired, next (see loadPhase)
	Series            []sample          `json:"series"` // one a second during the phase
	ServerLogLines    int64             `json:"server_log_lines"`
	GCNudges          int64             `json:"gc_nudge_requests"` // see deployment.expired
}

// sample is the server's memory at a time since the phase began.
type sample struct {
	Sec float64 `json:"s"`
	memory
}

// sample adds a sample of the server's memory to r.Series every second
// until ctx ends, and r.Memory["middle"] when half closes. r's fields are
// its own until it returns.
func (d *deployment) sample(ctx context.Context, r *result, half <-chan struct{}) {
	began := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-half:
			half = nil
			if m, err := d.memory(ctx); err == nil {
				r.Memory["middle"] = m
			}
		case <-t.C:
			if m, err := d.memory(ctx); err == nil {
				r.Series = append(r.Series, sample{time.Since(began).Seconds(), m})
			}
		}
	}
}

// loadPhase runs c.tasks tasks through a fresh deployment with sse event
// streams open on c.ssePath.
func loadPhase(ctx context.Context, c *config, name string, round, sse int, stderr io.Writer) (*result, error) {
	d, err := start(ctx, c, filepath.Join(c.dir, fmt.Sprintf("%s-%d", name, round)), c.retention, stderr)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	r := &result{Phase: name, Round: round, Batch: c.batch, Producers: c.producers, Workers: c.workers, SSE: sse, Memory: map[string]memory{}}
	if r.Memory["start"], err = d.memory(ctx); err != nil {
		return nil, err
	}
	sctx, stopSSE := context.WithCancel(ctx)
	var sseWG sync.WaitGroup
	defer func() { stopSSE(); sseWG.Wait() }()
	if sse > 0 {
		errs := make(chan error, sse) // one answer from each stream's goroutine
		for range sse {
			sseWG.Go(func() { d.stream(sctx, c.ssePath, &r.SSEBytes, errs) })
		}
		for range sse {
			if err := <-errs; err != nil {
				return nil, fmt.Errorf("event stream %s: %w", c.ssePath, err)
			}
		}
	}
	fmt.Fprintf(stderr, "httpload: %s: %d tasks in batches of %d from %d producers, %d worker processes, %d event streams\n",
		name, c.tasks, c.batch, c.producers, c.workers, sse)

	batches := (c.tasks + c.batch - 1) / c.batch
	var next, done atomic.Int64
	lat := make([]time.Duration, batches)
	var firstErr error
	var errOnce sync.Once
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}

	// The sampler takes a sample every second, and the middle one once
	// half the tasks are done.
	half := make(chan struct{})
	var halfOnce sync.Once
	var sampler sync.WaitGroup
	sampler.Go(func() { d.sample(lctx, r, half) })

	began := time.Now()
	var wg sync.WaitGroup
	for range c.producers {
		wg.Go(func() {
			for {
				b := int(next.Add(1) - 1)
				if b >= batches || lctx.Err() != nil {
					return
				}
				first := b * c.batch
				size := min(c.batch, c.tasks-first)
				body := batchBody(first, size, 0)
				for {
					t0 := time.Now()
					wrong, err := d.await(lctx, body, size, first)
					if fe, ok := errors.AsType[*errFull](err); ok {
						atomic.AddInt64(&r.Refused, 1)
						if !fe.retryAfter {
							atomic.AddInt64(&r.MissingRetryAfter, 1)
						}
						time.Sleep(50 * time.Millisecond) // honor it, as a client would, but briefly
						continue
					}
					if err != nil {
						atomic.AddInt64(&r.Errors, 1)
						fail(err)
						return
					}
					lat[b] = time.Since(t0)
					atomic.AddInt64(&r.Wrong, int64(wrong))
					if 2*done.Add(int64(size)) >= int64(c.tasks) {
						halfOnce.Do(func() { close(half) })
					}
					break
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	cancel()
	sampler.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if r.Memory["end"], err = d.memory(ctx); err != nil {
		return nil, err
	}
	r.Tasks = done.Load()
	r.Seconds = elapsed.Seconds()
	r.TasksPerSec = float64(r.Tasks) / r.Seconds
	slices.Sort(lat)
	r.P50ms = ms(lat[len(lat)/2])
	r.P99ms = ms(lat[min(len(lat)-1, len(lat)*99/100)])
	stopSSE()
	sseWG.Wait()

	fmt.Fprintf(stderr, "httpload: %s: %.0f tasks/s\n", name, r.TasksPerSec)
	if r.Memory["expired"], r.GCNudges, err = d.expired(ctx, c, stderr, name); err != nil {
		return nil, err
	}
	// The API forgets expired batches when a batch is submitted: one more
	// (of one task) shows what is held until then.
	if _, err := d.await(ctx, batchBody(0, 1, 0), 1, 0); err != nil {
		return nil, fmt.Errorf("the batch after: %w", err)
	}
	var n int64
	if r.Memory["next"], n, err = d.collected(ctx); err != nil {
		return nil, err
	}
	r.GCNudges += n
	r.ServerLogLines = d.logLines()
	return r, nil
}

// batchBody is the JSON of an echo batch of the numbers first to
// first+size-1, or with sleep > 0 of a sleep batch whose tasks wait sleep
// and return those numbers.
func batchBody(first, size int, sleep time.Duration) []byte {
	b := make([]byte, 0, 32+size*40)
	if sleep > 0 {
		b = append(b, `{"kind":"sleep","items":[`...)
	} else {
		b = append(b, `{"kind":"echo","items":[`...)
	}
	for i := range size {
		if i > 0 {
			b = append(b, ',')
		}
		if sleep > 0 {
			b = fmt.Appendf(b, `{"duration":%q,"value":`, sleep.String())
		}
		b = strconv.AppendInt(b, int64(first+i), 10)
		if sleep > 0 {
			b = append(b, '}')
		}
	}
	return append(b, "]}"...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// stream opens an event stream on path and reads it until ctx ends, adding
// what it reads to *n; it sends one value on opened: nil once the stream
// answered 200, or the error.
func (d *deployment) stream(ctx context.Context, path string, n *int64, opened chan<- error) {
	req, err := http.NewRequestWithContext(ctx, "GET", d.api+path, nil)
	if err != nil {
		opened <- err
		return
	}
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := d.client.Do(req)
	if err != nil {
		opened <- err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		opened <- fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
		return
	}
	opened <- nil
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		atomic.AddInt64(n, int64(k))
		if err != nil {
			return
		}
	}
}
