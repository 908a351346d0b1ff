package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// server is a "gather serve" running in the test's process.
type server struct {
	http, nats string
	stderr     *syncBuffer
	stop       func() int // ends it like SIGTERM and returns its exit status
}

func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	return startServeWith(t, &Program{}, args...)
}

// startServeWith starts p's serve; p's onListen is the test's.
func startServeWith(t *testing.T, p *Program, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stderr: &syncBuffer{}}
	listening := make(chan struct{})
	p.onListen = func(h, n string) {
		s.http, s.nats = h, n
		close(listening)
	}
	args = append([]string{"serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--log-level", "warn"}, args...)
	exited := make(chan int, 1)
	go func() { exited <- p.Run(ctx, args, strings.NewReader(""), &syncBuffer{}, s.stderr) }()
	select {
	case <-listening:
	case code := <-exited:
		cancel()
		t.Fatalf("serve exited with %d: %s", code, s.stderr)
	case <-time.After(time.Minute):
		cancel()
		t.Fatalf("serve not listening after a minute: %s", s.stderr)
	}
	var once sync.Once
	code := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			code = <-exited
		})
		return code
	}
	t.Cleanup(func() { s.stop() })
	return s
}

// startWorker runs "gather worker args..." in-process until the returned
// function ends it and returns its exit status.
func startWorker(t *testing.T, args ...string) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		exited <- Run(ctx, append([]string{"worker", "--log-level", "warn"}, args...), strings.NewReader(""), &syncBuffer{}, &stderr)
	}()
	var once sync.Once
	code := -1
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-exited
			if code != 0 {
				t.Logf("worker stderr: %s", stderr.String())
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return stop
}

// run runs a command in-process and returns its status, stdout and stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb syncBuffer
	code := Run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSubmitCommand(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "4")
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "echo", "--args", "hello", "42", `{"a":1}`)
	if code != 0 || out != "\"hello\"\n42\n{\"a\":1}\n" {
		t.Fatalf("echo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "3 items: 3 ok, 0 failed") {
		t.Fatalf("plain progress: %q", errOut)
	}
	resp, err := http.Get(s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `gather_queue_tasks_enqueued_total{kind="echo",queue="default"} 3`) {
		t.Fatalf("serve metrics: %s", body)
	}
	// JSON lines on stdin, one failing: exit 1, the error in its place.
	code, out, errOut = run(t, "\"5ms\"\n\n{\"duration\":\"1ms\",\"fail\":\"boom\"}\n\"1ms\"\n", "submit", "--server", s.http, "--kind", "sleep", "--max-attempts", "1")
	want := "{\"slept\":\"5ms\"}\n{\"error\":{\"code\":\"failed\",\"message\":\"boom\",\"attempts\":1}}\n{\"slept\":\"1ms\"}\n"
	if code != 1 || out != want {
		t.Fatalf("sleep: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Fail-fast: the first failure cancels the rest; a progress bar when asked.
	code, out, errOut = run(t, "", "submit", "--server", s.http, "--kind", "sleep", "--mode", "all", "--max-attempts", "1", "--progress", "always",
		"--args", `{"duration":"1ms","fail":"first"}`, "1h")
	if code != 1 || !strings.HasPrefix(out, `{"error":{"code":"failed","message":"first"`) || !strings.Contains(out, "\n{\"error\":{\"code\":\"canceled\"") {
		t.Fatalf("mode all: exit %d, stdout %q", code, out)
	}
	if !strings.Contains(errOut, "\r[") || !strings.Contains(errOut, "2/2 ok 0 failed 2") {
		t.Fatalf("progress bar: %q", errOut)
	}
	// Usage and transport errors: exit 2, a message that says what is wrong.
	for _, c := range []struct {
		stdin string
		args  []string
		msg   string
	}{
		{"", []string{"submit", "--server", s.http, "--args", "1"}, "--kind is required"},
		{"", []string{"submit", "--server", s.http, "--kind", "nope", "--args", "1"}, "unknown kind"},
		{"", []string{"submit", "--server", s.http, "--kind", "exec", "--args", "{}"}, "--exec-allow"},
		{"not json\n", []string{"submit", "--server", s.http, "--kind", "echo"}, "stdin line 1 is not JSON"},
		{"", []string{"submit", "--server", s.http, "--kind", "echo"}, "no items"},
		{"", []string{"submit", "--server", s.http, "--kind", "echo", "--mode", "some", "--args", "1"}, "--mode \"some\""},
		{"", []string{"submit", "--server", "ftp://x", "--kind", "echo", "--args", "1"}, "want an http or https URL"},
		{"", []string{"submit", "--server", "http://127.0.0.1:1", "--kind", "echo", "--args", "1"}, "connection refused"},
		{"", []string{"submit", "--bogus"}, "flag provided but not defined"},
	} {
		code, _, errOut := run(t, c.stdin, c.args...)
		if code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("%q: exit %d, stderr %q, want 2 and %q", c.args, code, errOut, c.msg)
		}
	}
}

func TestBatchDeadQueuesCommands(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "2")
	// --detach prints the ID; batch get waits for it; attach prints it.
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "sleep", "--detach", "--max-attempts", "1",
		"--args", `{"duration":"1ms","fail":"disk on fire"}`, "2ms")
	id := strings.TrimSpace(out)
	if code != 0 || len(id) != 32 {
		t.Fatalf("detach: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = run(t, "", "batch", "get", "--server", s.http, "--wait", "30s", "--states", id)
	var st struct {
		Status string
		States []string
	}
	json.Unmarshal([]byte(out), &st)
	if code != 0 || st.Status != "failed" || strings.Join(st.States, ",") != "failed,done" {
		t.Fatalf("batch get: exit %d, %s", code, out)
	}
	code, out, _ = run(t, "", "batch", "attach", "--server", s.http, id)
	if code != 1 || !strings.HasPrefix(out, `{"error":{"code":"failed","message":"disk on fire"`) || !strings.HasSuffix(out, "{\"slept\":\"2ms\"}\n") {
		t.Fatalf("batch attach: exit %d, %q", code, out)
	}
	// Dead letters: list, show, redrive.
	code, out, _ = run(t, "", "dead", "list", "--server", s.http, "--kind", "sleep", "--error", "fire")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"id":"`+id+`/0"`) {
		t.Fatalf("dead list: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "dead", "show", "--server", s.http, id+"/0")
	if code != 0 || !strings.Contains(out, "disk on fire") {
		t.Fatalf("dead show: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "dead", "redrive", "--server", s.http, id+"/0")
	if code != 0 || !strings.Contains(out, `"id":"`) {
		t.Fatalf("dead redrive: exit %d, %q", code, out)
	}
	code, _, errOut = run(t, "", "dead", "show", "--server", s.http, id+"/0")
	if code != 2 || !strings.Contains(errOut, "404 not_found") {
		t.Fatalf("dead show after redrive: exit %d, %q", code, errOut)
	}
	// A long batch, cancelled.
	_, out, _ = run(t, "", "submit", "--server", s.http, "--kind", "sleep", "--detach", "--args", "1h", "1h", "1h")
	id = strings.TrimSpace(out)
	code, out, _ = run(t, "", "batch", "cancel", "--server", s.http, id)
	if code != 0 || !strings.Contains(out, `"id":"`+id+`"`) {
		t.Fatalf("batch cancel: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "batch", "attach", "--server", s.http, "--progress", "never", id)
	if code != 1 || strings.Count(out, `"code":"canceled"`) != 3 {
		t.Fatalf("attach after cancel: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "queues", "--server", s.http)
	if code != 0 || !strings.HasPrefix(out, `{"name":"default","depth":{`) {
		t.Fatalf("queues: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "kinds")
	if code != 0 || !strings.Contains(out, "http ") || !strings.Contains(out, "exec ") {
		t.Fatalf("kinds: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"batch"}, {"batch", "nope"}, {"batch", "get"}, {"dead", "show"}, {"nope"}, {}} {
		if code, _, _ := run(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"submit", "--help"}, {"worker", "--help"}, {"batch", "get", "--help"}} {
		code, _, errOut := run(t, "", args...)
		if code != 0 || !strings.Contains(errOut, "example") {
			t.Errorf("%q: exit %d, %q", args, code, errOut)
		}
	}
}

// TestSubmitTimeoutCancels checks --timeout: the batch is cancelled when
// it passes, the unfinished items fail as canceled, exit 1.
func TestSubmitTimeoutCancels(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "2")
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "sleep", "--timeout", "1s", "--args", "1ms", "1h")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	// The first item has most likely run by then, but a busy machine may
	// not have got to it.
	if code != 1 || len(lines) != 2 || lines[0] != `{"slept":"1ms"}` && !strings.HasPrefix(lines[0], `{"error":{"code":"canceled"`) ||
		!strings.HasPrefix(lines[1], `{"error":{"code":"canceled"`) || !strings.Contains(errOut, "cancelling batch") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestWorkerCommand runs serve without workers, with its NATS port open
// and a token, and a worker command that connects to it.
func TestWorkerCommand(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "0", "--nats-listen", "127.0.0.1:0", "--nats-token", "n4ts")
	if !strings.HasPrefix(s.nats, "nats://127.0.0.1:") {
		t.Fatalf("nats URL %q", s.nats)
	}
	// Without the token, the worker cannot connect.
	code, _, errOut := run(t, "", "worker", "--nats", s.nats)
	if code != 2 || !strings.Contains(errOut, "Authorization") {
		t.Fatalf("worker without token: exit %d, %q", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var werr syncBuffer
	go func() {
		exited <- Run(ctx, []string{"worker", "--nats", s.nats, "--nats-token", "n4ts", "--concurrency", "2", "--policy", "weighted", "--weights", "1,1,1,1", "--metrics-addr", "127.0.0.1:0"},
			strings.NewReader(""), &syncBuffer{}, &werr)
	}()
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "echo", "--priority", "high", "--args", "1", "2")
	if code != 0 || out != "1\n2\n" {
		t.Fatalf("submit: exit %d, %q, %q", code, out, errOut)
	}
	// The worker counts its tasks on its own /metrics.
	m := regexp.MustCompile(`url=(http://\S+/metrics)`).FindStringSubmatch(werr.String())
	if m == nil {
		t.Fatalf("no metrics URL logged: %s", werr.String())
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `gather_queue_tasks_succeeded_total{kind="echo",queue="default"} 2`) {
		t.Fatalf("worker metrics: %s", body)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("worker exit %d: %s", code, werr.String())
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, s.stderr)
	}
}

func TestServeRefusals(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "give a --token"},
		{[]string{"--nats-listen", "0.0.0.0:0"}, "give --nats-token"},
		{[]string{"--workers", "-1"}, "--workers -1"},
		{[]string{"--policy", "random"}, "--policy \"random\""},
		{[]string{"--weights", "1,2"}, "want 4 comma-separated shares"},
		{[]string{"--log-format", "xml"}, "--log-format \"xml\""},
		{[]string{"--nats-user", "u"}, "--nats-user and --nats-password go together"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		code, _, errOut := run(t, "", append([]string{"serve", "--data", t.TempDir()}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("%q: exit %d, %q, want 2 and %q", c.args, code, errOut, c.msg)
		}
	}
	code, _, errOut := run(t, "", "worker")
	if code != 2 || !strings.Contains(errOut, "--nats URL is required") {
		t.Errorf("worker without --nats: exit %d, %q", code, errOut)
	}
}

// TestServeDrains ends serve while a task runs: the task finishes before
// serve exits 0, as a second serve on the same data without workers shows.
func TestServeDrains(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	started := make(chan struct{})
	slow := queue.NewKind[int, int]("slow")
	p := &Program{Kinds: []kinds.Def{kinds.Func(slow, "", func(ctx context.Context, n int) (int, error) {
		close(started)
		time.Sleep(200 * time.Millisecond) // the work that must finish; not a synchronisation
		return n, ctx.Err()
	})}}
	s := startServeWith(t, p, "--data", data, "--workers", "1", "--shutdown-timeout", "1m")
	code, out, _ := run(t, "", "submit", "--server", s.http, "--kind", "slow", "--detach", "--args", "7")
	id := strings.TrimSpace(out)
	if code != 0 {
		t.Fatal(out)
	}
	<-started
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, s.stderr)
	}
	code, _, errOut := run(t, "", "submit", "--server", s.http, "--kind", "echo", "--args", "1")
	if code != 2 || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("after stop: exit %d, %q", code, errOut)
	}
	s2 := startServe(t, "--data", data, "--workers", "0")
	code, out, _ = run(t, "", "batch", "get", "--server", s2.http, "--wait", "10s", id)
	if code != 0 || !strings.Contains(out, `"status":"succeeded"`) || !strings.Contains(out, `"results":[{"ok":true,"value":7}]`) {
		t.Fatalf("after restart: exit %d, %s", code, out)
	}
}

// TestServeWithNATSURL runs serve on a NATS server of its own (as on a
// cluster) rather than the embedded one.
func TestServeWithNATSURL(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := natsserver.Start(ctx, &natsserver.Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", Token: "cluster"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	s := startServe(t, "--nats", ns.ClientURL(), "--nats-token", "cluster", "--workers", "2", "--prefix", "other")
	if s.nats != ns.ClientURL() {
		t.Fatalf("nats URL %q, want %q", s.nats, ns.ClientURL())
	}
	code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "echo", "--args", "1", "2")
	if code != 0 || out != "1\n2\n" {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exit %d: %s", code, s.stderr)
	}
	code, _, errOut = run(t, "", "serve", "--nats", ns.ClientURL(), "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(errOut, "Authorization") {
		t.Fatalf("serve without the token: exit %d, %q", code, errOut)
	}
}

func TestFeedReplayCommand(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, "", "feed", "replay", "--check", "../exchange/replay/testdata/mixed.capture")
	if code != ExitOK || !strings.Contains(out, "checks: 4 matched, 0 mismatched") {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}
	if code, out, _ = run(t, "", "feed", "replay", "--check", "../exchange/replay/testdata/mismatch.capture"); code != ExitFailed || !strings.Contains(out, " mismatched") || strings.Contains(out, " 0 mismatched") {
		t.Fatalf("a mismatch: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "", "feed"); code != ExitUsage || !strings.Contains(errOut, "gather feed replay") {
		t.Fatalf("no subcommand: exit %d %s", code, errOut)
	}
}

func TestDemoCommand(t *testing.T) {
	t.Parallel()
	code, out, errOut := run(t, "", "demo", "--duration", "1s", "--symbols", "10", "--rate", "200")
	if code != ExitOK || !strings.Contains(out, "summary:") || !strings.Contains(out, "cut-to-result latency") ||
		!strings.HasPrefix(out, "dashboard: http://127.0.0.1:") {
		t.Fatalf("demo: exit %d, want the dashboard's URL first and a summary\n%s\n%s", code, out, errOut)
	}
}
