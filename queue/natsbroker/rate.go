package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/nats-io/nats.go/jetstream"
)

// Rate buckets (queue.RateLimiter): bucket name is the key
// "rate.<name token>" of the control bucket, holding its theoretical
// arrival time (queue.GCRA) in Unix nanoseconds. Taking tokens writes the
// new time by compare-and-set on the revision this broker last wrote or
// read, without reading first: one round trip while no other process
// took tokens since, and a read and another write when one did. Calls of
// one broker on one bucket take turns (each would make the other's write
// fail). Like the slots' leases, it assumes the processes' clocks agree.

var _ queue.RateLimiter = (*Broker)(nil)

// maxRateTries bounds the compare-and-set attempts of one TakeTokens: a
// bucket contended so hard reports a short wait instead.
const maxRateTries = 8

// memo remembers, per control key, the revision and value this broker last
// wrote or read, so that its next write can be a compare-and-set on them
// without a read first. A stale entry costs a failed write and a read; a
// lost one (the map is cleared past maxMemo keys) costs a read.
type memo struct {
	mu sync.Mutex
	m  map[string]*memoEntry
}

// maxMemo bounds the keys a memo remembers.
const maxMemo = 4096

// memoEntry is one key's memory; mu is held through a read-modify-write
// of the key, so that the broker's calls on it take turns.
type memoEntry struct {
	mu  sync.Mutex
	rev uint64 // 0: unknown
	val int64
}

func (m *memo) entry(key string) *memoEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.m[key]
	if e == nil {
		if m.m == nil || len(m.m) >= maxMemo {
			m.m = map[string]*memoEntry{}
		}
		e = &memoEntry{}
		m.m[key] = e
	}
	return e
}

// TakeTokens implements queue.RateLimiter.
func (b *Broker) TakeTokens(ctx context.Context, name string, n int, rate float64, burst int) (int, time.Duration, error) {
	if n < 1 || !(rate > 0 && rate <= queue.MaxRate) || burst < 1 || burst > queue.MaxBurst {
		return 0, 0, fmt.Errorf("natsbroker: take tokens of %q: %w: n %d, rate %v, burst %d: want n and burst at least 1, burst at most %d, rate above 0 and at most %g",
			clip(name), queue.ErrBadInput, n, rate, burst, queue.MaxBurst, float64(queue.MaxRate))
	}
	var took int
	var wait time.Duration
	done, err := b.moveRate(ctx, name, func(tat int64, absent bool) (int64, bool) {
		var ntat int64
		ntat, took, wait = queue.GCRA(tat, time.Now(), n, rate, burst)
		return ntat, took > 0
	})
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("natsbroker: take tokens of %q: %w", clip(name), err)
	case !done: // contended past maxRateTries: report a short wait
		return 0, time.Duration(1e9 / rate), nil
	}
	return took, wait, nil
}

// moveRate sets the time of the bucket called name to what move returns
// for its current one (absent: the bucket was never written), by
// compare-and-set on the revision this broker last saw, reading it again
// when another process wrote since, at most maxRateTries times. move
// reports false for nothing to write. moveRate reports false when the
// bucket was contended past maxRateTries.
func (b *Broker) moveRate(ctx context.Context, name string, move func(tat int64, absent bool) (int64, bool)) (bool, error) {
	key := "rate." + tok(name)
	m := b.ctl.memo.entry(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	for range maxRateTries {
		if m.rev == 0 {
			if err := b.readRate(ctx, key, m); err != nil {
				return false, err
			}
		}
		absent := m.rev == ^uint64(0)
		ntat, write := move(m.val, absent)
		if !write {
			return true, nil
		}
		val := []byte(strconv.FormatInt(ntat, 10))
		var rev uint64
		var err error
		if absent {
			rev, err = b.ctl.kv.Create(ctx, key, val)
		} else {
			rev, err = b.ctl.kv.Update(ctx, key, val, m.rev)
		}
		switch {
		case err == nil:
			m.rev, m.val = rev, ntat
			return true, nil
		case errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSeq(err):
			m.rev = 0 // another process wrote meanwhile: read again
		default:
			m.rev = 0
			return false, err
		}
	}
	return false, nil
}

// readRate reads a bucket's time into m; an absent key is revision
// ^uint64(0) (created on the next write), a value that does not parse a
// fresh bucket.
func (b *Broker) readRate(ctx context.Context, key string, m *memoEntry) error {
	e, err := b.ctl.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		m.rev, m.val = ^uint64(0), 0
	case err != nil:
		return err
	default:
		m.rev = e.Revision()
		m.val, _ = strconv.ParseInt(string(e.Value()), 10, 64)
	}
	return nil
}

// ReturnTokens implements queue.RateLimiter: the bucket's time moved back
// (queue.GCRAReturn) as TakeTokens writes it. A bucket contended past
// maxRateTries keeps the tokens (the rate is lower a moment); an absent
// one has nothing to give back to.
func (b *Broker) ReturnTokens(ctx context.Context, name string, n int, rate float64) error {
	if n < 1 || !(rate > 0 && rate <= queue.MaxRate) {
		return fmt.Errorf("natsbroker: return tokens of %q: %w: n %d, rate %v: want n at least 1, rate above 0 and at most %g",
			clip(name), queue.ErrBadInput, n, rate, float64(queue.MaxRate))
	}
	_, err := b.moveRate(ctx, name, func(tat int64, absent bool) (int64, bool) {
		ntat := queue.GCRAReturn(tat, time.Now(), n, rate)
		return ntat, !absent && ntat != tat
	})
	if err != nil {
		return fmt.Errorf("natsbroker: return tokens of %q: %w", clip(name), err)
	}
	return nil
}
