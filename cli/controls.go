package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
)

// limitsFlag is the repeatable --limit QUEUE[/KIND]=N.
type limitsFlag []queue.GlobalLimit

const limitSyntax = "want QUEUE[/KIND]=N, such as default=8 or default/http=4, N at least 1"

func (l *limitsFlag) String() string {
	if l == nil {
		return ""
	}
	var s []string
	for _, g := range *l {
		s = append(s, scope(g.Queue, g.Kind)+"="+strconv.Itoa(g.Max))
	}
	return strings.Join(s, " ")
}

func (l *limitsFlag) Set(v string) error {
	q, k, val, err := splitScope(v, limitSyntax)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < 1 || n > 1<<20 {
		return fmt.Errorf("%q: N %q: want an integer from 1 to %d", v, val, 1<<20)
	}
	for _, g := range *l {
		if g.Queue == q && g.Kind == k {
			return fmt.Errorf("%q: %s is limited already: give each queue (or kind of a queue) one --limit", v, scope(q, k))
		}
	}
	if len(*l) == queue.MaxGlobalLimits {
		return fmt.Errorf("%q: want at most %d --limit flags", v, queue.MaxGlobalLimits)
	}
	*l = append(*l, queue.GlobalLimit{Queue: q, Kind: k, Max: n})
	return nil
}

// ratesFlag is the repeatable --rate QUEUE[/KIND]=PER_SECOND[:BURST].
type ratesFlag []queue.GlobalRate

const rateSyntax = "want QUEUE[/KIND]=PER_SECOND[:BURST], such as default/http=50 or bulk=0.5:10 (a burst of 1 when not given)"

func (r *ratesFlag) String() string {
	if r == nil {
		return ""
	}
	var s []string
	for _, g := range *r {
		s = append(s, scope(g.Queue, g.Kind)+"="+strconv.FormatFloat(g.PerSecond, 'g', -1, 64)+":"+strconv.Itoa(max(g.Burst, 1)))
	}
	return strings.Join(s, " ")
}

func (r *ratesFlag) Set(v string) error {
	q, k, val, err := splitScope(v, rateSyntax)
	if err != nil {
		return err
	}
	ps, bs, hasBurst := strings.Cut(val, ":")
	per, err := strconv.ParseFloat(ps, 64)
	if err != nil || !(per > 0 && per <= queue.MaxRate) {
		return fmt.Errorf("%q: PER_SECOND %q: want a number above 0 and at most %g; %s", v, ps, float64(queue.MaxRate), rateSyntax)
	}
	burst := 1
	if hasBurst {
		if burst, err = strconv.Atoi(bs); err != nil || burst < 1 || burst > queue.MaxBurst {
			return fmt.Errorf("%q: BURST %q: want an integer from 1 to %d", v, bs, queue.MaxBurst)
		}
	}
	for _, g := range *r {
		if g.Queue == q && g.Kind == k {
			return fmt.Errorf("%q: %s has a rate already: give each queue (or kind of a queue) one --rate", v, scope(q, k))
		}
	}
	if len(*r) == queue.MaxGlobalLimits {
		return fmt.Errorf("%q: want at most %d --rate flags", v, queue.MaxGlobalLimits)
	}
	*r = append(*r, queue.GlobalRate{Queue: q, Kind: k, PerSecond: per, Burst: burst})
	return nil
}

func scope(q, k string) string {
	if k == "" {
		return q
	}
	return q + "/" + k
}

// splitScope splits "QUEUE[/KIND]=VALUE" (names never hold '/' or '=').
func splitScope(v, syntax string) (q, k, val string, err error) {
	lhs, val, ok := strings.Cut(v, "=")
	if !ok || val == "" {
		return "", "", "", fmt.Errorf("%q: %s", v, syntax)
	}
	q, k, hasKind := strings.Cut(lhs, "/")
	if err := queue.CheckName("queue", q); err != nil {
		return "", "", "", fmt.Errorf("%q: %v; %s", v, err, syntax)
	}
	if hasKind {
		if err := queue.CheckName("kind", k); err != nil {
			return "", "", "", fmt.Errorf("%q: %v; %s", v, err, syntax)
		}
	}
	return q, k, val, nil
}

// maxSchedules bounds --schedule: each is a goroutine and a timer.
const maxSchedules = 256

// scheduleSpec is one --schedule: what GET /v1/controls shows, the
// schedule and the task's input.
type scheduleSpec struct {
	info  httpapi.ScheduleInfo
	sched queue.Schedule
	input json.RawMessage
}

// schedulesFlag is the repeatable --schedule JSON.
type schedulesFlag []scheduleSpec

const scheduleSyntax = `want a JSON object {"name":..., "every":"30s" or "cron":"0 3 * * *" with "tz":"Europe/Paris", "kind":..., "queue":... (default "default"), "input":... (default null)}`

func (s *schedulesFlag) String() string {
	if s == nil {
		return ""
	}
	var names []string
	for _, sp := range *s {
		names = append(names, sp.info.Name)
	}
	return strings.Join(names, ",")
}

func (s *schedulesFlag) Set(v string) error {
	sp, err := parseSchedule(v)
	if err != nil {
		return err
	}
	for _, o := range *s {
		if o.info.Name == sp.info.Name {
			return fmt.Errorf("a schedule called %q is given already: give each a name of its own", sp.info.Name)
		}
	}
	if len(*s) == maxSchedules {
		return fmt.Errorf("want at most %d --schedule flags", maxSchedules)
	}
	*s = append(*s, sp)
	return nil
}

func parseSchedule(v string) (scheduleSpec, error) {
	var in struct {
		Name, Every, Cron, TZ, Kind, Queue string
		Input                              json.RawMessage
	}
	if len(v) > queue.DefaultMaxPayload {
		return scheduleSpec{}, fmt.Errorf("%d bytes: want at most %d", len(v), queue.DefaultMaxPayload)
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return scheduleSpec{}, fmt.Errorf("%q: %v; %s", clipArg(v), err, scheduleSyntax)
	}
	if dec.More() {
		return scheduleSpec{}, fmt.Errorf("%q: trailing data after the object; %s", clipArg(v), scheduleSyntax)
	}
	var errs []error
	if err := queue.CheckName("schedule", in.Name); err != nil {
		errs = append(errs, err)
	}
	if err := queue.CheckName("kind", in.Kind); err != nil {
		errs = append(errs, err)
	}
	if in.Queue == "" {
		in.Queue = queue.DefaultQueue
	}
	if err := queue.CheckName("queue", in.Queue); err != nil {
		errs = append(errs, err)
	}
	if in.Input = bytes.TrimSpace(in.Input); len(in.Input) == 0 {
		in.Input = json.RawMessage("null")
	}
	sp := scheduleSpec{info: httpapi.ScheduleInfo{Name: in.Name, Cron: in.Cron, TZ: in.TZ, Kind: in.Kind, Queue: in.Queue}, input: in.Input}
	switch {
	case (in.Every == "") == (in.Cron == ""):
		errs = append(errs, errors.New(`give one of "every" (an interval such as "30s") and "cron" (five fields such as "0 3 * * *")`))
	case in.Every != "":
		d, err := time.ParseDuration(in.Every)
		if err != nil || d < time.Second {
			errs = append(errs, fmt.Errorf(`"every" %q: want an interval of at least 1s, such as "30s" or "1h"`, in.Every))
			break
		}
		if in.TZ != "" {
			errs = append(errs, errors.New(`"tz" goes with "cron": an interval ticks at the multiples of its length since midnight UTC`))
		}
		sp.sched, _ = queue.Every(d)
		sp.info.Every = d.String()
	default:
		loc := time.UTC
		if in.TZ != "" {
			l, err := time.LoadLocation(in.TZ)
			if err != nil || in.TZ == "Local" {
				errs = append(errs, fmt.Errorf(`"tz" %q: want an IANA time zone such as "Europe/Paris" or "UTC"`, in.TZ))
				break
			}
			loc = l
		}
		c, err := queue.Cron(in.Cron, loc)
		if err != nil {
			errs = append(errs, err)
			break
		}
		sp.sched = c
	}
	if err := errors.Join(errs...); err != nil {
		return scheduleSpec{}, fmt.Errorf("%q: %w", clipArg(v), err)
	}
	return sp, nil
}

// clipArg shortens a flag's value for an error message.
func clipArg(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// controlFlags are the global limits, rates and periodic tasks of serve
// and worker.
type controlFlags struct {
	limits    limitsFlag
	rates     ratesFlag
	schedules schedulesFlag
}

func (c *controlFlags) add(fs *flag.FlagSet) {
	fs.Var(&c.limits, "limit", "global concurrency limit, repeatable: `QUEUE[/KIND]=N` runs at most N tasks of the queue (of that kind) at once across every worker; give every worker the same limits")
	fs.Var(&c.rates, "rate", "global rate limit, repeatable: `QUEUE[/KIND]=PER_SECOND[:BURST]` starts at most BURST + PER_SECOND×t tasks of the queue (of that kind) in any t seconds across every worker; give every worker the same rates")
	fs.Var(&c.schedules, "schedule", "periodic task, repeatable: a `JSON` object "+`{"name":"beat","every":"30s","kind":"echo","queue":"default","input":"ping"}, or "cron":"0 3 * * *" with "tz":"Europe/Paris" instead of "every"; any number of processes may run the same schedule: each tick is enqueued once`)
}

// check refuses schedules of kinds ks does not hold, and limits and rates
// of queues that served does not hold (when working).
func (c *controlFlags) check(ks []kinds.Def, served []string, working bool) error {
	var errs []error
	names := make([]string, 0, len(ks))
	for _, k := range ks {
		names = append(names, k.Name)
	}
	slices.Sort(names)
	for _, sp := range c.schedules {
		if !slices.Contains(names, sp.info.Kind) {
			errs = append(errs, fmt.Errorf("--schedule %s: kind %q: want one of %s", sp.info.Name, sp.info.Kind, strings.Join(names, ", ")))
		}
	}
	if !working && (len(c.limits) > 0 || len(c.rates) > 0) {
		errs = append(errs, errors.New("--limit and --rate bind workers: with --workers 0 there are none here; give them to each gather worker"))
	}
	if working {
		for _, l := range c.limits {
			if !slices.Contains(served, l.Queue) {
				errs = append(errs, fmt.Errorf("--limit %s: queue %q is not in --queues %s", scope(l.Queue, l.Kind), l.Queue, strings.Join(served, ",")))
			}
		}
		for _, r := range c.rates {
			if !slices.Contains(served, r.Queue) {
				errs = append(errs, fmt.Errorf("--rate %s: queue %q is not in --queues %s", scope(r.Queue, r.Kind), r.Queue, strings.Join(served, ",")))
			}
		}
	}
	return errors.Join(errs...)
}

// logAttrs returns the limits and rates as log attributes, none when
// there are none (the schedules are logged as the scheduler starts).
func (c *controlFlags) logAttrs() []any {
	var a []any
	if len(c.limits) > 0 {
		a = append(a, "limits", c.limits.String())
	}
	if len(c.rates) > 0 {
		a = append(a, "rates", c.rates.String())
	}
	return a
}

// controls returns what GET /v1/controls shows.
func (c *controlFlags) controls() httpapi.Controls {
	out := httpapi.Controls{Limits: c.limits, Rates: c.rates}
	for _, sp := range c.schedules {
		out.Schedules = append(out.Schedules, sp.info)
	}
	return out
}

// startScheduler starts a scheduler of c's schedules on b, or returns a nil
// stop when there are none. stop shuts it down, letting an enqueue in
// flight finish.
func (c *controlFlags) startScheduler(b queue.Broker, log *slog.Logger) (stop func(), err error) {
	if len(c.schedules) == 0 {
		return func() {}, nil
	}
	s, err := queue.NewScheduler(b, &queue.SchedulerConfig{Logger: log})
	if err != nil {
		return nil, err
	}
	for _, sp := range c.schedules {
		k, err := queue.RawKind(sp.info.Kind)
		if err == nil {
			err = queue.Periodic(s, sp.info.Name, sp.sched, k, sp.input, queue.WithQueue(sp.info.Queue))
		}
		if err != nil {
			s.Shutdown(context.Background()) // started nothing: returns at once
			return nil, fmt.Errorf("--schedule %s: %w", sp.info.Name, err)
		}
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	log.Info("scheduling", "schedules", c.schedules.String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			log.Warn("scheduler", "err", err)
		}
	}, nil
}

// queuesCmd lists the queues, or pauses or resumes one, or shows the
// controls the server runs with.
func queuesCmd(ctx context.Context, e *env, args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "pause", "resume":
			return queuesSetPaused(ctx, e, args[0], args[1:])
		case "controls":
			c, _, code, ok := apiCommand(e, "queues controls", "[flags]", "  gather queues controls", args[1:], false, nil)
			if !ok {
				return code
			}
			return e.printCall(ctx, c, "GET", "/v1/controls", nil)
		}
	}
	c, _, code, ok := apiCommand(e, "queues", "[pause NAME | resume NAME | controls] [flags]", "  gather queues\n  gather queues pause bulk\n  gather queues resume bulk\n  gather queues controls", args, false, nil)
	if !ok {
		return code
	}
	var out struct {
		Queues []json.RawMessage `json:"queues"`
	}
	if err := c.call(ctx, "GET", "/v1/queues", nil, &out); err != nil {
		fmt.Fprintf(e.stderr, "gather: %v\n", err)
		return ExitUsage
	}
	for _, q := range out.Queues {
		fmt.Fprintf(e.stdout, "%s\n", q)
	}
	return ExitOK
}

// queuesSetPaused is "gather queues pause|resume NAME".
func queuesSetPaused(ctx context.Context, e *env, op string, args []string) int {
	c, name, code, ok := apiCommand(e, "queues "+op, "NAME [flags]", "  gather queues "+op+" bulk", args, true, nil)
	if !ok {
		return code
	}
	if err := queue.CheckName("queue", name); err != nil {
		return e.usageErr("queues "+op, "%v", err)
	}
	return e.printCall(ctx, c, "POST", "/v1/queues/"+url.PathEscape(name)+"/"+op, []byte("{}"))
}
