package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gather-go/gather/queue"
)

// tracker holds what the server knows of one batch: every outcome so far,
// index-aligned, and the order they were recorded in (the event IDs of the
// event stream). One follower goroutine fills it from one subscription.
type tracker struct {
	id, kind, queue string
	size            int

	mu       sync.Mutex
	res      []outcome
	order    []int32 // indices in the order their outcomes were recorded
	done     int
	failed   int
	canceled int
	changed  chan struct{} // closed and replaced when something changes
	finished bool
	err      error     // the follower's error, when it stopped early
	touched  time.Time // last request about it, for the TTL
	failFast bool      // cancel the batch at its first failure
	cancels  bool      // the fail-fast cancel was sent
	arena    []byte    // outputs are copied here: one allocation per 64 KiB, not per task
}

type outcome struct {
	set   bool
	value []byte
	fail  queue.Failure
}

type progress struct {
	Size     int `json:"size"`
	Done     int `json:"done"`
	Failed   int `json:"failed"`
	Canceled int `json:"canceled"`
	Pending  int `json:"pending"`
}

func (t *tracker) progressLocked() progress {
	return progress{Size: t.size, Done: t.done, Failed: t.failed, Canceled: t.canceled,
		Pending: t.size - t.done - t.failed - t.canceled}
}

func (t *tracker) statusLocked() string {
	switch {
	case !t.finished:
		return "running"
	case t.failed > 0:
		return "failed"
	case t.canceled > 0:
		return "canceled"
	}
	return "succeeded"
}

// add records outcomes (copying what belongs to the broker) and reports
// whether the batch should now be cancelled (fail-fast).
func (t *tracker) add(os []queue.Outcome) (cancel bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range os {
		o := &os[i]
		if o.Index < 0 || o.Index >= t.size || t.res[o.Index].set {
			continue // a broker bug; never count twice
		}
		r := &t.res[o.Index]
		r.set = true
		switch {
		case o.Err == nil:
			out := o.Output
			if !json.Valid(out) {
				// A kind with a codec of its own: its bytes, as a
				// JSON string, so that responses stay JSON.
				out = mustJSON(string(out))
			}
			r.value = t.keep(out)
			t.done++
		case o.Err.Code == queue.CodeCanceled:
			r.fail = *o.Err
			t.canceled++
		default:
			r.fail = *o.Err
			t.failed++
		}
		t.order = append(t.order, int32(o.Index))
	}
	if len(os) > 0 {
		close(t.changed)
		t.changed = make(chan struct{})
	}
	if t.failFast && !t.cancels && t.failed > 0 {
		t.cancels = true
		return true
	}
	return false
}

// keep copies b into the arena (t.mu held).
func (t *tracker) keep(b []byte) []byte {
	if cap(t.arena)-len(t.arena) < len(b) {
		t.arena = make([]byte, 0, max(64<<10, len(b)))
	}
	n := len(t.arena)
	t.arena = append(t.arena, b...)
	return t.arena[n:len(t.arena):len(t.arena)]
}

func (t *tracker) end(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.finished = true
	} else {
		t.err = err
	}
	t.touched = time.Now()
	close(t.changed)
	t.changed = make(chan struct{})
}

// track returns the tracker of batch id, subscribing to the batch if no
// tracker follows it: a 404 problem for an unknown batch.
func (s *Server) track(ctx context.Context, id string) (*tracker, error) {
	if len(id) == 0 || len(id) > 256 {
		return nil, problem(http.StatusNotFound, CodeNotFound, "no batch %q", id)
	}
	s.mu.Lock()
	t := s.trackers[id]
	s.mu.Unlock()
	if t != nil {
		t.mu.Lock()
		t.touched = time.Now()
		t.mu.Unlock()
		return t, nil
	}
	sub, err := s.broker.Subscribe(ctx, id)
	if err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			return nil, problem(http.StatusNotFound, CodeNotFound, "no batch %q (unknown, or its results expired)", id)
		}
		return nil, problem(http.StatusServiceUnavailable, CodeBrokerDown, "following batch %s: %v", id, err)
	}
	return s.start(id, sub, false)
}

// start registers a tracker for sub and starts its follower, unless another
// request did first (then sub is closed and that tracker returned).
func (s *Server) start(id string, sub queue.Subscription, failFast bool) (*tracker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.trackers[id]; t != nil || s.closed {
		sub.Close()
		if t == nil {
			return nil, problem(http.StatusServiceUnavailable, CodeDraining, "the server is shutting down")
		}
		if failFast {
			t.mu.Lock()
			t.failFast = true
			t.mu.Unlock()
		}
		return t, nil
	}
	s.sweepLocked()
	t := &tracker{
		id: id, kind: sub.Kind(), queue: sub.Queue(), size: sub.Size(),
		res: make([]outcome, sub.Size()), changed: make(chan struct{}), touched: time.Now(), failFast: failFast,
	}
	s.trackers[id] = t
	s.wg.Add(1)
	go s.follow(t, sub)
	return t, nil
}

// sweepLocked forgets finished batches untouched for the TTL, at most once
// a second.
func (s *Server) sweepLocked() {
	now := time.Now()
	if now.Sub(s.lastSweep) < time.Second {
		return
	}
	s.lastSweep = now
	for id, t := range s.trackers {
		t.mu.Lock()
		old := (t.finished || t.err != nil) && now.Sub(t.touched) > s.ttl
		t.mu.Unlock()
		if old {
			delete(s.trackers, id)
		}
	}
}

// sweeper forgets expired batches every second until Close, so that an idle
// server lets their results go too (start sweeps as well, but only runs
// when a batch is followed).
func (s *Server) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			s.sweepLocked()
			s.mu.Unlock()
		}
	}
}

// follow fills t from sub until the batch finishes or the server closes.
func (s *Server) follow(t *tracker, sub queue.Subscription) {
	defer s.wg.Done()
	defer sub.Close()
	buf := make([]queue.Outcome, min(t.size, 256))
	for {
		n, err := sub.Next(s.ctx, buf)
		if t.add(buf[:n]) {
			if cerr := s.broker.Cancel(s.ctx, t.id); cerr != nil {
				s.log.Warn("cancelling the rest of a failed fail-fast batch", "batch", t.id, "err", cerr)
			}
		}
		clear(buf[:n])
		switch {
		case err == nil:
			continue
		case err == io.EOF:
			t.end(nil)
			return
		default:
			if s.ctx.Err() != nil {
				err = errors.New("the server is shutting down")
			}
			t.end(fmt.Errorf("following batch %s: %w", t.id, err))
			s.mu.Lock()
			if s.trackers[t.id] == t {
				delete(s.trackers, t.id) // the next request subscribes again
			}
			s.mu.Unlock()
			return
		}
	}
}

// wait blocks until cond holds (called with t.mu held), ctx ends, the wait
// passes or the server drains; it reports whether cond held.
func (s *Server) wait(ctx context.Context, t *tracker, wait time.Duration, cond func() bool) bool {
	var timeout <-chan time.Time
	if wait > 0 {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		timeout = tm.C
	}
	for {
		t.mu.Lock()
		ok := cond()
		stopped := t.finished || t.err != nil
		ch := t.changed
		t.mu.Unlock()
		if ok || stopped || wait <= 0 {
			return ok
		}
		select {
		case <-ch:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		case <-s.drainCh:
			return false
		}
	}
}
