package httpapi_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// inspecting is a membroker that also implements httpapi.Inspector, from
// a record of the calls made on it: which batches were enqueued, which
// tasks were claimed, completed and cancelled. It stands in for the
// brokers' own inspection (which answers the same questions from their
// stored state) so that the endpoints built on it are exercised.
type inspecting struct {
	*membroker.Broker
	mu      sync.Mutex
	order   []string
	batches map[string]*httpapi.BatchDetail
}

func newInspecting(t *testing.T) *inspecting {
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &inspecting{Broker: b, batches: map[string]*httpapi.BatchDetail{}}
}

func (b *inspecting) Enqueue(ctx context.Context, s *queue.Submission) (string, error) {
	id, err := b.Broker.Enqueue(ctx, s)
	if err == nil && id == s.BatchID {
		b.mu.Lock()
		b.order = append(b.order, id)
		b.batches[id] = &httpapi.BatchDetail{
			BatchInfo: httpapi.BatchInfo{ID: id, Kind: s.Kind, Queue: s.Queue, Size: len(s.Payloads), Created: s.EnqueuedAt},
			States:    make([]httpapi.TaskState, len(s.Payloads)),
		}
		b.mu.Unlock()
	}
	return id, err
}

func (b *inspecting) Claim(ctx context.Context, q string, l queue.Priority, lease time.Duration, dst []queue.Delivery) (int, error) {
	n, err := b.Broker.Claim(ctx, q, l, lease, dst)
	b.mu.Lock()
	for i := range dst[:n] {
		if d := b.batches[dst[i].BatchID]; d != nil && d.States[dst[i].Index] == httpapi.TaskPending {
			d.States[dst[i].Index] = httpapi.TaskRunning
		}
	}
	b.mu.Unlock()
	return n, err
}

func (b *inspecting) Complete(ctx context.Context, cs []queue.Completion) error {
	err := b.Broker.Complete(ctx, cs)
	b.mu.Lock()
	for _, c := range cs {
		d := b.batches[c.Delivery.BatchID]
		if d == nil || d.States[c.Delivery.Index] > httpapi.TaskRunning {
			continue
		}
		switch {
		case c.Outcome.Err == nil:
			d.States[c.Delivery.Index] = httpapi.TaskDone
			d.Done++
		case c.Outcome.Err.Code == queue.CodeCanceled:
			d.States[c.Delivery.Index] = httpapi.TaskCanceled
			d.Canceled++
		default:
			d.States[c.Delivery.Index] = httpapi.TaskFailed
			d.Failed++
		}
	}
	b.mu.Unlock()
	return err
}

func (b *inspecting) Cancel(ctx context.Context, id string) error {
	err := b.Broker.Cancel(ctx, id)
	b.mu.Lock()
	if d := b.batches[id]; d != nil && err == nil {
		for i, s := range d.States {
			if s <= httpapi.TaskRunning {
				d.States[i] = httpapi.TaskCanceled
				d.Canceled++
			}
		}
	}
	b.mu.Unlock()
	return err
}

func (b *inspecting) Queues(ctx context.Context) ([]httpapi.QueueInfo, error) {
	b.mu.Lock()
	var names []string
	for _, d := range b.batches {
		if !slices.Contains(names, d.Queue) {
			names = append(names, d.Queue)
		}
	}
	b.mu.Unlock()
	slices.Sort(names)
	var out []httpapi.QueueInfo
	for _, n := range names {
		depth, err := b.Depth(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, httpapi.QueueInfo{Name: n, Depth: depth})
	}
	return out, nil
}

func (b *inspecting) Batches(ctx context.Context, f httpapi.BatchFilter) ([]httpapi.BatchInfo, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := 0
	if f.After != "" {
		start = slices.Index(b.order, f.After) + 1
	}
	var page []httpapi.BatchInfo
	for _, id := range b.order[start:] {
		d := b.batches[id]
		if f.Queue != "" && d.Queue != f.Queue || f.State == "finished" && !d.Finished() || f.State == "running" && d.Finished() {
			continue
		}
		if len(page) == f.Limit {
			return page, page[len(page)-1].ID, nil
		}
		page = append(page, d.BatchInfo)
	}
	return page, "", nil
}

func (b *inspecting) Batch(ctx context.Context, id string) (*httpapi.BatchDetail, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.batches[id]
	if d == nil {
		return nil, queue.ErrNotFound
	}
	c := *d
	c.States = slices.Clone(d.States)
	return &c, nil
}

func (b *inspecting) FindDeadLetters(ctx context.Context, f httpapi.DeadLetterFilter) ([]queue.DeadLetter, string, error) {
	all, err := b.DeadLetters(ctx, f.Queue, f.After, 1000)
	if err != nil {
		return nil, "", err
	}
	var out []queue.DeadLetter
	for _, d := range all {
		if f.Kind != "" && d.Kind != f.Kind || f.ErrorContains != "" && !strings.Contains(d.Attempts[len(d.Attempts)-1].Error, f.ErrorContains) {
			continue
		}
		if len(out) == f.Limit {
			return out, out[len(out)-1].ID(), nil
		}
		out = append(out, d)
	}
	return out, "", nil
}

func TestInspectorEndpoints(t *testing.T) {
	t.Parallel()
	b := newInspecting(t)
	e := newEnv(t, opts{broker: b})
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = e.do("POST", "/v1/batches", `{"kind":"gate","items":[1,2],"queue":"q`+string(rune('a'+i%2))+`"}`).json(t)["id"].(string)
	}
	// Running: states from the broker.
	r := e.do("GET", "/v1/batches/"+ids[0]+"?states=true", "")
	if r.status != 202 || !strings.Contains(string(r.body), `"states":["`) {
		t.Fatalf("states: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/queues", "")
	if r.status != 200 || !strings.Contains(string(r.body), `{"name":"qa","depth":{`) || !strings.Contains(string(r.body), `"in_flight":0`) {
		t.Fatalf("queues: %d %s", r.status, r.body)
	}
	// Pages of two, then one; a filter by queue.
	r = e.do("GET", "/v1/batches?limit=2", "")
	m := r.json(t)
	if r.status != 200 || len(m["batches"].([]any)) != 2 || m["next"] != ids[1] {
		t.Fatalf("page 1: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/batches?limit=2&after="+ids[1], "")
	if m = r.json(t); len(m["batches"].([]any)) != 1 || m["next"] != nil {
		t.Fatalf("page 2: %s", r.body)
	}
	r = e.do("GET", "/v1/batches?queue=qb", "")
	if m = r.json(t); len(m["batches"].([]any)) != 1 || !strings.Contains(string(r.body), ids[1]) {
		t.Fatalf("queue qb: %s", r.body)
	}
	if r = e.do("GET", "/v1/batches?state=gone", ""); r.status != 400 {
		t.Fatalf("bad state: %d %s", r.status, r.body)
	}
	e.openGate()
	r = e.do("GET", "/v1/batches/"+ids[2]+"?wait=30s&states=true", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"states":["done","done"]`) {
		t.Fatalf("finished: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/batches?state=finished&queue=qa", "")
	if !strings.Contains(string(r.body), ids[2]) {
		t.Fatalf("finished batches: %s", r.body)
	}
	// Dead letters through FindDeadLetters.
	e.do("POST", "/v1/batches?wait=30s", `{"kind":"sleep","items":[{"duration":"1ms","fail":"disk on fire"}],"options":{"max_attempts":1}}`)
	r = e.do("GET", "/v1/dead-letters?error=fire", "")
	if r2 := e.do("GET", "/v1/dead-letters?kind=echo", ""); !strings.Contains(string(r2.body), `"dead_letters":[]`) {
		t.Fatalf("dead letters of another kind: %s", r2.body)
	}
	if r.status != 200 || strings.Count(string(r.body), `"kind":"sleep"`) != 1 || !strings.Contains(string(r.body), "disk on fire") {
		t.Fatalf("dead letters: %s", r.body)
	}
}
