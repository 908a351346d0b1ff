package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// accepted is a batch the server took during the overload phase.
type accepted struct {
	id          string
	first, size int
}

// overloadPhase presses a server whose queue is bounded at c.maxDepth for
// c.overload, awaiting every batch it accepted meanwhile. Its streams keep
// results for 10 minutes, longer than a batch waits in the queue; it has no
// expired sample.
func overloadPhase(ctx context.Context, c *config, stderr io.Writer) (*result, error) {
	d, err := start(ctx, c, filepath.Join(c.dir, "overload"), 10*time.Minute, stderr, "--max-depth", strconv.Itoa(c.maxDepth))
	if err != nil {
		return nil, err
	}
	defer d.stop()
	r := &result{Phase: "overload", Batch: c.batch, Producers: c.producers, Workers: c.workers, MaxDepth: c.maxDepth, Memory: map[string]memory{}}
	if r.Memory["start"], err = d.memory(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "httpload: overload: %v of batches of %d tasks of %v from %d producers that do not wait, queue bound %d\n",
		c.overload, c.batch, c.overloadTask, c.producers, c.maxDepth)
	pctx, cancel := context.WithTimeout(ctx, c.overload)
	defer cancel()
	var (
		mu      sync.Mutex
		next    atomic.Int64
		firstEr error
	)
	half := make(chan struct{})
	halfway := time.AfterFunc(c.overload/2, func() { close(half) })
	defer halfway.Stop()
	var sampler sync.WaitGroup
	sampler.Go(func() { d.sample(pctx, r, half) })
	// Every accepted batch must finish with its results: awaiters wait on
	// them as they are accepted. The queue holds at most maxDepth/batch
	// batches, so that many awaiters, and one more for each producer, keep
	// up; a producer waits while the channel is full.
	actx, acancel := context.WithTimeout(ctx, c.overload+10*time.Minute)
	defer acancel()
	n := c.maxDepth/c.batch + c.producers
	work := make(chan accepted, n)
	var aw sync.WaitGroup
	for range n {
		aw.Go(func() {
			for a := range work {
				wrong, err := d.get(actx, a)
				if err != nil {
					atomic.AddInt64(&r.Lost, 1)
					fmt.Fprintf(stderr, "httpload: overload: batch %s: %v\n", a.id, err)
					continue
				}
				atomic.AddInt64(&r.Wrong, int64(wrong))
				atomic.AddInt64(&r.Tasks, int64(a.size))
			}
		})
	}
	var taken atomic.Int64
	began := time.Now()
	var wg sync.WaitGroup
	for range c.producers {
		wg.Go(func() {
			for pctx.Err() == nil {
				first := int(next.Add(int64(c.batch)) - int64(c.batch))
				body := batchBody(first, c.batch, c.overloadTask)
				for pctx.Err() == nil {
					resp, err := d.request(pctx, "POST", "/v1/batches", body)
					if err != nil {
						if pctx.Err() == nil {
							atomic.AddInt64(&r.Errors, 1)
							mu.Lock()
							firstEr = cmp(firstEr, err)
							mu.Unlock()
						}
						return
					}
					var rep batchReply
					err = decode(resp, &rep)
					if fe, ok := errors.AsType[*errFull](err); ok {
						atomic.AddInt64(&r.Refused, 1)
						if !fe.retryAfter {
							atomic.AddInt64(&r.MissingRetryAfter, 1)
						}
						// Press on without honoring Retry-After, to keep the
						// queue at its bound.
						time.Sleep(c.pause)
						continue
					}
					if err != nil || resp.StatusCode != http.StatusCreated {
						atomic.AddInt64(&r.Errors, 1)
						mu.Lock()
						firstEr = cmp(firstEr, fmt.Errorf("submit: status %d: %v", resp.StatusCode, err))
						mu.Unlock()
						return
					}
					taken.Add(1)
					work <- accepted{rep.ID, first, c.batch}
					break
				}
			}
		})
	}
	wg.Wait()
	sampler.Wait()
	r.Seconds = time.Since(began).Seconds()
	if r.Memory["end"], err = d.memory(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "httpload: overload: %d batches accepted, %d refused with 429; awaiting the last ones\n", taken.Load(), r.Refused)
	close(work)
	aw.Wait()
	if firstEr != nil {
		return nil, firstEr
	}
	r.TasksPerSec = float64(r.Tasks) / time.Since(began).Seconds()
	r.ServerLogLines = d.logLines()
	return r, nil
}

// get waits on GET until the accepted batch a is done and checks it.
func (d *deployment) get(ctx context.Context, a accepted) (int, error) {
	for {
		resp, err := d.request(ctx, "GET", "/v1/batches/"+a.id+"?wait=60s", nil)
		if err != nil {
			return 0, err
		}
		var rep batchReply
		if err := decode(resp, &rep); err != nil {
			return 0, err
		}
		if resp.StatusCode == http.StatusOK {
			return check(&rep, a.size, a.first, true)
		}
	}
}

// cmp keeps the first error.
func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
