package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/snapshot"
)

type statsEvent struct {
	Queues map[string]struct {
		Enqueued  uint64 `json:"enqueued"`
		Succeeded uint64 `json:"succeeded"`
		Failed    uint64 `json:"failed"`
		Running   uint64 `json:"running"`
	} `json:"queues"`
}

type batchesEvent struct {
	Batches []struct {
		ID       string `json:"id"`
		Size     int    `json:"size"`
		Done     int    `json:"done"`
		Finished bool   `json:"finished"`
	} `json:"batches"`
}

type batchEvent struct {
	ID       string `json:"id"`
	Done     int    `json:"done"`
	Failed   int    `json:"failed"`
	Canceled int    `json:"canceled"`
	Finished bool   `json:"finished"`
	States   string `json:"states"`
	Error    string `json:"error"`
}

func TestStreamFollowsTheQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", nil)
	s := e.open("")
	until(s, "hello", func(v map[string]any) bool { return v["inspector"] == true })
	b, err := queue.EnqueueBatch(context.Background(), e.client, echoKind, []int{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	// Each section's latest value must come to say the same: sections
	// are sent when they change, in any order.
	var (
		stats   statsEvent
		batches batchesEvent
		queues  struct {
			Queues []struct {
				Name  string `json:"name"`
				Total int    `json:"total"`
			} `json:"queues"`
		}
		series struct {
			Queues map[string]struct {
				Done []int `json:"done"`
			} `json:"queues"`
		}
	)
	done := func() bool {
		q := stats.Queues["default"]
		sum := 0
		for _, n := range series.Queues["default"].Done {
			sum += n
		}
		return q.Enqueued == 8 && q.Succeeded == 8 && q.Running == 0 &&
			len(batches.Batches) == 1 && batches.Batches[0].ID == b.ID() && batches.Batches[0].Done == 8 && batches.Batches[0].Finished &&
			len(queues.Queues) == 1 && queues.Queues[0].Name == "default" && queues.Queues[0].Total == 0 &&
			sum == 8 // the charts' points come every second once a page is open
	}
	for !done() {
		name, data, err := s.next()
		if err != nil {
			t.Fatalf("the stream ended (%v) with stats %+v, batches %+v, queues %+v, series %+v", err, stats, batches, queues, series)
		}
		var v any
		switch name {
		case "stats":
			v = &stats
		case "batches":
			v = &batches
		case "queues":
			v = &queues
		case "series":
			v = &series
		default:
			continue
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStreamWatchesOneBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", nil)
	b, err := queue.EnqueueBatch(context.Background(), e.client, gateKind, []int{1, -1, 3, 4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	s := e.open("?batch=" + b.ID())
	got := until(s, "batch", func(v batchEvent) bool { return strings.Count(v.States, "r") == 4 })
	if got.ID != b.ID() || len(got.States) != 6 || got.Finished {
		t.Fatalf("batch event %+v: want 6 states, 4 running, unfinished", got)
	}
	close(e.gate)
	got = until(s, "batch", func(v batchEvent) bool { return v.Finished })
	if got.States != "dfdddd" || got.Done != 5 || got.Failed != 1 {
		t.Fatalf("finished batch %+v: want states dfdddd", got)
	}
}

func TestStreamReportsAnUnknownBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", nil)
	s := e.open("?batch=nosuchbatch")
	got := until(s, "batch", func(v batchEvent) bool { return true })
	if got.ID != "nosuchbatch" || got.Error == "" {
		t.Fatalf("batch event %+v: want an error", got)
	}
	if r, _ := e.request("GET", "/dashboard/events?batch=no%20such", ""); r.StatusCode != 400 {
		t.Fatalf("a malformed batch ID: %d, want 400", r.StatusCode)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", nil)
	s := e.open("")
	until(s, "hello", func(map[string]any) bool { return true })
	e.dash.Close()
	for {
		if _, _, err := s.next(); err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "EOF") {
				t.Fatalf("the stream ended with %v, want EOF", err)
			}
			return
		}
	}
}

// TestPagesAndAuth checks what is public (the page's files) and what
// takes the token or a ticket (the stream).
func TestPagesAndAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s3cret", nil)
	for _, p := range []string{"/", "/app.js", "/app.css", "/favicon.svg"} {
		r, b := e.request("GET", p, "")
		if r.StatusCode != 200 || len(b) == 0 || !strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("GET %s without a token: %d, %d bytes, CSP %q: want the file, with a CSP", p, r.StatusCode, len(b), r.Header.Get("Content-Security-Policy"))
		}
		if strings.Contains(string(b), "s3cret") {
			t.Errorf("GET %s shows the token", p)
		}
	}
	for _, c := range []struct {
		path, auth string
		want       int
	}{
		{"/dashboard/events", "", 401},
		{"/dashboard/events", "wrong", 401},
		{"/dashboard/events?ticket=AAAA", "", 401},
		{"/nothing-here", "", 404},
		{"/v1/queues", "", 401},
	} {
		r, _ := e.request("GET", c.path, c.auth)
		if r.StatusCode != c.want {
			t.Errorf("GET %s (token %q): %d, want %d", c.path, c.auth, r.StatusCode, c.want)
		}
	}
	if r, _ := e.request("POST", "/v1/tickets", ""); r.StatusCode != 401 {
		t.Fatalf("a ticket without the token: %d, want 401", r.StatusCode)
	}
	r, b := e.request("POST", "/v1/tickets", "s3cret")
	var tk struct{ Ticket string }
	json.Unmarshal(b, &tk)
	if r.StatusCode != 201 || tk.Ticket == "" {
		t.Fatalf("POST /v1/tickets: %d %+v", r.StatusCode, tk)
	}
	// The ticket opens event streams, and nothing else.
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/dashboard/events?ticket="+tk.Ticket, nil)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("the stream with a ticket: %d, want 200", resp.StatusCode)
	}
	cancel()
	resp.Body.Close()
	if r, _ := e.request("GET", "/v1/queues?ticket="+tk.Ticket, ""); r.StatusCode != 401 {
		t.Fatalf("GET /v1/queues with a ticket: %d, want 401: a ticket opens event streams only", r.StatusCode)
	}
}

func TestObserveAllocatesNothing(t *testing.T) {
	d, err := dashboard.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ev := queue.Event{Type: queue.EventSucceeded, Queue: "default", Kind: "echo", Elapsed: time.Millisecond}
	d.Observe(ev) // the queue's first event makes its counters
	if n := testing.AllocsPerRun(1000, func() {
		d.Observe(ev)
		d.Observe(queue.Event{Type: queue.EventStarted, Queue: "default", Elapsed: time.Microsecond})
	}); n != 0 {
		t.Fatalf("Observe allocates %v times an event, want 0", n)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := dashboard.New(&dashboard.Config{FrameInterval: -1, History: 2 * time.Hour, StreamWriteTimeout: -time.Second, Prefix: "bad prefix", Snapshots: []dashboard.SnapshotSource{nil}})
	if err == nil {
		t.Fatal("a bad config was accepted")
	}
	for _, want := range []string{"FrameInterval", "History", "StreamWriteTimeout", "Prefix", "Snapshots[0]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not name %s", err, want)
		}
	}
}

type snapshotsEvent struct {
	Snapshots []struct {
		Name     string `json:"name"`
		Complete bool   `json:"complete"`
		Sources  []struct {
			Name   string  `json:"name"`
			State  string  `json:"state"`
			Reason string  `json:"reason"`
			LagMS  float64 `json:"lag_ms"`
		} `json:"sources"`
		Lag   map[string]struct{ MS []float64 } `json:"lag_history"`
		Table *dashboard.Table                  `json:"table"`
	} `json:"snapshots"`
}

// TestSnapshots shows a real collector's cuts: complete, then held back by
// a source that is behind.
func TestSnapshots(t *testing.T) {
	t.Parallel()
	c, err := snapshot.New(&snapshot.Config[string, float64]{
		Sources: []snapshot.Source{{Name: "A"}, {Name: "B"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var latest dashboard.LatestSnapshot
	e := newEnv(t, "", &dashboard.Config{Snapshots: []dashboard.SnapshotSource{&latest}})
	s := e.open("")
	t0 := time.Unix(1_700_000_000, 0)
	for i, src := range []string{"A", "B"} {
		if err := c.Apply(snapshot.Update[string, float64]{Source: src, Key: "px", Seq: 1, Time: t0.Add(time.Duration(i) * time.Millisecond), Value: 1}); err != nil {
			t.Fatal(err)
		}
		if err := c.Heartbeat(snapshot.Heartbeat{Source: src, Seq: 1, Time: t0.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	cut, err := c.Cut(t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	v := dashboard.CutView("quotes", cut)
	v.Table = &dashboard.Table{Columns: []string{"key", "value"}, Rows: [][]string{{"px", "1"}}}
	latest.Set(v)
	got := until(s, "snapshots", func(v snapshotsEvent) bool { return len(v.Snapshots) == 1 && v.Snapshots[0].Name == "quotes" })
	if sn := got.Snapshots[0]; !sn.Complete || len(sn.Sources) != 2 || sn.Sources[0].State != "current" || sn.Table == nil || sn.Table.Rows[0][1] != "1" {
		t.Fatalf("the first cut: %+v, want complete with both sources current and the table", sn)
	}
	// A moves on, B stays behind: the next cut is held back by B.
	if err := c.Heartbeat(snapshot.Heartbeat{Source: "A", Seq: 1, Time: t0.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	cut, err = c.Cut(t0.Add(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	latest.Set(dashboard.CutView("quotes", cut))
	got = until(s, "snapshots", func(v snapshotsEvent) bool { return len(v.Snapshots) == 1 && !v.Snapshots[0].Complete })
	sn := got.Snapshots[0]
	b := sn.Sources[1]
	if b.Name != "B" || b.State == "current" || b.Reason == "" || b.LagMS != 2000 {
		t.Fatalf("source B in the second cut: %+v, want behind by 2s with a reason", b)
	}
	if len(sn.Lag["B"].MS) == 0 {
		t.Fatalf("no lag history for B: %+v", sn.Lag)
	}
}

// TestViewWithoutBatches: a page on another view than the batch list is
// not sent the list (the broker is not read for it).
func TestViewWithoutBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", nil)
	s := e.open("?view=queues")
	if _, err := queue.EnqueueBatch(context.Background(), e.client, echoKind, []int{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	for {
		name, data, err := s.next()
		if err != nil {
			t.Fatal(err)
		}
		if name == "batches" {
			t.Fatalf("a queues view was sent the batch list: %s", data)
		}
		var v statsEvent
		if name == "stats" && json.Unmarshal(data, &v) == nil && v.Queues["default"].Succeeded == 3 {
			break
		}
	}
	if r, _ := e.request("GET", "/dashboard/events?view=nosuch", ""); r.StatusCode != 400 {
		t.Fatalf("an unknown view: %d, want 400", r.StatusCode)
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "s3cret", nil)
	for _, c := range []struct {
		token string
		want  string
	}{{"", `{"authenticated":false}`}, {"wrong", `{"authenticated":false}`}, {"s3cret", `{"authenticated":true}`}} {
		r, b := e.request("GET", "/dashboard/session", c.token)
		if r.StatusCode != 200 || strings.TrimSpace(string(b)) != c.want {
			t.Errorf("session with token %q: %d %s, want %s", c.token, r.StatusCode, b, c.want)
		}
	}
}
