package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"
)

// GlobalLimit caps how many tasks of a queue, or of one kind in it, run at
// once across every worker of every process that shares the broker: at
// most 4 calls to a partner's API, say. Every worker that runs such tasks
// must be given the same limits (a worker without them does not count).
// The count is kept by the broker in slots, each leased as tasks are (see
// WorkerConfig.Lease): a worker that dies gives its slots back when their
// lease runs out.
type GlobalLimit struct {
	// Queue is the queue limited; required.
	Queue string
	// Kind, when set, limits the tasks of that kind in Queue only; empty
	// limits every task of Queue.
	Kind string
	// Max is how many may run at once; at least 1.
	Max int
}

// SlotName is the name of the limit's slots in the broker's Semaphore,
// the same in every process: "q:<queue>", or "k:<kind>@<queue>".
func (l GlobalLimit) SlotName() string { return l.name() }

func (l GlobalLimit) name() string {
	if l.Kind == "" {
		return "q:" + l.Queue
	}
	return "k:" + l.Kind + "@" + l.Queue
}

// Semaphore is the optional interface of brokers that keep counted slots
// for every worker, which WorkerConfig.GlobalLimits needs. A slot is named
// (the same name in every process counts against the same Max) and leased:
// a slot not extended within its lease is free again. Tokens are the
// broker's; callers pass back the last one they got.
type Semaphore interface {
	// AcquireSlot takes one of max slots called name for lease and returns
	// its token, or "" when max are held already (a refusal, which
	// changes what SlotRefusals returns). It does not block.
	AcquireSlot(ctx context.Context, name string, max int, lease time.Duration) (token string, err error)
	// ExtendSlot renews the slot for lease from now and returns its new
	// token. It returns an error wrapping ErrNotFound when the slot was
	// lost (its lease ran out, and it may have been taken).
	ExtendSlot(ctx context.Context, name, token string, lease time.Duration) (string, error)
	// ReleaseSlot frees the slot; releasing a lost one does nothing.
	ReleaseSlot(ctx context.Context, name, token string) error
	// SlotRefusals returns a number that changes whenever AcquireSlot of
	// name is refused, in any process (a broker may let a few refusals
	// in quick succession count as one): a worker that keeps its slots
	// across tasks gives one up when it changed, because someone waits.
	SlotRefusals(ctx context.Context, name string) (uint64, error)
}

// MaxGlobalLimits is the most GlobalLimits a WorkerConfig holds: a task
// checks every one that matches it.
const MaxGlobalLimits = 64

// slotPoll bounds how long a runner waiting for a global slot sleeps before
// asking again (less when the lease is short, and at once when a runner of
// the same worker releases one): slots freed by other processes announce
// nothing, so waiting runners ask the broker, each at most about 1/slotPoll
// times a second.
const slotPoll = 20 * time.Millisecond

// checkLimits validates cfg's GlobalLimits against b.
func checkLimits(b Broker, ls []GlobalLimit, bad func(string, ...any)) {
	if len(ls) == 0 {
		return
	}
	if _, ok := b.(Semaphore); !ok {
		bad("WorkerConfig.GlobalLimits needs a broker that keeps slots for every worker: %T does not implement queue.Semaphore (%v)", b, errors.ErrUnsupported)
	}
	if len(ls) > MaxGlobalLimits {
		bad("WorkerConfig.GlobalLimits holds %d limits: want at most %d", len(ls), MaxGlobalLimits)
	}
	seen := map[string]int{}
	for i, l := range ls {
		if l.Queue == "" {
			bad("WorkerConfig.GlobalLimits[%d] has no Queue: want the queue it limits", i)
		}
		if l.Max < 1 {
			bad("WorkerConfig.GlobalLimits[%d] has Max %d: want at least 1", i, l.Max)
		}
		if j, dup := seen[l.name()]; dup {
			bad("WorkerConfig.GlobalLimits[%d] limits queue %q kind %q again (see [%d]): want one limit each", i, l.Queue, l.Kind, j)
		}
		seen[l.name()] = i
	}
}

// slotHold is how long a runner keeps global slots across its claims
// before it asks whether anyone was refused one meanwhile (see keepSlots);
// slotYield is how long it then leaves the slot for them: two of the
// longest polls of a waiting runner (see waitSlot), so that a waiter late
// for one asks again in time. The slot is not idle meanwhile: a waiter
// takes it at its next poll; only the yielding runner waits.
const (
	slotHold  = 250 * time.Millisecond
	slotYield = 2 * slotPoll
)

// heldSlot is a global slot a runner holds.
type heldSlot struct {
	name, token string
	lim         int       // index in Worker.limits
	since       time.Time // taken, or last found not wanted
}

// takeSlots acquires the global slots that d needs, keeping those the
// runner holds already. While one is not to be had it gives back every slot
// it holds (so that no two runners hold what the other waits for) and
// waits. It reports false when the worker stopped meanwhile: d was handed
// back.
func (s *slot) takeSlots(ctx context.Context, d *Delivery) bool {
	w := s.w
	sem := w.b.(Semaphore)
	for {
		ok := true
		yielding := time.Now().Before(s.yieldUntil) // see keepSlots
		for i := range w.limits {
			l := &w.limits[i]
			if l.Queue != d.Queue || l.Kind != "" && l.Kind != d.Kind {
				continue
			}
			name := w.slotNames[i]
			if s.holds(name) {
				continue
			}
			if yielding {
				ok = false
				break
			}
			// Slot calls are broker waits, as Complete calls are: they
			// size claims the same way (see resize), so a limited kind
			// keeps claims large and its slot calls few.
			t0 := time.Now()
			tok, err := sem.AcquireSlot(ctx, name, l.Max, w.lease)
			s.completing += time.Since(t0)
			if err != nil {
				w.log.Error("acquiring a global slot", "limit", name, "err", err)
			}
			if tok == "" {
				ok = false
				break
			}
			s.gmu.Lock()
			s.gslots = append(s.gslots, heldSlot{name: name, token: tok, lim: i, since: time.Now()})
			s.gmu.Unlock()
		}
		if ok {
			return true
		}
		s.dropSlots(ctx)
		s.flush(ctx) // outcomes held for batching go out before a wait
		if !s.waitSlot() {
			if err := w.b.Retry(ctx, d, time.Time{}, nil); err != nil {
				w.log.Error("handing a task back", "task", d.ID(), "err", err)
			}
			return false
		}
	}
}

func (s *slot) holds(name string) bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	for _, h := range s.gslots {
		if h.name == name {
			return true
		}
	}
	return false
}

// waitSlot sleeps until a runner of the worker frees a slot or a poll
// interval passes (jittered, so that waiting processes spread their
// asks); it reports false when the worker stops.
func (s *slot) waitSlot() bool {
	w := s.w
	w.mu.Lock()
	if w.freed == nil {
		w.freed = make(chan struct{})
	}
	freed := w.freed
	w.mu.Unlock()
	poll := min(slotPoll, w.lease/4)
	t := time.NewTimer(poll/2 + rand.N(poll/2+1))
	defer t.Stop()
	select {
	case <-freed:
		return true
	case <-t.C:
		return true
	case <-w.stop:
		return false
	}
}

// dropSlots releases every global slot the runner holds.
func (s *slot) dropSlots(ctx context.Context) {
	s.dropSlotsIf(ctx, func(heldSlot) bool { return true })
}

// dropSlotsIf releases the global slots the runner holds that drop
// reports true for. gmu is held through the release, so that the
// heartbeat never renews a slot with a token the release no longer
// matches.
func (s *slot) dropSlotsIf(ctx context.Context, drop func(heldSlot) bool) {
	w := s.w
	if len(w.limits) == 0 {
		return
	}
	sem := w.b.(Semaphore)
	s.gmu.Lock()
	if len(s.gslots) == 0 {
		s.gmu.Unlock()
		return
	}
	t0 := time.Now()
	kept := s.gslots[:0]
	for _, h := range s.gslots {
		if !drop(h) {
			kept = append(kept, h)
			continue
		}
		if err := sem.ReleaseSlot(ctx, h.name, h.token); err != nil {
			w.log.Warn("releasing a global slot", "limit", h.name, "err", err)
		}
	}
	s.completing += time.Since(t0)
	released := len(kept) < len(s.gslots)
	clear(s.gslots[len(kept):])
	s.gslots = kept
	s.gmu.Unlock()
	if !released {
		return
	}
	w.mu.Lock()
	if w.freed != nil {
		close(w.freed)
		w.freed = nil
	}
	w.mu.Unlock()
}

// trimSlots releases, as group g starts, the global slots held for limits
// that cover none of g's tasks: a runner keeps a slot only while it keeps
// claiming tasks the slot's limit covers.
func (s *slot) trimSlots(ctx context.Context, g []Delivery) {
	if len(s.w.limits) == 0 {
		return
	}
	s.dropSlotsIf(ctx, func(h heldSlot) bool {
		l := &s.w.limits[h.lim]
		for i := range g {
			if g[i].Queue == l.Queue && (l.Kind == "" || l.Kind == g[i].Kind) {
				return false
			}
		}
		return true
	})
}

// keepSlots runs as a group ends: the runner keeps its global slots for
// its next claim, saving a release and an acquire (broker round trips) a
// claim while the limit is not reached. Fairness: a slot held for
// slotHold is checked against the broker's SlotRefusals; when someone
// was refused one since this worker last looked, the runner releases it
// and takes no slot for slotYield, time for every waiting runner to ask
// again (they ask at least every slotPoll). So a process refused a slot
// waits behind a holder that keeps claiming at most about slotHold plus
// the holder's current claim, per holder released before it; one runner
// of each worker gives a slot up per refusal it sees. The slots of a
// group whose report failed, and of a stopping worker, are released.
func (s *slot) keepSlots(ctx context.Context) {
	w := s.w
	if len(w.limits) == 0 {
		return
	}
	if s.failed || w.stopping() {
		s.dropSlots(ctx)
		return
	}
	now := time.Now()
	var due []string
	s.gmu.Lock()
	for _, h := range s.gslots {
		if now.Sub(h.since) >= slotHold {
			due = append(due, h.name)
		}
	}
	s.gmu.Unlock()
	if len(due) == 0 {
		return
	}
	sem := w.b.(Semaphore)
	var give []string
	for _, name := range due {
		t0 := time.Now()
		n, err := sem.SlotRefusals(ctx, name)
		s.completing += time.Since(t0)
		if err != nil {
			w.log.Warn("asking whether a global slot is wanted", "limit", name, "err", err)
		}
		if err != nil || w.refusedSince(name, n) {
			give = append(give, name)
		}
	}
	s.gmu.Lock()
	for i := range s.gslots {
		if slices.Contains(due, s.gslots[i].name) {
			s.gslots[i].since = now
		}
	}
	s.gmu.Unlock()
	if len(give) > 0 {
		s.yieldUntil = now.Add(slotYield)
		s.dropSlotsIf(ctx, func(h heldSlot) bool { return slices.Contains(give, h.name) })
	}
}

// refusedSince reports whether refusals n of slot name differ from those
// the worker saw last, and records n: one runner of the worker acts on
// each change.
func (w *Worker) refusedSince(name string, n uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refusals == nil {
		w.refusals = map[string]uint64{}
	}
	old, ok := w.refusals[name]
	w.refusals[name] = n
	return ok && old != n
}

// extendSlots renews the global slots the runners hold (the heartbeat).
func (w *Worker) extendSlots(ctx context.Context) {
	if len(w.limits) == 0 {
		return
	}
	sem := w.b.(Semaphore)
	for _, s := range w.slots {
		s.gmu.Lock()
		kept := s.gslots[:0]
		for _, h := range s.gslots {
			tok, err := sem.ExtendSlot(ctx, h.name, h.token, w.lease)
			switch {
			case errors.Is(err, ErrNotFound):
				// Lost: it counts for nobody now. The task running
				// under it finishes; the runner's next task of the
				// limit takes a slot again.
				w.log.Warn("a global slot was lost", "limit", h.name, "err", err)
				continue
			case err != nil:
				w.log.Warn("extending a global slot", "limit", h.name, "err", err)
			default:
				h.token = tok
			}
			kept = append(kept, h)
		}
		clear(s.gslots[len(kept):])
		s.gslots = kept
		s.gmu.Unlock()
	}
}
