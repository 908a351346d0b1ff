package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gather-go/gather/queue"
)

type queueJSON struct {
	Name     string         `json:"name"`
	Depth    map[string]int `json:"depth"` // per priority level, by name
	Total    int            `json:"total"`
	InFlight *int           `json:"in_flight,omitempty"` // when the broker tells
	Paused   *bool          `json:"paused,omitempty"`    // when the broker can pause queues
}

func depthJSON(d [queue.NumPriorities]int) (map[string]int, int) {
	m := make(map[string]int, queue.NumPriorities)
	total := 0
	for l, n := range d {
		m[queue.Priority(l).String()] = n
		total += n
	}
	return m, total
}

// listQueues lists the broker's queues (Inspector), or the configured
// queues with their depth (queue.Stats).
func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) error {
	out := struct {
		Queues []queueJSON `json:"queues"`
	}{Queues: []queueJSON{}}
	if in, ok := s.broker.(queue.Inspector); ok {
		qs, err := in.Queues(r.Context())
		if err != nil {
			return problem(http.StatusServiceUnavailable, CodeBrokerDown, "listing queues: %v", err)
		}
		for _, q := range qs {
			d, total := depthJSON(q.Depth)
			n := q.InFlight
			paused, err := s.pausedOf(r, q.Name)
			if err != nil {
				return problem(http.StatusServiceUnavailable, CodeBrokerDown, "whether queue %s is paused: %v", q.Name, err)
			}
			out.Queues = append(out.Queues, queueJSON{q.Name, d, total, &n, paused})
		}
		return writeJSON(w, http.StatusOK, out)
	}
	st, ok := s.broker.(queue.Stats)
	if !ok {
		return problem(http.StatusNotImplemented, CodeUnsupported, "this broker (%T) cannot count its queues", s.broker)
	}
	for _, name := range s.queues {
		dd, err := st.Depth(r.Context(), name)
		if err != nil {
			return problem(http.StatusServiceUnavailable, CodeBrokerDown, "depth of queue %s: %v", name, err)
		}
		d, total := depthJSON(dd)
		paused, err := s.pausedOf(r, name)
		if err != nil {
			return problem(http.StatusServiceUnavailable, CodeBrokerDown, "whether queue %s is paused: %v", name, err)
		}
		out.Queues = append(out.Queues, queueJSON{Name: name, Depth: d, Total: total, Paused: paused})
	}
	return writeJSON(w, http.StatusOK, out)
}

type attemptJSON struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

type deadJSON struct {
	ID          string        `json:"id"`
	Batch       string        `json:"batch"`
	Index       int           `json:"index"`
	Queue       string        `json:"queue"`
	Kind        string        `json:"kind"`
	Priority    string        `json:"priority"`
	Input       jsonOrString  `json:"input"`
	Attempts    []attemptJSON `json:"attempts"`
	At          time.Time     `json:"at"`
	LastError   string        `json:"last_error"`
	EnqueuedAt  time.Time     `json:"enqueued_at"`
	MaxAttempts int           `json:"max_attempts"`
}

// jsonOrString is a payload: itself when it is JSON, else a JSON string.
type jsonOrString []byte

func (j jsonOrString) MarshalJSON() ([]byte, error) {
	if jsonValid(j) {
		return j, nil
	}
	return mustJSON(string(j)), nil
}

func deadOut(d *queue.DeadLetter) deadJSON {
	out := deadJSON{
		ID: d.ID(), Batch: d.BatchID, Index: d.Index, Queue: d.Queue, Kind: d.Kind,
		Priority: d.Priority.String(), Input: jsonOrString(d.Payload), At: d.At,
		Attempts: []attemptJSON{}, EnqueuedAt: d.EnqueuedAt, MaxAttempts: d.MaxAttempts,
	}
	for _, a := range d.Attempts {
		out.Attempts = append(out.Attempts, attemptJSON{a.Attempt, a.At, a.Error})
	}
	if n := len(d.Attempts); n > 0 {
		out.LastError = d.Attempts[n-1].Error
	}
	return out
}

// findDead lists dead letters with the filter: the broker's own search
// (Inspector), or pages of queue.DeadLetterer filtered here, reading at
// most scanPages pages per request.
func (s *Server) findDead(r *http.Request, f queue.DeadLetterFilter) ([]queue.DeadLetter, string, error) {
	if in, ok := s.broker.(queue.Inspector); ok {
		return in.FindDeadLetters(r.Context(), f)
	}
	dl, ok := s.broker.(queue.DeadLetterer)
	if !ok {
		return nil, "", problem(http.StatusNotImplemented, CodeUnsupported, "this broker (%T) keeps no dead letters", s.broker)
	}
	const scanPages = 10
	var out []queue.DeadLetter
	after := f.After
	for range scanPages {
		page, err := dl.DeadLetters(r.Context(), f.Queue, after, f.Limit)
		if err != nil {
			return nil, "", err
		}
		for _, d := range page {
			after = d.ID()
			if f.Kind != "" && d.Kind != f.Kind {
				continue
			}
			if f.ErrorContains != "" && !attemptsContain(d.Attempts, f.ErrorContains) {
				continue
			}
			out = append(out, d)
			if len(out) == f.Limit {
				return out, after, nil
			}
		}
		if len(page) < f.Limit {
			return out, "", nil
		}
	}
	return out, after, nil
}

func attemptsContain(as []queue.AttemptError, s string) bool {
	for _, a := range as {
		if strings.Contains(a.Error, s) {
			return true
		}
	}
	return false
}

func (s *Server) listDead(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	f := queue.DeadLetterFilter{Queue: q.Get("queue"), Kind: q.Get("kind"), ErrorContains: q.Get("error"), After: q.Get("after"), Limit: limit}
	if f.Queue == "" {
		f.Queue = queue.DefaultQueue
	}
	if err := queue.CheckName("queue", f.Queue); err != nil {
		return problem(http.StatusBadRequest, CodeMalformed, "%v", err)
	}
	page, next, err := s.findDead(r, f)
	if err != nil {
		var pe *problemError
		if errors.As(err, &pe) {
			return err
		}
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "listing dead letters: %v", err)
	}
	out := struct {
		DeadLetters []deadJSON `json:"dead_letters"`
		Next        string     `json:"next,omitempty"`
	}{DeadLetters: []deadJSON{}, Next: next}
	for i := range page {
		out.DeadLetters = append(out.DeadLetters, deadOut(&page[i]))
	}
	return writeJSON(w, http.StatusOK, out)
}

// getDead finds one dead letter by task ID, in the queue given by ?queue=
// (default: the default queue).
func (s *Server) getDead(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if _, _, err := queue.ParseTaskID(id); err != nil {
		return problem(http.StatusBadRequest, CodeMalformed, "%v (escape the slash as %%2F in the path)", err)
	}
	qname := r.URL.Query().Get("queue")
	if qname == "" {
		qname = queue.DefaultQueue
	}
	dl, ok := s.broker.(queue.DeadLetterer)
	if !ok {
		return problem(http.StatusNotImplemented, CodeUnsupported, "this broker (%T) keeps no dead letters", s.broker)
	}
	// The task before id is not known, so scan: dead letters are few.
	after := ""
	for range 100 {
		page, err := dl.DeadLetters(r.Context(), qname, after, DefaultMaxPage)
		if err != nil {
			return problem(http.StatusServiceUnavailable, CodeBrokerDown, "listing dead letters: %v", err)
		}
		for i := range page {
			if page[i].ID() == id {
				return writeJSON(w, http.StatusOK, deadOut(&page[i]))
			}
			after = page[i].ID()
		}
		if len(page) < DefaultMaxPage {
			break
		}
	}
	return problem(http.StatusNotFound, CodeNotFound, "no dead letter %q in queue %q (give ?queue= for another queue)", id, qname)
}

func (s *Server) redrive(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkDraining(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, _, err := queue.ParseTaskID(id); err != nil {
		return problem(http.StatusBadRequest, CodeMalformed, "%v (escape the slash as %%2F in the path)", err)
	}
	batch, err := s.client.Redrive(r.Context(), id)
	switch {
	case err == nil:
	case errors.Is(err, errors.ErrUnsupported):
		return problem(http.StatusNotImplemented, CodeUnsupported, "%v", err)
	case errors.Is(err, queue.ErrNotFound):
		return problem(http.StatusNotFound, CodeNotFound, "no dead letter %q", id)
	case errors.Is(err, queue.ErrQueueFull):
		return retryLater(problem(http.StatusTooManyRequests, CodeQueueFull, "%v", err), time.Second)
	default:
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "redriving %s: %v", id, err)
	}
	w.Header().Set("Location", "/v1/batches/"+batch)
	return writeJSON(w, http.StatusCreated, map[string]string{"id": batch})
}
