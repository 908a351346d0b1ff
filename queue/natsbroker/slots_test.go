package natsbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/gather-go/gather/queue/natsbroker"
)

// TestControlRoundTrips: the control calls a worker makes while a limit or
// a rate is not reached cost one request each, counted as messages the
// broker's connection sends: taking back a slot this broker released,
// releasing one, extending one it took, and taking rate tokens again. A slot another broker
// wrote since is still taken (after a read), and a refusal changes what
// SlotRefusals returns to every broker.
func TestControlRoundTrips(t *testing.T) {
	t.Parallel()
	s := embedded(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js := connect(t, s)
	b := newBroker(t, js, natsbroker.Config{Prefix: "ctlrt"})
	other := newBroker(t, connect(t, s), natsbroker.Config{Prefix: "ctlrt"})
	nc := js.Conn()
	sent := func(f func() error) uint64 {
		t.Helper()
		before := nc.Stats().OutMsgs
		if err := f(); err != nil {
			t.Fatal(err)
		}
		return nc.Stats().OutMsgs - before
	}
	const name, lease = "k:x@q", time.Minute
	var tok string
	acquire := func(br *natsbroker.Broker) func() error {
		return func() (err error) {
			tok, err = br.AcquireSlot(ctx, name, 1, lease)
			if err == nil && tok == "" {
				t.Fatal("AcquireSlot of the free slot returned no token")
			}
			return err
		}
	}
	release := func(br *natsbroker.Broker) func() error {
		return func() error { return br.ReleaseSlot(ctx, name, tok) }
	}
	sent(acquire(b))
	if n := sent(release(b)); n != 1 {
		t.Errorf("ReleaseSlot sent %d messages, want 1", n)
	}
	for range 3 {
		if n := sent(acquire(b)); n != 1 {
			t.Errorf("AcquireSlot of a slot this broker released sent %d messages, want 1", n)
		}
		if n := sent(func() (err error) { tok, err = b.ExtendSlot(ctx, name, tok, lease); return err }); n != 1 {
			t.Errorf("ExtendSlot of a slot this broker took sent %d messages, want 1", n)
		}
		sent(release(b))
	}
	// Another broker takes and releases it: b's memory is stale, and b
	// still takes the slot.
	sent(acquire(other))
	sent(release(other))
	sent(acquire(b))

	r0, err := other.SlotRefusals(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := other.AcquireSlot(ctx, name, 1, lease); err != nil || tok != "" {
		t.Fatalf("AcquireSlot of a held slot: %q, %v: want a refusal", tok, err)
	}
	if r1, err := b.SlotRefusals(ctx, name); err != nil || r1 == r0 {
		t.Errorf("SlotRefusals after a refusal: %d, %v: want other than %d", r1, err, r0)
	}

	take := func() error {
		took, _, err := b.TakeTokens(ctx, "k:y@q", 10, 1e6, 1000)
		if err == nil && took != 10 {
			t.Fatalf("TakeTokens took %d of a bucket far from empty, want 10", took)
		}
		return err
	}
	sent(take)
	for range 3 {
		if n := sent(take); n != 1 {
			t.Errorf("TakeTokens sent %d messages, want 1", n)
		}
	}
}
