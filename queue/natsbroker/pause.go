package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Pausing. A paused queue is a key "pause.<queue token>" in the key-value
// bucket "<prefix>_ctl" (made by New, with the state stream's storage and
// replicas). Every broker watches the bucket's pause keys: New returns once
// it has read the current ones, and a change reaches the other brokers as
// one message from the server, usually within a millisecond on one machine
// (a worker that claimed before hearing of a pause runs what it claimed).
// After a reconnect (a server restarted, say) every broker watches the
// keys again and applies them as they are then.
// The broker that called Pause or Resume applies it before returning.
// Claim consults a copy-on-write set: no round trip, no lock.

var _ queue.Pauser = (*Broker)(nil)

// controls is the broker's view of the control bucket.
type controls struct {
	kv     jetstream.KeyValue
	paused atomic.Pointer[map[string]bool] // by queue name; nil: none
	mu     sync.Mutex                      // serialises writers of paused
	ctx    context.Context                 // cancelled by close
	cancel context.CancelFunc
	done   sync.WaitGroup
	memo   memo       // revisions of rate and refusal keys (see rate.go)
	freed  freedSlots // slots released, for AcquireSlot (see slots.go)
}

func (b *Broker) ctlBucket() string { return b.prefix + "_ctl" }

const pausePrefix = "pause."

// Re-watching: after a reconnect, and when a watch ends, the control
// goroutine watches the pause keys again (the watch's consumer lives on
// the server, and one restarted without it would leave the broker deaf to
// pauses until the client noticed, or for good), retrying every
// rewatchMin, doubling up to rewatchMax, while the server refuses.
const (
	rewatchMin = 50 * time.Millisecond
	rewatchMax = 2 * time.Second
)

// startControls makes or opens the control bucket and starts watching it.
// It returns once the current pauses are read, or with ctx's error.
func (b *Broker) startControls(ctx context.Context) (*controls, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: b.ctlBucket(), Description: "gather queue controls: paused queues, global limits' slots, rates' buckets",
		Storage: b.storage, Replicas: b.replicas, History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: control bucket %s: %w", b.ctlBucket(), err)
	}
	c := &controls{kv: kv}
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w, err := c.watchPauses()
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("natsbroker: watching control bucket %s: %w", b.ctlBucket(), err)
	}
	status := b.nc.StatusChanged(nats.CONNECTED)
	ready := make(chan struct{})
	c.done.Go(func() {
		defer b.nc.RemoveStatusListener(status)
		c.watch(b, w, ready, status)
	})
	select {
	case <-ready:
		return c, nil
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("natsbroker: reading control bucket %s: %w", b.ctlBucket(), context.Cause(ctx))
	}
}

func (c *controls) watchPauses() (jetstream.KeyWatcher, error) {
	return c.kv.Watch(c.ctx, pausePrefix+"*")
}

// watch applies the bucket's pause keys as they change, watching them
// again after a reconnect (status) or when the watch ends; ready is closed
// when the keys present at the start have been applied. A new watch
// replays the current keys: they replace the set once all are in, and the
// queues missing from them are resumed.
func (c *controls) watch(b *Broker, w jetstream.KeyWatcher, ready chan struct{}, status chan nats.Status) {
	var replay map[string]bool // non-nil while a new watch replays
	retry := rewatchMin
	for {
		if w == nil {
			if b.nc.IsClosed() {
				return // for good: the broker is unusable too
			}
			nw, err := c.watchPauses()
			if err != nil {
				b.log.Warn("natsbroker: watching the control bucket again", "bucket", c.kv.Bucket(), "err", err, "retry in", retry)
				t := time.NewTimer(retry)
				select {
				case <-c.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				retry = min(2*retry, rewatchMax)
				continue
			}
			w, replay, retry = nw, map[string]bool{}, rewatchMin
		}
		select {
		case <-c.ctx.Done():
			_ = w.Stop()
			return
		case <-status:
			c.unwatch(w)
			w = nil
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				w = nil
			case e == nil: // the current values are all in
				if replay != nil {
					if c.replace(replay) {
						b.wakeControls()
					}
					replay = nil
				}
				if ready != nil {
					close(ready)
					ready = nil
				}
			default:
				name, ok := untok(e.Key()[len(pausePrefix):])
				switch {
				case !ok:
					b.log.Warn("natsbroker: ignoring a control key that names no queue", "key", e.Key())
				case replay != nil:
					if e.Operation() == jetstream.KeyValuePut {
						replay[name] = true
					} else {
						delete(replay, name)
					}
				case c.set(name, e.Operation() == jetstream.KeyValuePut):
					b.wakeControls()
				}
			}
		}
	}
}

// unwatch stops w and drains its updates until the client closes them (so
// that its delivery goroutine, which may wait to hand one over, ends).
func (c *controls) unwatch(w jetstream.KeyWatcher) {
	_ = w.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		}
	}
}

// replace makes m the set of paused queues and reports whether that
// resumed any.
func (c *controls) replace(m map[string]bool) (resumed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.paused.Load(); old != nil {
		for name := range *old {
			resumed = resumed || !m[name]
		}
	}
	c.paused.Store(&m)
	return resumed
}

// set records name as paused or not and reports whether that resumed it.
func (c *controls) set(name string, paused bool) (resumed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.paused.Load()
	was := old != nil && (*old)[name]
	if was == paused {
		return false
	}
	m := map[string]bool{}
	if old != nil {
		m = maps.Clone(*old)
	}
	if paused {
		m[name] = true
	} else {
		delete(m, name)
	}
	c.paused.Store(&m)
	return !paused
}

func (c *controls) isPaused(name string) bool {
	if c == nil {
		return false
	}
	m := c.paused.Load()
	return m != nil && (*m)[name]
}

func (c *controls) close() {
	if c == nil {
		return
	}
	c.cancel()
	c.done.Wait()
}

// wakeControls wakes this broker's waiting workers after a resume.
func (b *Broker) wakeControls() {
	b.maybeAll()
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// Pause implements queue.Pauser (see the comment on pausing above).
func (b *Broker) Pause(ctx context.Context, name string) error {
	if err := b.CheckQueue(name); err != nil {
		return fmt.Errorf("natsbroker: pause: %w", err)
	}
	if _, err := b.ctl.kv.Put(ctx, pausePrefix+tok(name), []byte(name)); err != nil {
		return fmt.Errorf("natsbroker: pause queue %q: %w", name, err)
	}
	b.ctl.set(name, true)
	return nil
}

// Resume implements queue.Pauser: every broker watching wakes its waiting
// workers when it hears of it.
func (b *Broker) Resume(ctx context.Context, name string) error {
	if err := b.CheckQueue(name); err != nil {
		return fmt.Errorf("natsbroker: resume: %w", err)
	}
	if err := b.ctl.kv.Delete(ctx, pausePrefix+tok(name)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsbroker: resume queue %q: %w", name, err)
	}
	if b.ctl.set(name, false) {
		b.wakeControls()
	}
	return nil
}

// Paused implements queue.Pauser. It reads the bucket, not the watched
// copy, so that it answers what every broker will see.
func (b *Broker) Paused(ctx context.Context, name string) (bool, error) {
	if err := b.CheckQueue(name); err != nil {
		return false, fmt.Errorf("natsbroker: paused: %w", err)
	}
	_, err := b.ctl.kv.Get(ctx, pausePrefix+tok(name))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("natsbroker: paused queue %q: %w", name, err)
	}
}

// pausedDuring hands ds back, unstarted, when their queue was paused while
// the claim that took them waited for them (a fetch may wait a moment for
// tasks just enqueued), and returns how many of them the claim keeps.
func (b *Broker) pausedDuring(ctx context.Context, name string, ds []queue.Delivery) int {
	if !b.ctl.isPaused(name) {
		return len(ds)
	}
	for i := range ds {
		if err := b.Retry(ctx, &ds[i], time.Time{}, nil); err != nil {
			b.log.Warn("natsbroker: handing back a task claimed as its queue was paused", "task", ds[i].ID(), "err", err)
		}
		ds[i] = queue.Delivery{}
	}
	return 0
}
