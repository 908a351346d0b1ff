package natsbroker

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestGone: deleting a message that is not there is told apart from a
// deletion that failed (the enqueue rollback logged one error per task of
// a refused batch when it could not tell).
func TestGone(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := startJS(ctx, t)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "gone", Subjects: []string{"gone"}})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "gone", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}
	err = st.DeleteMsg(ctx, ack.Sequence)
	if err == nil || !gone(err) {
		t.Fatalf("deleting a deleted message: %v, want an error gone() recognises", err)
	}
	if err := js.DeleteStream(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err = st.DeleteMsg(ctx, 1); err == nil || gone(err) {
		t.Fatalf("deleting from a deleted stream: %v, want an error gone() does not take for a missing message", err)
	}
}
