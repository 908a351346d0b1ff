package e2e

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestDashboardPauseResume pauses a queue from the page of a server with a
// token, sees it paused (the page's own answer, then the broker's as the
// live stream reads it, then the API's), resumes it, and sees the batch
// enqueued meanwhile finish. The Controls card shows the server's limit,
// rate and schedule.
func TestDashboardPauseResume(t *testing.T) {
	const secret = "e2e-Pause-51c2"
	srv := startServer(t, secret, "--queues", "default,bulk", "--limit", "bulk/echo=2", "--rate", "bulk=50:5",
		"--schedule", `{"name":"hourly","every":"1h","kind":"echo","queue":"bulk","input":"tick"}`)
	var b batchStatus
	srv.call(t, "POST", "/v1/batches?wait=60s", map[string]any{"kind": "echo", "queue": "bulk", "items": []int{1}}, &b)
	if b.Status != "succeeded" {
		t.Fatalf("the first batch of bulk: %+v", b)
	}
	br := startBrowser(t)
	br.run(t, "log in",
		chromedp.Navigate(srv.url+"/#/queues"),
		chromedp.WaitVisible(css("#login")),
		chromedp.SendKeys(css("#token"), secret),
		chromedp.Click(css("#login-form button")),
		waitJS(`document.querySelector("#conn").classList.contains("live")`),
		chromedp.WaitVisible(css("#view-queues")),
	)
	const stateOf = `(document.querySelector('[data-queue-state="bulk"]') || {}).textContent`
	const button = `[data-queue-action="bulk"]`
	const streamSays = `((state.queues && state.queues.queues || []).find(q => q.name === "bulk") || {}).paused`
	br.run(t, "see bulk active, and the controls",
		waitJS(stateOf+` === "active"`),
		waitJS(fmt.Sprintf(`document.querySelector(%q).textContent === "Pause"`, button)),
		chromedp.WaitVisible(css("#controls-card")),
		waitJS(`document.querySelectorAll("#controls-table tbody tr").length === 3`),
	)
	for _, want := range []string{"at most 2 at once", "50 a second, bursts of 5", "every 1h0m0s", "hourly"} {
		if !eval[bool](t, br, fmt.Sprintf(`document.querySelector("#controls-card").textContent.includes(%q)`, want)) {
			t.Errorf("the Controls card does not say %q: %s", want, eval[string](t, br, `document.querySelector("#controls-card").textContent`))
		}
	}
	br.screenshot(t, "queues-controls")

	br.run(t, "pause bulk",
		chromedp.Click(css(button)),
		waitJS(stateOf+` === "paused"`),
		waitJS(fmt.Sprintf(`document.querySelector(%q).textContent === "Resume"`, button)),
		waitJS(streamSays+` === true`), // the broker, read for the live stream
		waitJS(stateOf+` === "paused"`),
	)
	br.screenshot(t, "bulk-paused")
	if !apiPaused(t, srv, "bulk") || apiPaused(t, srv, "default") {
		t.Fatal("after the page's pause, the API does not say bulk alone is paused")
	}
	// Enqueueing is still accepted.
	srv.call(t, "POST", "/v1/batches", map[string]any{"kind": "echo", "queue": "bulk", "items": []int{2, 3}}, &b)

	br.run(t, "resume bulk",
		chromedp.Click(css(button)),
		waitJS(stateOf+` === "active"`),
		waitJS(fmt.Sprintf(`document.querySelector(%q).textContent === "Pause"`, button)),
		waitJS(streamSays+` === false`),
	)
	br.screenshot(t, "bulk-resumed")
	if apiPaused(t, srv, "bulk") {
		t.Fatal("after the page's resume, the API says bulk is paused")
	}
	var got batchStatus
	srv.call(t, "GET", "/v1/batches/"+b.ID+"?wait=60s", nil, &got)
	if got.Status != "succeeded" {
		t.Fatalf("the batch enqueued while bulk was paused, after the resume: %+v", got)
	}
	br.checkErrors(t)
}

// apiPaused reports what GET /v1/queues says of the queue.
func apiPaused(t *testing.T, srv *server, name string) bool {
	t.Helper()
	var out struct {
		Queues []struct {
			Name   string
			Paused *bool
		}
	}
	srv.call(t, "GET", "/v1/queues", nil, &out)
	for _, q := range out.Queues {
		if q.Name == name {
			if q.Paused == nil {
				t.Fatalf("GET /v1/queues: %s has no paused field", name)
			}
			return *q.Paused
		}
	}
	t.Fatalf("GET /v1/queues does not list %s", name)
	return false
}
