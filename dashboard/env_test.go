package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/dashboard"
	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// env is a dashboard mounted in an API on a membroker, with a worker whose
// "gate" tasks wait until the test closes gate, and "echo" tasks.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	dash   *dashboard.Dashboard
	client *queue.Client
	http   *http.Client
	token  string
	gate   chan struct{}
}

var (
	gateKind = queue.NewKind[int, int]("gate")
	echoKind = queue.NewKind[int, int]("echo")
)

// liveness bounds every wait of these tests: generous, for a busy machine.
const liveness = time.Minute

func newEnv(t *testing.T, token string, cfg *dashboard.Config) *env {
	t.Helper()
	return newEnvServer(t, token, cfg, nil)
}

// newEnvServer is newEnv with tune, if not nil, given the test server
// before it starts.
func newEnvServer(t *testing.T, token string, cfg *dashboard.Config, tune func(*httptest.Server)) *env {
	t.Helper()
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var c dashboard.Config
	if cfg != nil {
		c = *cfg
	}
	c.Inspector = b
	d, err := dashboard.New(&c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	e := &env{t: t, dash: d, token: token, gate: make(chan struct{})}
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 4, Observer: d})
	if err != nil {
		t.Fatal(err)
	}
	queue.HandleFunc(w, gateKind, func(ctx context.Context, n int) (int, error) {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if n < 0 {
			return 0, queue.Permanent(errors.New("negative"))
		}
		return n, nil
	})
	queue.HandleFunc(w, echoKind, func(ctx context.Context, n int) (int, error) { return n, nil })
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(context.Background()) })
	e.client, err = queue.NewClient(b, &queue.ClientConfig{Observer: d})
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(&httpapi.Config{Client: e.client, Token: token, UI: d})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	tr := &http.Transport{}
	e.http = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections) // after the server's Close
	e.srv = httptest.NewUnstartedServer(api)
	if tune != nil {
		tune(e.srv)
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() { d.Close() }) // before the server's Close, which waits for the streams
	return e
}

// request sends a request and returns its response with the body read.
func (e *env) request(method, path, auth string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// stream is an open /dashboard/events.
type stream struct {
	t      *testing.T
	resp   *http.Response
	rd     *bufio.Reader
	cancel context.CancelFunc
}

func (e *env) open(query string) *stream {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), liveness)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/dashboard/events"+query, nil)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		e.t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: e.t, resp: resp, rd: bufio.NewReader(resp.Body), cancel: cancel}
	e.t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event's name and data; io.EOF when the stream ends.
func (s *stream) next() (string, []byte, error) {
	var name string
	var data []byte
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if name != "" || data != nil {
				return name, data, nil
			}
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = []byte(line[len("data: "):])
		}
	}
}

// until reads events until ok returns true for one of the named section,
// decoded into a fresh V; it fails the test if the stream ends first.
func until[V any](s *stream, section string, ok func(v V) bool) V {
	s.t.Helper()
	for {
		name, data, err := s.next()
		if err != nil {
			s.t.Fatalf("waiting for a %q event: %v", section, err)
		}
		if name != section {
			continue
		}
		var v V
		if err := json.Unmarshal(data, &v); err != nil {
			s.t.Fatalf("%s: %v in %s", section, err, data)
		}
		if ok(v) {
			return v
		}
	}
}
