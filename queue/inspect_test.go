package queue_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/gather-go/gather/queue"
)

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string // in the message; "" for no error
	}{
		{queue.BatchFilter{}.Validate(), ""},
		{queue.BatchFilter{State: "running", Limit: queue.MaxPageLimit}.Validate(), ""},
		{queue.BatchFilter{State: "finished", Limit: 1}.Validate(), ""},
		{queue.BatchFilter{State: "done"}.Validate(), `batch state "done": want "running", "finished" or none`},
		{queue.BatchFilter{Limit: -1}.Validate(), "page limit -1: want 1 to 1000, or 0 for 100"},
		{queue.BatchFilter{Limit: 1001}.Validate(), "page limit 1001"},
		{queue.DeadLetterFilter{Limit: -5}.Validate(), "page limit -5"},
		{queue.DeadLetterFilter{Kind: "k", ErrorContains: "x", Limit: 3}.Validate(), ""},
		{queue.BadCursor("zz"), `cursor "zz" was not returned by this broker`},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("unexpected error %v", tc.err)
		case tc.want != "" && (!errors.Is(tc.err, queue.ErrBadInput) || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("error %v: want ErrBadInput saying %q", tc.err, tc.want)
		}
	}
	if n := (queue.BatchFilter{}).PageLimit(); n != queue.DefaultPageLimit {
		t.Errorf("default page limit %d", n)
	}
}

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	running := queue.BatchInfo{Queue: "q", Size: 3, Done: 1, Failed: 1}
	finished := queue.BatchInfo{Queue: "q", Size: 3, Done: 1, Failed: 1, Canceled: 1}
	if running.Finished() || !finished.Finished() {
		t.Fatal("Finished wrong")
	}
	for _, tc := range []struct {
		f    queue.BatchFilter
		b    queue.BatchInfo
		want bool
	}{
		{queue.BatchFilter{}, running, true},
		{queue.BatchFilter{Queue: "other"}, running, false},
		{queue.BatchFilter{State: "running"}, running, true},
		{queue.BatchFilter{State: "running"}, finished, false},
		{queue.BatchFilter{State: "finished", Queue: "q"}, finished, true},
	} {
		if got := tc.f.Match(&tc.b); got != tc.want {
			t.Errorf("%+v.Match(%+v) = %v", tc.f, tc.b, got)
		}
	}
	dl := &queue.DeadLetter{Message: queue.Message{Queue: "q", Kind: "k"},
		Attempts: []queue.AttemptError{{Error: "first"}, {Error: "Connection Refused"}}}
	for _, tc := range []struct {
		f    queue.DeadLetterFilter
		want bool
	}{
		{queue.DeadLetterFilter{}, true},
		{queue.DeadLetterFilter{Queue: "q", Kind: "k"}, true},
		{queue.DeadLetterFilter{Kind: "other"}, false},
		{queue.DeadLetterFilter{ErrorContains: "connection refused"}, true},
		{queue.DeadLetterFilter{ErrorContains: "timeout"}, false},
	} {
		if got := tc.f.Match(dl); got != tc.want {
			t.Errorf("%+v.Match = %v", tc.f, got)
		}
	}
}

func TestTaskStateText(t *testing.T) {
	t.Parallel()
	states := []queue.TaskState{queue.TaskPending, queue.TaskRunning, queue.TaskDone, queue.TaskFailed, queue.TaskCanceled}
	data, err := json.Marshal(states)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `["pending","running","done","failed","canceled"]` {
		t.Fatalf("JSON %s", data)
	}
	var back []queue.TaskState
	if err := json.Unmarshal(data, &back); err != nil || len(back) != len(states) || back[4] != queue.TaskCanceled {
		t.Fatalf("round trip %v, %v", back, err)
	}
	var s queue.TaskState
	if err := s.UnmarshalText([]byte("lost")); !errors.Is(err, queue.ErrBadInput) {
		t.Errorf("UnmarshalText(lost): %v", err)
	}
	if _, err := queue.TaskState(9).MarshalText(); err == nil || queue.TaskState(9).String() != "TaskState(9)" {
		t.Error("an out-of-range state marshals")
	}
	f := &queue.Failure{Code: queue.CodeCanceled}
	for o, want := range map[*queue.Outcome]queue.TaskState{
		{}: queue.TaskDone, {Err: f}: queue.TaskCanceled, {Err: &queue.Failure{Code: queue.CodeTimeout}}: queue.TaskFailed,
	} {
		if got := queue.StateOf(o); got != want {
			t.Errorf("StateOf(%+v) = %v, want %v", o, got, want)
		}
	}
}
