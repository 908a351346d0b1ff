package membroker

import (
	"context"
	"fmt"

	"github.com/gather-go/gather/queue"
)

var _ queue.Pauser = (*Broker)(nil)

// Pause implements queue.Pauser: every worker of the broker stops claiming
// tasks of the queue at once.
func (b *Broker) Pause(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("membroker: pause: %w: empty queue name", queue.ErrBadInput)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if b.paused == nil {
		b.paused = map[string]struct{}{}
	}
	b.paused[name] = struct{}{}
	return nil
}

// Resume implements queue.Pauser: it wakes the workers waiting for work.
func (b *Broker) Resume(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("membroker: resume: %w: empty queue name", queue.ErrBadInput)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if _, ok := b.paused[name]; ok {
		delete(b.paused, name)
		b.wakeAll()
	}
	return nil
}

// Paused implements queue.Pauser.
func (b *Broker) Paused(ctx context.Context, name string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false, errClosed
	}
	_, ok := b.paused[name]
	return ok, nil
}

// isPaused reports whether the queue is paused; b.mu is held.
func (b *Broker) isPaused(name string) bool {
	if len(b.paused) == 0 {
		return false
	}
	_, ok := b.paused[name]
	return ok
}
