package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/snapshot/natsfeed"
)

// TestSnapshotsCurl runs the shell example of docs/program.md against a
// serve started with the page's --snapshots file, so that the page stays
// true; then feeds the page's NATS collector through natsfeed publishers
// on the server's NATS and reads its cut over HTTP.
func TestSnapshotsCurl(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	doc, err := os.ReadFile("../docs/program.md")
	if err != nil {
		t.Fatal(err)
	}
	spec := regexp.MustCompile("(?s)```json\n(\\[\\{\"name\": \"quotes\".*?)```").FindSubmatch(doc)
	script := regexp.MustCompile("(?s)```sh\n(# feed and read consistent snapshots.*?)```").FindSubmatch(doc)
	if spec == nil || script == nil {
		t.Fatal("docs/program.md lost its snapshots spec or shell example: update this test")
	}
	s := startServe(t, "--workers", "0", "--nats-listen", "127.0.0.1:0", "--snapshots", string(spec[1]))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", string(script[1]))
	cmd.Env = append(os.Environ(), "SERVER="+s.http)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the shell example: %v\n%s", err, out)
	}
	// Each read prints its cut, then "=> status".
	var statuses []string
	var cuts []map[string]any
	for line := range strings.Lines(string(out)) {
		if st, ok := strings.CutPrefix(line, "=> "); ok {
			statuses = append(statuses, strings.TrimSpace(st))
		} else if strings.HasPrefix(line, `{"collector"`) {
			var c map[string]any
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			cuts = append(cuts, c)
		}
	}
	if strings.Join(statuses, " ") != "200 202 200 200" || len(cuts) != 4 {
		t.Fatalf("statuses %q, %d cuts:\n%s", statuses, len(cuts), out)
	}
	b := cuts[1]["sources"].([]any)[1].(map[string]any)
	if b["source"] != "B" || !(b["reason"] == "stale by 200ms" || b["state"] == "silent") {
		t.Fatalf("the 202 does not say B holds the cut back: %v", b)
	}
	if cuts[2]["complete"] != true || cuts[2]["revision"] != 1.0 || !strings.Contains(string(out), `"B":{"AAPL":{"bid":190.02,"ask":190.03}}`) {
		t.Fatalf("the revised cut:\n%s", out)
	}

	// The page's NATS collector, fed by two venues' publishers.
	var pubs []*natsfeed.Publisher[map[string]float64]
	for _, venue := range []string{"XNAS", "XNYS"} {
		nc, err := nats.Connect(s.nats)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		p, err := natsfeed.NewPublisher(nc, &natsfeed.PublisherConfig[map[string]float64]{Prefix: "md", Source: venue})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pubs = append(pubs, p)
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i, p := range pubs {
		if _, err := p.Publish("AAPL", map[string]float64{"bid": 190 + float64(i)}, at.Add(-time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := p.Heartbeat(at); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", s.http+"/v1/snapshots/venues?wait=60s&at="+at.Format(time.RFC3339Nano), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), `"values":{"XNAS":{"AAPL":{"bid":190}},"XNYS":{"AAPL":{"bid":191}}}`) {
		t.Fatalf("venues at %s: %d %s", at, res.StatusCode, body)
	}
	code, _, errOut := run(t, "", "serve", "--data", t.TempDir(), "--snapshots", `[{"name":"x","sources":[]}]`)
	if code != 2 || !strings.Contains(errOut, `collector "x" has no sources`) {
		t.Fatalf("a bad --snapshots: exit %d, %q", code, errOut)
	}
}
