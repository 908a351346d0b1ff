package gather_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gather-go/gather"
)

// TestAnyFirstSuccessWins: failures cancel nothing, the first success cancels the
// others with a cause that says so, and Any returns only after they have returned.
func TestAnyFirstSuccessWins(t *testing.T) {
	t.Parallel()
	failed := make(chan struct{}, 2)
	var loserReturned atomic.Bool
	var loserCause error
	loserStarted := make(chan struct{})
	got, err := gather.Any(context.Background(),
		func(ctx context.Context) (string, error) {
			close(loserStarted)
			<-ctx.Done() // runs until another succeeds
			loserCause = context.Cause(ctx)
			time.Sleep(time.Millisecond) // Any must still wait
			loserReturned.Store(true)
			return "", ctx.Err()
		},
		func(ctx context.Context) (string, error) { failed <- struct{}{}; return "", errBoom },
		func(ctx context.Context) (string, error) { failed <- struct{}{}; return "", errBoom },
		func(ctx context.Context) (string, error) {
			<-failed // both failures are in: they did not end the call
			<-failed
			<-loserStarted // a task whose goroutine finds the call over is not started
			return "winner", nil
		},
	)
	if got != "winner" || err != nil {
		t.Fatalf("Any = %q, %v; want winner, nil", got, err)
	}
	if !loserReturned.Load() {
		t.Error("Any returned before a cancelled task returned")
	}
	if loserCause == nil || !strings.Contains(loserCause.Error(), "another task succeeded first") {
		t.Errorf("the loser's context cause is %v, want one saying another task succeeded", loserCause)
	}
}

// TestAnyAllFail: every failure, each with its index, in index order.
func TestAnyAllFail(t *testing.T) {
	t.Parallel()
	errA, errB := errors.New("a"), errors.New("b")
	_, err := gather.Any(context.Background(),
		func(ctx context.Context) (int, error) { return 0, errA },
		func(ctx context.Context) (int, error) { return 0, errB },
		func(ctx context.Context) (int, error) { return 0, errA },
	)
	if want := "gather: task 0: a\ngather: task 1: b\ngather: task 2: a"; err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 3 {
		t.Fatalf("error %T does not unwrap to 3 errors", err)
	}
	for i, e := range joined.Unwrap() {
		var te *gather.TaskError
		if !errors.As(e, &te) || te.Index != i {
			t.Errorf("error %d is %v, want a *TaskError with index %d", i, e, i)
		}
	}
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Error("errors.Is does not reach the tasks' own errors")
	}
}

func TestAnyWithNothingToRun(t *testing.T) {
	t.Parallel()
	if v, err := gather.Any[int](context.Background()); err == nil || v != 0 ||
		err.Error() != "gather: Any with nothing to run: no task can succeed" {
		t.Errorf("Any() = %v, %v", v, err)
	}
	if _, err := gather.MapAny(context.Background(), []int(nil), double); err == nil ||
		!strings.Contains(err.Error(), "MapAny with nothing to run") {
		t.Errorf("MapAny(nil) error %v", err)
	}
}

// TestAnyContextEndedBeforeStart: nothing runs, and the error says so with the cause.
func TestAnyContextEndedBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errBoom)
	var ran atomic.Int32
	_, err := gather.MapAny(ctx, []int{1, 2, 3}, func(ctx context.Context, n int) (int, error) {
		ran.Add(1)
		return n, nil
	})
	if ran.Load() != 0 || !errors.Is(err, errBoom) || err.Error() != "gather: 3 of 3 tasks not started: boom" {
		t.Errorf("%d ran, error %v", ran.Load(), err)
	}
}

// TestMapAnyLimitOneIsAFallbackChain: with Limit(1), inputs are tried in order and the
// ones after the first success are never called.
func TestMapAnyLimitOneIsAFallbackChain(t *testing.T) {
	t.Parallel()
	var called []string
	got, err := gather.MapAny(context.Background(), []string{"down", "broken", "up", "spare"},
		func(ctx context.Context, mirror string) (string, error) {
			called = append(called, mirror) // one at a time: no lock needed
			if mirror == "up" || mirror == "spare" {
				return "data from " + mirror, nil
			}
			return "", fmt.Errorf("%s: unreachable", mirror)
		}, gather.Limit(1))
	if got != "data from up" || err != nil {
		t.Fatalf("MapAny = %q, %v", got, err)
	}
	if fmt.Sprint(called) != "[down broken up]" {
		t.Errorf("called %v, want [down broken up]", called)
	}
}

// TestMapAnyTimeoutPassesTheTurn: a slow input times out and the next one gets its turn.
func TestMapAnyTimeoutPassesTheTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		got, err := gather.MapAny(context.Background(), []time.Duration{time.Hour, 10 * time.Millisecond},
			func(ctx context.Context, d time.Duration) (time.Duration, error) {
				select {
				case <-time.After(d):
					return d, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}, gather.Limit(1), gather.Timeout(time.Second))
		if got != 10*time.Millisecond || err != nil {
			t.Fatalf("MapAny = %v, %v", got, err)
		}
		if elapsed := time.Since(start); elapsed != time.Second+10*time.Millisecond {
			t.Errorf("took %v of the bubble's clock, want the first timeout and the second task", elapsed)
		}
	})
}

// TestAnyManySucceedAtOnce: one of them wins, whichever it is.
func TestAnyManySucceedAtOnce(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]gather.Option{nil, {gather.Limit(4)}} {
		start := make(chan struct{})
		in := make([]int, 64)
		for i := range in {
			in[i] = i
		}
		go close(start)
		got, err := gather.MapAny(context.Background(), in, func(ctx context.Context, n int) (int, error) {
			<-start
			return n, nil
		}, opts...)
		if err != nil || got < 0 || got >= len(in) {
			t.Fatalf("MapAny = %d, %v", got, err)
		}
	}
}

// TestAnyPanicAfterAWinner: a panic is re-raised, with its index, even though another
// task had succeeded, once the others have returned.
func TestAnyPanicAfterAWinner(t *testing.T) {
	t.Parallel()
	defer func() {
		pe, ok := recover().(*gather.PanicError)
		if !ok || pe.Index != 0 || pe.Value != "task failed hard" {
			t.Fatalf("recovered %#v, want the *gather.PanicError of task 0", pe)
		}
	}()
	started := make(chan struct{})
	gather.Any(context.Background(),
		func(ctx context.Context) (int, error) { close(started); <-ctx.Done(); panicInTask(); return 0, nil },
		func(ctx context.Context) (int, error) { <-started; return 1, nil }, // on the caller's goroutine
	)
	t.Fatal("no panic")
}

func TestAnyBadArguments(t *testing.T) {
	t.Parallel()
	var nilCtx context.Context
	for name, c := range map[string]struct {
		f    func()
		want string
	}{
		"nil ctx":       {func() { gather.Any(nilCtx, id0) }, "Any: nil Context"},
		"nil function":  {func() { gather.Any(context.Background(), id0, nil) }, "Any: function 1 is nil"},
		"MapAny nil fn": {func() { gather.MapAny[int, int](context.Background(), []int{1}, nil) }, "MapAny: nil function"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if s, _ := recover().(string); !strings.Contains(s, c.want) {
					t.Errorf("panic %q, want it to contain %q", s, c.want)
				}
			}()
			c.f()
		})
	}
}
