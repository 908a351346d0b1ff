package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeDashboard: serve shows the dashboard at /, its stream lists
// the built-in workers and a remote gather worker by their heartbeats, and
// an open stream does not hold up serve's shutdown.
func TestServeDashboard(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "2", "--nats-listen", "127.0.0.1:0")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	resp, err := hc.Get(s.http + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "app.js") {
		t.Fatalf("GET /: %d %s %.100s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	stopWorker := startWorker(t, "--nats", s.nats, "--concurrency", "3")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.http+"/dashboard/events?view=workers", nil)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	var event string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before both workers showed: %v", err)
		}
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = strings.TrimSpace(e)
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || event != "workers" {
			continue
		}
		var v struct {
			Workers []struct {
				Concurrency int  `json:"concurrency"`
				Connected   bool `json:"connected"`
			} `json:"workers"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatal(err)
		}
		conc := map[int]bool{}
		for _, w := range v.Workers {
			conc[w.Concurrency] = w.Connected
		}
		if conc[2] && conc[3] {
			break
		}
	}
	if code := stopWorker(); code != 0 {
		t.Fatalf("worker exit %d", code)
	}
	// The stream is open: serve must still stop, and end it.
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, s.stderr)
	}
	if _, err := io.Copy(io.Discard, rd); err != nil && ctx.Err() != nil {
		t.Fatalf("the stream outlived serve: %v", err)
	}
}

func TestServeWithoutDashboard(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "0", "--dashboard=false")
	resp, err := http.Get(s.http + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET / with --dashboard=false: %d, want 404", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}
