package snapshotapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
	"github.com/gather-go/gather/snapshot/snapshotapi"
)

const token = "t0ken"

// server is an httpapi.Server with a snapshotapi.Service mounted, behind a
// token, as gather serve runs it.
type server struct {
	t   *testing.T
	url string
	svc *snapshotapi.Service
	api *httpapi.Server
}

func newServer(t *testing.T, specs string) *server {
	t.Helper()
	sp, err := snapshotapi.ParseSpecs([]byte(specs))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := snapshotapi.New(&snapshotapi.Config{Specs: sp, MaxBody: 64 << 10, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := queue.NewClient(mb, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(&httpapi.Config{Client: client, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Mount(svc); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		api.Drain() // ends the event streams, so that Close does not wait on them
		hs.Close()
		api.Close()
		svc.Close()
		mb.Close()
	})
	return &server{t: t, url: hs.URL, svc: svc, api: api}
}

type response struct {
	status int
	body   []byte
	ctype  string
}

func (s *server) do(method, path, body string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{res.StatusCode, b, res.Header.Get("Content-Type")}
}

func (s *server) post(name, body string) {
	s.t.Helper()
	if r := s.do("POST", "/v1/snapshots/"+name+"/updates", body); r.status != 200 {
		s.t.Fatalf("POST %s: %d %s", body, r.status, r.body)
	}
}

type cut struct {
	Time     time.Time `json:"time"`
	Seq      uint64    `json:"seq"`
	Revision int       `json:"revision"`
	Complete bool      `json:"complete"`
	Sources  []struct {
		Source, State, Reason string
		LagNS                 int64 `json:"lag_ns"`
		Missing               []struct{ First, Last uint64 }
	} `json:"sources"`
	Values map[string]map[string]json.RawMessage `json:"values"`
}

func decodeCut(t *testing.T, b []byte) cut {
	t.Helper()
	var c cut
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return c
}

func ts(t time.Time) string { return t.Format(time.RFC3339Nano) }

// Two sources post updates and heartbeats; a read at T gets the complete
// cut; when one source lags, a read at a later T gets a 202 saying which
// and by how much; once it catches up, the same read gets the revised,
// complete cut.
func TestPostAndRead(t *testing.T) {
	t.Parallel()
	s := newServer(t, `[{"name":"quotes","interval":"1h","silent_after":"1h",
		"sources":[{"name":"A"},{"name":"B"},{"name":"C","optional":true}]}]`)
	base := time.Date(2026, 1, 2, 9, 30, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return base.Add(d) }

	// JSON lines from A, a JSON array from B, times as RFC 3339 and as
	// Unix nanoseconds.
	s.post("quotes", fmt.Sprintf(`{"source":"A","seq":1,"time":%q,"key":"AAPL","value":{"bid":190.01,"ask":190.03}}
{"type":"heartbeat","source":"A","seq":1,"time":%q}`, ts(at(time.Millisecond)), ts(at(100*time.Millisecond))))
	s.post("quotes", fmt.Sprintf(`[{"source":"B","seq":1,"time":%d,"key":"AAPL","value":{"bid":190.00,"ask":190.04}},
		{"type":"heartbeat","source":"B","seq":1,"time":%d}]`, at(2*time.Millisecond).UnixNano(), at(100*time.Millisecond).UnixNano()))

	r := s.do("GET", "/v1/snapshots/quotes?at="+ts(at(100*time.Millisecond))+"&wait=30s", "")
	if r.status != 200 {
		t.Fatalf("at 100ms: %d %s", r.status, r.body)
	}
	c := decodeCut(t, r.body)
	if !c.Complete || !c.Time.Equal(at(100*time.Millisecond)) {
		t.Fatalf("at 100ms: %s", r.body)
	}
	if got := string(c.Values["A"]["AAPL"]); got != `{"bid":190.01,"ask":190.03}` {
		t.Fatalf("A's AAPL: %s", got)
	}
	if got := string(c.Values["B"]["AAPL"]); got != `{"bid":190.00,"ask":190.04}` {
		t.Fatalf("B's AAPL: %s", got)
	}
	r = s.do("GET", "/v1/snapshots/quotes/latest", "")
	if l := decodeCut(t, r.body); r.status != 200 || l.Seq != c.Seq {
		t.Fatalf("latest: %d %s", r.status, r.body)
	}

	// A moves on to 300ms, B stays at 100ms: a read at 300ms waits, then
	// says B is stale by 200ms.
	s.post("quotes", fmt.Sprintf(`{"source":"A","seq":2,"time":%q,"key":"AAPL","value":{"bid":190.02,"ask":190.03}}
{"type":"heartbeat","source":"A","seq":2,"time":%q}`, ts(at(200*time.Millisecond)), ts(at(300*time.Millisecond))))
	r = s.do("GET", "/v1/snapshots/quotes?at="+ts(at(300*time.Millisecond))+"&wait=10ms", "")
	if r.status != 202 {
		t.Fatalf("at 300ms with B behind: %d %s", r.status, r.body)
	}
	c = decodeCut(t, r.body)
	if c.Complete || len(c.Sources) != 3 {
		t.Fatalf("at 300ms: %s", r.body)
	}
	for _, st := range c.Sources {
		want := map[string]string{"A": "current", "B": "stale", "C": "never_heard"}[st.Source]
		if st.State != want {
			t.Errorf("source %s: state %s, want %s", st.Source, st.State, want)
		}
	}
	if b := c.Sources[1]; b.LagNS != int64(200*time.Millisecond) || b.Reason != "stale by 200ms" {
		t.Errorf("B: lag %v, reason %q; want 200ms, \"stale by 200ms\"", time.Duration(b.LagNS), b.Reason)
	}
	if got := string(c.Values["A"]["AAPL"]); got != `{"bid":190.02,"ask":190.03}` {
		t.Fatalf("A's AAPL at 300ms: %s", got)
	}

	// B's late update revises the cut, which becomes complete.
	s.post("quotes", fmt.Sprintf(`{"source":"B","seq":2,"time":%q,"key":"AAPL","value":{"bid":190.01,"ask":190.02}}
{"type":"heartbeat","source":"B","seq":2,"time":%q}`, ts(at(250*time.Millisecond)), ts(at(300*time.Millisecond))))
	r = s.do("GET", "/v1/snapshots/quotes?at="+ts(at(300*time.Millisecond)), "")
	if r.status != 200 {
		t.Fatalf("at 300ms after B caught up: %d %s", r.status, r.body)
	}
	if c = decodeCut(t, r.body); !c.Complete || c.Revision < 1 || string(c.Values["B"]["AAPL"]) != `{"bid":190.01,"ask":190.02}` {
		t.Fatalf("at 300ms after B caught up: %s", r.body)
	}

	// A gap: B's seq 4 without 3 holds B back and says what is missing.
	s.post("quotes", fmt.Sprintf(`{"source":"B","seq":4,"time":%q,"key":"MSFT","value":1}`, ts(at(400*time.Millisecond))))
	s.post("quotes", fmt.Sprintf(`{"type":"heartbeat","source":"A","seq":2,"time":%q}`, ts(at(500*time.Millisecond))))
	r = s.do("GET", "/v1/snapshots/quotes?at="+ts(at(500*time.Millisecond))+"&wait=10ms", "")
	c = decodeCut(t, r.body)
	if b := c.Sources[1]; r.status != 202 || b.State != "gapped" || len(b.Missing) != 1 || b.Missing[0].First != 3 || b.Missing[0].Last != 3 {
		t.Fatalf("at 500ms with B gapped: %d %s", r.status, r.body)
	}

	// An image resets B past its gap; the buffered seq 4 applies on top.
	s.post("quotes", fmt.Sprintf(`{"type":"image","source":"B","seq":3,"time":%q,"entries":[{"key":"AAPL","value":{"bid":189.99}},{"key":"IBM","value":7}]}
{"type":"heartbeat","source":"B","seq":4,"time":%q}
{"type":"heartbeat","source":"A","seq":2,"time":%q}`, ts(at(350*time.Millisecond)), ts(at(600*time.Millisecond)), ts(at(600*time.Millisecond))))
	r = s.do("GET", "/v1/snapshots/quotes?at="+ts(at(600*time.Millisecond))+"&wait=30s", "")
	c = decodeCut(t, r.body)
	if r.status != 200 || string(c.Values["B"]["AAPL"]) != `{"bid":189.99}` || string(c.Values["B"]["IBM"]) != "7" || string(c.Values["B"]["MSFT"]) != "1" {
		t.Fatalf("at 600ms after B's image: %d %s", r.status, r.body)
	}
}

// Bad requests get problems that say what is accepted.
func TestProblems(t *testing.T) {
	t.Parallel()
	s := newServer(t, `[{"name":"q","sources":[{"name":"A"}]}]`)
	for _, tc := range []struct {
		method, path, body string
		status             int
		code, detail       string
	}{
		{"GET", "/v1/snapshots/nope/latest", "", 404, "not_found", `no snapshot collector "nope"`},
		{"GET", "/v1/snapshots/q/latest", "", 404, "not_found", "no complete cut yet"},
		{"GET", "/v1/snapshots/q", "", 400, "malformed", "at is missing"},
		{"GET", "/v1/snapshots/q?at=yesterday", "", 400, "malformed", "want RFC 3339"},
		{"GET", "/v1/snapshots/q?at=1&wait=soon", "", 400, "malformed", `wait "soon"`},
		{"GET", "/v1/snapshots/q?at=2199-01-01T00:00:00Z", "", 422, "bad_option", "later than the server's clock"},
		{"GET", "/v1/snapshots/q?at=2999-01-01T00:00:00Z", "", 400, "malformed", "want a time from 1970 to 2262"},
		{"POST", "/v1/snapshots/q/updates", `{"source":"A","seq":1,"key":"k","value":1}`, 400, "malformed", "time is missing"},
		{"POST", "/v1/snapshots/q/updates", `{"source":"A","seq":1,"time":1,"key":"k","value":1,"colour":2}`, 400, "malformed", "accepted fields are"},
		{"POST", "/v1/snapshots/q/updates", `[{"source":"Z","seq":1,"time":1,"key":"k","value":1}]`, 422, "bad_input", "record 0 refused"},
		{"POST", "/v1/snapshots/q/updates", strings.Repeat(`{"source":"A","seq":1,"time":1,"key":"k","value":1}`, 101), 413, "too_large", "at most 100 records"},
		{"POST", "/v1/snapshots/q/updates", `[` + strings.Repeat(" ", 70<<10) + `]`, 413, "too_large", "the limit is 65536 bytes"},
	} {
		r := s.do(tc.method, tc.path, tc.body)
		var p httpapi.Problem
		if err := json.Unmarshal(r.body, &p); err != nil || r.status != tc.status || p.Code != tc.code ||
			!strings.Contains(p.Detail, tc.detail) || r.ctype != "application/problem+json" {
			t.Errorf("%s %s: %d %s %s; want %d %s %q", tc.method, tc.path, r.status, r.ctype, r.body, tc.status, tc.code, tc.detail)
		}
	}
	// Without the token: 401, as for every route but the health checks.
	res, err := http.Get(s.url + "/v1/snapshots/q/latest")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("without a token: %d", res.StatusCode)
	}
}

// The event stream sends a cut at each multiple of the interval: complete
// once both sources have passed it, incomplete with reasons after grace.
func TestEvents(t *testing.T) {
	t.Parallel()
	s := newServer(t, `[{"name":"ticks","interval":"50ms","grace":"50ms","sources":[{"name":"A"},{"name":"B"}]}]`)
	t0 := time.Now()
	s.post("ticks", fmt.Sprintf(`{"source":"A","seq":1,"time":%q,"key":"x","value":"a"}
{"source":"B","seq":1,"time":%q,"key":"x","value":"b"}`, ts(t0), ts(t0)))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/v1/snapshots/ticks/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}

	// The sources announce their progress to the wall clock until the
	// reader has what it needs: a source's own pace, not a wait.
	var wg sync.WaitGroup
	defer wg.Wait()
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			now := ts(time.Now())
			body := fmt.Sprintf(`[{"type":"heartbeat","source":"A","seq":1,"time":%q},{"type":"heartbeat","source":"B","seq":1,"time":%q}]`, now, now)
			req, _ := http.NewRequestWithContext(feedCtx, "POST", s.url+"/v1/snapshots/ticks/updates", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			if res, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			select {
			case <-feedCtx.Done():
				return
			case <-tick.C:
			}
		}
	})

	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	var lastSeq uint64
	var last time.Time
	complete, events := 0, 0
	for complete < 2 && sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		c := decodeCut(t, []byte(data))
		events++
		if c.Seq <= lastSeq || !c.Time.After(last) || c.Time.UnixNano()%int64(50*time.Millisecond) != 0 {
			t.Fatalf("event %d after seq %d at %s: %s", events, lastSeq, last, data)
		}
		lastSeq, last = c.Seq, c.Time
		if c.Complete {
			complete++
			if string(c.Values["A"]["x"]) != `"a"` || string(c.Values["B"]["x"]) != `"b"` {
				t.Fatalf("complete cut without the values: %s", data)
			}
		} else {
			for _, st := range c.Sources {
				if st.State != "current" && st.Reason == "" {
					t.Fatalf("incomplete cut without a reason: %s", data)
				}
			}
		}
	}
	if complete < 2 {
		t.Fatalf("stream ended after %d events (%d complete): %v", events, complete, sc.Err())
	}
}

// Draining the API ends the waits and event streams of the mounted
// service and makes it refuse updates.
func TestDrain(t *testing.T) {
	t.Parallel()
	s := newServer(t, `[{"name":"q","interval":"1h","sources":[{"name":"A"}]}]`)
	req, _ := http.NewRequest("GET", s.url+"/v1/snapshots/q/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	waited := make(chan response, 1)
	go func() { waited <- s.do("GET", "/v1/snapshots/q?at=2026-01-02T09:30:00Z&wait=1h", "") }()

	s.api.Drain()
	if r := <-waited; r.status != 202 || !strings.Contains(string(r.body), `"reason":"never heard"`) {
		t.Fatalf("a wait across the drain: %d %s", r.status, r.body)
	}
	if b, err := io.ReadAll(stream.Body); err != nil || len(b) != 0 {
		t.Fatalf("the stream across the drain: %q, %v", b, err)
	}
	r := s.do("POST", "/v1/snapshots/q/updates", `{"source":"A","seq":1,"time":1,"key":"k","value":1}`)
	if r.status != 503 || !strings.Contains(string(r.body), `"code":"draining"`) {
		t.Fatalf("an update after the drain: %d %s", r.status, r.body)
	}
}
