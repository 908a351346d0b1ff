package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// TestSchedulerErrors: what Periodic and NewScheduler refuse, and a
// scheduler shut down before and after Start.
func TestSchedulerErrors(t *testing.T) {
	t.Parallel()
	if _, err := queue.NewScheduler(nil, nil); !errors.Is(err, queue.ErrBadConfig) {
		t.Errorf("NewScheduler(nil) = %v, want ErrBadConfig", err)
	}
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err := queue.NewScheduler(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := queue.NewKind[int, int]("n")
	every, _ := queue.Every(time.Hour)
	if err := queue.Periodic(s, "", every, k, 1); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("Periodic with no name: %v, want ErrBadInput", err)
	}
	if err := queue.Periodic(s, "x", nil, k, 1); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("Periodic with no schedule: %v, want ErrBadInput", err)
	}
	if err := queue.Periodic(s, "hourly", every, k, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Error("a second Start was accepted")
	}
	if err := queue.Periodic(s, "late", every, k, 1); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("Periodic after Start: %v, want ErrBadInput", err)
	}
	for range 2 {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
