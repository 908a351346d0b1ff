package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// Global slots (queue.Semaphore). Slot i of name is the key
// "slot.<name token>.<i>" of the control bucket, holding the Unix
// nanoseconds its lease ends at; it is free when absent, deleted or past
// that time (a released slot holds 0). Taking one is a create, or a
// compare-and-set on the revision read; extending and releasing are a
// compare-and-set on the revision last written, so two holders never both
// succeed; extending reads the key first (a second round trip, once a
// heartbeat) unless this broker wrote that revision itself, when it knows
// the lease. A broker remembers the slots it released with their
// revisions and takes one of those first, by compare-and-set without a
// read: taking and releasing cost a round trip each while no other process
// wrote the slot since. A token is "<i>/<revision>". Expiry is judged on
// the reader's clock against the writer's: the processes' clocks must
// agree to well within a lease (as NTP keeps them), or a dead worker's
// slot comes back that much later or sooner. AcquireSlot reads up to max
// keys when every slot is held (one round trip each); it starts at a
// random slot, so that processes spread. A refusal writes the key
// "slotwait.<name token>" (at most once per refuseEvery per broker and
// name), whose revision SlotRefusals reads.

var _ queue.Semaphore = (*Broker)(nil)

func slotKey(name string, i int) string { return "slot." + tok(name) + "." + strconv.Itoa(i) }

// AcquireSlot implements queue.Semaphore.
func (b *Broker) AcquireSlot(ctx context.Context, name string, max int, lease time.Duration) (string, error) {
	if max < 1 || lease <= 0 {
		return "", fmt.Errorf("natsbroker: acquire slot %q: %w: max %d, lease %v: want max at least 1 and a positive lease", clip(name), queue.ErrBadInput, max, lease)
	}
	now := time.Now()
	untilNS := now.Add(lease).UnixNano()
	until := []byte(strconv.FormatInt(untilNS, 10))
	for {
		i, rev, ok := b.ctl.freed.pop(name, max)
		if !ok {
			break
		}
		nrev, err := b.ctl.kv.Update(ctx, slotKey(name, i), until, rev)
		switch {
		case err == nil:
			return b.held(name, i, nrev, untilNS), nil
		case !isWrongLastSeq(err):
			return "", fmt.Errorf("natsbroker: acquire slot %q: %w", clip(name), err)
		}
		// Written since it was released here: look at every slot.
	}
	start := rand.IntN(max)
	for k := range max {
		i := (start + k) % max
		key := slotKey(name, i)
		e, err := b.ctl.kv.Get(ctx, key)
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			rev, err = b.ctl.kv.Create(ctx, key, until)
		case err != nil:
			return "", fmt.Errorf("natsbroker: acquire slot %q: %w", clip(name), err)
		case slotLive(e.Value(), now):
			continue
		default:
			rev, err = b.ctl.kv.Update(ctx, key, until, e.Revision())
		}
		switch {
		case err == nil:
			return b.held(name, i, rev, untilNS), nil
		case errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err):
			continue // taken meanwhile
		default:
			return "", fmt.Errorf("natsbroker: acquire slot %q: %w", clip(name), err)
		}
	}
	if err := b.refuseSlot(ctx, name, now); err != nil {
		return "", fmt.Errorf("natsbroker: acquire slot %q: recording the refusal: %w", clip(name), err)
	}
	return "", nil
}

// refuseEvery is how often a broker records refusals of one slot name at
// most: the runners of a worker waiting for a slot ask every few
// milliseconds, and holders look every quarter of a second.
const refuseEvery = 10 * time.Millisecond

func slotWaitKey(name string) string { return "slotwait." + tok(name) }

// refuseSlot records a refusal of slot name at now.
func (b *Broker) refuseSlot(ctx context.Context, name string, now time.Time) error {
	key := slotWaitKey(name)
	m := b.ctl.memo.entry(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.val != 0 && now.UnixNano()-m.val < int64(refuseEvery) {
		return nil
	}
	if _, err := b.ctl.kv.Put(ctx, key, nil); err != nil {
		return err
	}
	m.val = now.UnixNano()
	return nil
}

// SlotRefusals implements queue.Semaphore: the revision of the slot name's
// refusal key, 0 while it has none.
func (b *Broker) SlotRefusals(ctx context.Context, name string) (uint64, error) {
	e, err := b.ctl.kv.Get(ctx, slotWaitKey(name))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("natsbroker: slot refusals of %q: %w", clip(name), err)
	}
	return e.Revision(), nil
}

// slotLive reports whether a slot's value is a lease not ended at now. A
// value that does not parse counts as ended: it is taken over.
func slotLive(v []byte, now time.Time) bool {
	ns, err := strconv.ParseInt(string(v), 10, 64)
	return err == nil && now.UnixNano() < ns
}

func parseSlot(token string) (int, uint64, bool) {
	i, r, ok := strings.Cut(token, "/")
	idx, err1 := strconv.Atoi(i)
	rev, err2 := strconv.ParseUint(r, 10, 64)
	return idx, rev, ok && err1 == nil && err2 == nil && idx >= 0 && rev > 0
}

// ExtendSlot implements queue.Semaphore.
func (b *Broker) ExtendSlot(ctx context.Context, name, token string, lease time.Duration) (string, error) {
	i, rev, ok := parseSlot(token)
	if !ok {
		return "", fmt.Errorf("natsbroker: extend slot %q: %w: token %q: want <index>/<revision> from AcquireSlot", clip(name), queue.ErrBadInput, clip(token))
	}
	// A slot whose lease ran out is lost even when nobody took it since:
	// it counted for nobody meanwhile, and a holder must hear of that.
	// The lease this broker wrote at rev tells without a read.
	now := time.Now()
	lost := fmt.Errorf("natsbroker: extend slot %q: %w: slot %q was lost (its lease ran out, or it was released)", clip(name), queue.ErrNotFound, token)
	key := slotKey(name, i)
	m := b.ctl.memo.entry(key)
	m.mu.Lock()
	known := m.rev == rev && m.rev != 0
	live := known && now.UnixNano() < m.val
	m.mu.Unlock()
	if known && !live {
		return "", lost
	}
	if !known {
		e, err := b.ctl.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return "", lost
		case err != nil:
			return "", fmt.Errorf("natsbroker: extend slot %q: %w", clip(name), err)
		case e.Revision() != rev || !slotLive(e.Value(), now):
			return "", lost
		}
	}
	untilNS := now.Add(lease).UnixNano()
	nrev, err := b.ctl.kv.Update(ctx, key, []byte(strconv.FormatInt(untilNS, 10)), rev)
	switch {
	case err == nil:
		return b.held(name, i, nrev, untilNS), nil
	case isWrongLastSeq(err):
		return "", lost
	default:
		return "", fmt.Errorf("natsbroker: extend slot %q: %w", clip(name), err)
	}
}

// held remembers that the broker wrote slot i of name at rev with a lease
// until (Unix nanoseconds), and returns the slot's token.
func (b *Broker) held(name string, i int, rev uint64, until int64) string {
	m := b.ctl.memo.entry(slotKey(name, i))
	m.mu.Lock()
	m.rev, m.val = rev, until
	m.mu.Unlock()
	return strconv.Itoa(i) + "/" + strconv.FormatUint(rev, 10)
}

// ReleaseSlot implements queue.Semaphore.
func (b *Broker) ReleaseSlot(ctx context.Context, name, token string) error {
	i, rev, ok := parseSlot(token)
	if !ok {
		return fmt.Errorf("natsbroker: release slot %q: %w: token %q: want <index>/<revision> from AcquireSlot", clip(name), queue.ErrBadInput, clip(token))
	}
	nrev, err := b.ctl.kv.Update(ctx, slotKey(name, i), []byte("0"), rev)
	switch {
	case err == nil:
		b.ctl.freed.push(name, i, nrev)
	case !isWrongLastSeq(err): // wrong revision: lost, nothing to do
		return fmt.Errorf("natsbroker: release slot %q: %w", clip(name), err)
	}
	return nil
}

// freedSlots are the slots a broker released, with the revisions it
// wrote: by slot name, most recent last.
type freedSlots struct {
	mu sync.Mutex
	m  map[string][]freedSlot
	n  int // entries in m
}

type freedSlot struct {
	i   int
	rev uint64
}

func (f *freedSlots) push(name string, i int, rev uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil || f.n >= maxMemo {
		f.m, f.n = map[string][]freedSlot{}, 0
	}
	f.m[name] = append(f.m[name], freedSlot{i, rev})
	f.n++
}

// pop returns a slot of name below max that the broker released, most
// recent first.
func (f *freedSlots) pop(name string, max int) (int, uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for l := f.m[name]; len(l) > 0; l = f.m[name] {
		e := l[len(l)-1]
		l[len(l)-1] = freedSlot{}
		f.m[name] = l[:len(l)-1]
		f.n--
		if len(l) == 1 {
			delete(f.m, name)
		}
		if e.i < max {
			return e.i, e.rev, true
		}
	}
	return 0, 0, false
}
