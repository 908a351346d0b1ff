package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},                              // no -gather
		{"-gather", "g", "-tasks", "0"}, // no tasks
		{"-gather", "g", "-result-ttl", "10ms"},
		{"-gather", "g", "-batch", "1000", "-max-depth", "999"},
		{"-gather", "g", "extra"},
		{"-gather", "g", "-sse", "-1"},
		{"-gather", "g", "-rounds", "0"},
	} {
		var out, errs bytes.Buffer
		if code := run(args, &out, &errs); code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errs.String())
		}
		if out.Len() > 0 {
			t.Errorf("%q: printed %q on stdout", args, out.String())
		}
	}
}

func TestBatchBody(t *testing.T) {
	t.Parallel()
	var v struct {
		Kind  string
		Items []int
	}
	if err := json.Unmarshal(batchBody(7, 3, 0), &v); err != nil {
		t.Fatal(err)
	}
	if v.Kind != "echo" || len(v.Items) != 3 || v.Items[0] != 7 || v.Items[2] != 9 {
		t.Fatalf("batchBody(7, 3, 0) = %+v", v)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	var rep batchReply
	if err := json.Unmarshal([]byte(`{"id":"b","results":[{"ok":true,"value":5},{"ok":true,"value":7},{"ok":false}]}`), &rep); err != nil {
		t.Fatal(err)
	}
	if wrong, err := check(&rep, 3, 5, false); err != nil || wrong != 2 {
		t.Fatalf("check = %d, %v; want 2 wrong (a wrong value, a failure)", wrong, err)
	}
	if _, err := check(&rep, 4, 5, false); err == nil {
		t.Fatal("check of 3 results for 4 items: no error")
	}
}

// TestAwait runs await against a server that refuses, then answers 202,
// then the results.
func TestAwait(t *testing.T) {
	t.Parallel()
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		calls++
		switch {
		case calls == 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case r.Method == "POST":
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"id":"b1","status":"running"}`))
		case strings.HasPrefix(r.URL.Path, "/v1/batches/b1"):
			w.Write([]byte(`{"id":"b1","status":"succeeded","results":[{"ok":true,"value":1},{"ok":true,"value":2}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d := &deployment{api: srv.URL, token: "tok", client: srv.Client()}
	ctx := t.Context()
	_, err := d.await(ctx, batchBody(1, 2, 0), 2, 1)
	var full *errFull
	if !errors.As(err, &full) || !full.retryAfter {
		t.Fatalf("first await: %v, want a 429 with Retry-After", err)
	}
	if wrong, err := d.await(ctx, batchBody(1, 2, 0), 2, 1); err != nil || wrong != 0 {
		t.Fatalf("second await = %d, %v", wrong, err)
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	c := &config{workers: 2, producers: 4, batch: 1000, resultTTL: 5 * time.Second, retention: time.Minute}
	writeMarkdown(&b, c, []*result{
		{Phase: "load", Tasks: 10, TasksPerSec: 100, P50ms: 1, P99ms: 2, Memory: map[string]memory{"start": {RSS: 20, HWM: 30, Heap: 4}}},
		{Phase: "sse", SSE: 4, VsLoad: 0.97, Memory: map[string]memory{}},
	})
	for _, want := range []string{"| load | 10 | 100 | 1 / 2 ms |", "median tasks/s over the load run's 0.970× over 1 rounds", "goal 0.95× or more: met", "| 4 / – / – / – / – | 20 / – / – / – / – (30) |", "sse (4 streams, 0.970× load's tasks/s)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
