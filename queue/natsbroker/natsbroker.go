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
	// DefaultStateMaxBytes and DefaultStateMaxMsgs cap the state stream:
	// the state of about 3 million tasks run alone (about 320 bytes and
	// two messages each) or 29 million in batches of 1,000 (about 37
	// bytes each), outputs of a few bytes (BenchmarkStateBytes).
	DefaultStateMaxBytes = 1 << 30
	DefaultStateMaxMsgs  = 1 << 24
)

// packSpread is how many messages a batch is spread over at least before
// its tasks are packed (Config.PackSize).
const packSpread = 64

// Config configures a Broker. A nil *Config means every default.
//
// The brokers of one prefix share their streams, so the settings stored
// with them must agree between processes: Replicas, Memory, AckWait,
// Retention, StateMaxBytes, StateMaxMsgs, and each queue's bound (MaxDepth,
// QueueMaxDepth). The first process to create a stream records its
// settings; a later process that leaves a setting at its zero value takes
// the recorded one, and one that sets it to another value gets an error
// wrapping queue.ErrBadConfig naming both values (from New, or for a queue
// first used later, from the call that first uses it). A later process
// therefore never weakens a bound another one set. To change a recorded
// setting, edit the stream (the nats CLI's "stream edit": the stream's
// field, or the metadata key gather.ack_wait of "<prefix>_state" or
// gather.max_depth of "<prefix>_q_<queue>") or use another prefix.
type Config struct {
	// Prefix names the broker's streams ("<prefix>_q_<queue>", "<prefix>_qd_<queue>",
	// "<prefix>_state") and subjects ("<prefix>.>"), so that several
	// deployments can share one NATS account. Letters, digits, '-' and '_',
	// at most 32 bytes. Default DefaultPrefix.
	Prefix string
	// Replicas is the replication factor of every stream: 1 for a single
	// server, 3 for a cluster (R3). Default 1, or the prefix's recorded one.
	Replicas int
	// Memory keeps the streams in memory instead of files: faster, and lost
	// when the server stops. Default false (file store), or the prefix's
	// recorded storage.
	Memory bool
	// AckWait is how long the server waits for a claimed task's heartbeat
	// before delivering it again: the lease that survives the claiming
	// process. Shorter leases asked of Claim are enforced by the claiming
	// process (and fall back to AckWait if it dies); longer ones are capped
	// at AckWait (Delivery.Expires says so), and a queue.Worker refuses a
	// longer WorkerConfig.Lease and lowers its default to AckWait (the
	// broker implements queue.Limiter). At least 10 ms. Default
	// DefaultAckWait, which is the worker's default lease, or the prefix's
	// recorded one.
	AckWait time.Duration
	// MaxDepth bounds the tasks of one queue that wait or are leased, and
	// apart those that are delayed: Enqueue returns queue.ErrQueueFull
	// beyond it, and a delayed task that comes due while the queue is full
	// waits for a place. The server keeps
	// the bound per message, so a queue with a bound set here or in
	// QueueMaxDepth stores each task in a message of its own; on the others
	// DefaultMaxDepth bounds messages, which may carry PackSize tasks each.
	// A queue's bound is recorded with its stream by the first process
	// that uses it: unset here, a queue takes the recorded bound; set, it
	// must equal it.
	MaxDepth int
	// QueueMaxDepth overrides MaxDepth for the named queues. New sets their
	// streams up, so that a disagreement shows at once.
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
	// letters are kept, at least a second. Default DefaultRetention, or the
	// prefix's recorded one.
	Retention time.Duration
	// StateMaxBytes and StateMaxMsgs cap the state stream, which holds for
	// Retention the record of every batch and its results (about 320 bytes
	// per task run alone, 37 per task in batches of 1,000, plus the
	// outputs: 306 and 35 MiB per million tasks; BenchmarkStateBytes),
	// the errors of failed attempts, idempotency keys and dead letters.
	// When a cap is reached, the oldest messages go first, as if their
	// Retention had passed: the state of the oldest batches, finished or
	// not, then that of newer ones. A batch whose record is gone (it is
	// its first message) cannot be attached, awaited anew or cancelled
	// (queue.ErrNotFound); its tasks still run, and awaits already
	// following it keep what they have read. Size the caps for the state
	// of every batch still awaited. The server reserves the byte cap out
	// of its JetStream storage (memory, with Memory) when it creates the
	// stream, and refuses a stream whose cap does not fit what is left:
	// lower the cap, or make it negative, where the server's or account's
	// JetStream limits are small or many prefixes share one server.
	// Defaults DefaultStateMaxBytes and DefaultStateMaxMsgs, or the
	// prefix's recorded ones; negative means no cap.
	StateMaxBytes int64
	StateMaxMsgs  int64
	// IdleRecheck is the longest an idle worker sleeps before claiming
	// again, which bounds how late it sees work whose wake-up it could not
	// be told about: a delay or retry that another process scheduled and
	// did not live to announce, a lease of a crashed worker expiring. Every
	// other wake-up is pushed. At least a millisecond; default
	// DefaultIdleRecheck.
	IdleRecheck time.Duration
	// Logger receives what the broker cannot return: bad wire data it
	// dead-lettered, wake-ups it failed to publish. Default: discard.
	Logger *slog.Logger
}

// Broker is a queue.Broker on NATS JetStream. It implements
// queue.DeadLetterer, queue.Stats and queue.Inspector too. It is safe for concurrent use. It
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
	stateMaxB int64
	stateMaxM int64
	recheck   time.Duration
	pack      int
	bounded   bool // Config.MaxDepth was set
	log       *slog.Logger
	set       setFlags // the settings Config gave, which must agree with the recorded ones

	state     jetstream.Stream
	stateName string
	wakeSubj  string
	cancSubj  string
	subs      []*nats.Subscription
	pull      *puller
	// csub is the cancel notices' subscription; noticeRC and noticeDrop
	// are the connection's reconnects and the subscriptions' dropped
	// messages when last checked (see checkNotices). nsub is a second
	// subscription to them, on the channel nch, that claims drain (see
	// drainNotices).
	csub *nats.Subscription
	nsub *nats.Subscription
	nch  chan *nats.Msg
	nmu  sync.Mutex // held while notices taken from nch are marked
	// Batches a first claim need not read the record of (see trusted):
	// sinceOn when the broker runs on one server; sinceSeq is the state
	// stream's last sequence read after the notices' subscriptions were
	// made, sinceStale set when notices may have been missed since.
	// stateSeen is the highest state stream sequence this broker saw
	// stored, which Enqueue sends with a batch's tasks.
	sinceOn    bool
	sinceSeq   atomic.Uint64
	sinceStale atomic.Bool
	sinceMu    sync.Mutex // serialises re-reading sinceSeq
	stateSeen  atomic.Uint64
	noticeRC   atomic.Uint64
	noticeDrop atomic.Int64
	// Batch records read ahead (see readAhead): replies come to
	// "<ainbox>.<token>"; aheads are the reads pending, by token, and
	// getSubj is the state stream's message-get API subject.
	ainbox  string
	getSubj string
	aheads  map[string]*binfo
	aseq    uint64
	serving bool // Notify was called: a worker uses the broker; guarded by mu

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

	progress progressCache // what Inspector read of batches' results (see inspect.go)
	ctl      *controls     // paused queues (see pause.go)
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
	// ahead is closed when a read of the record made ahead of the first
	// claim (see readAhead) has ended; nil if none was made. aheadTok
	// names the read while it is pending.
	ahead    chan struct{}
	aheadTok string
	done     bool
	used     time.Time
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

// New returns a Broker on js, creating its state stream and the streams of
// the default queue and of the queues in Config.QueueMaxDepth if needed
// (other queue streams are created on first use). It returns an error
// wrapping queue.ErrBadConfig listing every problem of cfg, or naming both
// values of a setting cfg gives that differs from the one recorded for the
// prefix (see Config). js's connection must stay open while the broker is
// used.
func New(ctx context.Context, js jetstream.JetStream, cfg *Config) (*Broker, error) {
	if js == nil {
		return nil, fmt.Errorf("natsbroker: New with a nil JetStream: %w", queue.ErrBadConfig)
	}
	b := &Broker{
		js: js, nc: js.Conn(), prefix: DefaultPrefix, replicas: 1, storage: jetstream.FileStorage,
		ackWait: DefaultAckWait, maxDepth: DefaultMaxDepth, retention: DefaultRetention,
		stateMaxB: DefaultStateMaxBytes, stateMaxM: DefaultStateMaxMsgs, recheck: DefaultIdleRecheck, pack: DefaultPackSize, log: slog.New(slog.DiscardHandler),
		queues: map[string]*bqueue{}, batches: map[string]*binfo{}, pruneAt: 1 << 14,
		fsubs: map[string]map[*subscription]struct{}{}, pre: map[string]*subscription{},
	}
	if cfg != nil {
		var errs []error
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("natsbroker: %w: "+format, append([]any{queue.ErrBadConfig}, args...)...))
		}
		if cfg.Prefix != "" {
			if tok(cfg.Prefix) != cfg.Prefix || len(cfg.Prefix) > maxPrefix {
				bad("Config.Prefix %q: want letters, digits, '-' and '_' only, at most %d bytes", clip(cfg.Prefix), maxPrefix)
			}
			b.prefix = cfg.Prefix
		}
		switch {
		case cfg.Replicas < 0 || cfg.Replicas > 5:
			bad("Config.Replicas is %d: want 0 (default 1) to 5", cfg.Replicas)
		case cfg.Replicas > 0:
			b.replicas, b.set.replicas = cfg.Replicas, true
		}
		if cfg.Memory {
			b.storage, b.set.memory = jetstream.MemoryStorage, true
		}
		for _, d := range []struct {
			name string
			v    time.Duration
			dst  *time.Duration
			set  *bool
		}{{"AckWait", cfg.AckWait, &b.ackWait, &b.set.ackWait}, {"Retention", cfg.Retention, &b.retention, &b.set.retention},
			{"IdleRecheck", cfg.IdleRecheck, &b.recheck, new(bool)}} {
			switch {
			case d.v < 0:
				bad("Config.%s is %v: want 0 (default %v) or more", d.name, d.v, *d.dst)
			case d.v > 0:
				*d.dst, *d.set = d.v, true
			}
		}
		for _, d := range []struct {
			name       string
			v, def, lo time.Duration
		}{{"AckWait", cfg.AckWait, DefaultAckWait, minAckWait}, {"Retention", cfg.Retention, DefaultRetention, minRetention},
			{"IdleRecheck", cfg.IdleRecheck, DefaultIdleRecheck, minIdleRecheck}} {
			if d.v > 0 && d.v < d.lo {
				bad("Config.%s is %v: want 0 (default %v) or at least %v", d.name, d.v, d.def, d.lo)
			}
		}
		for _, c := range []struct {
			name string
			v    int64
			dst  *int64
			set  *bool
		}{{"StateMaxBytes", cfg.StateMaxBytes, &b.stateMaxB, &b.set.stateMaxB}, {"StateMaxMsgs", cfg.StateMaxMsgs, &b.stateMaxM, &b.set.stateMaxM}} {
			switch {
			case c.v < 0:
				*c.dst, *c.set = -1, true
			case c.v > 0:
				*c.dst, *c.set = c.v, true
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
				bad("Config.QueueMaxDepth[%q] is %d: want at least 1", clip(name), n)
			}
			if err := b.CheckQueue(name); err != nil {
				bad("Config.QueueMaxDepth: %v", err)
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
	st, err := b.setupState(ctx)
	if err != nil {
		return nil, err
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
	b.pull = newPuller(js)
	b.ainbox, b.getSubj, b.aheads = b.nc.NewInbox(), b.pull.api+"STREAM.MSG.GET."+b.stateName, map[string]*binfo{}
	as, err := b.nc.Subscribe(b.ainbox+".*", b.onAhead)
	if err != nil {
		_ = ws.Unsubscribe()
		_ = cs.Unsubscribe()
		return nil, fmt.Errorf("natsbroker: subscribing to batch record replies: %w", err)
	}
	b.nch = make(chan *nats.Msg, noticeBuffer)
	ns, err := b.nc.ChanSubscribe(b.cancSubj, b.nch)
	if err != nil {
		_ = ws.Unsubscribe()
		_ = cs.Unsubscribe()
		_ = as.Unsubscribe()
		return nil, fmt.Errorf("natsbroker: subscribing to %s: %w", b.cancSubj, err)
	}
	b.subs = []*nats.Subscription{ws, cs, as, ns}
	b.csub, b.nsub = cs, ns
	b.noticeRC.Store(b.nc.Stats().Reconnects)
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
	b.seen(st.CachedInfo().State.LastSeq)
	// On one server (no cluster, no JetStream domain) the notices'
	// subscriptions are in place once flushed: a cancel stored after the
	// state stream's sequence read now is told to this broker.
	b.sinceOn = b.nc.ConnectedClusterName() == "" && b.pull.api == jetstream.DefaultAPIPrefix
	if b.sinceOn {
		b.sinceStale.Store(true)
		b.resyncSince(ctx)
	}

	if b.ctl, err = b.startControls(ctx); err != nil {
		b.Close()
		return nil, err
	}

	// The default queue is made now, so its first enqueue and claim do not
	// wait for a stream and five consumers to be created; the bounded ones
	// too, so that a bound that disagrees with the recorded one shows now.
	names := []string{queue.DefaultQueue}
	for name := range b.qdepth {
		if name != queue.DefaultQueue {
			names = append(names, name)
		}
	}
	for _, name := range names {
		if _, err := b.queue(ctx, name); err != nil {
			b.Close()
			return nil, err
		}
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
	b.dropAheadsLocked()
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
	b.ctl.close()
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
// unknown queue, or a name CheckQueue refuses, has depth zero; Depth never
// creates a queue's streams.
func (b *Broker) Depth(ctx context.Context, name string) ([queue.NumPriorities]int, error) {
	var d [queue.NumPriorities]int
	b.mu.Lock()
	closed, q := b.closed, b.queues[name]
	b.mu.Unlock()
	if closed {
		return d, errClosed
	}
	if b.CheckQueue(name) != nil {
		return d, nil // no queue has that name
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
	if err := b.CheckQueue(name); err != nil {
		return nil, err
	}
	b.qmu.Lock()
	defer b.qmu.Unlock()
	b.mu.Lock()
	q = b.queues[name]
	b.mu.Unlock()
	if q != nil {
		return q, nil
	}
	q = &bqueue{name: name, tok: tok(name)}
	q.promote.Store(true)
	if err := b.setupQueue(ctx, q); err != nil {
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
	var wg sync.WaitGroup
	errs := make([]error, queue.NumPriorities+1)
	for l := range queue.NumPriorities {
		one, name := b.levelSubj(q, queue.Priority(l), 1), "L"+strconv.Itoa(l)
		q.next[l] = b.pull.nextSubj(b.prefix+"_q_"+q.tok, name)
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
	b.serving = true
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
	// 'l': tasks enqueued or moved ("l", level, queue); 'e': a batch
	// enqueued ("e", level, the queue's length in two bytes, queue, batch
	// ID); 'w': a retry or an expired lease; 'p': delayed tasks may be due.
	if len(m.Data) > 0 && m.Data[0] == 'p' {
		b.setPromote()
	}
	qname, batch, level := "", "", -1
	switch d := m.Data; {
	case len(d) > 2 && d[0] == 'l':
		qname, level = string(d[2:]), int(d[1])
	case len(d) > 4 && d[0] == 'e':
		if n := int(d[2])<<8 | int(d[3]); len(d) > 4+n {
			qname, batch, level = string(d[4:4+n]), string(d[4+n:]), int(d[1])
		}
	}
	if level >= 0 {
		b.mu.Lock()
		if q := b.queues[qname]; q != nil && level < queue.NumPriorities {
			q.lastEnq[level].Store(time.Now().UnixNano())
			q.maybe(level)
		}
		b.mu.Unlock()
		if batch != "" {
			b.readAhead(batch)
		}
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

// publishEnqueueWake is publishLevelWake for a batch just enqueued: the
// wake-up names the batch too, so that idle workers read its record while
// they claim its tasks (see readAhead).
func (b *Broker) publishEnqueueWake(q *bqueue, l queue.Priority, batch string) {
	if len(q.name) > 0xffff {
		b.publishLevelWake(q, l)
		return
	}
	q.lastEnq[l].Store(time.Now().UnixNano())
	q.maybe(int(l))
	data := make([]byte, 0, 4+len(q.name)+len(batch))
	data = append(data, 'e', byte(l), byte(len(q.name)>>8), byte(len(q.name)))
	data = append(append(data, q.name...), batch...)
	if err := b.nc.Publish(b.wakeSubj, data); err != nil {
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

// batchRecord reads batch id's record. An ID too long to be a batch's is
// not found without asking the server; a record whose fields are out of
// range (a size outside 1 to queue.MaxBatch: a forged or damaged one) is
// an error, so that no reader sizes anything by it.
func (b *Broker) batchRecord(ctx context.Context, id string) (*batchRecord, uint64, error) {
	if err := checkID(id); err != nil {
		return nil, 0, err
	}
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
	switch {
	case r.Size < 1 || r.Size > queue.MaxBatch:
		return nil, 0, fmt.Errorf("batch %s: bad state record: size %d out of range [1, %d]", id, r.Size, queue.MaxBatch)
	case r.Kind == "" || r.Queue == "":
		return nil, 0, fmt.Errorf("batch %s: bad state record: no kind or queue", id)
	}
	return &r, m.Sequence, nil
}

// canceled returns the channel closed when batch id is cancelled, and the
// batch's size (0 if unknown); hdr is the hdrBatch header of the claimed
// message. On the batch's first use it reads the batch record from the
// stream leader (or waits for the read that the batch's enqueue wake-up
// started, see readAhead), unless the batch cannot have been cancelled
// before this broker subscribed to cancel notices (see trusted), so that a
// broker's first claim of a batch after Cancel returned never starts a task
// of it; a Cancel after that is told by its notice, which Cancel flushes
// before it returns and the claim drains first (drainNotices). The record
// is read again when a notice may have been missed (checkNotices).
func (b *Broker) canceled(ctx context.Context, id, hdr string) (<-chan struct{}, int) {
	now := time.Now()
	b.mu.Lock()
	bi := b.batches[id]
	if bi == nil {
		b.mu.Unlock()
		size, ok := b.trusted(ctx, hdr)
		b.mu.Lock()
		if bi = b.batches[id]; bi == nil && ok {
			bi = b.addBatchLocked(id, now)
			bi.size = size
			b.mu.Unlock()
			return bi.canceled, size
		}
	}
	if bi != nil && !bi.recheck && bi.ahead != nil && bi.aheadTok != "" {
		// Its record is being read ahead: wait for that read.
		ahead := bi.ahead
		b.mu.Unlock()
		b.awaitAhead(ctx, bi, ahead)
		b.mu.Lock()
	}
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
		return bi.canceled, 0
	}
	b.mu.Lock()
	bi.size = r.Size
	b.mu.Unlock()
	if r.Canceled {
		b.markCanceled(id)
	}
	return bi.canceled, r.Size
}

// aheadMax bounds the batch records being read ahead at once.
const aheadMax = 64

// readAhead starts reading the record of batch id, announced by an
// enqueue's wake-up, when this broker serves a worker (Notify was called),
// the batch is new to it, and its first claim will read the record (on a
// cluster; see trusted): the read is then under way while the worker's
// claim fetches the batch's first tasks, rather than after it (see
// canceled). Every worker's broker reads the record of every batch once (one
// request each, as its first claim of the batch would), whether or not it
// claims a task of it. Like the read a first claim makes, it starts after
// the cancel notices' subscriptions were made, so a Cancel it does not see
// is announced to this broker. The reply comes to the broker's reply
// subscription (onAhead); a claim waits for it at most readTimeout, and
// reads the record itself when the read failed.
func (b *Broker) readAhead(id string) {
	b.mu.Lock()
	if b.closed || !b.serving || b.sinceOn || b.batches[id] != nil || len(b.aheads) >= aheadMax {
		b.mu.Unlock()
		return
	}
	// Registered before the read, so a cancel notice arriving meanwhile
	// is not missed.
	bi := b.addBatchLocked(id, time.Now())
	b.aseq++
	bi.ahead, bi.aheadTok = make(chan struct{}), strconv.FormatUint(b.aseq, 36)
	b.aheads[bi.aheadTok] = bi
	tok := bi.aheadTok
	b.mu.Unlock()
	req := append(append([]byte(`{"last_by_subj":"`), b.batchSubj(id)...), `"}`...)
	if err := b.nc.PublishRequest(b.getSubj, b.ainbox+"."+tok, req); err != nil {
		b.endAhead(tok, nil)
	}
}

// onAhead takes the reply to a read made by readAhead.
func (b *Broker) onAhead(m *nats.Msg) {
	var resp struct {
		Error   *json.RawMessage `json:"error"`
		Message *struct {
			Data []byte `json:"data"`
		} `json:"message"`
	}
	var rec *batchRecord
	if json.Unmarshal(m.Data, &resp) == nil && resp.Error == nil && resp.Message != nil {
		var r batchRecord
		if json.Unmarshal(resp.Message.Data, &r) == nil {
			rec = &r
		}
	}
	b.endAhead(strings.TrimPrefix(m.Subject, b.ainbox+"."), rec)
}

// endAhead ends the read ahead named tok with the record read, or nil when
// the read failed (not found yet, an error, no reply): the batch's claim
// then reads it itself.
func (b *Broker) endAhead(tok string, r *batchRecord) {
	b.mu.Lock()
	bi := b.aheads[tok]
	if bi == nil {
		b.mu.Unlock()
		return
	}
	delete(b.aheads, tok)
	bi.aheadTok = ""
	if r == nil {
		bi.recheck = true
	} else {
		bi.size = r.Size
	}
	canceled := r != nil && r.Canceled && !bi.done
	if canceled {
		bi.done = true
		close(bi.canceled)
	}
	close(bi.ahead)
	b.mu.Unlock()
}

// awaitAhead waits for the read ahead of bi's record, at most readTimeout or
// until ctx ends; a read not ended then is given up.
func (b *Broker) awaitAhead(ctx context.Context, bi *binfo, ahead chan struct{}) {
	t := time.NewTimer(b.readTimeout())
	defer t.Stop()
	select {
	case <-ahead:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	b.mu.Lock()
	tok := bi.aheadTok
	b.mu.Unlock()
	b.endAhead(tok, nil)
}

// noticeBuffer is how many cancel notices wait for a claim to drain them
// (drainNotices); one that comes when the buffer is full is dropped, which
// checkNotices notices: the batches then read their records again.
const noticeBuffer = 256

// drainNotices takes the cancel notices that came before it, on the
// connection, and then checks for missed ones (checkNotices). A claim calls
// it once its pull requests are answered: the notice of a Cancel that
// returned before the server answered came before the answer (the server
// sends a connection's messages in order, and the client hands each to its
// subscription's channel as it reads it), so the claim sees that batch
// cancelled however late the notices' callback (onCancel) runs.
func (b *Broker) drainNotices() {
	b.nmu.Lock()
	for {
		select {
		case m := <-b.nch:
			b.markCanceled(string(m.Data))
			continue
		default:
		}
		break
	}
	b.nmu.Unlock()
	b.checkNotices()
}

// checkNotices has the batches not known cancelled read their records again
// on their next claim when cancel notices may have been missed: the
// connection was re-established, or a notices' subscription dropped one.
func (b *Broker) checkNotices() {
	rc := b.nc.Stats().Reconnects
	dropped, err := b.csub.Dropped()
	if n, nerr := b.nsub.Dropped(); nerr == nil {
		dropped += n
	} else {
		err = nerr
	}
	if err == nil && rc == b.noticeRC.Load() && int64(dropped) == b.noticeDrop.Load() {
		return
	}
	b.noticeRC.Store(rc)
	b.noticeDrop.Store(int64(dropped))
	b.sinceStale.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bi := range b.batches {
		if !bi.done {
			bi.recheck = true
		}
	}
	b.dropAheadsLocked() // their replies may be lost with the connection
}

// dropAheadsLocked gives up every read ahead still pending: a claim
// waiting for one reads the record itself. b.mu is held.
func (b *Broker) dropAheadsLocked() {
	for k, bi := range b.aheads {
		delete(b.aheads, k)
		bi.recheck, bi.aheadTok = true, ""
		close(bi.ahead)
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

// onCancel marks a noticed batch cancelled, and drains the claims' channel
// of notices, so that it does not fill while no claim comes.
func (b *Broker) onCancel(m *nats.Msg) {
	b.markCanceled(string(m.Data))
	b.drainNotices()
}

// seen records that the state stream stored sequence seq.
func (b *Broker) seen(seq uint64) {
	for {
		old := b.stateSeen.Load()
		if seq <= old || b.stateSeen.CompareAndSwap(old, seq) {
			return
		}
	}
}

// hdrBatch is the header Enqueue puts on a batch's task messages: "<size>
// <sequence>", the batch's size and the highest state stream sequence the
// enqueuing broker had seen stored before it stored the batch record.
const hdrBatch = "Gather-Batch"

// batchHeader is hdrBatch's value for a batch of n tasks enqueued now.
func (b *Broker) batchHeader(n int) string {
	return strconv.Itoa(n) + " " + strconv.FormatUint(b.stateSeen.Load(), 10)
}

// trusted reports whether a first claim of a batch whose task message
// carries hdrBatch value h can skip reading the batch record, and the
// batch's size from h. The record was stored after the sequence h names;
// when that is at or after sinceSeq, so is any cancel of the batch, and
// the cancel's notice, published after, comes to this broker's
// subscriptions, made before sinceSeq was read, and before any claim that
// starts after the Cancel returned is answered (see drainNotices). Not on a
// cluster, where a subscription reaches the other servers a moment later,
// and not while notices may have been missed (sinceStale: sinceSeq is read
// again first).
func (b *Broker) trusted(ctx context.Context, h string) (int, bool) {
	if !b.sinceOn || h == "" {
		return 0, false
	}
	sz, sq, ok := strings.Cut(h, " ")
	if !ok {
		return 0, false
	}
	size, err := strconv.Atoi(sz)
	if err != nil || size < 1 {
		return 0, false
	}
	seq, err := strconv.ParseUint(sq, 10, 64)
	if err != nil {
		return 0, false
	}
	if b.sinceStale.Load() && !b.resyncSince(ctx) {
		return 0, false
	}
	return size, seq >= b.sinceSeq.Load()
}

// resyncSince reads sinceSeq again after notices may have been missed (see
// checkNotices), and reports whether it is current.
func (b *Broker) resyncSince(ctx context.Context) bool {
	b.sinceMu.Lock()
	defer b.sinceMu.Unlock()
	if !b.sinceStale.Load() {
		return true
	}
	b.checkNotices() // what was missed so far is accounted for before the read
	info, err := b.state.Info(ctx)
	if err != nil {
		return false
	}
	b.sinceSeq.Store(info.State.LastSeq)
	b.seen(info.State.LastSeq)
	b.sinceStale.Store(false)
	return true
}

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
	queue.Inspector
} = (*Broker)(nil)

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
