package dashboard_test

import (
	"context"
	"testing"

	"github.com/gather-go/gather/queue"
)

type queuesEvent struct {
	Queues []struct {
		Name   string `json:"name"`
		Paused *bool  `json:"paused"`
	} `json:"queues"`
}

// pausedIs returns a test of a queues event: queue name is listed with
// paused as want.
func pausedIs(name string, want bool) func(queuesEvent) bool {
	return func(v queuesEvent) bool {
		for _, q := range v.Queues {
			if q.Name == name && q.Paused != nil && *q.Paused == want {
				return true
			}
		}
		return false
	}
}

// TestStreamShowsPaused pauses and resumes a queue through the API the
// page uses: the stream's queues section follows, from the broker.
func TestStreamShowsPaused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s3cret", nil)
	if _, err := queue.Enqueue(context.Background(), e.client, echoKind, 1); err != nil {
		t.Fatal(err)
	}
	s := e.open("?view=queues")
	until(s, "queues", pausedIs("default", false))
	if r, body := e.request("POST", "/v1/queues/default/pause", ""); r.StatusCode != 401 {
		t.Fatalf("a pause without the token: %d %s", r.StatusCode, body)
	}
	if r, body := e.request("POST", "/v1/queues/default/pause", "s3cret"); r.StatusCode != 200 {
		t.Fatalf("pause: %d %s", r.StatusCode, body)
	}
	until(s, "queues", pausedIs("default", true))
	if r, body := e.request("POST", "/v1/queues/default/resume", "s3cret"); r.StatusCode != 200 {
		t.Fatalf("resume: %d %s", r.StatusCode, body)
	}
	until(s, "queues", pausedIs("default", false))
}
