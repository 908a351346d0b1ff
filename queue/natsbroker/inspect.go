package natsbroker

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// Inspection reads what the streams already hold; it adds no write to
// enqueueing, claiming or completing.
//
//   - Queues: the queues are the level streams whose subjects fall under
//     "<prefix>.q.>", their depth is Depth's, and InFlight is the level
//     consumers' acknowledgements pending: messages delivered and not yet
//     acknowledged. A message is a task or a pack of tasks (Config.PackSize),
//     so InFlight counts a pack claimed whole once; a task waiting for its
//     retry in a message of its own (a delayed negative acknowledgement)
//     counts as in flight until it is delivered again.
//   - Batches: each batch record is a message of its own subject
//     ("<prefix>.b.<batch>") in the state stream, in enqueue order. A page
//     reads the records before the cursor (a stream sequence) in windows of
//     sequences walked from the newest back, each read one record forward
//     (the server skips every other message), the window sized from the
//     density of records seen so far; a call reads at most 4*limit+64
//     records, and a cancellation's rewrite of a record is skipped. The counts
//     of a batch come from its results subject (several outcomes a message,
//     a request each); what was read is kept in memory (the per-task states
//     of up to 16 Mi tasks in 16 Ki batches, least recently used forgotten
//     first; a batch of more than 4 Mi tasks is not kept), so listing a
//     batch again reads only the results stored since: nothing for a
//     finished batch.
//   - Batch: the outcomes as above. "Running" is what the level consumers
//     show: a task is running when the message that carries it was
//     delivered and not acknowledged (read from the queue's stream between
//     the consumers' acknowledgement floors and their last deliveries, at
//     most 4,096 messages). It is an approximation on three counts: a pack's
//     tasks are running together while its message is held (tasks moved out
//     of it, to be claimed apart, read as running until it is
//     acknowledged); a task waiting for its retry in its own message reads
//     as running; and tasks past the 4,096th message of the window read as
//     pending. A marker written by each claim would be exact, at the price
//     of a write on every claim (for lone tasks, one a task) on the hot
//     path; the consumers' state costs nothing until someone asks.

// Read budgets of one inspection call (see above).
const (
	runScan         = 4096
	deadScanPerItem = 10
	maxWindow       = 1 << 40
)

// Queues implements queue.Inspector.
func (b *Broker) Queues(ctx context.Context) ([]queue.QueueInfo, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	lister := b.js.StreamNames(ctx, jetstream.WithStreamListSubject(b.prefix+".q.>"))
	var names []string
	for n := range lister.Name() {
		if t, ok := strings.CutPrefix(n, b.prefix+"_q_"); ok {
			if name, ok := untok(t); ok && tok(name) == t {
				names = append(names, name)
			}
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("natsbroker: listing queues: %w", err)
	}
	slices.Sort(names)
	out := make([]queue.QueueInfo, 0, len(names))
	for _, name := range names {
		d, err := b.Depth(ctx, name)
		if err != nil {
			return nil, err
		}
		infos, _, err := b.levelInfos(ctx, name)
		if err != nil {
			return nil, err
		}
		qi := queue.QueueInfo{Name: name, Depth: d}
		for _, ci := range infos {
			if ci != nil {
				qi.InFlight += ci.NumAckPending
			}
		}
		out = append(out, qi)
	}
	return out, nil
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// levelInfos returns the level consumers' state of queue name (nil for a
// level without its consumer) and the queue's level stream.
func (b *Broker) levelInfos(ctx context.Context, name string) ([queue.NumPriorities]*jetstream.ConsumerInfo, jetstream.Stream, error) {
	var infos [queue.NumPriorities]*jetstream.ConsumerInfo
	b.mu.Lock()
	q := b.queues[name]
	b.mu.Unlock()
	var st jetstream.Stream
	if q != nil {
		st = q.stream
	} else {
		var err error
		st, err = b.js.Stream(ctx, b.prefix+"_q_"+tok(name))
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return infos, nil, nil
		}
		if err != nil {
			return infos, nil, fmt.Errorf("natsbroker: queue %q: %w", name, err)
		}
	}
	lister := st.ListConsumers(ctx)
	for ci := range lister.Info() {
		if l, err := strconv.Atoi(strings.TrimPrefix(ci.Name, "L")); err == nil && strings.HasPrefix(ci.Name, "L") && l >= 0 && l < queue.NumPriorities {
			infos[l] = ci
		}
	}
	if err := lister.Err(); err != nil {
		return infos, nil, fmt.Errorf("natsbroker: consumers of queue %q: %w", name, err)
	}
	return infos, st, nil
}

// progressCache keeps what was read of batches' results, so that reading a
// batch again reads only the results stored since: the states of at most
// progressTasks tasks (a byte each) in progressEntries batches, the least
// recently used forgotten first. The zero value is ready.
type progressCache struct {
	mu    sync.Mutex
	m     map[string]*list.Element // of *progress
	lru   list.List                // most recently used first
	tasks int
}

// progress is what was read of one batch's results.
type progress struct {
	id     string
	mu     sync.Mutex // held while the results are read
	size   int
	cursor uint64  // the next state-stream sequence to read
	st     []uint8 // per task: its queue.TaskState plus one; 0: no outcome yet
	n      counts
	seen   int
	cancel bool // a cancel marker was read: every task has its state
}

type counts struct{ done, failed, canceled int }

const (
	progressTasks   = 1 << 24
	progressEntries = 1 << 14
)

// get returns the progress of batch id of size tasks, new or cached.
func (c *progressCache) get(id string, size int) *progress {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[id]; e != nil {
		if p := e.Value.(*progress); p.size == size {
			c.lru.MoveToFront(e)
			return p
		}
		c.drop(e)
	}
	p := &progress{id: id, size: size, cursor: 1}
	if size > progressTasks/4 {
		return p // too large to keep: read afresh each time
	}
	for e := c.lru.Back(); e != nil && (c.tasks+size > progressTasks || c.lru.Len() >= progressEntries); e = c.lru.Back() {
		c.drop(e)
	}
	if c.m == nil {
		c.m = map[string]*list.Element{}
	}
	c.m[id] = c.lru.PushFront(p)
	c.tasks += size
	return p
}

func (c *progressCache) drop(e *list.Element) {
	p := c.lru.Remove(e).(*progress)
	delete(c.m, p.id)
	c.tasks -= p.size
}

// read brings p up to date with batch p.id's results subject, from where it
// stopped. The first outcome of a task wins; the first cancel marker stands
// for every task without one before it. p.mu is held.
func (b *Broker) read(ctx context.Context, p *progress) error {
	if p.st == nil {
		p.st = make([]uint8, p.size)
	}
	subj := b.resSubj(p.id)
	for !p.cancel && p.seen < p.size {
		m, err := b.state.GetMsg(ctx, p.cursor, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("natsbroker: reading results of batch %s: %w", p.id, err)
		}
		p.cursor = m.Sequence + 1
		cancel, err := decodeResults(m.Data, p.size, func(o queue.Outcome) {
			if p.st[o.Index] != 0 {
				return
			}
			s := queue.StateOf(&o)
			p.st[o.Index] = uint8(s) + 1
			p.seen++
			switch s {
			case queue.TaskDone:
				p.n.done++
			case queue.TaskCanceled:
				p.n.canceled++
			default:
				p.n.failed++
			}
		})
		if err != nil {
			b.log.Error("natsbroker: skipping a results message that does not decode", "batch", p.id, "err", err)
		}
		if cancel {
			p.cancel = true
			for i, s := range p.st {
				if s == 0 {
					p.st[i] = uint8(queue.TaskCanceled) + 1
					p.n.canceled++
					p.seen++
				}
			}
		}
	}
	return nil
}

// info returns the summary of the batch with record r.
func (b *Broker) info(ctx context.Context, id string, r *batchRecord) (queue.BatchInfo, error) {
	bi := queue.BatchInfo{ID: id, Kind: r.Kind, Queue: r.Queue, Size: r.Size, Created: r.Created}
	p := b.progress.get(id, r.Size)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := b.read(ctx, p); err != nil {
		return bi, err
	}
	bi.Done, bi.Failed, bi.Canceled = p.n.done, p.n.failed, p.n.canceled
	return bi, nil
}

// Batch implements queue.Inspector (see the package's inspection notes for
// what "running" means here).
func (b *Broker) Batch(ctx context.Context, id string) (*queue.BatchDetail, error) {
	if b.isClosed() {
		return nil, errClosed
	}
	r, _, err := b.batchRecord(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	p := b.progress.get(id, r.Size)
	p.mu.Lock()
	err = b.read(ctx, p)
	st, n := slices.Clone(p.st), p.n
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	d := &queue.BatchDetail{
		BatchInfo: queue.BatchInfo{ID: id, Kind: r.Kind, Queue: r.Queue, Size: r.Size, Created: r.Created,
			Done: n.done, Failed: n.failed, Canceled: n.canceled},
		States: make([]queue.TaskState, r.Size),
	}
	if !d.Finished() {
		if err := b.markRunning(ctx, id, r.Queue, st); err != nil {
			return nil, err
		}
	}
	for i, s := range st {
		if s > 0 {
			d.States[i] = queue.TaskState(s - 1)
		}
	}
	return d, nil
}

// markRunning marks the tasks of batch id without an outcome whose message
// was delivered and not acknowledged, reading the queue's stream between
// the level consumers' acknowledgement floors and last deliveries.
func (b *Broker) markRunning(ctx context.Context, id, qname string, st []uint8) error {
	infos, stream, err := b.levelInfos(ctx, qname)
	if err != nil || stream == nil {
		return err
	}
	lo, hi := ^uint64(0), uint64(0)
	for _, ci := range infos {
		if ci != nil && ci.NumAckPending > 0 {
			lo, hi = min(lo, ci.AckFloor.Stream+1), max(hi, ci.Delivered.Stream)
		}
	}
	base := b.prefix + ".q." + tok(qname) + "."
	running := uint8(queue.TaskRunning) + 1
	for seq, reads := lo, 0; seq <= hi && reads < runScan; reads++ {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(base+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("natsbroker: reading queue %q: %w", qname, err)
		}
		seq = m.Sequence + 1
		if m.Sequence > hi {
			break
		}
		ls, ks, packed := strings.Cut(strings.TrimPrefix(m.Subject, base), ".")
		l, err := strconv.Atoi(ls)
		if err != nil || l < 0 || l >= queue.NumPriorities || infos[l] == nil ||
			m.Sequence > infos[l].Delivered.Stream || m.Sequence <= infos[l].AckFloor.Stream {
			continue // not delivered yet
		}
		k := 1
		if packed {
			if k, err = strconv.Atoi(ks); err != nil {
				continue
			}
		}
		batch, first, err := queue.ParseTaskID(m.Header.Get(hdrTask))
		if err != nil || batch != id {
			continue
		}
		for i := first; i < first+k && i < len(st); i++ {
			if st[i] == 0 {
				st[i] = running
			}
		}
	}
	return nil
}

// record is a batch record read from the state stream.
type record struct {
	seq uint64
	id  string
	rec batchRecord
}

// records reads the batch records in stream sequences [lo, hi), up to
// budget reads. It reports whether it reached hi (or the stream's end).
func (b *Broker) records(ctx context.Context, lo, hi uint64, budget int) (recs []record, reads int, complete bool, err error) {
	pre := b.prefix + ".b."
	for seq := lo; reads < budget; {
		m, err := b.state.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(pre+"*"))
		reads++
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return recs, reads, true, nil
		}
		if err != nil {
			return nil, reads, false, fmt.Errorf("natsbroker: listing batches: %w", err)
		}
		if m.Sequence >= hi {
			return recs, reads, true, nil
		}
		seq = m.Sequence + 1
		var r record
		id, ok := untok(strings.TrimPrefix(m.Subject, pre))
		if !ok || json.Unmarshal(m.Data, &r.rec) != nil {
			b.log.Error("natsbroker: skipping a batch record that does not decode", "subject", m.Subject, "seq", m.Sequence)
			continue
		}
		if r.rec.Canceled {
			continue // a cancellation's rewrite: the batch is listed at its first record
		}
		r.seq, r.id = m.Sequence, id
		recs = append(recs, r)
	}
	return recs, reads, false, nil
}

// Batches implements queue.Inspector. The cursor is a state stream sequence:
// the page holds the batches whose record is older.
func (b *Broker) Batches(ctx context.Context, f queue.BatchFilter) ([]queue.BatchInfo, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", fmt.Errorf("natsbroker: batches: %w", err)
	}
	var hi uint64 // exclusive
	if f.After != "" {
		n, err := strconv.ParseUint(f.After, 10, 64)
		if err != nil || n == 0 {
			return nil, "", fmt.Errorf("natsbroker: batches: %w", queue.BadCursor(f.After))
		}
		hi = n
	}
	if b.isClosed() {
		return nil, "", errClosed
	}
	si, err := b.state.Info(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("natsbroker: batches: %w", err)
	}
	first := max(si.State.FirstSeq, 1)
	if hi == 0 || hi > si.State.LastSeq+1 {
		hi = si.State.LastSeq + 1
	}
	limit := f.PageLimit()
	budget := 4*limit + 64
	w := uint64(limit) // a window of limit sequences holds at most limit records: always within budget
	var page []queue.BatchInfo
	for hi > first && len(page) < limit && budget > 0 {
		lo := hi - min(w, hi-first)
		recs, reads, complete, err := b.records(ctx, lo, hi, budget)
		budget -= reads
		if err != nil {
			return nil, "", err
		}
		if !complete {
			break // denser than the budget allows: go on from hi next call
		}
		for i := len(recs) - 1; i >= 0; i-- {
			r := &recs[i]
			if f.Queue != "" && r.rec.Queue != f.Queue {
				continue
			}
			info, err := b.info(ctx, r.id, &r.rec)
			if err != nil {
				return nil, "", err
			}
			if !f.Match(&info) {
				continue
			}
			page = append(page, info)
			if len(page) == limit {
				if r.seq <= first {
					return page, "", nil
				}
				return page, strconv.FormatUint(r.seq, 10), nil
			}
		}
		// The next window: about twice the sequences that should hold the
		// records still wanted at the density seen, within the budget.
		span := hi - lo
		hi = lo
		// Windows stay under 2^40 sequences, so that the product cannot
		// overflow.
		if len(recs) == 0 {
			w = min(span*8, maxWindow)
		} else {
			want := uint64(min(2*(limit-len(page)), max(budget, 1)))
			w = min(max(uint64(limit), want*span/uint64(len(recs))), maxWindow)
		}
	}
	if hi <= first {
		return page, "", nil
	}
	return page, strconv.FormatUint(hi, 10), nil
}
