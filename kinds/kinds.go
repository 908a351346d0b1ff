// Package kinds holds the task kinds the gather program runs by name: use
// Builtin for the ones every gather binary has (http, exec, echo, sleep),
// and Func to make a Def of your own kind, so that a gather binary you
// build (see package cli) runs it beside them.
package kinds

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gather-go/gather/queue"
)

// Def is a kind the program runs by name: what the server accepts, and how
// a worker registers its handler. The zero value is not usable; make one
// with Func or take Builtin's. A Def is plain data, safe to share.
type Def struct {
	// Name is the kind's name, as producers give it.
	Name string
	// Doc is one line for help texts and the API's list of kinds.
	Doc string
	// Register registers the kind's handler on a worker (queue.Handle).
	Register func(w *queue.Worker)
}

// Func returns the Def of kind k run by f.
func Func[In, Out any](k queue.Kind[In, Out], doc string, f func(ctx context.Context, in In) (Out, error)) Def {
	return Def{Name: k.Name(), Doc: doc, Register: func(w *queue.Worker) { queue.HandleFunc(w, k, f) }}
}

// Config configures the built-in kinds. The zero value runs http with its
// defaults and refuses every exec.
type Config struct {
	HTTP HTTPConfig
	Exec ExecConfig
}

// Builtin returns the built-in kinds: http, exec, echo and sleep.
func Builtin(cfg Config) []Def {
	return []Def{HTTP(cfg.HTTP), Exec(cfg.Exec), Echo(), Sleep()}
}

// Echo returns the kind "echo": its output is its input, any JSON value.
func Echo() Def {
	k, _ := queue.RawKind("echo")
	return Func(k, "returns its input", func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
		return in, nil
	})
}

// MaxSleep bounds the sleep kind's duration.
const MaxSleep = time.Hour

// SleepInput is the sleep kind's input: a duration string ("250ms"), or an
// object {"duration": "250ms", "fail": "message", "value": any} that fails
// with the message after sleeping, or returns the value.
type SleepInput struct {
	Duration string          `json:"duration"`
	Fail     string          `json:"fail,omitempty"`
	Value    json.RawMessage `json:"value,omitempty"`
}

// SleepOutput is the sleep kind's result.
type SleepOutput struct {
	Slept string          `json:"slept"`
	Value json.RawMessage `json:"value,omitempty"`
}

// UnmarshalJSON accepts a duration string or the object.
func (s *SleepInput) UnmarshalJSON(b []byte) error {
	var d string
	if err := json.Unmarshal(b, &d); err == nil {
		*s = SleepInput{Duration: d}
		return nil
	}
	type plain SleepInput
	return json.Unmarshal(b, (*plain)(s))
}

// Sleep returns the kind "sleep": it waits for the duration (or until the
// task is cancelled), then returns {"slept": duration, "value": value} or
// fails with the input's message.
func Sleep() Def {
	k := queue.NewKind[SleepInput, SleepOutput]("sleep")
	return Func(k, "waits for a duration (\"250ms\" or {\"duration\",\"fail\",\"value\"}), then returns or fails",
		func(ctx context.Context, in SleepInput) (SleepOutput, error) {
			var out SleepOutput
			d, err := time.ParseDuration(in.Duration)
			if err != nil || d < 0 || d > MaxSleep {
				return out, queue.Permanent(fmt.Errorf("duration %q: want a duration from 0 to %v such as \"250ms\"", in.Duration, MaxSleep))
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return out, context.Cause(ctx)
			}
			if in.Fail != "" {
				return out, fmt.Errorf("%s", in.Fail)
			}
			return SleepOutput{Slept: d.String(), Value: in.Value}, nil
		})
}
