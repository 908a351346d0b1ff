package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// Defaults for Config.
const (
	DefaultPrefix      = "gather"
	DefaultAckWait     = queue.DefaultLease
	DefaultRetention   = 24 * time.Hour
	DefaultMaxDepth    = 1 << 24
	DefaultIdleRecheck = time.Second
	DefaultPackSize    = 16
)

// packSpread is how many messages a batch is spread over at least before
// its tasks are packed (Config.PackSize).
const packSpread = 64

// Config configures a Broker. A nil *Config means every default.
type Config struct {
	// Prefix names the broker's streams ("<prefix>_q_<queue>", "<prefix>_qd_<queue>",
	// "<prefix>_state") and subjects ("<prefix>.>"), so that several
	// deployments can share one NATS account. Letters, digits, '-' and '_'.
	// Default DefaultPrefix.
	Prefix string
	// Replicas is the replication factor of every stream: 1 for a single
	// server, 3 for a cluster (R3). Default 1.
	Replicas int
	// Memory keeps the streams in memory instead of files: faster, and lost
	// when the server stops. Default false (file store).
	Memory bool
	// AckWait is how long the server waits for a claimed task's heartbeat
	// before delivering it again: the lease that survives the claiming
	// process. Shorter leases asked of Claim are enforced by the claiming
	// process (and fall back to AckWait if it dies); longer ones are capped
	// at AckWait (Delivery.Expires says so). Default DefaultAckWait, which is
	// the worker's default lease.
	AckWait time.Duration
	// MaxDepth bounds the tasks of one queue that wait or are leased, and
	// apart those that are delayed: Enqueue returns queue.ErrQueueFull
	// beyond it, and a delayed task that comes due while the queue is full
	// waits for a place. The server keeps
	// the bound per message, so a queue with a bound set here or in
	// QueueMaxDepth stores each task in a message of its own; on the others
	// DefaultMaxDepth bounds messages, which may carry PackSize tasks each.
	MaxDepth int
	// QueueMaxDepth overrides MaxDepth for the named queues.
	QueueMaxDepth map[string]int
	// PackSize is the most tasks one message carries. A message is what
	// JetStream stores, delivers, acknowledges and removes, and most of a
	// task's cost: a batch of n tasks goes out in messages of
	// min(PackSize, n/64) consecutive tasks, at least one, so that it still
	// spreads over 64 messages or more, and a worker claims them whole
	// while it has room (a claim with less room takes what fits and moves
	// the rest back to the queue). Retries, leases and outcomes stay per
	// task. 1 stores every task alone; so do bounded queues (MaxDepth).
	// Default DefaultPackSize, at most 1024.
	PackSize int
	// Retention is how long batch state, results, idempotency keys and dead
	// letters are kept. Default DefaultRetention.
	Retention time.Duration
	// IdleRecheck is the longest an idle worker sleeps before claiming
	// again, which bounds how late it sees work whose wake-up it could not
	// be told about: a delay or retry that another process scheduled and
	// did not live to announce, a lease of a crashed worker expiring. Every
	// other wake-up is pushed. Default DefaultIdleRecheck.
	IdleRecheck time.Duration
	// Logger receives what the broker cannot return: bad wire data it
	// dead-lettered, wake-ups it failed to publish. Default: discard.
	Logger *slog.Logger
}

// Broker is a queue.Broker on NATS JetStream. It implements
// queue.DeadLetterer and queue.Stats too. It is safe for concurrent use. It
// starts no goroutine of its own: timers, NATS subscription callbacks, and
// the results feed (an ordered consumer started by the first Subscribe,
// whose goroutines nats.go runs). Close releases its subscriptions, timers
// and the feed, waiting until the feed has stopped, and makes open
// subscriptions' Next return an error; the caller still owns the
// connection.
type Broker struct {
	js        jetstream.JetStream
	nc        *nats.Conn
	prefix    string
	replicas  int
	storage   jetstream.StorageType
	ackWait   time.Duration
	maxDepth  int
	qdepth    map[string]int
	retention time.Duration
	recheck   time.Duration
	pack      int
	bounded   bool // Config.MaxDepth was set
	log       *slog.Logger

	state     jetstream.Stream
	stateName string
	wakeSubj  string
	cancSubj  string
	subs      []*nats.Subscription
	pull      *puller
	// csub is the cancel notices' subscription; noticeRC and noticeDrop
	// are the connection's reconnects and the subscription's dropped
	// messages when last checked (see checkNotices).
	csub       *nats.Subscription
	noticeRC   atomic.Uint64
	noticeDrop atomic.Int64
	// suspectUntil is when (Unix ns) claims stop checking every message
	// against its batch's outcomes (see suspect).
	suspectUntil atomic.Int64

	// The shared results feed (see Subscribe): fstart serialises its start
	// and stop; fmu guards the rest.
	fstart  sync.Mutex
	fmu     sync.Mutex
	fcc     jetstream.ConsumeContext
	fsubs   map[string]map[*subscription]struct{} // by results subject
	fclosed bool
	// pre holds the subscriptions Enqueue registered with a running feed
	// before publishing a batch, for the Subscribe that usually follows
	// (see preSubscribe); preq is their batch IDs, oldest first.
	pre  map[string]*subscription
	preq []string

	qmu    sync.Mutex // serialises stream creation
	mu     sync.Mutex
	queues map[string]*bqueue
	// batches caches the cancellation state of batches this broker claimed
	// tasks of or heard cancelled; pruneAt is the size that prunes it.
	batches   map[string]*binfo
	pruneAt   int
	wake      chan struct{} // closed when work may be ready; nil until someone waits
	wakeTimes timeHeap      // local wake-ups to come (delays, retries)
	wakeTimer *time.Timer
	wakeAt    time.Time
	recheckT  *time.Timer
	closed    bool
}

type bqueue struct {
	name, tok string
	maxDepth  int
	pack      int // Config.PackSize, or 1 for a bounded queue
	// perMsg[l] is how many tasks the messages of level l carried in the
	// last claim (0: none yet), which sizes the next claim's fetch.
	perMsg    [queue.NumPriorities]atomic.Int32
	spare     [queue.NumPriorities]spareList
	stream    jetstream.Stream // the levels
	dstream   jetstream.Stream // delayed tasks
	levels    [queue.NumPriorities]jetstream.Consumer
	next      [queue.NumPriorities]string // each level's next-message API subject, for pull requests
	delay     jetstream.Consumer
	promote   atomic.Bool // delayed tasks may be due
	retryT    *time.Timer // a failed promotion's retry (see promoteLater); guarded by Broker.mu
	promoting atomic.Bool
	// lastEnq[l] is when an enqueue to level l was last announced (Unix ns).
	lastEnq [queue.NumPriorities]atomic.Int64
	// emptyAt[l] is when a claim last found level l empty with no wake-up
	// for it since (Unix ns; 0: unknown). For Config.IdleRecheck after it,
	// claims of the level return nothing without asking the server, as an
	// idle worker would sleep that long: a worker that drains one level
	// does not pay a round trip per empty level above it per claim.
	// gen[l] counts the wake-ups that may concern level l, so that a
	// wake-up arriving during a claim keeps the level from being marked.
	// emptyGen[l] is gen[l] when the claim that set emptyAt[l] started:
	// the mark holds only while gen[l] is still that.
	emptyAt  [queue.NumPriorities]atomic.Int64
	emptyGen [queue.NumPriorities]atomic.Uint64
	gen      [queue.NumPriorities]atomic.Uint64
}

// maybe forgets that level l was found empty: a wake-up may concern it.
func (q *bqueue) maybe(l int) {
	q.gen[l].Add(1)
	q.emptyAt[l].Store(0)
}

// maybeAll forgets every level found empty.
func (b *Broker) maybeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		for l := range queue.NumPriorities {
			q.maybe(l)
		}
	}
}

type binfo struct {
	size     int  // tasks in the batch; 0 if not read
	recheck  bool // a notice may have been missed: read the record again
	canceled chan struct{}
	done     bool
	used     time.Time
	fin      *finished // its recorded outcomes, once a claim checked them
}

// batchRecord is the stored state of a batch.
type batchRecord struct {
	Size     int       `json:"size"`
	Kind     string    `json:"kind"`
	Queue    string    `json:"queue"`
	Canceled bool      `json:"canceled,omitempty"`
	Created  time.Time `json:"created"`
}

var errClosed = errors.New("natsbroker: broker closed")

// New returns a Broker on js, creating its state stream and the default
// queue's stream if needed (other queue streams are created on first use).
// js's connection must stay open while the broker is used.
func New(ctx context.Context, js jetstream.JetStream, cfg *Config) (*Broker, error) {
	if js == nil {
		return nil, fmt.Errorf("natsbroker: New with a nil JetStream: %w", queue.ErrBadConfig)
	}
	b := &Broker{
		js: js, nc: js.Conn(), prefix: DefaultPrefix, replicas: 1, storage: jetstream.FileStorage,
		ackWait: DefaultAckWait, maxDepth: DefaultMaxDepth, retention: DefaultRetention,
		recheck: DefaultIdleRecheck, pack: DefaultPackSize, log: slog.New(slog.DiscardHandler),
		queues: map[string]*bqueue{}, batches: map[string]*binfo{}, pruneAt: 1 << 14,
		fsubs: map[string]map[*subscription]struct{}{}, pre: map[string]*subscription{},
	}
	if cfg != nil {
		var errs []error
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("natsbroker: %w: "+format, append([]any{queue.ErrBadConfig}, args...)...))
		}
		if cfg.Prefix != "" {
			if tok(cfg.Prefix) != cfg.Prefix {
				bad("Config.Prefix %q: want letters, digits, '-' and '_' only", cfg.Prefix)
			}
			b.prefix = cfg.Prefix
		}
		switch {
		case cfg.Replicas < 0 || cfg.Replicas > 5:
			bad("Config.Replicas is %d: want 0 (default 1) to 5", cfg.Replicas)
		case cfg.Replicas > 0:
			b.replicas = cfg.Replicas
		}
		if cfg.Memory {
			b.storage = jetstream.MemoryStorage
		}
		for _, d := range []struct {
			name string
			v    time.Duration
			dst  *time.Duration
		}{{"AckWait", cfg.AckWait, &b.ackWait}, {"Retention", cfg.Retention, &b.retention}, {"IdleRecheck", cfg.IdleRecheck, &b.recheck}} {
			switch {
			case d.v < 0:
				bad("Config.%s is %v: want 0 (default %v) or more", d.name, d.v, *d.dst)
			case d.v > 0:
				*d.dst = d.v
			}
		}
		switch {
		case cfg.MaxDepth < 0:
			bad("Config.MaxDepth is %d: want 0 (default %d) or more", cfg.MaxDepth, DefaultMaxDepth)
		case cfg.MaxDepth > 0:
			b.maxDepth, b.bounded = cfg.MaxDepth, true
		}
		switch {
		case cfg.PackSize < 0 || cfg.PackSize > maxPack:
			bad("Config.PackSize is %d: want 0 (default %d) to %d", cfg.PackSize, DefaultPackSize, maxPack)
		case cfg.PackSize > 0:
			b.pack = cfg.PackSize
		}
		for name, n := range cfg.QueueMaxDepth {
			if n < 1 {
				bad("Config.QueueMaxDepth[%q] is %d: want at least 1", name, n)
			}
		}
		b.qdepth = cfg.QueueMaxDepth
		if cfg.Logger != nil {
			b.log = cfg.Logger
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	b.stateName = b.prefix + "_state"
	b.wakeSubj = b.prefix + ".wake"
	b.cancSubj = b.prefix + ".cancel"
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        b.stateName,
		Description: "gather task queue: batches, results, idempotency keys, attempts, dead letters",
		Subjects:    []string{b.prefix + ".b.*", b.prefix + ".r.*", b.prefix + ".i.*.*", b.prefix + ".a.*.*", b.prefix + ".d.*.*.*"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      b.retention,
		Storage:     b.storage,
		Replicas:    b.replicas,
		AllowMsgTTL: true,
		// No direct gets: on a cluster they may be answered by a replica
		// that has not caught up, and a batch just enqueued would read as
		// not found. Reads go through the stream leader.
		AllowDirect: false,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbroker: creating stream %s: %w", b.stateName, err)
	}
	b.state = st
	// Subscribe before anything can be published that we must not miss,
	// and flush so the server has the interest.
	ws, err := b.nc.Subscribe(b.wakeSubj, b.onWake)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribing to %s: %w", b.wakeSubj, err)
	}
	cs, err := b.nc.Subscribe(b.cancSubj, b.onCancel)
	if err != nil {
		_ = ws.Unsubscribe()
		return nil, fmt.Errorf("natsbroker: subscribing to %s: %w", b.cancSubj, err)
	}
	b.subs = []*nats.Subscription{ws, cs}
	b.csub = cs
	b.noticeRC.Store(b.nc.Stats().Reconnects)
	b.pull = newPuller(js)
	fctx := ctx
	if _, ok := ctx.Deadline(); !ok { // FlushWithContext requires one
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(fctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("natsbroker: flushing subscriptions: %w", err)
	}

	// The default queue is made now, so its first enqueue and claim do not
	// wait for a stream and five consumers to be created.
	if _, err := b.queue(ctx, queue.DefaultQueue); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close releases the broker's subscriptions and timers. Leases it holds
// expire on the server (AckWait). Calls after Close return an error. Close
// does not close the NATS connection.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	if b.wakeTimer != nil {
		b.wakeTimer.Stop()
	}
	if b.recheckT != nil {
		b.recheckT.Stop()
	}
	b.wakeLocked()
	subs := b.subs
	var spares []*spareList
	for _, q := range b.queues {
		if q.retryT != nil {
			q.retryT.Stop()
		}
		for l := range q.spare {
			spares = append(spares, &q.spare[l])
		}
	}
	b.mu.Unlock()
	for _, s := range spares {
		s.handBack(b)
	}
	b.stopFeed()
	var errs []error
	if b.pull != nil {
		errs = append(errs, b.pull.close())
	}
	for _, s := range subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tok makes s a valid subject token and stream-name part: letters, digits,
// '-' and '_' stay, every other byte becomes '=' and two hex digits.
func tok(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; tokByte(c) {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('=')
			sb.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	if sb.Len() == 0 {
		return "="
	}
	return sb.String()
}

func tokByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// levelSubj is where messages of k tasks of level l wait to be claimed:
// "<prefix>.q.<queue>.<l>" for one task, with ".<k>" appended for more, so
// that Depth counts tasks from the stream's per-subject totals.
func (b *Broker) levelSubj(q *bqueue, l queue.Priority, k int) string {
	return packSubj(b.prefix+".q."+q.tok+"."+strconv.Itoa(int(l)), k)
}

// delaySubj is where messages of k tasks of level l wait until they are due,
// in the queue's delay stream: "<prefix>.qd.<queue>.<l>", with ".<k>" for
// more than one task.
func (b *Broker) delaySubj(q *bqueue, l queue.Priority, k int) string {
	return packSubj(b.prefix+".qd."+q.tok+"."+strconv.Itoa(int(l)), k)
}

func packSubj(base string, k int) string {
	if k == 1 {
		return base
	}
	return base + "." + strconv.Itoa(k)
}

// taskSubj is levelSubj, or delaySubj when delayed.
func (b *Broker) taskSubj(q *bqueue, l queue.Priority, k int, delayed bool) string {
	if delayed {
		return b.delaySubj(q, l, k)
	}
	return b.levelSubj(q, l, k)
}
func (b *Broker) batchSubj(id string) string { return b.prefix + ".b." + tok(id) }
func (b *Broker) resSubj(id string) string   { return b.prefix + ".r." + tok(id) }
func (b *Broker) attSubj(id string, i int) string {
	return b.prefix + ".a." + tok(id) + "." + strconv.Itoa(i)
}
func (b *Broker) deadSubj(qname, id string, i int) string {
	return b.prefix + ".d." + tok(qname) + "." + tok(id) + "." + strconv.Itoa(i)
}

// Depth implements queue.Stats: the tasks of the queue per level (ready and
// leased ones in its stream, delayed ones in its delay stream), which is
// what its bounds count, read from the streams' leaders in one request each
// from their per-subject message totals (a subject's messages carry the
// same number of tasks). A task leaves the count when its acknowledgement
// is applied: on a replicated stream a moment after its outcome is
// readable. Tasks of a cancelled batch count until a worker claims and
// drops them (delayed ones, once due), as they do against the bound. An
// unknown queue has depth zero; Depth never creates a queue's streams.
func (b *Broker) Depth(ctx context.Context, name string) ([queue.NumPriorities]int, error) {
	var d [queue.NumPriorities]int
	b.mu.Lock()
	closed, q := b.closed, b.queues[name]
	b.mu.Unlock()
	if closed {
		return d, errClosed
	}
	t := tok(name)
	for i, kind := range []string{"q", "qd"} {
		var st jetstream.Stream
		switch {
		case q != nil && i == 0:
			st = q.stream
		case q != nil:
			st = q.dstream
		default:
			var err error
			st, err = b.js.Stream(ctx, b.prefix+"_"+kind+"_"+t)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				continue
			}
			if err != nil {
				return d, fmt.Errorf("natsbroker: depth of queue %q: %w", name, err)
			}
		}
		base := b.prefix + "." + kind + "." + t + "."
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(base+">"))
		if err != nil {
			return d, fmt.Errorf("natsbroker: depth of queue %q: %w", name, err)
		}
		for subj, n := range info.State.Subjects {
			rest, ok := strings.CutPrefix(subj, base)
			if !ok {
				continue
			}
			rest, ks, packed := strings.Cut(rest, ".")
			k := 1
			if packed {
				var err error
				if k, err = strconv.Atoi(ks); err != nil || k < 1 {
					continue
				}
			}
			if l, err := strconv.Atoi(rest); err == nil && l >= 0 && l < queue.NumPriorities {
				d[l] += int(n) * k
			}
		}
	}
	return d, nil
}

// queue returns the named queue, creating its stream and consumers on
// first use.
func (b *Broker) queue(ctx context.Context, name string) (*bqueue, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, errClosed
	}
	q := b.queues[name]
	b.mu.Unlock()
	if q != nil {
		return q, nil
	}
	if name == "" {
		return nil, fmt.Errorf("natsbroker: %w: empty queue name", queue.ErrBadInput)
	}
	b.qmu.Lock()
	defer b.qmu.Unlock()
	b.mu.Lock()
	q = b.queues[name]
	b.mu.Unlock()
	if q != nil {
		return q, nil
	}
	q = &bqueue{name: name, tok: tok(name), maxDepth: b.maxDepth, pack: b.pack}
	if n, ok := b.qdepth[name]; ok {
		q.maxDepth = n
	}
	if _, ok := b.qdepth[name]; ok || b.bounded {
		q.pack = 1 // a bound counts messages: one task each
	}
	q.promote.Store(true)
	// Two work-queue streams, made concurrently: the levels, and the
	// delayed tasks. Apart, so that promoting a delayed task into a level
	// needs no place under the bound that the delayed task itself holds.
	sname, dname := b.prefix+"_q_"+q.tok, b.prefix+"_qd_"+q.tok
	mkStream := func(name, what, subjects string) (jetstream.Stream, error) {
		st, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        name,
			Description: "gather task queue " + strconv.Quote(q.name) + what,
			Subjects:    []string{subjects},
			Retention:   jetstream.WorkQueuePolicy,
			MaxMsgs:     int64(q.maxDepth),
			Discard:     jetstream.DiscardNew,
			Storage:     b.storage,
			Replicas:    b.replicas,
			Duplicates:  time.Minute,
		})
		if err != nil {
			return nil, fmt.Errorf("natsbroker: creating stream %s: %w", name, err)
		}
		return st, nil
	}
	var wg sync.WaitGroup
	var serr, derr error
	wg.Go(func() { q.stream, serr = mkStream(sname, "", b.prefix+".q."+q.tok+".>") })
	wg.Go(func() { q.dstream, derr = mkStream(dname, ", delayed tasks", b.prefix+".qd."+q.tok+".>") })
	wg.Wait()
	if err := errors.Join(serr, derr); err != nil {
		return nil, err
	}
	mk := func(st jetstream.Stream, durable string, subjects ...string) (jetstream.Consumer, error) {
		c, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:        durable,
			FilterSubjects: subjects,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        b.ackWait,
			MaxDeliver:     -1,
			MaxAckPending:  -1,
			Replicas:       b.replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("natsbroker: creating consumer %s on %s: %w", durable, st.CachedInfo().Config.Name, err)
		}
		return c, nil
	}
	// The five consumers are created concurrently: each is a round trip
	// and, on a file store, a few file writes.
	errs := make([]error, queue.NumPriorities+1)
	for l := range queue.NumPriorities {
		one, name := b.levelSubj(q, queue.Priority(l), 1), "L"+strconv.Itoa(l)
		q.next[l] = b.pull.nextSubj(sname, name)
		wg.Go(func() { q.levels[l], errs[l] = mk(q.stream, name, one, one+".*") })
	}
	wg.Go(func() { q.delay, errs[queue.NumPriorities] = mk(q.dstream, "delay") })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.queues[name] = q
	b.mu.Unlock()
	return q, nil
}

// ---- wake-ups ----

// Notify implements queue.Broker. The channel closes on a wake-up published
// by any broker of the same prefix (an enqueue, a retry, an expired lease,
// promoted delayed tasks), on a local timer for delays and retries this
// broker scheduled, and at the latest after Config.IdleRecheck.
func (b *Broker) Notify(ctx context.Context, queues []string) (<-chan struct{}, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	if b.recheckT == nil {
		b.recheckT = time.AfterFunc(b.recheck, b.onRecheck)
	}
	return b.wake, nil
}

func (b *Broker) wakeLocked() {
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
}

func (b *Broker) onWake(m *nats.Msg) {
	// 'l': an enqueue ("l", level, queue); 'w': a retry or an expired lease;
	// 'p': delayed tasks may be due.
	if len(m.Data) > 0 && m.Data[0] == 'p' {
		b.setPromote()
	}
	if len(m.Data) > 2 && m.Data[0] == 'l' {
		b.mu.Lock()
		if q, l := b.queues[string(m.Data[2:])], int(m.Data[1]); q != nil && l < queue.NumPriorities {
			q.lastEnq[l].Store(time.Now().UnixNano())
			q.maybe(l)
		}
		b.mu.Unlock()
	} else {
		b.maybeAll()
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

func (b *Broker) onRecheck() {
	b.setPromote()
	b.maybeAll()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wakeLocked()
	if b.wake == nil {
		// Nobody waits: re-armed by the next Notify.
		b.recheckT = nil
		return
	}
	b.recheckT.Reset(b.recheck)
}

func (b *Broker) setPromote() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.queues {
		q.promote.Store(true)
	}
}

// publishWake tells every broker of the prefix that work may be ready;
// promote says delayed tasks may be due.
func (b *Broker) publishWake(promote bool) {
	data := []byte{'w'}
	if promote {
		data[0] = 'p'
		b.setPromote()
	}
	b.maybeAll()
	if err := b.nc.Publish(b.wakeSubj, data); err != nil {
		b.log.Warn("natsbroker: publishing a wake-up", "err", err)
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// publishLevelWake tells every broker of the prefix that tasks were
// enqueued at level l of q.
func (b *Broker) publishLevelWake(q *bqueue, l queue.Priority) {
	q.lastEnq[l].Store(time.Now().UnixNano())
	q.maybe(int(l))
	if err := b.nc.Publish(b.wakeSubj, append([]byte{'l', byte(l)}, q.name...)); err != nil {
		b.log.Warn("natsbroker: publishing a wake-up", "err", err)
	}
	b.mu.Lock()
	b.wakeLocked()
	b.mu.Unlock()
}

// wakeLater schedules a local wake-up (and a published one, with promote)
// at t.
func (b *Broker) wakeLater(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.wakeTimes.push(t)
	b.armLocked()
}

func (b *Broker) armLocked() {
	if len(b.wakeTimes) == 0 {
		return
	}
	next := b.wakeTimes[0]
	if b.wakeTimer != nil && !b.wakeAt.IsZero() && !next.Before(b.wakeAt) {
		return
	}
	b.wakeAt = next
	if b.wakeTimer == nil {
		b.wakeTimer = time.AfterFunc(time.Until(next), b.onWakeTimer)
	} else {
		b.wakeTimer.Reset(time.Until(next))
	}
}

func (b *Broker) onWakeTimer() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	now := time.Now()
	for len(b.wakeTimes) > 0 && !b.wakeTimes[0].After(now) {
		b.wakeTimes.pop()
	}
	b.wakeAt = time.Time{}
	b.armLocked()
	b.mu.Unlock()
	b.setPromote()
	b.publishWake(true)
}

// wakeAfterAck wakes workers now and twice more shortly after: acks and
// naks are processed by the server asynchronously, so a worker woken at
// once may claim before the server has made the task available again.
func (b *Broker) wakeAfterAck() {
	b.publishWake(false)
	now := time.Now()
	b.wakeLater(now.Add(3 * time.Millisecond))
	b.wakeLater(now.Add(30 * time.Millisecond))
}

type timeHeap []time.Time

func (h *timeHeap) push(t time.Time) {
	*h = append(*h, t)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].Before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *timeHeap) pop() {
	s := *h
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].Before(s[m]) {
			m = l
		}
		if r < n && s[r].Before(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
}

// ---- batch state ----

func (b *Broker) batchRecord(ctx context.Context, id string) (*batchRecord, uint64, error) {
	m, err := b.state.GetLastMsgForSubject(ctx, b.batchSubj(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, fmt.Errorf("batch %s: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	var r batchRecord
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, 0, fmt.Errorf("batch %s: bad state record: %v", id, err)
	}
	return &r, m.Sequence, nil
}

// canceled returns the channel closed when batch id is cancelled, and the
// batch's size: 0 if the batch is gone, -1 if its record could not be read
// now and the size is not known from before. On the batch's first use it
// reads the batch record from the stream leader, so that a broker's first
// claim of a batch after Cancel returned never starts a task of it; later
// claims rely on the cancel notice, which Cancel flushes before it returns,
// and read the record again when a notice may have been missed
// (checkNotices) or the last read failed.
func (b *Broker) canceled(ctx context.Context, id string) (<-chan struct{}, int) {
	now := time.Now()
	b.mu.Lock()
	bi := b.batches[id]
	if bi != nil && !bi.recheck {
		bi.used = now
		size := bi.size
		b.mu.Unlock()
		return bi.canceled, size
	}
	if bi == nil {
		// Registered before the lookup, so a cancel notice arriving
		// meanwhile is not missed.
		bi = b.addBatchLocked(id, now)
	}
	bi.recheck = false
	b.mu.Unlock()
	r, _, err := b.batchRecord(ctx, id)
	if err != nil {
		// Read again on the next claim, unless the batch is gone; the size
		// known from before still serves (it does not change).
		if errors.Is(err, queue.ErrNotFound) {
			return bi.canceled, 0
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		bi.recheck = true
		if bi.size == 0 {
			return bi.canceled, -1
		}
		return bi.canceled, bi.size
	}
	b.mu.Lock()
	bi.size = r.Size
	b.mu.Unlock()
	if r.Canceled {
		b.markCanceled(id)
	}
	return bi.canceled, r.Size
}

// checkNotices has the batches not known cancelled read their records again
// on their next claim when cancel notices may have been missed: the
// connection was re-established, or the notices' subscription dropped one.
func (b *Broker) checkNotices() {
	rc := b.nc.Stats().Reconnects
	dropped, err := b.csub.Dropped()
	if err == nil && rc == b.noticeRC.Load() && int64(dropped) == b.noticeDrop.Load() {
		return
	}
	if rc != b.noticeRC.Load() {
		// The server may have restarted and forgotten deliveries.
		b.suspectFor()
	}
	b.noticeRC.Store(rc)
	b.noticeDrop.Store(int64(dropped))
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bi := range b.batches {
		if !bi.done {
			bi.recheck = true
		}
	}
}

// batchMemory is how long the cancellation state of a batch is kept after
// its last use or notice.
const batchMemory = 10 * time.Minute

// addBatchLocked adds batch id to b.batches, first forgetting the batches
// unused for batchMemory when the map has doubled since it last did.
func (b *Broker) addBatchLocked(id string, now time.Time) *binfo {
	if len(b.batches) >= b.pruneAt {
		for k, v := range b.batches {
			if now.Sub(v.used) > batchMemory {
				delete(b.batches, k)
			}
		}
		b.pruneAt = max(1<<14, 2*len(b.batches))
	}
	bi := &binfo{canceled: make(chan struct{}), used: now}
	b.batches[id] = bi
	return bi
}

// markCanceled records that batch id is cancelled, whether or not this
// broker has seen it yet, and closes its Canceled channel.
func (b *Broker) markCanceled(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bi := b.batches[id]
	if bi == nil {
		bi = b.addBatchLocked(id, time.Now())
	}
	if !bi.done {
		bi.done = true
		close(bi.canceled)
	}
}

func (b *Broker) onCancel(m *nats.Msg) { b.markCanceled(string(m.Data)) }

// isWrongLastSeq reports a failed first-write-wins publish.
func isWrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

func isFull(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		d := ae.Description
		return strings.Contains(d, "maximum messages exceeded") || strings.Contains(d, "maximum bytes exceeded")
	}
	return false
}

var _ interface {
	queue.Broker
	queue.DeadLetterer
	queue.Stats
} = (*Broker)(nil)

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
