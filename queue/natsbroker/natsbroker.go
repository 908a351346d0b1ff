package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
	DefaultPackSize    = 64
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
// queue.DeadLetterer, queue.Stats, queue.Inspector and queue.Rechecker
// too. It is safe for concurrent use. It starts no long-lived goroutine of
// its own: timers, NATS subscription callbacks, the results feed (an
// ordered consumer started by the first Subscribe, whose goroutines
// nats.go runs), and now and then a short one that moves a queue's anchor
// (see anchor.go). Close ends that, releases its subscriptions, timers and
// the feed, waiting until the feed has stopped, and makes open
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
	bg        sync.WaitGroup // anchor moves (see anchor.go), which Close ends and waits for
	bgCtx     context.Context
	bgStop    context.CancelFunc
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
	// Idle pulls (see idlePull), and the connection's reconnects when
	// they were last made. Guarded by mu.
	idles  []*idlePull
	idleRC uint64
	// waiters counts the Notify calls whose context has not ended: the
	// workers waiting for work.
	waiters int
	// idleQueues are the queues of the last Notify; idleT makes the idle
	// pulls of levels that were busy then at idleAt (Unix ns; 0: none).
	idleQueues []string
	idleT      *time.Timer
	idleAt     int64
	// idleTasks counts the task messages idle pulls brought.
	idleTasks atomic.Int64
	// listening is set once the wake-ups' subscription is in place (see
	// listenWakes); lmu serialises making it.
	listening atomic.Bool
	lmu       sync.Mutex
	// suspectUntil is when (Unix ns) claims stop checking every message
	// against its batch's outcomes (see suspect).
	suspectUntil atomic.Int64
	// checked is set once the broker kept what it knows of a batch's
	// outcomes (finishedFor): until then a Complete has none to mark.
	checked atomic.Bool

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
	pre     map[string]*subscription
	preq    []string
	preHeld int // bytes the subscriptions in pre hold (see preSubscribe)

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
	b.bgCtx, b.bgStop = context.WithCancel(context.Background())
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
	// and flush so the server has the interest. (The wake-ups are
	// subscribed to by the first claim: see listenWakes.)
	cs, err := b.nc.Subscribe(b.cancSubj, b.onCancel)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribing to %s: %w", b.cancSubj, err)
	}
	b.pull = newPuller(js)
	b.ainbox, b.getSubj, b.aheads = b.nc.NewInbox(), b.pull.api+"STREAM.MSG.GET."+b.stateName, map[string]*binfo{}
	as, err := b.nc.Subscribe(b.ainbox+".*", b.onAhead)
	if err != nil {
		_ = cs.Unsubscribe()
		return nil, fmt.Errorf("natsbroker: subscribing to batch record replies: %w", err)
	}
	b.nch = make(chan *nats.Msg, noticeBuffer)
	ns, err := b.nc.ChanSubscribe(b.cancSubj, b.nch)
	if err != nil {
		_ = cs.Unsubscribe()
		_ = as.Unsubscribe()
		return nil, fmt.Errorf("natsbroker: subscribing to %s: %w", b.cancSubj, err)
	}
	b.subs = []*nats.Subscription{cs, as, ns}
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
	if b.idleT != nil {
		b.idleT.Stop()
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
	b.bgStop()
	b.bg.Wait()
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
