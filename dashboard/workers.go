package dashboard

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/queue"
)

// Workers report themselves with a heartbeat: a worker process publishes
// its WorkerInfo on the core NATS subject "<prefix>.workers.<id>" every
// HeartbeatInterval, and once more with Stopped set when it stops. The
// dashboard subscribes to "<prefix>.workers.*" and shows each worker as
// connected while its heartbeats come, and as lost (with when it was last
// seen) once three intervals pass without one. Heartbeats are not stored:
// a dashboard started later sees a worker from its next heartbeat on.

// HeartbeatInterval is how often an Announcer publishes.
const HeartbeatInterval = 2 * time.Second

// WorkerInfo is what a worker's heartbeat says.
type WorkerInfo struct {
	ID          string    `json:"id"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Queues      []string  `json:"queues"`
	Concurrency int       `json:"concurrency"`
	Started     time.Time `json:"started"`
	Running     int64     `json:"running"`   // attempts running now
	Processed   uint64    `json:"processed"` // attempts ended, succeeded or failed
	Failed      uint64    `json:"failed"`    // of them, failed
	Stopped     bool      `json:"stopped,omitempty"`
}

// Announcer publishes a worker's heartbeats. It is a queue.Observer: give
// it to the worker (queue.WorkerConfig.Observer) so that the heartbeats
// count the tasks. Create one with Announce; Close stops it. It is safe
// for concurrent use; Observe costs a few atomic adds.
type Announcer struct {
	nc      *nats.Conn
	subject string
	info    WorkerInfo
	running atomic.Int64
	ended   atomic.Uint64
	failed  atomic.Uint64
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// Announce starts publishing heartbeats for a worker serving queues with
// concurrency tasks at once, on nc under the broker's subject prefix. The
// worker's ID is made of the host name, the process ID and a random part.
// Its one goroutine runs until Close.
func Announce(nc *nats.Conn, prefix string, queues []string, concurrency int) (*Announcer, error) {
	if nc == nil {
		return nil, errors.New("dashboard: Announce needs a NATS connection")
	}
	if err := queue.CheckName("prefix", prefix); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	id := nats.NewInbox()[len(nats.InboxPrefix):]
	a := &Announcer{
		nc: nc, subject: prefix + ".workers." + id,
		info: WorkerInfo{ID: id, Host: host, PID: os.Getpid(), Queues: slices.Clone(queues),
			Concurrency: concurrency, Started: time.Now().UTC()},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	a.publish(false)
	go a.run()
	return a, nil
}

// Observe implements queue.Observer.
func (a *Announcer) Observe(e queue.Event) {
	switch e.Type {
	case queue.EventStarted:
		a.running.Add(1)
	case queue.EventSucceeded:
		a.running.Add(-1)
		a.ended.Add(1)
	case queue.EventFailed:
		a.running.Add(-1)
		a.ended.Add(1)
		a.failed.Add(1)
	}
}

func (a *Announcer) run() {
	defer close(a.done)
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.publish(false)
		case <-a.stop:
			a.publish(true)
			return
		}
	}
}

func (a *Announcer) publish(stopped bool) {
	info := a.info
	info.Running, info.Processed, info.Failed = max(a.running.Load(), 0), a.ended.Load(), a.failed.Load()
	info.Stopped = stopped
	b, _ := json.Marshal(info)
	_ = a.nc.Publish(a.subject, b) // a heartbeat lost to a disconnection is the news itself
	if stopped {
		_ = a.nc.Flush()
	}
}

// Close publishes the last heartbeat (stopped) and stops the goroutine.
func (a *Announcer) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	return nil
}

// workerRow is a worker as the dashboard shows it.
type workerRow struct {
	WorkerInfo
	LastSeen  time.Time `json:"last_seen"`
	Connected bool      `json:"connected"`
}

// workerTable keeps the workers heard from, fed by the NATS subscription's
// goroutine and read by the dashboard's.
type workerTable struct {
	mu    sync.Mutex
	rows  map[string]*workerRow
	dirty bool
}

// maxWorkers bounds the table; the worker not seen for longest goes first.
const maxWorkers = 1000

// forgetAfter is how long a lost or stopped worker stays in the table.
const forgetAfter = 10 * time.Minute

func (t *workerTable) heard(data []byte, now time.Time) bool {
	var w WorkerInfo
	if len(data) > 64<<10 || json.Unmarshal(data, &w) != nil || w.ID == "" || len(w.ID) > 128 {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rows == nil {
		t.rows = map[string]*workerRow{}
	}
	if _, ok := t.rows[w.ID]; !ok && len(t.rows) >= maxWorkers {
		var oldest *workerRow
		for _, r := range t.rows {
			if oldest == nil || r.LastSeen.Before(oldest.LastSeen) {
				oldest = r
			}
		}
		delete(t.rows, oldest.ID)
	}
	t.rows[w.ID] = &workerRow{WorkerInfo: w, LastSeen: now.UTC(), Connected: !w.Stopped}
	t.dirty = true
	return true
}

// list returns the rows, connected first, then by host and ID, with
// Connected updated for now; changed reports whether anything changed
// since the last call.
func (t *workerTable) list(now time.Time) (rows []workerRow, changed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed, t.dirty = t.dirty, false
	for id, r := range t.rows {
		conn := !r.Stopped && now.Sub(r.LastSeen) < 3*HeartbeatInterval
		if conn != r.Connected {
			r.Connected, changed = conn, true
		}
		if now.Sub(r.LastSeen) > forgetAfter {
			delete(t.rows, id)
			changed = true
			continue
		}
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b workerRow) int {
		switch {
		case a.Connected != b.Connected:
			if a.Connected {
				return -1
			}
			return 1
		case a.Host != b.Host:
			if a.Host < b.Host {
				return -1
			}
			return 1
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return rows, changed
}
