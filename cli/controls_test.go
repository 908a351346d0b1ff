package cli

import (
	"encoding/json"
	"flag"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gather-go/gather/queue"
)

// TestControlFlags checks the syntax of --limit, --rate and --schedule:
// what each good value means, and that each bad one is refused with what
// is accepted.
func TestControlFlags(t *testing.T) {
	t.Parallel()
	var l limitsFlag
	for _, v := range []string{"default=8", "default/http=4", "bulk.v2/partner_call-x=1"} {
		if err := l.Set(v); err != nil {
			t.Fatalf("--limit %s: %v", v, err)
		}
	}
	want := []queue.GlobalLimit{{Queue: "default", Max: 8}, {Queue: "default", Kind: "http", Max: 4}, {Queue: "bulk.v2", Kind: "partner_call-x", Max: 1}}
	if len(l) != 3 || l[0] != want[0] || l[1] != want[1] || l[2] != want[2] {
		t.Fatalf("limits %+v", l)
	}
	if got := l.String(); got != "default=8 default/http=4 bulk.v2/partner_call-x=1" {
		t.Fatalf("limits as a string: %q", got)
	}
	for v, msg := range map[string]string{
		"default":                      "want QUEUE[/KIND]=N",
		"default=":                     "want QUEUE[/KIND]=N",
		"=4":                           "queue name",
		"a b=4":                        "queue name",
		"default/=4":                   "kind name",
		"default/a/b=4":                "kind name",
		"default=0":                    "want an integer from 1",
		"default=-3":                   "want an integer from 1",
		"default=many":                 "want an integer from 1",
		"default=1e9":                  "want an integer from 1",
		"default/http=2":               "limited already",
		"default=99999999999999999999": "want an integer",
	} {
		if err := l.Set(v); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("--limit %q: %v, want an error containing %q", v, err, msg)
		}
	}

	var r ratesFlag
	for _, v := range []string{"default=200", "default/http=0.5:10"} {
		if err := r.Set(v); err != nil {
			t.Fatalf("--rate %s: %v", v, err)
		}
	}
	if len(r) != 2 || r[0] != (queue.GlobalRate{Queue: "default", PerSecond: 200, Burst: 1}) || r[1] != (queue.GlobalRate{Queue: "default", Kind: "http", PerSecond: 0.5, Burst: 10}) {
		t.Fatalf("rates %+v", r)
	}
	for v, msg := range map[string]string{
		"default":          "want QUEUE[/KIND]=PER_SECOND[:BURST]",
		"bulk=0":           "above 0",
		"bulk=-1":          "above 0",
		"bulk=NaN":         "above 0",
		"bulk=Inf":         "above 0",
		"bulk=1e10":        "at most 1e+09",
		"bulk=fast":        "above 0",
		"bulk=10:0":        "BURST \"0\"",
		"bulk=10:":         "BURST \"\"",
		"bulk=10:2:3":      "BURST",
		"bulk=10:99999999": "from 1 to 1048576",
		"default=5":        "has a rate already",
	} {
		if err := r.Set(v); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("--rate %q: %v, want an error containing %q", v, err, msg)
		}
	}

	var s schedulesFlag
	for _, v := range []string{
		`{"name":"beat","every":"30s","kind":"echo","input":"ping"}`,
		`{"name":"nightly","cron":"0 3 * * 1-5","tz":"Europe/Paris","kind":"http","queue":"bulk","input":{"url":"https://example.com/"}}`,
	} {
		if err := s.Set(v); err != nil {
			t.Fatalf("--schedule %s: %v", v, err)
		}
	}
	if s[0].info.Every != "30s" || s[0].info.Queue != "default" || string(s[0].input) != `"ping"` ||
		s[1].info.Cron != "0 3 * * 1-5" || s[1].info.TZ != "Europe/Paris" || s[1].info.Queue != "bulk" || string(s[1].input) != `{"url":"https://example.com/"}` {
		t.Fatalf("schedules %+v", s)
	}
	// 03:00 in Paris on Monday 2026-12-07 is 02:00 UTC.
	if got := s[1].sched.Next(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("nightly's next tick after Sunday noon: %v", got)
	}
	for v, msg := range map[string]string{
		`beat every 30s`: "invalid character",
		`{"name":"b","every":"30s","kind":"echo","evil":1}`:                                    `unknown field "evil"`,
		`{"name":"b","every":"30s","kind":"echo"} {}`:                                          "trailing data",
		`{"every":"30s","kind":"echo"}`:                                                        "schedule name",
		`{"name":"b","every":"30s"}`:                                                           "kind name",
		`{"name":"b","kind":"echo"}`:                                                           `give one of "every"`,
		`{"name":"b","every":"1s","cron":"* * * * *","kind":"echo"}`:                           `give one of "every"`,
		`{"name":"b","every":"10ms","kind":"echo"}`:                                            "at least 1s",
		`{"name":"b","every":"soon","kind":"echo"}`:                                            "at least 1s",
		`{"name":"b","every":"1m","tz":"Europe/Paris","kind":"echo"}`:                          `"tz" goes with "cron"`,
		`{"name":"b","cron":"0 3 * *","kind":"echo"}`:                                          "want 5",
		`{"name":"b","cron":"61 * * * *","kind":"echo"}`:                                       "minute field",
		`{"name":"b","cron":"0 3 * * *","tz":"Mars/Olympus","kind":"echo"}`:                    "IANA time zone",
		`{"name":"b","cron":"0 3 * * *","tz":"Local","kind":"echo"}`:                           "IANA time zone",
		`{"name":"b","every":"1m","kind":"echo","queue":"a b"}`:                                "queue name",
		`{"name":"beat","every":"1m","kind":"echo"}`:                                           "given already",
		`{"name":"x","every":"1m","kind":"echo","input":"` + strings.Repeat("x", 2<<20) + `"}`: "want at most",
	} {
		if err := s.Set(v); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("--schedule %.80q: %v, want an error containing %q", v, err, msg)
		}
	}
}

// TestControlFlagsReachTheWorker checks that the limits and rates parsed
// are the worker's config.
func TestControlFlagsReachTheWorker(t *testing.T) {
	t.Parallel()
	var w workerFlags
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	w.add(fs, "concurrency", "", 4)
	if err := fs.Parse([]string{"--limit", "default/http=4", "--rate", "default=50:5", "--rate", "default/http=2"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := w.config(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.GlobalLimits) != 1 || cfg.GlobalLimits[0] != (queue.GlobalLimit{Queue: "default", Kind: "http", Max: 4}) ||
		len(cfg.GlobalRates) != 2 || cfg.GlobalRates[0] != (queue.GlobalRate{Queue: "default", PerSecond: 50, Burst: 5}) ||
		cfg.GlobalRates[1] != (queue.GlobalRate{Queue: "default", Kind: "http", PerSecond: 2, Burst: 1}) {
		t.Fatalf("config: limits %+v, rates %+v", cfg.GlobalLimits, cfg.GlobalRates)
	}
}

// TestServeControls runs serve with a limit, a rate and a schedule: GET
// /v1/controls (gather queues controls) shows them, the schedule's first
// tick enqueues its task, which a worker runs, and gather queues pause and
// resume change what gather queues shows.
func TestServeControls(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--workers", "2", "--queues", "default,bulk",
		"--limit", "default/echo=2", "--limit", "bulk=3", "--limit", "default/sleep=1", "--rate", "bulk=100:10",
		"--schedule", `{"name":"beat","every":"1s","kind":"echo","queue":"bulk","input":"tick"}`)
	code, out, errOut := run(t, "", "queues", "controls", "--server", s.http)
	want := `{"limits":[{"queue":"default","kind":"echo","max":2},{"queue":"bulk","max":3},{"queue":"default","kind":"sleep","max":1}],"rates":[{"queue":"bulk","per_second":100,"burst":10}],` +
		`"schedules":[{"name":"beat","every":"1s","kind":"echo","queue":"bulk"}],"pause":true}` + "\n"
	if code != 0 || out != want {
		t.Fatalf("queues controls: exit %d\n got %s\nwant %s%s", code, out, want, errOut)
	}
	// The limit reaches the workers: with one sleep at a time, three of
	// 300ms take 900ms at least (two workers without it: 600ms or less).
	start := time.Now()
	if code, out, errOut := run(t, "", "submit", "--server", s.http, "--kind", "sleep", "--args", "300ms", "300ms", "300ms"); code != 0 {
		t.Fatalf("submit: exit %d, %q, %q", code, out, errOut)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("three sleeps of 300ms under --limit default/sleep=1 took %v: want 900ms at least, one at a time", took)
	}
	// The schedule ticks every second: wait for a batch of it, finished.
	deadline := time.Now().Add(time.Minute)
	for {
		var page struct {
			Batches []struct {
				Kind, Queue string
				Done        int
				Finished    bool
			}
		}
		resp, err := http.Get(s.http + "/v1/batches?queue=bulk")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Batches) > 0 && page.Batches[len(page.Batches)-1].Finished {
			b := page.Batches[len(page.Batches)-1]
			if b.Kind != "echo" || b.Queue != "bulk" || b.Done != 1 {
				t.Fatalf("the tick's batch: %+v", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tick's batch finished after a minute: %+v\n%s", page, s.stderr)
		}
		time.Sleep(50 * time.Millisecond) // polling the API: nothing to wait on
	}

	code, out, _ = run(t, "", "queues", "pause", "--server", s.http, "bulk")
	if code != 0 || out != `{"name":"bulk","paused":true}`+"\n" {
		t.Fatalf("queues pause: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "queues", "--server", s.http)
	if code != 0 || !strings.Contains(out, `"name":"bulk"`) || !strings.Contains(out, `"paused":true`) || !strings.Contains(out, `"paused":false`) {
		t.Fatalf("queues while bulk is paused: exit %d, %q", code, out)
	}
	for line := range strings.Lines(out) {
		if strings.Contains(line, `"name":"bulk"`) != strings.Contains(line, `"paused":true`) {
			t.Fatalf("queues while bulk is paused: %q", out)
		}
	}
	code, out, _ = run(t, "", "queues", "resume", "--server", s.http, "bulk")
	if code != 0 || out != `{"name":"bulk","paused":false}`+"\n" {
		t.Fatalf("queues resume: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "queues", "--server", s.http)
	if code != 0 || strings.Contains(out, `"paused":true`) {
		t.Fatalf("queues after the resume: exit %d, %q", code, out)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"queues", "pause", "--server", s.http}, "want one NAME"},
		{[]string{"queues", "pause", "--server", s.http, "a b"}, "queue name"},
		{[]string{"queues", "resume", "--server", s.http, "a", "b"}, "got 2 arguments"},
	} {
		if code, _, errOut := run(t, "", c.args...); code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("%q: exit %d, %q, want 2 and %q", c.args, code, errOut, c.msg)
		}
	}
}

// TestControlRefusals checks serve's and worker's refusals of controls
// that cannot work.
func TestControlRefusals(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"serve", "--limit", "default"}, "want QUEUE[/KIND]=N"},
		{[]string{"serve", "--rate", "default=0"}, "above 0"},
		{[]string{"serve", "--schedule", "{}"}, "schedule name"},
		{[]string{"serve", "--workers", "0", "--limit", "default=2"}, "with --workers 0 there are none here"},
		{[]string{"serve", "--limit", "bulk=2"}, `queue "bulk" is not in --queues default`},
		{[]string{"serve", "--rate", "bulk/echo=2"}, `queue "bulk" is not in --queues default`},
		{[]string{"serve", "--schedule", `{"name":"b","every":"1m","kind":"nope"}`}, `kind "nope": want one of echo, exec, http, sleep`},
		{[]string{"worker", "--nats", "nats://127.0.0.1:1", "--limit", "bulk=2"}, `queue "bulk" is not in --queues`},
		{[]string{"worker", "--nats", "nats://127.0.0.1:1", "--schedule", `{"name":"b","every":"1m","kind":"nope"}`}, `kind "nope"`},
	} {
		args := c.args
		if args[0] == "serve" {
			args = append([]string{"serve", "--data", t.TempDir()}, args[1:]...)
		}
		code, _, errOut := run(t, "", args...)
		if code != 2 || !strings.Contains(errOut, c.msg) {
			t.Errorf("%q: exit %d, %q, want 2 and %q", c.args, code, errOut, c.msg)
		}
	}
}
