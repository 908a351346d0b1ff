package kinds_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
	"github.com/gather-go/gather/queue/membroker"
)

// run runs one task of the kind named kind with input in on a membroker
// worker with defs, and returns its output or failure.
func run(t *testing.T, defs []kinds.Def, kind, in string, opts ...queue.Option) (string, *queue.Failure) {
	t.Helper()
	b, err := membroker.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w, err := queue.NewWorker(b, &queue.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		d.Register(w)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	c, _ := queue.NewClient(b, nil)
	k, _ := queue.RawKind(kind)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	task, err := queue.Enqueue(ctx, c, k, json.RawMessage(in), append([]queue.Option{queue.WithMaxAttempts(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := task.Await(ctx)
	var f *queue.Failure
	if errors.As(err, &f) {
		return "", f
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), nil
}

func TestEchoAndSleep(t *testing.T) {
	t.Parallel()
	defs := kinds.Builtin(kinds.Config{})
	if out, f := run(t, defs, "echo", `{"a":[1,2]}`); f != nil || out != `{"a":[1,2]}` {
		t.Fatalf("echo: %s %v", out, f)
	}
	if out, f := run(t, defs, "sleep", `"1ms"`); f != nil || out != `{"slept":"1ms"}` {
		t.Fatalf("sleep: %s %v", out, f)
	}
	if out, f := run(t, defs, "sleep", `{"duration":"0s","value":[7]}`); f != nil || out != `{"slept":"0s","value":[7]}` {
		t.Fatalf("sleep with value: %s %v", out, f)
	}
	if _, f := run(t, defs, "sleep", `{"duration":"1ms","fail":"boom"}`); f == nil || f.Message != "boom" || f.Code != queue.CodeFailed {
		t.Fatalf("sleep fail: %v", f)
	}
	for _, in := range []string{`"2h"`, `"-1s"`, `"soon"`, `{"duration":"x"}`} {
		if _, f := run(t, defs, "sleep", in); f == nil || f.Code != queue.CodePermanent || !strings.Contains(f.Message, "want a duration") {
			t.Errorf("sleep %s: %v", in, f)
		}
	}
	if _, f := run(t, defs, "sleep", `[1]`); f == nil || f.Code != queue.CodeBadInput {
		t.Fatalf("sleep [1]: %v", f)
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Header().Set("X-Seen", r.Method+" "+r.Header.Get("X-In"))
			b := make([]byte, 100)
			n, _ := r.Body.Read(b)
			w.Write(append([]byte("got "), b[:n]...))
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100)))
		case "/missing":
			http.Error(w, "no such thing", http.StatusNotFound)
		case "/down":
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case "/binary":
			w.Write([]byte{0xff, 0xfe, 0})
		}
	}))
	defer ts.Close()
	defs := []kinds.Def{kinds.HTTP(kinds.HTTPConfig{MaxBody: 10})}
	out, f := run(t, defs, "http", `{"url":"`+ts.URL+`/ok","method":"put","headers":{"X-In":"h"},"body":"hi"}`)
	var o kinds.HTTPOutput
	json.Unmarshal([]byte(out), &o)
	if f != nil || o.Status != 200 || o.Headers["X-Seen"] != "PUT h" || o.Body != "got hi" {
		t.Fatalf("ok: %s %v", out, f)
	}
	out, f = run(t, defs, "http", `{"url":"`+ts.URL+`/big"}`)
	json.Unmarshal([]byte(out), &o)
	if f != nil || o.Body != "xxxxxxxxxx" || !o.Truncated {
		t.Fatalf("big: %s %v", out, f)
	}
	out, f = run(t, defs, "http", `{"url":"`+ts.URL+`/missing"}`)
	json.Unmarshal([]byte(out), &o)
	if f != nil || o.Status != 404 {
		t.Fatalf("404 is a result: %s %v", out, f)
	}
	out, f = run(t, defs, "http", `{"url":"`+ts.URL+`/binary"}`)
	o = kinds.HTTPOutput{}
	json.Unmarshal([]byte(out), &o)
	if f != nil || o.Body != "" || string(o.BodyBase64) != "\xff\xfe\x00" {
		t.Fatalf("binary: %s %v", out, f)
	}
	if _, f = run(t, defs, "http", `{"url":"`+ts.URL+`/down"}`); f == nil || f.Code != queue.CodeFailed || !strings.Contains(f.Message, "503") {
		t.Fatalf("5xx fails: %v", f)
	}
	if _, f = run(t, defs, "http", `{"url":"http://127.0.0.1:1/"}`); f == nil || f.Code != queue.CodeFailed || !strings.Contains(f.Message, "refused") {
		t.Fatalf("transport error fails: %v", f)
	}
	for in, msg := range map[string]string{
		`{"url":"file:///etc/passwd"}`:              "absolute http or https URL",
		`{"url":"` + ts.URL + `","method":"TRACE"}`: "method \"TRACE\"",
		`{"url":"` + ts.URL + `","timeout":"1y"}`:   "timeout \"1y\"",
		`{"url":"/relative"}`:                       "absolute http or https URL",
	} {
		if _, f := run(t, defs, "http", in); f == nil || f.Code != queue.CodePermanent || !strings.Contains(f.Message, msg) {
			t.Errorf("%s: %v, want permanent %q", in, f, msg)
		}
	}
}

func TestExec(t *testing.T) {
	t.Parallel()
	refused := []kinds.Def{kinds.Exec(kinds.ExecConfig{})}
	if _, f := run(t, refused, "exec", `{"command":"echo","args":["hi"]}`); f == nil || f.Code != queue.CodePermanent || !strings.Contains(f.Message, "disabled") {
		t.Fatalf("no allow-list: %v", f)
	}
	defs := []kinds.Def{kinds.Exec(kinds.ExecConfig{Allow: []string{"cat", "sh"}, MaxOutput: 5})}
	out, f := run(t, defs, "exec", `{"command":"cat","stdin":"hi"}`)
	if f != nil || out != `{"exit_code":0,"stdout":"hi"}` {
		t.Fatalf("cat: %s %v", out, f)
	}
	out, f = run(t, defs, "exec", `{"command":"cat","stdin":"0123456789"}`)
	if f != nil || out != `{"exit_code":0,"stdout":"01234","truncated":true}` {
		t.Fatalf("cat, cut: %s %v", out, f)
	}
	if _, f = run(t, defs, "exec", `{"command":"sh","args":["-c","echo bad >&2; exit 3"]}`); f == nil || !strings.Contains(f.Message, "exited with status 3: bad") {
		t.Fatalf("exit 3: %v", f)
	}
	if _, f = run(t, defs, "exec", `{"command":"rm","args":["-rf","/"]}`); f == nil || f.Code != queue.CodePermanent || !strings.Contains(f.Message, `"rm" is not allowed: want one of cat, sh`) {
		t.Fatalf("not allowed: %v", f)
	}
	if _, f = run(t, defs, "exec", `{"command":"/bin/cat"}`); f == nil || !strings.Contains(f.Message, "not allowed") {
		t.Fatalf("a path to an allowed name: %v", f)
	}
}

// A kind of your own, next to the built-in ones.
func ExampleFunc() {
	upper := queue.NewKind[string, string]("upper")
	def := kinds.Func(upper, "upper-cases a string", func(ctx context.Context, s string) (string, error) {
		return strings.ToUpper(s), nil
	})
	_ = append(kinds.Builtin(kinds.Config{}), def) // what cli.Main(def) runs
	fmt.Println(def.Name, "-", def.Doc)
	// Output: upper - upper-cases a string
}

func TestHTTPBlockPrivate(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ts.Close()
	defs := []kinds.Def{kinds.HTTP(kinds.HTTPConfig{BlockPrivate: true})}
	for _, u := range []string{ts.URL, "http://localhost:1/", "http://[::1]:1/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1:1/",
		"http://100.100.100.200:1/", "http://0.0.0.1:1/", "http://[64:ff9b::a00:1]:1/", "http://[2002:7f00:1::]:1/", "http://[::ffff:127.0.0.1]:1/"} {
		_, f := run(t, defs, "http", `{"url":"`+u+`","timeout":"5s"}`)
		if f == nil || f.Code != queue.CodePermanent || !strings.Contains(f.Message, "is private") {
			t.Errorf("%s: %v, want refused as private", u, f)
		}
	}
}

// TestExecKillsItsProcessGroup cancels a command whose child holds its
// output open: the task ends, not when the child would.
func TestExecKillsItsProcessGroup(t *testing.T) {
	t.Parallel()
	defs := []kinds.Def{kinds.Exec(kinds.ExecConfig{Allow: []string{"sh"}})}
	_, f := run(t, defs, "exec", `{"command":"sh","args":["-c","sleep 3600 & wait"]}`, queue.WithTimeout(500*time.Millisecond))
	if f == nil {
		t.Fatal("a command past its timeout succeeded")
	}
}

// TestExecHidesGatherSecrets runs a command in a worker whose environment
// holds the program's secrets: the command does not see them.
func TestExecHidesGatherSecrets(t *testing.T) {
	t.Setenv("GATHER_TOKEN", "s3cret")
	t.Setenv("GATHER_NATS_PASSWORD", "s3cret")
	t.Setenv("GATHER_TEST_OTHER", "visible")
	defs := []kinds.Def{kinds.Exec(kinds.ExecConfig{Allow: []string{"sh"}})}
	out, f := run(t, defs, "exec", `{"command":"sh","args":["-c","echo $GATHER_TOKEN $GATHER_NATS_PASSWORD $PATH"]}`)
	if f != nil || strings.Contains(out, "s3cret") || !strings.Contains(out, "/") {
		t.Fatalf("the command saw the environment %s %v", out, f)
	}
}
