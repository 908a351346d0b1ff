package membroker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gather-go/gather/queue"
)

// The broker lists batches from b.created, every batch in enqueue order
// (ascending batch.seq): appending to it is the only cost Enqueue pays for
// inspection. Batches forgotten after Retention stay in it until it holds
// twice as many entries as there are batches, when Enqueue drops them in
// one pass: amortised O(1) a batch.

// logBatch appends bt to b.created, first dropping forgotten batches when
// they are half of it. b.mu is held.
func (b *Broker) logBatch(bt *batch) {
	if len(b.created) >= 2*len(b.batches)+1024 {
		live := b.created[:0]
		for _, c := range b.created {
			if b.batches[c.id] == c {
				live = append(live, c)
			}
		}
		clear(b.created[len(live):])
		b.created = live
	}
	b.created = append(b.created, bt)
}

// scanBudget bounds the batches one Batches call examines, so that a filter
// few batches pass does not hold the broker's lock for long: past it the
// call returns the page so far and a cursor to go on from.
const scanBudget = 100_000

// Queues implements queue.Inspector. InFlight counts the tasks whose lease
// is live: exact, as of the call (a lease that expired is counted until the
// broker's timer hands its tasks back, a moment later).
func (b *Broker) Queues(ctx context.Context) ([]queue.QueueInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	inflight := map[string]int{}
	for _, l := range b.leases {
		for _, r := range l.refs {
			if r.b.state[r.i] == stLeased && r.b.attempt[r.i] == r.attempt {
				inflight[r.b.qname]++
			}
		}
	}
	out := make([]queue.QueueInfo, 0, len(b.queues))
	for name, q := range b.queues {
		out = append(out, queue.QueueInfo{Name: name, Depth: q.depth, InFlight: inflight[name]})
	}
	slices.SortFunc(out, func(a, b queue.QueueInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// info returns bt's summary; b.mu is held.
func (bt *batch) info() queue.BatchInfo {
	return queue.BatchInfo{
		ID: bt.id, Kind: bt.kind, Queue: bt.qname, Size: len(bt.state),
		Done: len(bt.order) - int(bt.nfail) - int(bt.ncancel), Failed: int(bt.nfail), Canceled: int(bt.ncancel),
		Created: bt.at,
	}
}

// Batches implements queue.Inspector. The cursor is the enqueue order of the
// last batch examined. A call examines at most 100,000 batches.
func (b *Broker) Batches(ctx context.Context, f queue.BatchFilter) ([]queue.BatchInfo, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", fmt.Errorf("membroker: batches: %w", err)
	}
	limit := f.PageLimit()
	hi := ^uint64(0)
	if f.After != "" {
		n, err := strconv.ParseUint(f.After, 10, 64)
		if err != nil || n == 0 {
			return nil, "", fmt.Errorf("membroker: batches: %w", queue.BadCursor(f.After))
		}
		hi = n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, "", errClosed
	}
	log := b.created
	i := sort.Search(len(log), func(i int) bool { return log[i].seq >= hi }) - 1
	var page []queue.BatchInfo
	var last uint64
	for budget := scanBudget; i >= 0 && len(page) < limit && budget > 0; i, budget = i-1, budget-1 {
		bt := log[i]
		last = bt.seq
		if b.batches[bt.id] != bt {
			continue // forgotten
		}
		if info := bt.info(); f.Match(&info) {
			page = append(page, info)
		}
	}
	if i < 0 {
		return page, "", nil
	}
	return page, strconv.FormatUint(last, 10), nil
}

// Batch implements queue.Inspector. A task is running while its lease is
// live.
func (b *Broker) Batch(ctx context.Context, id string) (*queue.BatchDetail, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	bt := b.batches[id]
	if bt == nil {
		return nil, fmt.Errorf("membroker: batch %s: %w", id, queue.ErrNotFound)
	}
	d := &queue.BatchDetail{BatchInfo: bt.info(), States: make([]queue.TaskState, len(bt.state))}
	for i, st := range bt.state {
		switch st {
		case stQueued:
			d.States[i] = queue.TaskPending
		case stLeased:
			d.States[i] = queue.TaskRunning
		default:
			d.States[i] = queue.StateOf(&bt.out[i])
		}
	}
	return d, nil
}

// FindDeadLetters implements queue.Inspector. Dead letters are ordered by the
// time they were dead-lettered, then by task ID; the cursor is both of the
// last one returned. A call reads every dead letter the broker keeps (at
// most Config.MaxDeadLetters a queue).
func (b *Broker) FindDeadLetters(ctx context.Context, f queue.DeadLetterFilter) ([]queue.DeadLetter, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", fmt.Errorf("membroker: dead letters: %w", err)
	}
	limit := f.PageLimit()
	var afterAt int64
	var afterID string
	if f.After != "" {
		at, id, ok := strings.Cut(f.After, "~")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || id == "" {
			return nil, "", fmt.Errorf("membroker: dead letters: %w", queue.BadCursor(f.After))
		}
		afterAt, afterID = n, id
	}
	after := func(d *queue.DeadLetter) bool {
		if f.After == "" {
			return true
		}
		if n := d.At.UnixNano(); n != afterAt {
			return n > afterAt
		}
		return d.ID() > afterID
	}
	b.mu.Lock()
	var found []*queue.DeadLetter
	for name, list := range b.dead {
		if f.Queue != "" && name != f.Queue {
			continue
		}
		for _, d := range list {
			if after(d) && f.Match(d) {
				found = append(found, d)
			}
		}
	}
	slices.SortFunc(found, func(x, y *queue.DeadLetter) int {
		return cmp.Or(cmp.Compare(x.At.UnixNano(), y.At.UnixNano()), strings.Compare(x.ID(), y.ID()))
	})
	more := len(found) > limit
	found = found[:min(limit, len(found))]
	page := make([]queue.DeadLetter, len(found))
	for i, d := range found {
		page[i] = *d
		page[i].Attempts = slices.Clone(d.Attempts)
	}
	b.mu.Unlock()
	if !more {
		return page, "", nil
	}
	l := &page[len(page)-1]
	return page, strconv.FormatInt(l.At.UnixNano(), 10) + "~" + l.ID(), nil
}
