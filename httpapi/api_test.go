package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// env is an API on a membroker with a worker running the built-in kinds
// and "gate", whose tasks wait until the test closes gate.
type env struct {
	t      testing.TB
	srv    *httptest.Server
	api    *httpapi.Server
	broker queue.Broker
	client *queue.Client
	token  string
	gate   chan struct{}
}

type httpapiConfig = httpapi.Config

type opts struct {
	token   string
	workers int          // 0: 4; -1: none
	depth   int          // the queues' bound; 0: the default
	broker  queue.Broker // default: a membroker with depth
	cfg     func(c *httpapiConfig)
}

func newEnv(t testing.TB, o opts) *env {
	t.Helper()
	b := o.broker
	if b == nil {
		mb, err := membroker.New(&membroker.Config{MaxDepth: o.depth})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mb.Close() })
		b = mb
	}
	c, err := queue.NewClient(b, &queue.ClientConfig{MaxPayload: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, broker: b, client: c, token: o.token, gate: make(chan struct{})}
	gate := queue.NewKind[int, int]("gate")
	ks := append(kinds.Builtin(kinds.Config{}), kinds.Func(gate, "waits for the test", func(ctx context.Context, n int) (int, error) {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if n < 0 {
			return 0, queue.Permanent(fmt.Errorf("negative %d", n))
		}
		return n * 2, nil
	}))
	if o.workers >= 0 {
		w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: max(o.workers, 4), Queues: []string{"default", "qa", "qb"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			k.Register(w)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Shutdown(context.Background()) })
	}
	names := map[string]string{}
	for _, k := range ks {
		names[k.Name] = k.Doc
	}
	delete(names, "exec")
	cfg := &httpapi.Config{
		Client: c, Kinds: names, Token: o.token, MaxItems: 20_000, MaxItem: 4 << 10, MaxBody: 1 << 20,
		Disabled: map[string]string{"exec": "no allow-list"}, MaxWait: time.Minute,
	}
	if o.cfg != nil {
		o.cfg(cfg)
	}
	api, err := httpapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.api = api
	e.srv = httptest.NewServer(api)
	t.Cleanup(func() {
		e.openGate()
		e.srv.Close()
		api.Close()
	})
	return e
}

func (e *env) openGate() {
	select {
	case <-e.gate:
	default:
		close(e.gate)
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

func (e *env) do(method, path, body string, hdr ...string) *response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &response{resp.StatusCode, resp.Header, b}
}

func TestSubmitWaitResults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	r := e.do("POST", "/v1/batches?wait=30s", `{"kind":"echo","items":["a",{"b":1},3]}`)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got struct {
		ID       string
		Status   string
		Progress struct{ Size, Done int }
		Results  []struct {
			OK    bool
			Value json.RawMessage
		}
	}
	json.Unmarshal(r.body, &got)
	if got.Status != "succeeded" || got.Progress.Size != 3 || got.Progress.Done != 3 || len(got.Results) != 3 {
		t.Fatalf("got %s", r.body)
	}
	for i, want := range []string{`"a"`, `{"b":1}`, `3`} {
		if !got.Results[i].OK || string(got.Results[i].Value) != want {
			t.Errorf("result %d = %s, want %s", i, got.Results[i].Value, want)
		}
	}
	// The same batch by ID, paginated.
	r = e.do("GET", "/v1/batches/"+got.ID+"?from=1&limit=1", "")
	m := r.json(t)
	if r.status != 200 || len(m["results"].([]any)) != 1 || m["next_from"] != float64(2) {
		t.Fatalf("page: %d %s", r.status, r.body)
	}
}

func TestSubmitWithoutWaitThenProgress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	r := e.do("POST", "/v1/batches", `{"kind":"gate","items":[1,2,3]}`)
	if r.status != 201 || !strings.HasPrefix(r.header.Get("Location"), "/v1/batches/") {
		t.Fatalf("status %d location %q: %s", r.status, r.header.Get("Location"), r.body)
	}
	loc := r.header.Get("Location")
	// A short wait ends first: 202 with progress and Retry-After.
	r = e.do("GET", loc+"?wait=1ms", "")
	if r.status != 202 || r.header.Get("Retry-After") == "" || r.json(t)["status"] != "running" {
		t.Fatalf("status %d retry-after %q: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	e.openGate()
	r = e.do("GET", loc, "", "Prefer", "wait=30")
	if r.status != 200 || !strings.Contains(string(r.body), `"results":[{"ok":true,"value":2},{"ok":true,"value":4},{"ok":true,"value":6}]`) {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	r = e.do("GET", loc+"?states=true", "")
	if !strings.Contains(string(r.body), `"states":["done","done","done"]`) {
		t.Fatalf("states: %s", r.body)
	}
}

func TestFailFastAndSettled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	e.openGate()
	// settled: every outcome, the failure in its place.
	r := e.do("POST", "/v1/batches?wait=30s", `{"kind":"gate","items":[1,-1,3]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `{"ok":false,"error":{"code":"permanent","message":"negative -1","attempts":1}}`) ||
		!strings.Contains(string(r.body), `{"ok":true,"value":6}`) {
		t.Fatalf("settled: %d %s", r.status, r.body)
	}
	// all: the failure cancels what had not run. A closed gate holds
	// the other tasks until the cancel reaches them.
	e2 := newEnv(t, opts{workers: 1})
	e2.openGate()
	items := make([]string, 200)
	for i := range items {
		items[i] = strconv.Itoa(i + 1)
	}
	items[0] = "-1"
	r = e2.do("POST", "/v1/batches?wait=30s&mode=all", `{"kind":"gate","items":[`+strings.Join(items, ",")+`]}`)
	m := r.json(t)
	if r.status != 200 || m["status"] != "failed" {
		t.Fatalf("all: %d %s", r.status, r.body)
	}
	p := m["progress"].(map[string]any)
	if p["failed"] != float64(1) || p["pending"] != float64(0) || p["done"].(float64)+p["canceled"].(float64) != 199 {
		t.Fatalf("all: progress %v", p)
	}
}

func TestEventsResume(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := newEnv(t, opts{cfg: func(c *httpapiConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	r := e.do("POST", "/v1/batches", `{"kind":"gate","items":[1,2,3,4,5]}`)
	id := r.json(t)["id"].(string)
	e.openGate()
	// Read the first two events, drop the connection, resume after the
	// second: every index exactly once.
	seen := map[int]int{}
	last := readEvents(t, e, id, "", 2, seen)
	readEvents(t, e, id, last, -1, seen)
	for i := range 5 {
		if seen[i] != 1 {
			t.Fatalf("index %d seen %d times (%v)", i, seen[i], seen)
		}
	}
	if !strings.Contains(logs.String(), "msg=request method=GET path=/v1/batches/"+id+"/events status=200") {
		t.Fatalf("access log: %s", logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readEvents reads up to n outcome events (all, and the end, with n < 0)
// from after, counts their indices and returns the last event ID.
func readEvents(t *testing.T, e *env, id, after string, n int, seen map[int]int) string {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/batches/"+id+"/events", nil)
	if after != "" {
		req.Header.Set("Last-Event-ID", after)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	lastID, name := after, ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			lastID = line[4:]
		case strings.HasPrefix(line, "event: "):
			name = line[7:]
		case strings.HasPrefix(line, "data: ") && name == "outcome":
			var o struct{ Index int }
			if err := json.Unmarshal([]byte(line[6:]), &o); err != nil {
				t.Fatal(err)
			}
			seen[o.Index]++
			if n--; n == 0 {
				return lastID
			}
		case strings.HasPrefix(line, "data: ") && name == "end":
			if !strings.Contains(line, `"status":"succeeded"`) {
				t.Fatalf("end: %s", line)
			}
			return lastID
		}
	}
	t.Fatalf("stream ended without end event: %v", sc.Err())
	return ""
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	e.openGate()
	body := `{"kind":"echo","items":[1,2]}`
	a := e.do("POST", "/v1/batches", body, "Idempotency-Key", "k1").json(t)["id"]
	r := e.do("POST", "/v1/batches?wait=30s", body, "Idempotency-Key", "k1")
	if r.status != 200 || r.json(t)["id"] != a {
		t.Fatalf("replay: %d %s, want batch %v", r.status, r.body, a)
	}
	r = e.do("POST", "/v1/batches", `{"kind":"echo","items":[1,2,3]}`, "Idempotency-Key", "k1")
	if r.status != 409 || r.json(t)["code"] != "conflict" {
		t.Fatalf("other shape: %d %s", r.status, r.body)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	id := e.do("POST", "/v1/batches", `{"kind":"gate","items":[1,2,3]}`).json(t)["id"].(string)
	r := e.do("POST", "/v1/batches/"+id+"/cancel", "")
	if r.status != 200 && r.status != 202 {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	r = e.do("GET", "/v1/batches/"+id+"?wait=30s", "")
	m := r.json(t)
	if r.status != 200 || m["status"] != "canceled" || m["progress"].(map[string]any)["canceled"] != float64(3) {
		t.Fatalf("after cancel: %d %s", r.status, r.body)
	}
}

func TestDeadLettersAndRedrive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	r := e.do("POST", "/v1/batches?wait=30s", `{"kind":"sleep","items":[{"duration":"1ms","fail":"disk on fire"},"1ms"],"options":{"max_attempts":1}}`)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	r = e.do("GET", "/v1/dead-letters?kind=sleep&error=fire", "")
	var page struct {
		DeadLetters []struct {
			ID string `json:"id"`
		} `json:"dead_letters"`
	}
	json.Unmarshal(r.body, &page)
	if r.status != 200 || len(page.DeadLetters) != 1 || page.DeadLetters[0].ID != id+"/0" {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if r = e.do("GET", "/v1/dead-letters?kind=sleep&error=flood", ""); !strings.Contains(string(r.body), `"dead_letters":[]`) {
		t.Fatalf("filtered out: %s", r.body)
	}
	r = e.do("GET", "/v1/dead-letters/"+id+"%2F0", "")
	if r.status != 200 || !strings.Contains(string(r.body), "disk on fire") {
		t.Fatalf("show: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/dead-letters/"+id+"%2F0/redrive", "")
	if r.status != 201 || !strings.HasPrefix(r.header.Get("Location"), "/v1/batches/") {
		t.Fatalf("redrive: %d %s", r.status, r.body)
	}
	if r = e.do("POST", "/v1/dead-letters/"+id+"%2F0/redrive", ""); r.status != 404 {
		t.Fatalf("second redrive: %d %s", r.status, r.body)
	}
}

func TestQueuesAndUnsupported(t *testing.T) {
	t.Parallel()
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mb.Close() })
	// A broker with Stats but not queue.Inspector: the struct hides the rest.
	e := newEnv(t, opts{workers: -1, broker: struct {
		queue.Broker
		queue.Stats
	}{mb, mb}})
	e.do("POST", "/v1/batches", `{"kind":"echo","items":[1,2],"priority":"high"}`)
	r := e.do("GET", "/v1/queues", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"high":2`) {
		t.Fatalf("queues: %d %s", r.status, r.body)
	}
	if r = e.do("GET", "/v1/batches", ""); r.status != 501 || r.json(t)["code"] != "unsupported" {
		t.Fatalf("list batches without an Inspector: %d %s", r.status, r.body)
	}
}

func TestDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	id := e.do("POST", "/v1/batches", `{"kind":"gate","items":[1]}`).json(t)["id"].(string)
	waited := make(chan *response, 1)
	go func() { waited <- e.do("GET", "/v1/batches/"+id+"?wait=60s", "") }()
	e.api.Drain()
	if r := <-waited; r.status != 202 {
		t.Fatalf("waiting request at drain: %d %s", r.status, r.body)
	}
	r := e.do("POST", "/v1/batches", `{"kind":"echo","items":[1]}`)
	if r.status != 503 || r.json(t)["code"] != "draining" || r.header.Get("Retry-After") == "" {
		t.Fatalf("submit while draining: %d %s", r.status, r.body)
	}
	if r = e.do("GET", "/readyz", ""); r.status != 503 {
		t.Fatalf("readyz while draining: %d", r.status)
	}
	if r = e.do("GET", "/healthz", ""); r.status != 200 {
		t.Fatalf("healthz while draining: %d", r.status)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := httpapi.New(nil); err == nil {
		t.Fatal("New(nil): no error")
	}
	b, _ := membroker.New(nil)
	defer b.Close()
	c, _ := queue.NewClient(b, nil)
	_, err := httpapi.New(&httpapi.Config{Client: c, MaxBody: -1, MaxWait: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "MaxBody") || !strings.Contains(err.Error(), "MaxWait") {
		t.Fatalf("err = %v, want both fields named", err)
	}
}

func TestQueueFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{workers: -1, depth: 2})
	r := e.do("POST", "/v1/batches", `{"kind":"echo","items":[1,2,3]}`)
	if r.status != 429 || r.json(t)["code"] != "queue_full" || r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r = e.do("POST", "/v1/batches", `{"kind":"echo","items":[1,2]}`); r.status != 201 {
		t.Fatalf("within the bound: %d %s", r.status, r.body)
	}
}

// A kind whose output codec is not JSON still answers in JSON: its bytes
// as a string.
func TestNonJSONOutput(t *testing.T) {
	t.Parallel()
	b, _ := membroker.New(nil)
	defer b.Close()
	raw := queue.NewKind[string, string]("raw").WithCodecs(nil, plainText{})
	w, _ := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1})
	queue.HandleFunc(w, raw, func(ctx context.Context, s string) (string, error) { return "plain \xff " + s, nil })
	w.Start()
	defer w.Shutdown(context.Background())
	e := newEnv(t, opts{broker: b, workers: -1, cfg: func(c *httpapiConfig) { c.Kinds = nil }})
	r := e.do("POST", "/v1/batches?wait=30s", `{"kind":"raw","items":["x"]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `{"ok":true,"value":"plain \ufffd x"}`) {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// plainText is a Codec that writes strings as they are.
type plainText struct{}

func (plainText) Append(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }
func (plainText) Decode(data []byte, v *string) error         { *v = string(data); return nil }
