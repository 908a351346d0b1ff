package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// sub runs a command with subcommands: "gather batch get ID".
func (e *env) sub(ctx context.Context, cmd string, args []string, subs map[string]func(ctx context.Context, e *env, args []string) int, list string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(e.stderr, "usage: gather %s %s ID [flags]\n", cmd, list)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	fn, ok := subs[args[0]]
	if !ok {
		return e.usageErr(cmd, "unknown subcommand %q: want %s", args[0], list)
	}
	return fn(ctx, e, args[1:])
}

func batchCmd(ctx context.Context, e *env, args []string) int {
	return e.sub(ctx, "batch", args, map[string]func(context.Context, *env, []string) int{
		"get": batchGet, "attach": batchAttach, "cancel": batchCancel,
	}, "get|attach|cancel")
}

// apiCommand parses a subcommand's flags, which take one argument (an ID or
// a name, as usage's first word says) when withID, and returns its client.
func apiCommand(e *env, name, usage, example string, args []string, withID bool, more func(fs *flagSetT)) (*apiClient, string, int, bool) {
	var a apiFlags
	fs := e.flagSet(name, usage, example)
	a.add(fs)
	if more != nil {
		more(fs)
	}
	if code, ok := parse(fs, args); !ok {
		return nil, "", code, false
	}
	id := ""
	switch {
	case withID && fs.NArg() != 1:
		return nil, "", e.usageErr(name, "want one %s, got %d arguments", strings.Fields(usage)[0], fs.NArg()), false
	case withID:
		id = fs.Arg(0)
	case fs.NArg() > 0:
		return nil, "", e.usageErr(name, "unexpected arguments %q", fs.Args()), false
	}
	c, err := a.client()
	if err != nil {
		return nil, "", e.usageErr(name, "%v", err), false
	}
	return c, id, 0, true
}

// printCall copies a JSON response to stdout as one line.
func (e *env) printCall(ctx context.Context, c *apiClient, method, path string, body []byte) int {
	var v json.RawMessage
	if err := c.call(ctx, method, path, body, &v); err != nil {
		fmt.Fprintf(e.stderr, "gather: %v\n", err)
		return ExitUsage
	}
	fmt.Fprintf(e.stdout, "%s\n", v)
	return ExitOK
}

func batchGet(ctx context.Context, e *env, args []string) int {
	var wait time.Duration
	var states bool
	c, id, code, ok := apiCommand(e, "batch get", "ID [flags]", "  gather batch get 3f2a...", args, true, func(fs *flagSetT) {
		fs.DurationVar(&wait, "wait", 0, "wait up to this long for the batch to finish (the server clamps it)")
		fs.BoolVar(&states, "states", false, "include each task's state")
	})
	if !ok {
		return code
	}
	q := url.Values{}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	if states {
		q.Set("states", "true")
	}
	path := "/v1/batches/" + url.PathEscape(id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return e.printCall(ctx, c, "GET", path, nil)
}

func batchAttach(ctx context.Context, e *env, args []string) int {
	var progress string
	var timeout time.Duration
	c, id, code, ok := apiCommand(e, "batch attach", "ID [flags]", "  gather batch attach 3f2a... > results.jsonl", args, true, func(fs *flagSetT) {
		fs.StringVar(&progress, "progress", "auto", "progress bar on stderr: auto, always or never")
		fs.DurationVar(&timeout, "timeout", 0, "give up waiting after this long: the batch is cancelled (default: wait forever)")
	})
	if !ok {
		return code
	}
	var st batchStatus
	if err := c.call(ctx, "GET", "/v1/batches/"+url.PathEscape(id)+"?limit=1", nil, &st); err != nil {
		fmt.Fprintf(e.stderr, "gather: %v\n", err)
		return ExitUsage
	}
	bar := newProgress(e.stderr, progress, st.Progress.Size, time.Now())
	return e.await(ctx, c, id, st.Progress.Size, timeout, bar)
}

func batchCancel(ctx context.Context, e *env, args []string) int {
	c, id, code, ok := apiCommand(e, "batch cancel", "ID", "  gather batch cancel 3f2a...", args, true, nil)
	if !ok {
		return code
	}
	return e.printCall(ctx, c, "POST", "/v1/batches/"+url.PathEscape(id)+"/cancel", []byte("{}"))
}

func deadCmd(ctx context.Context, e *env, args []string) int {
	return e.sub(ctx, "dead", args, map[string]func(context.Context, *env, []string) int{
		"list": deadList, "show": deadShow, "redrive": deadRedrive,
	}, "list|show|redrive")
}

func deadList(ctx context.Context, e *env, args []string) int {
	var qname, kind, errText, after string
	var limit int
	c, _, code, ok := apiCommand(e, "dead list", "[flags]", "  gather dead list --queue default --kind http --error timeout", args, false, func(fs *flagSetT) {
		fs.StringVar(&qname, "queue", "default", "queue")
		fs.StringVar(&kind, "kind", "", "only this kind")
		fs.StringVar(&errText, "error", "", "only dead letters whose errors contain this text")
		fs.StringVar(&after, "after", "", "start after this task ID (the last line's id)")
		fs.IntVar(&limit, "limit", 100, "most dead letters to list")
	})
	if !ok {
		return code
	}
	q := url.Values{"queue": {qname}, "limit": {itoa(limit)}}
	for k, v := range map[string]string{"kind": kind, "error": errText, "after": after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var page struct {
		DeadLetters []json.RawMessage `json:"dead_letters"`
		Next        string            `json:"next"`
	}
	if err := c.call(ctx, "GET", "/v1/dead-letters?"+q.Encode(), nil, &page); err != nil {
		fmt.Fprintf(e.stderr, "gather: %v\n", err)
		return ExitUsage
	}
	for _, d := range page.DeadLetters {
		fmt.Fprintf(e.stdout, "%s\n", d)
	}
	if page.Next != "" {
		fmt.Fprintf(e.stderr, "more: gather dead list --after %s\n", page.Next)
	}
	return ExitOK
}

func deadShow(ctx context.Context, e *env, args []string) int {
	var qname string
	c, id, code, ok := apiCommand(e, "dead show", "TASK-ID [flags]", "  gather dead show 3f2a.../7", args, true, func(fs *flagSetT) {
		fs.StringVar(&qname, "queue", "default", "queue")
	})
	if !ok {
		return code
	}
	return e.printCall(ctx, c, "GET", "/v1/dead-letters/"+url.PathEscape(id)+"?queue="+url.QueryEscape(qname), nil)
}

func deadRedrive(ctx context.Context, e *env, args []string) int {
	c, id, code, ok := apiCommand(e, "dead redrive", "TASK-ID", "  gather dead redrive 3f2a.../7", args, true, nil)
	if !ok {
		return code
	}
	return e.printCall(ctx, c, "POST", "/v1/dead-letters/"+url.PathEscape(id)+"/redrive", []byte("{}"))
}

type flagSetT = flag.FlagSet
