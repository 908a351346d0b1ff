package dashboard

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gather-go/gather/queue"
)

// maxQueues bounds the queues counted by name; the events of any more are
// counted under otherQueue, so that a stream of made-up queue names cannot
// grow memory.
const (
	maxQueues  = 64
	otherQueue = "(other)"
)

// counters are one queue's event counts and latency histograms, updated
// with atomic adds by Observe and read by the sampler.
type counters struct {
	enqueued, started, succeeded, failed, retried, dead, canceled, released atomic.Uint64
	run, wait                                                               histogram
}

// histogram counts durations in log-scale buckets: four a power of two of
// microseconds, so a quantile read from it is within 19% of the truth.
type histogram struct{ b [histBuckets]atomic.Uint64 }

const histBuckets = 4 * 40

func bucketOf(d time.Duration) int {
	us := uint64(max(d/time.Microsecond, 0))
	if us < 4 {
		return int(us)
	}
	e := bits.Len64(us) - 1                   // 2^e <= us
	m := (us >> (e - 2)) & 3                  // the two bits below the top one
	return min(4*(e-1)+int(m), histBuckets-1) // e=2 → 4..7
}

// bucketMid returns a duration in the middle of bucket i.
func bucketMid(i int) time.Duration {
	if i < 4 {
		return time.Duration(i) * time.Microsecond
	}
	e, m := i/4+1, i%4
	lo := float64(uint64(1)<<e) * (1 + float64(m)/4)
	hi := float64(uint64(1)<<e) * (1 + float64(m+1)/4)
	return time.Duration(math.Sqrt(lo*hi) * float64(time.Microsecond))
}

func (h *histogram) observe(d time.Duration) { h.b[bucketOf(d)].Add(1) }

// snapshot copies the counts into dst.
func (h *histogram) snapshot(dst *[histBuckets]uint64) {
	for i := range h.b {
		dst[i] = h.b[i].Load()
	}
}

// quantile returns the q-quantile of the counts in cur minus prev, and
// false when there are none.
func quantile(cur, prev *[histBuckets]uint64, q float64) (time.Duration, bool) {
	var n uint64
	for i := range cur {
		n += cur[i] - prev[i]
	}
	if n == 0 {
		return 0, false
	}
	rank := uint64(math.Ceil(q * float64(n)))
	var c uint64
	for i := range cur {
		c += cur[i] - prev[i]
		if c >= rank {
			return bucketMid(i), true
		}
	}
	return bucketMid(histBuckets - 1), true
}

// queueTable maps queue names to their counters. Lookups read an immutable
// map through an atomic pointer, without a lock; a new name copies the map
// under mu (at most maxQueues times).
type queueTable struct {
	m  atomic.Pointer[map[string]*counters]
	mu sync.Mutex
}

func (t *queueTable) get(name string) *counters {
	if m := t.m.Load(); m != nil {
		if c := (*m)[name]; c != nil {
			return c
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	if old != nil {
		if c := (*old)[name]; c != nil {
			return c
		}
		if len(*old) >= maxQueues {
			if c := (*old)[otherQueue]; c != nil {
				return c
			}
			name = otherQueue
		}
	}
	m := make(map[string]*counters, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	c := &counters{}
	m[name] = c
	t.m.Store(&m)
	return c
}

func lenOf(m *map[string]*counters) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// all returns the current map (nil before the first event).
func (t *queueTable) all() map[string]*counters {
	if m := t.m.Load(); m != nil {
		return *m
	}
	return nil
}

// Observe implements queue.Observer: give the Dashboard to the server's
// client and workers (queue.ClientConfig.Observer,
// queue.WorkerConfig.Observer, or through queue.MultiObserver). It counts
// the event in its queue's counters with atomic adds, allocating nothing
// once the queue was seen, and wakes the dashboard's goroutine if it
// sleeps: about 20 ns an event.
func (d *Dashboard) Observe(e queue.Event) {
	c := d.queues.get(e.Queue)
	switch e.Type {
	case queue.EventEnqueued:
		c.enqueued.Add(uint64(max(e.Count, 0)))
	case queue.EventStarted:
		c.started.Add(1)
		c.wait.observe(e.Elapsed)
	case queue.EventSucceeded:
		c.succeeded.Add(1)
		c.run.observe(e.Elapsed)
	case queue.EventFailed:
		c.failed.Add(1)
		c.run.observe(e.Elapsed)
	case queue.EventRetried:
		c.retried.Add(1)
	case queue.EventDeadLettered:
		c.dead.Add(1)
	case queue.EventCanceled:
		c.canceled.Add(1)
	case queue.EventReleased:
		c.released.Add(1)
	default:
		return
	}
	d.poke()
}

// poke wakes the dashboard's goroutine once per frame: after the first
// event since the last frame, later ones read one atomic flag.
func (d *Dashboard) poke() {
	if d.active.Load() || !d.active.CompareAndSwap(false, true) {
		return
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// totals are a queue's counts at one moment.
type totals struct {
	Enqueued  uint64 `json:"enqueued"`
	Started   uint64 `json:"started"`
	Succeeded uint64 `json:"succeeded"`
	Failed    uint64 `json:"failed"`
	Retried   uint64 `json:"retried"`
	Dead      uint64 `json:"dead_lettered"`
	Canceled  uint64 `json:"canceled"`
	Released  uint64 `json:"released"`
	// Running is what this process's workers run now: attempts started
	// and not yet ended.
	Running uint64 `json:"running"`
}

func (c *counters) totals() totals {
	// Read the ends before the starts, so that Running is never negative.
	t := totals{Succeeded: c.succeeded.Load(), Failed: c.failed.Load()}
	t.Started = c.started.Load()
	t.Enqueued, t.Retried, t.Dead = c.enqueued.Load(), c.retried.Load(), c.dead.Load()
	t.Canceled, t.Released = c.canceled.Load(), c.released.Load()
	if ended := t.Succeeded + t.Failed; t.Started > ended {
		t.Running = t.Started - ended
	}
	return t
}
