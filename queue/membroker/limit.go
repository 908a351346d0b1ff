package membroker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gather-go/gather/queue"
)

var _ queue.Semaphore = (*Broker)(nil)

// mslot is one held slot of a semaphore: its token and lease.
type mslot struct {
	token   uint64
	expires time.Time
}

// semaphores are the broker's counted slots (see queue.Semaphore): by
// name, the slots held or once held; a slot whose lease ran out is free.
type semaphores struct {
	sems     map[string][]mslot
	refusals map[string]uint64 // AcquireSlot refusals by name
	next     uint64            // the last token handed out
}

// AcquireSlot implements queue.Semaphore. A token is "<index>/<number>".
func (b *Broker) AcquireSlot(ctx context.Context, name string, max int, lease time.Duration) (string, error) {
	if max < 1 || lease <= 0 {
		return "", fmt.Errorf("membroker: acquire slot %q: %w: max %d, lease %v: want max at least 1 and a positive lease", name, queue.ErrBadInput, max, lease)
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", errClosed
	}
	if b.slots.sems == nil {
		b.slots.sems = map[string][]mslot{}
	}
	list := b.slots.sems[name]
	live, free := 0, -1
	for i, s := range list {
		if s.token != 0 && now.Before(s.expires) {
			live++
		} else if free < 0 {
			free = i
		}
	}
	if live >= max {
		if b.slots.refusals == nil {
			b.slots.refusals = map[string]uint64{}
		}
		b.slots.refusals[name]++
		return "", nil
	}
	if free < 0 {
		list = append(list, mslot{})
		free = len(list) - 1
		b.slots.sems[name] = list
	}
	b.slots.next++
	list[free] = mslot{token: b.slots.next, expires: now.Add(lease)}
	return strconv.Itoa(free) + "/" + strconv.FormatUint(b.slots.next, 10), nil
}

// slotOf returns the held slot token names, or nil; b.mu is held.
func (b *Broker) slotOf(name, token string, now time.Time) *mslot {
	i, n, ok := strings.Cut(token, "/")
	if !ok {
		return nil
	}
	idx, err1 := strconv.Atoi(i)
	num, err2 := strconv.ParseUint(n, 10, 64)
	list := b.slots.sems[name]
	if err1 != nil || err2 != nil || idx < 0 || idx >= len(list) {
		return nil
	}
	if s := &list[idx]; s.token == num && now.Before(s.expires) {
		return s
	}
	return nil
}

// ExtendSlot implements queue.Semaphore.
func (b *Broker) ExtendSlot(ctx context.Context, name, token string, lease time.Duration) (string, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", errClosed
	}
	s := b.slotOf(name, token, now)
	if s == nil {
		return "", fmt.Errorf("membroker: extend slot %q: %w: slot %q is not held (its lease ran out, or it was released)", name, queue.ErrNotFound, token)
	}
	s.expires = now.Add(lease)
	return token, nil
}

// ReleaseSlot implements queue.Semaphore.
func (b *Broker) ReleaseSlot(ctx context.Context, name, token string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.slotOf(name, token, time.Now()); s != nil {
		*s = mslot{}
	}
	return nil
}

// SlotRefusals implements queue.Semaphore: it counts the refusals of
// AcquireSlot of name.
func (b *Broker) SlotRefusals(ctx context.Context, name string) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errClosed
	}
	return b.slots.refusals[name], nil
}
