package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gather-go/gather/queue"
)

const submitExample = `  # JSON lines from a file (or stdin), results in input order on stdout:
  gather submit --kind http urls.jsonl > results.jsonl

  # items from arguments (each is JSON if it parses, else a string):
  gather submit --kind echo --args hello 42 '{"a":1}'

  # fail fast, give up after a minute:
  gather submit --kind sleep --mode all --timeout 1m --args 1s 2s`

type submitFlags struct {
	api                         apiFlags
	kind, queue, priority, mode string
	taskTimeout, idempotency    string
	maxAttempts                 int
	timeout                     time.Duration
	detach, args                bool
	progress                    string
}

func submit(ctx context.Context, e *env, args []string) int {
	var f submitFlags
	fs := e.flagSet("submit", "--kind KIND [flags] [FILE | --args ITEM...]", submitExample)
	f.api.add(fs)
	fs.StringVar(&f.kind, "kind", "", "kind of the tasks; required (gather kinds lists them)")
	fs.StringVar(&f.queue, "queue", "", "queue (default: the server's default)")
	fs.StringVar(&f.priority, "priority", "", "low, normal, high or critical (default normal)")
	fs.StringVar(&f.mode, "mode", "settled", "settled: every outcome; all: the first failure cancels the rest")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up waiting after this long: the batch is cancelled and its unfinished items fail (default: wait forever)")
	fs.StringVar(&f.taskTimeout, "task-timeout", "", "timeout of each task's attempt, such as 30s")
	fs.IntVar(&f.maxAttempts, "max-attempts", 0, "attempts per task before it is dead-lettered (default the server's, 3)")
	fs.StringVar(&f.idempotency, "idempotency-key", "", "submit at most once per key: a repeat attaches to the first batch")
	fs.BoolVar(&f.detach, "detach", false, "print the batch ID and exit without waiting")
	fs.BoolVar(&f.args, "args", false, "the arguments are the items, not a file")
	fs.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (when it is a terminal), always or never")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	var errs []error
	if f.kind == "" {
		errs = append(errs, errors.New("--kind is required"))
	}
	if f.mode != "settled" && f.mode != "all" {
		errs = append(errs, fmt.Errorf("--mode %q: want settled or all", f.mode))
	}
	if f.progress != "auto" && f.progress != "always" && f.progress != "never" {
		errs = append(errs, fmt.Errorf("--progress %q: want auto, always or never", f.progress))
	}
	if f.timeout < 0 {
		errs = append(errs, fmt.Errorf("--timeout %v: want 0 (none) or more", f.timeout))
	}
	if !f.args && fs.NArg() > 1 {
		errs = append(errs, fmt.Errorf("%d files given: give one FILE (or - for stdin), or --args for items", fs.NArg()))
	}
	c, err := f.api.client()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return e.usageErr("submit", "%v", err)
	}
	items, err := f.items(e, fs.Args())
	if err != nil {
		return e.usageErr("submit", "%v", err)
	}
	if len(items) == 0 {
		return e.usageErr("submit", "no items: give JSON lines in FILE or on stdin, or --args ITEM...")
	}
	body, _ := json.Marshal(map[string]any{
		"kind": f.kind, "queue": f.queue, "priority": f.priority, "mode": f.mode, "items": items,
		"options": queue.Settings{Timeout: f.taskTimeout, MaxAttempts: f.maxAttempts},
	})
	hdr := http.Header{}
	if f.idempotency != "" {
		hdr.Set("Idempotency-Key", f.idempotency)
	}
	start := time.Now()
	resp, err := c.do(ctx, "POST", "/v1/batches", body, hdr)
	if err != nil {
		fmt.Fprintf(e.stderr, "gather submit: %v\n", err)
		return ExitUsage
	}
	var st batchStatus
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		fmt.Fprintf(e.stderr, "gather submit: reading the server's answer: %v\n", err)
		return ExitUsage
	}
	if f.detach {
		fmt.Fprintln(e.stdout, st.ID)
		return ExitOK
	}
	bar := newProgress(e.stderr, f.progress, st.Progress.Size, start)
	return e.await(ctx, c, st.ID, st.Progress.Size, f.timeout, bar)
}

// items reads the items: the arguments with --args, else JSON lines from
// the file (or stdin).
func (f *submitFlags) items(e *env, args []string) ([]json.RawMessage, error) {
	var items []json.RawMessage
	if f.args {
		for _, a := range args {
			if json.Valid([]byte(a)) {
				items = append(items, json.RawMessage(a))
			} else {
				b, _ := json.Marshal(a)
				items = append(items, b)
			}
		}
		return items, nil
	}
	in := e.stdin
	name := "stdin"
	if fs := args; len(fs) == 1 && fs[0] != "-" {
		file, err := os.Open(fs[0])
		if err != nil {
			return nil, err
		}
		defer file.Close()
		in, name = file, fs[0]
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("%s line %d is not JSON: want one JSON value per line, such as \"text\" or {\"url\":\"https://example.com\"}", name, line)
		}
		items = append(items, json.RawMessage(bytes.Clone(b)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %v", name, err)
	}
	return items, nil
}

// await follows batch id's events, prints each result on stdout in input
// order as soon as every earlier one is printed, and returns the exit
// status. With a timeout, the batch is cancelled when it passes.
func (e *env) await(ctx context.Context, c *apiClient, id string, size int, timeout time.Duration, bar *progressBar) int {
	out := bufio.NewWriterSize(e.stdout, 64<<10)
	pending := make([][]byte, size)
	next, failed := 0, 0
	lastFlush := time.Now()
	wctx := ctx
	var cancel context.CancelFunc = func() {}
	if timeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	handle := func(ev *event) error {
		var o struct {
			Index  int        `json:"index"`
			Result resultJSON `json:"result"`
		}
		if err := json.Unmarshal(ev.data, &o); err != nil || o.Index < 0 || o.Index >= size {
			return fmt.Errorf("bad event from the server: %.200s", ev.data)
		}
		if pending[o.Index] != nil {
			return nil
		}
		line := o.Result.Value
		if !o.Result.OK {
			failed++
			line = append(append([]byte(`{"error":`), o.Result.Error...), '}')
		}
		if len(line) == 0 {
			line = []byte("null")
		}
		pending[o.Index] = line
		for next < size && pending[next] != nil {
			out.Write(pending[next])
			out.WriteByte('\n')
			pending[next] = []byte{} // printed; keep it non-nil
			next++
		}
		bar.update(o.Result.OK)
		if time.Since(lastFlush) > 200*time.Millisecond { // a reader of a pipe sees results as they come
			out.Flush()
			lastFlush = time.Now()
		}
		return nil
	}
	_, err := c.follow(wctx, id, 0, handle)
	if err != nil && timeout > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		fmt.Fprintf(e.stderr, "gather submit: --timeout %v passed: cancelling batch %s\n", timeout, id)
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		err = c.call(cctx, "POST", "/v1/batches/"+id+"/cancel", []byte("{}"), nil)
		if err == nil {
			_, err = c.follow(cctx, id, 0, handle)
		}
		ccancel()
	}
	out.Flush()
	bar.finish()
	if err != nil {
		fmt.Fprintf(e.stderr, "gather: batch %s: %v\n", id, err)
		if next < size {
			fmt.Fprintf(e.stderr, "gather: %d of %d results printed; the batch keeps running: gather batch attach %s\n", next, size, id)
		}
		return ExitUsage
	}
	if failed > 0 {
		return ExitFailed
	}
	return ExitOK
}

// progressBar draws completed, failed, rate and ETA on a terminal, or one
// summary line at the end otherwise.
type progressBar struct {
	w         io.Writer
	live      bool
	size      int
	ok, fail  int
	start     time.Time
	lastDrawn time.Time
}

func newProgress(w io.Writer, mode string, size int, start time.Time) *progressBar {
	live := mode == "always" || mode == "auto" && isTerminal(w)
	return &progressBar{w: w, live: live, size: size, start: start}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progressBar) update(ok bool) {
	if ok {
		p.ok++
	} else {
		p.fail++
	}
	if p.live && time.Since(p.lastDrawn) > 100*time.Millisecond {
		p.lastDrawn = time.Now()
		p.draw()
	}
}

func (p *progressBar) draw() {
	n := p.ok + p.fail
	el := time.Since(p.start)
	rate := float64(n) / max(el.Seconds(), 1e-3)
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.size-n)/rate) * time.Second).Round(time.Second).String()
	}
	const width = 30
	fill := width * n / max(p.size, 1)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d ok %d failed %d %.0f/s ETA %s ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill),
		n, p.size, p.ok, p.fail, rate, eta)
}

func (p *progressBar) finish() {
	if p.live {
		p.draw()
		fmt.Fprintln(p.w)
	}
	fmt.Fprintf(p.w, "%s: %d ok, %d failed, in %v\n", plural(p.size, "item"), p.ok, p.fail, time.Since(p.start).Round(time.Millisecond))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return itoa(n) + " " + what + "s"
}
