package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gather-go/gather/queue"
)

// batchRequest is the body of POST /v1/batches.
type batchRequest struct {
	Kind     string         `json:"kind"`
	Queue    string         `json:"queue,omitempty"`
	Priority string         `json:"priority,omitempty"`
	Mode     string         `json:"mode,omitempty"`
	Options  queue.Settings `json:"options"`
	Items    items          `json:"items"`
}

func (s *Server) postBatch(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkDraining(); err != nil {
		return err
	}
	if err := checkJSON(r); err != nil {
		return err
	}
	wait, err := s.waitParam(r)
	if err != nil {
		return err
	}
	var req batchRequest
	if err := s.decode(w, r, &req); err != nil {
		return err
	}
	if err := s.checkKind(req.Kind); err != nil {
		return err
	}
	mode := req.Mode
	if q := r.URL.Query().Get("mode"); q != "" {
		mode = q
	}
	switch mode {
	case "", "settled", "all":
	default:
		return problem(http.StatusUnprocessableEntity, CodeBadOption, "mode %q: want settled (every outcome) or all (fail-fast)", mode)
	}
	if len(req.Items) == 0 {
		return problem(http.StatusUnprocessableEntity, CodeBadInput, "no items: a batch needs at least one, in \"items\"")
	}
	if len(req.Items) > s.maxItems {
		return problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "%d items: the limit is %d items a batch; split the batch", len(req.Items), s.maxItems)
	}
	for i, it := range req.Items {
		if len(it) > s.maxItem {
			return problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "item %d is %d bytes: the limit is %d bytes an item", i, len(it), s.maxItem)
		}
	}
	set := req.Options
	if req.Queue != "" {
		set.Queue = req.Queue
	}
	if req.Priority != "" {
		set.Priority = req.Priority
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		if set.IdempotencyKey != "" && set.IdempotencyKey != key {
			return problem(http.StatusBadRequest, CodeMalformed, "Idempotency-Key header %q differs from options.idempotency_key %q: give one", key, set.IdempotencyKey)
		}
		set.IdempotencyKey = key
	}
	opts, err := set.Options()
	if err != nil {
		return problem(http.StatusUnprocessableEntity, CodeBadOption, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	k, err := queue.RawKind(req.Kind)
	if err != nil {
		return problem(http.StatusUnprocessableEntity, CodeUnknownKind, "%v", err)
	}
	b, err := queue.EnqueueBatch(r.Context(), s.client, k, []json.RawMessage(req.Items), opts...)
	switch {
	case err == nil:
	case errors.Is(err, queue.ErrQueueFull):
		return retryLater(problem(http.StatusTooManyRequests, CodeQueueFull, "%v: retry later, or raise the queue's bound", err), time.Second)
	case errors.Is(err, queue.ErrBadInput) && set.IdempotencyKey != "" && strings.Contains(err.Error(), "idempotency key"):
		return problem(http.StatusConflict, CodeConflict, "%v", err)
	case errors.Is(err, queue.ErrBadInput):
		return problem(http.StatusUnprocessableEntity, CodeBadInput, "%v", err)
	default:
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "%v", err)
	}
	sub, err := s.broker.Subscribe(s.ctx, b.ID())
	if err != nil {
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "following batch %s: %v", b.ID(), err)
	}
	t, err := s.start(b.ID(), sub, mode == "all")
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/batches/"+t.id)
	return s.respond(w, r, t, wait, true, false)
}

// checkKind returns a 422 unless the server accepts kind.
func (s *Server) checkKind(kind string) error {
	if err := queue.CheckName("kind", kind); err != nil {
		return problem(http.StatusUnprocessableEntity, CodeUnknownKind, "%v", err)
	}
	if why, ok := s.disabled[kind]; ok {
		return problem(http.StatusUnprocessableEntity, CodeKindDisabled, "kind %q is disabled here: %s", kind, why)
	}
	if s.kinds != nil {
		if _, ok := s.kinds[kind]; !ok {
			return problem(http.StatusUnprocessableEntity, CodeUnknownKind, "unknown kind %q: want one of %s",
				kind, strings.Join(slices.Sorted(maps.Keys(s.kinds)), ", "))
		}
	}
	return nil
}

func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return problem(http.StatusUnsupportedMediaType, CodeMediaType, "Content-Type %q: want application/json", ct)
	}
	return nil
}

// decode reads one JSON value from the body into v, strictly: unknown
// fields, wrong types, trailing data and bodies over the limit are
// problems that say what is accepted.
// A body must arrive within Config.BodyTimeout: the http.Server has no
// ReadTimeout, which would also cut long waits and event streams.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.bodyTime)) // unsupported only on test recorders
	body := http.MaxBytesReader(w, r.Body, s.maxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err == nil {
		// The body was read to its end. Cleared only then: the server
		// reads what a refused body has left before it answers, and that
		// read needs the deadline too.
		_ = rc.SetReadDeadline(time.Time{})
		return nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return problem(http.StatusBadRequest, CodeMalformed, "the body did not arrive within %v: send it faster or split the batch", s.bodyTime)
	}
	var mbe *http.MaxBytesError
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return problem(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over %d bytes: the limit is %d bytes; split the batch", mbe.Limit, mbe.Limit)
	case errors.As(err, &ute):
		return problem(http.StatusBadRequest, CodeMalformed, "field %q: got a JSON %s, want %s", ute.Field, ute.Value, jsonType(ute.Type.String()))
	case errors.As(err, &se):
		return problem(http.StatusBadRequest, CodeMalformed, "body is not JSON: %v at byte %d", se, se.Offset)
	case errors.Is(err, io.EOF):
		return problem(http.StatusBadRequest, CodeMalformed, "empty body: want a JSON object such as {\"kind\":\"echo\",\"items\":[1,2]}")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, CodeMalformed, "body ends inside its JSON value")
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return problem(http.StatusBadRequest, CodeMalformed, "%s: accepted fields are kind, queue, priority, mode, options, items",
			strings.TrimPrefix(err.Error(), "json: "))
	}
	return problem(http.StatusBadRequest, CodeMalformed, "body: %v", err)
}

func jsonType(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "."):
		return "an object"
	}
	return goType
}

// waitParam reads ?wait=30s (or 30, in seconds) or "Prefer: wait=30",
// clamped to MaxWait.
func (s *Server) waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		for _, p := range r.Header.Values("Prefer") {
			for part := range strings.SplitSeq(p, ",") {
				if x, ok := strings.CutPrefix(strings.TrimSpace(part), "wait="); ok {
					v = x
				}
			}
		}
	}
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, problem(http.StatusBadRequest, CodeMalformed, "wait %q: want seconds (\"30\") or a duration (\"30s\", \"1m\")", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, problem(http.StatusBadRequest, CodeMalformed, "wait %q: want 0 or more", v)
	}
	return min(d, s.maxWait), nil
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) error {
	wait, err := s.waitParam(r)
	if err != nil {
		return err
	}
	if _, _, err := pageParams(r, 0); err != nil {
		return err
	}
	states := false
	if v := r.URL.Query().Get("states"); v != "" {
		if states, err = strconv.ParseBool(v); err != nil {
			return problem(http.StatusBadRequest, CodeMalformed, "states %q: want true or false", v)
		}
	}
	t, err := s.track(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return s.respond(w, r, t, wait, false, states)
}

// respond waits up to wait for t to finish, then writes its status: with
// its results (200) once finished, with progress and Retry-After (202)
// while it runs; a batch just created without a wait gets 201 either way.
// With states, it adds each task's state in the page: the broker's
// (pending, running, done, failed, canceled) when it is an Inspector,
// else what the server saw (pending standing for pending or running).
func (s *Server) respond(w http.ResponseWriter, r *http.Request, t *tracker, wait time.Duration, created, states bool) error {
	from, limit, err := pageParams(r, t.size)
	if err != nil {
		return err
	}
	finished := s.wait(r.Context(), t, wait, func() bool { return t.finished })
	// An Inspector knows the exact counts and states; the tracker may not
	// have caught up yet with a batch it started following just now.
	var detail *queue.BatchDetail
	if in, ok := s.broker.(queue.Inspector); ok && (states || !finished) {
		if detail, err = in.Batch(r.Context(), t.id); err != nil {
			if states {
				return problem(http.StatusServiceUnavailable, CodeBrokerDown, "batch %s: %v", t.id, err)
			}
			detail = nil // the tracker's counts will do
		}
	}
	// Render under the lock, write after it: a slow client must not hold
	// up the follower.
	t.mu.Lock()
	if t.err != nil && !t.finished {
		err := t.err
		t.mu.Unlock()
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "%v", err)
	}
	buf := bytes.NewBuffer(make([]byte, 0, 256+min(limit, t.size-from)*32))
	buf.Write(mustJSON(struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		Queue  string `json:"queue"`
		Status string `json:"status"`
	}{t.id, t.kind, t.queue, t.statusLocked()}))
	buf.Truncate(buf.Len() - 1) // the closing brace
	buf.WriteString(`,"progress":`)
	prog := t.progressLocked()
	if detail != nil && !t.finished && detail.Done+detail.Failed+detail.Canceled > prog.Size-prog.Pending {
		prog = progress{Size: t.size, Done: detail.Done, Failed: detail.Failed, Canceled: detail.Canceled,
			Pending: t.size - detail.Done - detail.Failed - detail.Canceled}
	}
	p, _ := json.Marshal(prog)
	buf.Write(p)
	end := min(t.size, from+limit)
	if states {
		buf.WriteString(`,"states":[`)
		for i := from; i < end; i++ {
			if i > from {
				buf.WriteByte(',')
			}
			st := queue.TaskPending
			switch o := &t.res[i]; {
			case detail != nil && i < len(detail.States):
				st = detail.States[i]
			case !o.set:
			case o.fail.Code == "":
				st = queue.TaskDone
			case o.fail.Code == queue.CodeCanceled:
				st = queue.TaskCanceled
			default:
				st = queue.TaskFailed
			}
			fmt.Fprintf(buf, "%q", st.String())
		}
		buf.WriteByte(']')
	}
	status := http.StatusAccepted
	if t.finished {
		status = http.StatusOK
		buf.WriteString(`,"results":[`)
		for i := from; i < end; i++ {
			if i > from {
				buf.WriteByte(',')
			}
			appendResult(buf, &t.res[i])
		}
		buf.WriteByte(']')
		if end < t.size {
			fmt.Fprintf(buf, `,"next_from":%d`, end)
		}
	}
	t.mu.Unlock()
	buf.WriteString("}\n")
	h := w.Header()
	h.Set("Content-Type", "application/json")
	switch {
	case created && wait == 0:
		status = http.StatusCreated
	case status == http.StatusAccepted:
		h.Set("Retry-After", "1")
	}
	if wait > 0 {
		h.Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	}
	w.WriteHeader(status)
	_, err = w.Write(buf.Bytes())
	return err
}

// appendResult writes one item's result: {"ok":true,"value":...} or
// {"ok":false,"error":{"code","message","attempts"}}.
func appendResult(buf *bytes.Buffer, o *outcome) {
	switch {
	case !o.set:
		buf.WriteString("null")
	case o.fail.Code == "":
		buf.WriteString(`{"ok":true,"value":`)
		buf.Write(o.value)
		buf.WriteByte('}')
	default:
		e, _ := json.Marshal(struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Attempts int    `json:"attempts,omitempty"`
		}{string(o.fail.Code), o.fail.Message, o.fail.Attempts})
		buf.WriteString(`{"ok":false,"error":`)
		buf.Write(e)
		buf.WriteByte('}')
	}
}

// pageParams reads ?from= and ?limit= for a batch's results: by default
// all of them.
func pageParams(r *http.Request, size int) (from, limit int, err error) {
	q := r.URL.Query()
	limit = size
	if v := q.Get("from"); v != "" {
		if from, err = strconv.Atoi(v); err != nil || from < 0 {
			return 0, 0, problem(http.StatusBadRequest, CodeMalformed, "from %q: want an index from 0", v)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return 0, 0, problem(http.StatusBadRequest, CodeMalformed, "limit %q: want 1 or more", v)
		}
	}
	return min(from, size), limit, nil
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) error {
	if err := s.checkDraining(); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.broker.Cancel(r.Context(), id); err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			return problem(http.StatusNotFound, CodeNotFound, "no batch %q", id)
		}
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "cancelling batch %s: %v", id, err)
	}
	t, err := s.track(r.Context(), id)
	if err != nil {
		return err
	}
	return s.respond(w, r, t, 0, false, false)
}

// events streams a batch's outcomes as server-sent events: one "outcome"
// event per task as it is recorded, with the event ID its place in the
// record (1-based), then one "end" event with the status. A client that
// reconnects with Last-Event-ID (or ?after=) gets the events after it.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	after := r.Header.Get("Last-Event-ID")
	if q := r.URL.Query().Get("after"); q != "" {
		after = q
	}
	next := 0
	if after != "" {
		n, err := strconv.Atoi(after)
		if err != nil || n < 0 {
			return problem(http.StatusBadRequest, CodeMalformed, "Last-Event-ID %q: want an event ID this stream sent (an integer)", after)
		}
		next = n
	}
	t, err := s.track(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Each write may wait StreamWriteTimeout for the client to read; the
	// connection, kept alive after the stream, gets no deadline.
	defer rc.SetWriteDeadline(time.Time{})
	var buf bytes.Buffer
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		buf.Reset()
		t.mu.Lock()
		for ; next < len(t.order); next++ {
			i := int(t.order[next])
			fmt.Fprintf(&buf, "id: %d\nevent: outcome\ndata: {\"index\":%d,\"result\":", next+1, i)
			appendResult(&buf, &t.res[i])
			buf.WriteString("}\n\n")
			if buf.Len() > 64<<10 {
				break
			}
		}
		caughtUp := next >= len(t.order)
		finished, ferr := t.finished, t.err
		if caughtUp && (finished || ferr != nil) {
			p, _ := json.Marshal(t.progressLocked())
			if finished {
				fmt.Fprintf(&buf, "event: end\ndata: {\"status\":%q,\"progress\":%s}\n\n", t.statusLocked(), p)
			} else {
				fmt.Fprintf(&buf, "event: error\ndata: %s\n\n", mustJSON(map[string]string{"message": ferr.Error()}))
			}
		}
		ch := t.changed
		t.mu.Unlock()
		if buf.Len() > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(s.streamWrite))
			if _, err := w.Write(buf.Bytes()); err != nil {
				return nil // the client went away, or does not read
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		if caughtUp && (finished || ferr != nil) {
			return nil
		}
		if !caughtUp {
			continue
		}
		select {
		case <-ch:
		case <-ping.C:
			_ = rc.SetWriteDeadline(time.Now().Add(s.streamWrite))
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return nil
			}
			rc.Flush()
		case <-r.Context().Done():
			return nil
		case <-s.drainCh:
			return nil // the client resumes elsewhere with Last-Event-ID
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) error {
	in, ok := s.broker.(queue.Inspector)
	if !ok {
		return problem(http.StatusNotImplemented, CodeUnsupported, "this broker (%T) cannot list batches", s.broker)
	}
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	switch st := q.Get("state"); st {
	case "", "running", "finished":
	default:
		return problem(http.StatusBadRequest, CodeMalformed, "state %q: want running or finished", st)
	}
	page, next, err := in.Batches(r.Context(), queue.BatchFilter{Queue: q.Get("queue"), State: q.Get("state"), After: q.Get("after"), Limit: limit})
	if err != nil {
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "listing batches: %v", err)
	}
	type item struct {
		ID       string    `json:"id"`
		Kind     string    `json:"kind"`
		Queue    string    `json:"queue"`
		Size     int       `json:"size"`
		Done     int       `json:"done"`
		Failed   int       `json:"failed"`
		Canceled int       `json:"canceled"`
		Finished bool      `json:"finished"`
		Created  time.Time `json:"created"`
	}
	out := struct {
		Batches []item `json:"batches"`
		Next    string `json:"next,omitempty"`
	}{Batches: []item{}, Next: next}
	for _, b := range page {
		out.Batches = append(out.Batches, item{b.ID, b.Kind, b.Queue, b.Size, b.Done, b.Failed, b.Canceled, b.Finished(), b.Created})
	}
	return writeJSON(w, http.StatusOK, out)
}

func limitParam(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > DefaultMaxPage {
		return 0, problem(http.StatusBadRequest, CodeMalformed, "limit %q: want 1 to %d", v, DefaultMaxPage)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

func jsonValid(b []byte) bool { return json.Valid(b) }
