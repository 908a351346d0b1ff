package demo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/demo"
)

// syncBuffer is a bytes.Buffer safe to read while Run writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// light returns args for a run light enough for a busy machine under the
// race detector (several run at once): 10 symbols, 200 quotes a second a
// venue. These tests are about exits and output, not speed.
func light(args ...string) []string {
	return append([]string{"--symbols", "10", "--rate", "200"}, args...)
}

var cutsRE = regexp.MustCompile(`(?m)^summary: (\d+) cuts in [^,]+, (\d+) complete`)

// checkSummary checks that out ends with a summary of at least one cut.
func checkSummary(t *testing.T, out string) {
	t.Helper()
	m := cutsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line in:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 {
		t.Errorf("summary of %s cuts, want at least one:\n%s", m[1], out)
	}
	for _, want := range []string{"venues:\n  XNAS", "tasks run: ", "cut-to-result latency: p50 ", " p99 ", "feed: "} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// Not a terminal: plain lines, the legend, and a summary after --duration.
func TestRunPrintsSummary(t *testing.T) {
	t.Parallel()
	var out, errs syncBuffer
	code := demo.Run(testCtx(t), light("--duration", "2s", "--seed", "3"), &out, &errs)
	if code != demo.ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errs.String())
	}
	s := out.String()
	checkSummary(t, s)
	if strings.Contains(s, "\x1b[") {
		t.Error("terminal escapes in output that is not a terminal")
	}
	if strings.HasPrefix(s, "dashboard:") {
		t.Error("a dashboard line with no dashboard")
	}
	for _, term := range []string{"bid ", "offer ", "spread ", "mid ", "NBBO ", "quoted ", "locked ", "crossed "} {
		if !strings.Contains(s, "\n  "+term) {
			t.Errorf("the legend does not explain %q", term)
		}
	}
}

// A closed pipe for stdout (a reader that went away) does not stop the demo
// or change its exit code.
func TestRunWithClosedStdout(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	var errs syncBuffer
	code := demo.Run(testCtx(t), light("--duration", "1s"), w, &errs)
	if code != demo.ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errs.String())
	}
	if !strings.Contains(errs.String(), "stdout:") {
		t.Errorf("stderr does not mention the broken stdout:\n%s", errs.String())
	}
}

// signalWriter closes seen the first time the output holds want.
type signalWriter struct {
	syncBuffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// With --duration 0 the demo runs until its context ends, then stops
// cleanly with exit 0 and a summary.
func TestRunStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	out := &signalWriter{want: "cut-to-result p50", seen: make(chan struct{})}
	var errs syncBuffer
	done := make(chan int)
	go func() { done <- demo.Run(ctx, light("--duration", "0"), out, &errs) }()
	select {
	case <-out.seen: // a plain line: cuts are being taken
	case code := <-done:
		t.Fatalf("Run returned %d before its context ended; stderr:\n%s", code, errs.String())
	}
	cancel()
	if code := <-done; code != demo.ExitOK {
		t.Fatalf("exit %d after cancel, stderr:\n%s", code, errs.String())
	}
	checkSummary(t, out.String())
}

func TestDashboardURLIsTheFirstLine(t *testing.T) {
	t.Parallel()
	var out, errs syncBuffer
	var saw bool
	code := demo.RunConfig(testCtx(t), demo.Config{
		Args: light("--duration", "1s"), Stdout: &out, Stderr: &errs,
		Dashboard: func(ctx context.Context, live *demo.Live) (string, error) {
			saw = live.Broker() != nil && live.Collector() != nil && len(live.Symbols()) == 10 && len(live.Venues()) == 4
			return "http://127.0.0.1:8080/", nil
		},
	})
	if code != demo.ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errs.String())
	}
	if first, _, _ := strings.Cut(out.String(), "\n"); first != "dashboard: http://127.0.0.1:8080/" {
		t.Errorf("first line %q, want the dashboard's URL", first)
	}
	if !saw {
		t.Error("the dashboard hook did not get the running parts")
	}

	code = demo.RunConfig(testCtx(t), demo.Config{
		Args: light("--duration", "1s"), Stdout: &out, Stderr: &errs,
		Dashboard: func(context.Context, *demo.Live) (string, error) { return "", errors.New("port taken") },
	})
	if code != demo.ExitFail || !strings.Contains(errs.String(), "dashboard: port taken") {
		t.Errorf("a failing dashboard: exit %d, stderr:\n%s", code, errs.String())
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--help"}, demo.ExitOK, []string{"Example:", "gather demo --venues", "-seed", "-duration"}},
		{[]string{"--venues", "99", "--interval", "1ms", "--symbols", "0"}, demo.ExitUsage,
			[]string{"--venues 99: want 1 to 16", "--interval 1ms: want 10ms to 1m", "--symbols 0"}},
		{[]string{"--duration", "-1s", "extra"}, demo.ExitUsage, []string{"--duration -1s", `unexpected argument "extra"`}},
		{[]string{"--nope"}, demo.ExitUsage, []string{"flag provided but not defined: -nope"}},
	} {
		var out, errs syncBuffer
		code := demo.Run(testCtx(t), tc.args, &out, &errs)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errs.String())
			}
		}
		if out.String() != "" {
			t.Errorf("%v: wrote to stdout: %q", tc.args, out.String())
		}
	}
}

// Ending ctx at any moment, starting up included, is a clean stop.
func TestRunStopsCleanlyAtAnyMoment(t *testing.T) {
	t.Parallel()
	for _, after := range []time.Duration{0, time.Millisecond, 30 * time.Millisecond, 300 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(testCtx(t), after)
		var out, errs syncBuffer
		code := demo.Run(ctx, light("--duration", "0"), &out, &errs)
		cancel()
		if code != demo.ExitOK || errs.String() != "" {
			t.Errorf("stopped after %v: exit %d, stderr:\n%s", after, code, errs.String())
		}
	}
}
