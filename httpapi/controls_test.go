package httpapi_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// queueStates returns GET /v1/queues as name → paused ("" when the field
// is absent).
func queueStates(t *testing.T, e *env) map[string]string {
	t.Helper()
	r := e.do("GET", "/v1/queues", "")
	if r.status != 200 {
		t.Fatalf("GET /v1/queues: %d %s", r.status, r.body)
	}
	var out struct {
		Queues []struct {
			Name   string
			Paused *bool
		}
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, q := range out.Queues {
		m[q.Name] = ""
		if q.Paused != nil {
			m[q.Name] = map[bool]string{true: "paused", false: "running"}[*q.Paused]
		}
	}
	return m
}

// TestPauseResume pauses a queue through the API, sees it paused in
// /v1/queues and in the broker, and resumes it: its batch, enqueued while
// it was paused, then finishes.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{token: "s3cret"})
	p := e.broker.(queue.Pauser)
	r := e.do("POST", "/v1/queues/qa/pause", "")
	if r.status != 200 || string(r.body) != `{"name":"qa","paused":true}`+"\n" {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	if paused, err := p.Paused(t.Context(), "qa"); err != nil || !paused {
		t.Fatalf("the broker after the pause: %v %v", paused, err)
	}
	// Pausing again does nothing; enqueueing is still accepted.
	if r = e.do("POST", "/v1/queues/qa/pause", "{}"); r.status != 200 {
		t.Fatalf("pause again: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/batches", `{"kind":"echo","queue":"qa","items":[1,2]}`)
	if r.status != 201 {
		t.Fatalf("enqueue while paused: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if got := queueStates(t, e); got["qa"] != "paused" || got["default"] != "" && got["default"] != "running" {
		t.Fatalf("queues while qa is paused: %v", got)
	}
	if r = e.do("POST", "/v1/queues/qa/resume", ""); r.status != 200 || string(r.body) != `{"name":"qa","paused":false}`+"\n" {
		t.Fatalf("resume: %d %s", r.status, r.body)
	}
	if paused, err := p.Paused(t.Context(), "qa"); err != nil || paused {
		t.Fatalf("the broker after the resume: %v %v", paused, err)
	}
	if got := queueStates(t, e); got["qa"] != "running" {
		t.Fatalf("queues after the resume: %v", got)
	}
	r = e.do("GET", "/v1/batches/"+id+"?wait=1m", "")
	if r.status != 200 || r.json(t)["status"] != "succeeded" {
		t.Fatalf("the batch after the resume: %d %s", r.status, r.body)
	}
}

// TestPauseHostile sends pause and resume requests that must be refused
// with their status and code, and pause nothing.
func TestPauseHostile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{token: "s3cret", workers: -1})
	ticket := url.QueryEscape(httpapi.IssueTicket(e.api, time.Now().Add(time.Minute)))
	cases := []struct {
		name         string
		method, path string
		hdr          []string
		status       int
		code, detail string
	}{
		{"no token", "POST", "/v1/queues/default/pause", []string{"Authorization", ""}, 401, "unauthorized", "Bearer"},
		{"a ticket is no token", "POST", "/v1/queues/default/pause?ticket=" + ticket, []string{"Authorization", ""}, 401, "unauthorized", "token"},
		{"cross-origin", "POST", "/v1/queues/default/pause", []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, "forbidden", "cross-origin"},
		{"space in name", "POST", "/v1/queues/a%20b/pause", nil, 400, "malformed", "want 1 to 128 letters"},
		{"slash in name", "POST", "/v1/queues/a%2Fb/resume", nil, 400, "malformed", "queue name"},
		{"dot segments", "POST", "/v1/queues/%2e%2e%2f%2e%2e/pause", nil, 400, "malformed", "queue name"},
		{"NUL in name", "POST", "/v1/queues/a%00b/pause", nil, 400, "malformed", "queue name"},
		{"long name", "POST", "/v1/queues/" + strings.Repeat("q", 129) + "/pause", nil, 400, "malformed", "1 to 128"},
		{"GET a pause", "GET", "/v1/queues/default/pause", nil, 405, "method_not_allowed", "POST"},
		{"unknown action", "POST", "/v1/queues/default/drop", nil, 404, "not_found", "openapi.json"},
		{"no name", "POST", "/v1/queues//pause", nil, 404, "not_found", ""},
		{"controls are read-only", "POST", "/v1/controls", nil, 405, "method_not_allowed", "GET"},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, "", c.hdr...)
		var p struct {
			Status       int
			Code, Detail string
		}
		if err := json.Unmarshal(r.body, &p); err != nil || r.status != c.status || p.Code != c.code || !strings.Contains(p.Detail, c.detail) ||
			r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s, want %d %s containing %q", c.name, r.status, r.header.Get("Content-Type"), r.body, c.status, c.code, c.detail)
		}
	}
	if paused, err := e.broker.(queue.Pauser).Paused(t.Context(), "default"); err != nil || paused {
		t.Fatalf("after the refused requests the default queue is paused=%v (%v)", paused, err)
	}
}

// noPause is a broker that cannot pause queues: only queue.Broker's and
// queue.Stats's methods are promoted.
type noPause struct {
	queue.Broker
	queue.Stats
}

// TestPauseUnsupported checks a broker without queue.Pauser: pausing gets
// 501, and /v1/queues has no paused field.
func TestPauseUnsupported(t *testing.T) {
	t.Parallel()
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	e := newEnv(t, opts{workers: -1, broker: noPause{mb, mb}})
	if r := e.do("POST", "/v1/queues/default/pause", ""); r.status != 501 || !strings.Contains(string(r.body), `"code":"unsupported"`) {
		t.Fatalf("pause: %d %s", r.status, r.body)
	}
	if got := queueStates(t, e); got["default"] != "" {
		t.Fatalf("queues: %v", got)
	}
	if r := e.do("GET", "/v1/controls", ""); r.status != 200 || !strings.Contains(string(r.body), `"pause":false`) {
		t.Fatalf("controls: %d %s", r.status, r.body)
	}
}

// TestControls checks that GET /v1/controls shows Config.Controls as
// given, with a burst of 0 shown as the 1 it means.
func TestControls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{workers: -1, cfg: func(c *httpapiConfig) {
		c.Controls = httpapi.Controls{
			Limits:    []queue.GlobalLimit{{Queue: "default", Kind: "http", Max: 4}, {Queue: "bulk", Max: 16}},
			Rates:     []queue.GlobalRate{{Queue: "default", PerSecond: 200, Burst: 20}, {Queue: "bulk", Kind: "echo", PerSecond: 0.5}},
			Schedules: []httpapi.ScheduleInfo{{Name: "nightly", Cron: "0 3 * * *", TZ: "Europe/Paris", Kind: "http", Queue: "default"}, {Name: "beat", Every: "30s", Kind: "echo", Queue: "default"}},
		}
	}})
	r := e.do("GET", "/v1/controls", "")
	want := `{"limits":[{"queue":"default","kind":"http","max":4},{"queue":"bulk","max":16}],` +
		`"rates":[{"queue":"default","per_second":200,"burst":20},{"queue":"bulk","kind":"echo","per_second":0.5,"burst":1}],` +
		`"schedules":[{"name":"nightly","cron":"0 3 * * *","tz":"Europe/Paris","kind":"http","queue":"default"},{"name":"beat","every":"30s","kind":"echo","queue":"default"}],` +
		`"pause":true}` + "\n"
	if r.status != 200 || string(r.body) != want {
		t.Fatalf("controls: %d\n got %s\nwant %s", r.status, r.body, want)
	}
	// None configured: empty lists, not null.
	e = newEnv(t, opts{workers: -1})
	if r = e.do("GET", "/v1/controls", ""); string(r.body) != `{"limits":[],"rates":[],"schedules":[],"pause":true}`+"\n" {
		t.Fatalf("no controls: %s", r.body)
	}
}
