package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gather-go/gather/cli"
	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// Liveness deadlines: generous, for a busy two-core machine. Every wait is
// on a condition of the page or the API, never a fixed sleep.
const (
	startTimeout = 2 * time.Minute
	stepTimeout  = time.Minute
)

// failing makes the flaky kind fail while it is set.
var failing atomic.Bool

var flaky = queue.NewKind[string, string]("flaky")

// server is a gather serve running in this process.
type server struct {
	url    string
	token  string
	cancel context.CancelFunc
	done   chan int
}

// startServer starts gather serve with a token (none when empty) and the
// extra flags.
func startServer(t *testing.T, token string, extra ...string) *server {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr.json")
	p := &cli.Program{Kinds: []kinds.Def{kinds.Func(flaky, "fails while the test says so", func(ctx context.Context, s string) (string, error) {
		if failing.Load() {
			return "", fmt.Errorf("flaky: %s is broken today", s)
		}
		return "fixed " + s, nil
	})}}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{token: token, cancel: cancel, done: make(chan int, 1)}
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0",
		"--addr-file", addrFile, "--workers", "4", "--shutdown-timeout", "0"}
	if token != "" {
		args = append(args, "--token", token)
	}
	args = append(args, extra...)
	var logs bytes.Buffer
	var logMu sync.Mutex
	go func() {
		s.done <- p.Run(ctx, args, strings.NewReader(""), io.Discard, &lockedWriter{w: &logs, mu: &logMu})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-s.done; code != 0 {
			logMu.Lock()
			t.Errorf("serve exited %d:\n%s", code, logs.String())
			logMu.Unlock()
		}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		b, err := os.ReadFile(addrFile)
		if err == nil && len(b) > 0 {
			var a struct{ HTTP string }
			if json.Unmarshal(b, &a) == nil && a.HTTP != "" {
				s.url = a.HTTP
				return s
			}
		}
		select {
		case code := <-s.done:
			s.done <- code
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("serve exited %d before listening:\n%s", code, logs.String())
		case <-time.After(20 * time.Millisecond): // the file appears once serve listens
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not listen within " + startTimeout.String())
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// call sends a request to the API and decodes the JSON answer into out.
func (s *server) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

type batchStatus struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Progress struct {
		Size, Done, Failed, Canceled, Pending int
	} `json:"progress"`
}

// browser is a headless chromium on a fresh profile, with the errors its
// pages report.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
	shots  string // the directory
	prefix string // the test's name
	n      int
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("no chromium at %s: run e2e/run.sh, which installs Debian's chromium (%v)", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelB()
		cancelA()
	})
	b := &browser{ctx: ctx, shots: "screenshots", prefix: t.Name()}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first Run starts the browser; it must not carry a deadline,
	// which would stop the browser with it.
	if err := chromedp.Listen(ctx, b.listen); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

// listen keeps the errors the page reports: console.error and assert
// calls, uncaught exceptions, and the browser log's errors (such as a
// resource that failed to load).
func (b *browser) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.addError("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		b.addError("exception: " + msg)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.addError("log: " + ev.Entry.Text + " " + ev.Entry.URL)
		}
	}
}

func (b *browser) addError(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

func (b *browser) checkErrors(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		t.Errorf("the page reported errors:\n%s", strings.Join(b.errors, "\n"))
		b.errors = nil
	}
}

type step = chromedp.Action[chromedp.Void]

// run runs steps within stepTimeout, failing the test with what was
// being done (and a screenshot of it).
func (b *browser) run(t *testing.T, what string, steps ...step) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.screenshot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
		// What the page said, for a run whose screenshots are not kept (CI).
		tctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer cancel()
		if text, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 3000)`)); err == nil {
			t.Logf("the page's text when %q failed:\n%s", what, text)
		}
		t.Fatalf("%s: %v", what, err)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// screenshot saves the page as screenshots/Test-NN-name.png.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.n++
	path := filepath.Join(b.shots, fmt.Sprintf("%s-%02d-%s.png", b.prefix, b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// waitJS waits until the JavaScript expression is true, for as long as the
// step's context allows.
func waitJS(expr string) step {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0))(ctx, t)
		if err != nil {
			err = fmt.Errorf("waiting for %s: %w", expr, err)
		}
		return chromedp.Void{}, err
	}
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

func TestDashboard(t *testing.T) {
	srv := startServer(t, "")
	br := startBrowser(t)

	// The page loads, connects its live stream, and reports no error.
	br.run(t, "load the page",
		chromedp.Navigate(srv.url+"/#/queues"),
		chromedp.WaitVisible(css("#view-queues")),
		waitJS(`document.querySelector("#conn").classList.contains("live")`),
	)
	eval[bool](t, br, `window.loadedOnce = true`)
	br.checkErrors(t)
	br.screenshot(t, "loaded")

	t.Run("progress", func(t *testing.T) {
		var b batchStatus
		srv.call(t, "POST", "/v1/batches", map[string]any{"kind": "sleep", "items": strings.Split(strings.Repeat("150ms,", 24)+"150ms", ",")}, &b)
		row := fmt.Sprintf(`tr[data-id=%q]`, b.ID)
		br.run(t, "watch the batch's progress",
			chromedp.Navigate(srv.url+"/#/batches"),
			chromedp.WaitVisible(css(row)),
		)
		br.screenshot(t, "batch-running")
		br.run(t, "wait for 100%",
			waitJS(fmt.Sprintf(`(() => { const r = document.querySelector(%q); return r && r.querySelector(".progress").getAttribute("aria-valuenow") === "100" && r.querySelector(".badge").textContent === "succeeded"; })()`, row)),
		)
		if !eval[bool](t, br, `window.loadedOnce === true`) {
			t.Fatal("the page was reloaded: progress must arrive live")
		}
		br.screenshot(t, "batch-done")
		// The queue charts have points by now.
		br.run(t, "queue charts", chromedp.Navigate(srv.url+"/#/queues"), chromedp.WaitVisible(css(`#charts svg path`)))
		br.screenshot(t, "queues")
	})

	t.Run("cancel", func(t *testing.T) {
		var b batchStatus
		items := make([]string, 60)
		for i := range items {
			items[i] = "10m"
		}
		srv.call(t, "POST", "/v1/batches", map[string]any{"kind": "sleep", "items": items}, &b)
		br.run(t, "open the batch",
			chromedp.Navigate(srv.url+"/#/batches/"+b.ID),
			waitJS(`document.querySelectorAll("#b-grid .cell").length === 60`),
			waitJS(`document.querySelectorAll("#b-grid .cell.r").length > 0`),
			waitJS(`!document.querySelector("#b-cancel").disabled`),
		)
		br.screenshot(t, "batch-before-cancel")
		br.run(t, "cancel it",
			chromedp.Click(css("#b-cancel")),
			waitJS(`document.querySelector("#b-status") && document.querySelector("#b-status").textContent === "canceled"`),
			waitJS(`document.querySelectorAll("#b-grid .cell.c").length === 60`),
		)
		br.screenshot(t, "batch-canceled")
		var got batchStatus
		srv.call(t, "GET", "/v1/batches/"+b.ID, nil, &got)
		if got.Status != "canceled" || got.Progress.Canceled != 60 || got.Progress.Done != 0 {
			t.Fatalf("after the page's cancel, the API says %+v: want all 60 canceled", got)
		}
	})

	t.Run("redrive", func(t *testing.T) {
		failing.Store(true)
		var b batchStatus
		srv.call(t, "POST", "/v1/batches?wait=60s", map[string]any{"kind": "flaky", "items": []string{"gear"}, "options": map[string]any{"max_attempts": 1}}, &b)
		if b.Status != "failed" {
			t.Fatalf("the flaky batch: %+v, want failed", b)
		}
		id := b.ID + "/0"
		row := fmt.Sprintf(`tr.dead-row[data-id=%q]`, id)
		br.run(t, "find the dead letter",
			chromedp.Navigate(srv.url+"/#/dead"),
			chromedp.WaitVisible(css(row)),
			chromedp.Click(css(row+" td.err")), // show its attempts
			chromedp.WaitVisible(css(fmt.Sprintf(`tr.detail[data-id=%q] .attempts li`, id))),
		)
		br.screenshot(t, "dead-letters")
		failing.Store(false)
		br.run(t, "re-drive it",
			chromedp.Click(css(row+" button.redrive")),
			chromedp.WaitVisible(css("#redriven")),
			waitJS(fmt.Sprintf(`document.querySelector(%q) === null`, row)),
		)
		nb := eval[string](t, br, `document.querySelector("#redriven").textContent`)
		br.run(t, "see its result",
			chromedp.Click(css("#redriven")),
			waitJS(`[...document.querySelectorAll("#b-results td.result")].some(td => td.textContent === '"fixed gear"')`),
			waitJS(`document.querySelector("#b-status") && document.querySelector("#b-status").textContent === "succeeded"`),
		)
		br.screenshot(t, "redriven-result")
		var got batchStatus
		srv.call(t, "GET", "/v1/batches/"+nb, nil, &got)
		if got.Status != "succeeded" {
			t.Fatalf("the re-driven batch %s: %+v, want succeeded", nb, got)
		}
		var dead struct {
			DeadLetters []struct{ ID string } `json:"dead_letters"`
		}
		srv.call(t, "GET", "/v1/dead-letters?kind=flaky", nil, &dead)
		for _, d := range dead.DeadLetters {
			if d.ID == id {
				t.Fatalf("dead letter %s is still there after its re-drive", id)
			}
		}
	})

	br.run(t, "workers", chromedp.Navigate(srv.url+"/#/workers"), chromedp.WaitVisible(css(`#workers-table tbody tr`)))
	br.screenshot(t, "workers")
	br.checkErrors(t)
}

// TestDashboardWithToken: a server with a token asks for it once, keeps
// it out of the page, and goes live with it (the streams on tickets).
func TestDashboardWithToken(t *testing.T) {
	const secret = "e2e-Secret-7f3a"
	srv := startServer(t, secret)
	br := startBrowser(t)
	br.run(t, "load the page",
		chromedp.Navigate(srv.url+"/#/batches"),
		chromedp.WaitVisible(css("#login")),
	)
	br.screenshot(t, "token-asked")
	br.run(t, "give the token",
		chromedp.SendKeys(css("#token"), secret),
		chromedp.Click(css("#login-form button")),
		waitJS(`document.querySelector("#conn").classList.contains("live")`),
		chromedp.WaitVisible(css("#view-batches")),
	)
	var b batchStatus
	srv.call(t, "POST", "/v1/batches", map[string]any{"kind": "echo", "items": []int{1, 2, 3}}, &b)
	row := fmt.Sprintf(`tr[data-id=%q]`, b.ID)
	br.run(t, "see the batch finish",
		waitJS(fmt.Sprintf(`(() => { const r = document.querySelector(%q); return r !== null && r.querySelector(".progress").getAttribute("aria-valuenow") === "100"; })()`, row)),
	)
	if eval[bool](t, br, `document.documentElement.outerHTML.includes(`+fmt.Sprintf("%q", secret)+`)`) {
		t.Fatal("the page shows the token")
	}
	br.screenshot(t, "token-live")
	br.checkErrors(t)
}
