package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gather-go/gather/queue"
)

// Read spacing of the broker while a page is open.
const (
	queuesEvery  = 500 * time.Millisecond
	batchesEvery = 250 * time.Millisecond
	batchesShown = 25
	readTimeout  = 5 * time.Second
)

// run is the dashboard's goroutine: a sample every second, a frame after
// events (at most one a FrameInterval) and every second while a page is
// open.
func (d *Dashboard) run() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	spacing := time.NewTimer(time.Hour)
	spacing.Stop()
	st := &runState{series: map[string]*series{}}
	for {
		select {
		case <-d.ctx.Done():
			return
		case now := <-tick.C:
			d.sample(st, now)
			if d.hub.count() > 0 {
				d.publishSeries(st, now)
				d.makeFrame(st, now, true)
			}
		case <-d.wake:
			if wait := d.frame - time.Since(st.lastFrame); wait > 0 {
				spacing.Reset(wait)
				select {
				case <-spacing.C:
				case <-d.ctx.Done():
					return
				}
			}
			now := time.Now()
			if d.joinFlag.Swap(false) {
				d.publishSeries(st, now)
			}
			d.makeFrame(st, now, false)
		}
	}
}

// runState is what only the dashboard's goroutine touches.
type runState struct {
	series    map[string]*series
	lastFrame time.Time
}

func (d *Dashboard) sample(st *runState, now time.Time) {
	for name, c := range d.queues.all() {
		s := st.series[name]
		if s == nil {
			s = newSeries(d.npts)
			st.series[name] = s
		}
		s.sample(now, c)
	}
}

func (d *Dashboard) publishSeries(st *runState, now time.Time) {
	out := struct {
		At     int64                 `json:"at"`
		Queues map[string]seriesJSON `json:"queues"`
	}{now.UnixMilli(), make(map[string]seriesJSON, len(st.series))}
	for name, s := range st.series {
		out.Queues[name] = s.json()
	}
	d.publishJSON("series", out)
}

func (d *Dashboard) publishJSON(section string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		d.log.Error("dashboard: encoding a section", "section", section, "err", err)
		return
	}
	d.hub.publish(section, b)
}

// statsJSON is the "stats" section: every queue's counts now.
type statsJSON struct {
	At     int64             `json:"at"` // unix milliseconds
	Queues map[string]totals `json:"queues"`
}

// makeFrame publishes the sections: the counts first (they cost nothing to
// read), then what the broker says, when due. tick is the once-a-second
// frame, which refreshes the broker's view though no event came.
func (d *Dashboard) makeFrame(st *runState, now time.Time, tick bool) {
	st.lastFrame = now
	activity := d.active.Swap(false) // events after this poke again
	d.publishSnapshots(now)          // always, for the lag history
	if d.hub.count() == 0 {
		return
	}
	qs := d.queues.all()
	stats := statsJSON{At: now.UnixMilli(), Queues: make(map[string]totals, len(qs))}
	for name, c := range qs {
		stats.Queues[name] = c.totals()
	}
	d.publishJSON("stats", stats)
	if rows, changed := d.workers.list(now); changed || tick {
		if d.cfg.NATS != nil {
			if rows == nil {
				rows = []workerRow{}
			}
			d.publishJSON("workers", struct {
				Workers []workerRow `json:"workers"`
			}{rows})
		}
	}
	if d.in != nil && (activity || tick) {
		// The broker is read on a goroutine of its own, so that a slow
		// read never holds up the counts.
		d.wantQueues.Store(true)
		if activity || d.batchesRunning.Load() {
			d.wantBatches.Store(true)
		}
		select {
		case d.readWake <- struct{}{}:
		default:
		}
	}
	d.hub.endFrame()
}

// reads is the goroutine that reads the broker for the pages: the queues
// at most every queuesEvery, the batches at most every batchesEvery, after
// events or once a second, while a page is open.
func (d *Dashboard) reads() {
	var lastQueues, lastBatches time.Time
	var queuesDue bool
	batchesDue := true // the first page gets the list
	later := time.NewTimer(time.Hour)
	later.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-d.readWake:
		case <-later.C:
		}
		// A list with nothing running changes with an event of this
		// process, or a batch of another, which the queues' read shows
		// by its depth: read it then, and once a second while a batch
		// runs.
		queuesDue = d.wantQueues.Swap(false) || queuesDue
		batchesDue = d.wantBatches.Swap(false) || batchesDue
		now := time.Now()
		if queuesDue && now.Sub(lastQueues) >= queuesEvery {
			lastQueues, queuesDue = now, false
			if d.publishQueues() {
				batchesDue = true
			}
		}
		if batchesDue && d.hub.countBatches() == 0 {
			batchesDue = false // read when a page shows the list
		}
		if batchesDue && now.Sub(lastBatches) >= batchesEvery {
			lastBatches, batchesDue = now, false
			d.batchesRunning.Store(d.publishBatches())
		}
		var wait time.Duration = -1
		if queuesDue {
			wait = queuesEvery - time.Since(lastQueues)
		}
		if batchesDue {
			if w := batchesEvery - time.Since(lastBatches); wait < 0 || w < wait {
				wait = w
			}
		}
		if wait >= 0 {
			later.Reset(max(wait, time.Millisecond))
		}
	}
}

// queueJSON is a queue as the broker reports it.
type queueJSON struct {
	Name     string         `json:"name"`
	Depth    map[string]int `json:"depth"`
	Total    int            `json:"total"`
	InFlight int            `json:"in_flight"`
	// Paused is whether workers claim none of its tasks, when the
	// Inspector is a queue.Pauser.
	Paused *bool `json:"paused,omitempty"`
}

// publishQueues publishes the queues and reports whether their depth or in
// flight changed since the last read.
func (d *Dashboard) publishQueues() (changed bool) {
	ctx, cancel := context.WithTimeout(d.ctx, readTimeout)
	defer cancel()
	qs, err := d.in.Queues(ctx)
	out := struct {
		Queues []queueJSON `json:"queues"`
		Error  string      `json:"error,omitempty"`
	}{Queues: []queueJSON{}}
	if err != nil {
		if d.ctx.Err() != nil {
			return false
		}
		d.log.Warn("dashboard: listing queues", "err", err)
		out.Error = err.Error()
	}
	pauser, _ := d.in.(queue.Pauser)
	for _, q := range qs {
		j := queueJSON{Name: q.Name, Depth: make(map[string]int, queue.NumPriorities), InFlight: q.InFlight}
		for l, n := range q.Depth {
			j.Depth[queue.Priority(l).String()] = n
			j.Total += n
		}
		if pauser != nil {
			// A read of the broker per queue: queues are few.
			if paused, err := pauser.Paused(ctx, q.Name); err != nil {
				if d.ctx.Err() != nil {
					return false
				}
				d.log.Warn("dashboard: whether a queue is paused", "queue", q.Name, "err", err)
				out.Error = err.Error()
			} else {
				j.Paused = &paused
			}
		}
		out.Queues = append(out.Queues, j)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return false
	}
	changed = !bytes.Equal(b, d.lastQueues)
	d.lastQueues = b
	d.hub.publish("queues", b)
	return changed
}

// batchJSON is a batch's summary.
type batchJSON struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Queue    string    `json:"queue"`
	Size     int       `json:"size"`
	Done     int       `json:"done"`
	Failed   int       `json:"failed"`
	Canceled int       `json:"canceled"`
	Finished bool      `json:"finished"`
	Created  time.Time `json:"created"`
}

func batchOut(b queue.BatchInfo) batchJSON {
	return batchJSON{b.ID, b.Kind, b.Queue, b.Size, b.Done, b.Failed, b.Canceled, b.Finished(), b.Created}
}

// publishBatches publishes the newest batches and reports whether one of
// them runs.
func (d *Dashboard) publishBatches() (running bool) {
	ctx, cancel := context.WithTimeout(d.ctx, readTimeout)
	defer cancel()
	page, _, err := d.in.Batches(ctx, queue.BatchFilter{Limit: batchesShown})
	out := struct {
		Batches []batchJSON `json:"batches"`
		Error   string      `json:"error,omitempty"`
	}{Batches: []batchJSON{}}
	if err != nil {
		if d.ctx.Err() != nil {
			return false
		}
		d.log.Warn("dashboard: listing batches", "err", err)
		out.Error = err.Error()
	}
	for _, b := range page {
		out.Batches = append(out.Batches, batchOut(b))
		running = running || !b.Finished()
	}
	d.publishJSON("batches", out)
	return running
}

// snapState is one snapshot source with its sources' lag over time.
type snapState struct {
	src   SnapshotSource
	dirty atomic.Bool
	read  chan struct{} // size 1: the goroutine's go-ahead after a read
	view  SnapshotView
	lags  map[string]*lagRing
}

// lagRing is one source's greatest lag in each second, over the history.
type lagRing struct {
	t  []int64
	ms []float64
}

func (r *lagRing) add(sec int64, ms float64, n int) {
	if k := len(r.t); k > 0 && r.t[k-1] == sec {
		r.ms[k-1] = max(r.ms[k-1], ms)
		return
	}
	r.t, r.ms = append(r.t, sec), append(r.ms, ms)
	if len(r.t) > n { // drop the oldest, keeping the backing arrays bounded
		r.t, r.ms = append(r.t[:0], r.t[1:]...), append(r.ms[:0], r.ms[1:]...)
	}
}

// maxSnapshotSources bounds the lag rings kept per snapshot.
const maxSnapshotSources = 256

func (d *Dashboard) addSnapshot(s SnapshotSource) {
	ss := &snapState{src: s, read: make(chan struct{}, 1), lags: map[string]*lagRing{}}
	ss.dirty.Store(true)
	d.mu.Lock()
	d.snaps = append(d.snaps, ss)
	d.mu.Unlock()
	d.wg.Go(func() {
		for {
			select {
			case <-s.Changed():
			case <-d.ctx.Done():
				return
			}
			ss.dirty.Store(true)
			d.poke()
			select { // wait for the read, so that Changed names a newer cut
			case <-ss.read:
			case <-d.ctx.Done():
				return
			}
		}
	})
	d.poke()
}

type snapshotJSON struct {
	SnapshotView
	Lag map[string]lagJSON `json:"lag_history"`
}

type lagJSON struct {
	T  []int64   `json:"t"`
	MS []float64 `json:"ms"`
}

func (d *Dashboard) publishSnapshots(now time.Time) {
	d.mu.Lock()
	snaps := slices.Clone(d.snaps)
	d.mu.Unlock()
	if len(snaps) == 0 {
		return
	}
	changed := false
	for _, ss := range snaps {
		if !ss.dirty.Swap(false) {
			continue
		}
		changed = true
		ss.view = ss.src.Snapshot()
		select {
		case ss.read <- struct{}{}:
		default:
		}
		for _, sv := range ss.view.Sources {
			r := ss.lags[sv.Name]
			if r == nil {
				if len(ss.lags) >= maxSnapshotSources {
					continue
				}
				r = &lagRing{}
				ss.lags[sv.Name] = r
			}
			r.add(now.Unix(), sv.LagMS, d.npts)
		}
	}
	if !changed {
		return
	}
	out := struct {
		Snapshots []snapshotJSON `json:"snapshots"`
	}{}
	for _, ss := range snaps {
		j := snapshotJSON{SnapshotView: ss.view, Lag: map[string]lagJSON{}}
		for _, name := range slices.Sorted(maps.Keys(ss.lags)) {
			r := ss.lags[name]
			j.Lag[name] = lagJSON{r.t, r.ms}
		}
		out.Snapshots = append(out.Snapshots, j)
	}
	d.publishJSON("snapshots", out)
}
