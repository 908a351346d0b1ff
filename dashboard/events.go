package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gather-go/gather/queue"
)

// The stream at /dashboard/events sends each section as an event of its
// name whose data is one JSON object: "stats" (every queue's counts, each
// frame), "series" (the charts' points, every second), "queues" (depth and
// in flight, from the broker), "batches" (the newest batches), "workers",
// "snapshots", and, with ?batch=ID, "batch" (that batch with its tasks'
// states). A page gets every section's latest value when it connects, then
// what changes. A slow page gets the latest value of each section, never a
// backlog.

// maxStreams bounds the streams open at once: each holds a goroutine and
// its pending sections; one more gets 503.
const maxStreams = 512

// maxGrid is the most task states a "batch" event carries.
const maxGrid = 20_000

// batchEvery is the shortest time between two reads of a watched batch.
const batchEvery = 250 * time.Millisecond

func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	batchID := r.URL.Query().Get("batch")
	if batchID != "" && (len(batchID) > 128 || queue.CheckName("batch", batchID) != nil) {
		http.Error(w, "batch: want a batch ID", http.StatusBadRequest)
		return
	}
	wantBatches := true
	switch v := r.URL.Query().Get("view"); v {
	case "", "batches":
	case "queues", "batch", "dead", "workers", "snapshots":
		wantBatches = false
	default:
		http.Error(w, "view: want queues, batches, batch, dead, workers or snapshots", http.StatusBadRequest)
		return
	}
	if d.hub.count() >= maxStreams {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many dashboard pages are open: close some, or retry", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Each write may wait Config.StreamWriteTimeout for the page to read;
	// the connection, kept alive after the stream, gets no deadline.
	defer rc.SetWriteDeadline(time.Time{})

	s := d.hub.join(wantBatches)
	defer d.hub.leave(s)
	d.joined()
	var buf bytes.Buffer
	buf.WriteString("retry: 2000\n\n")
	hello, _ := json.Marshal(struct {
		Inspector bool `json:"inspector"`
		Workers   bool `json:"workers"`
		History   int  `json:"history_seconds"`
		FrameMS   int  `json:"frame_ms"`
	}{d.in != nil, d.cfg.NATS != nil, d.npts, int(d.frame / time.Millisecond)})
	writeEvent(&buf, "hello", hello)

	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	later := time.NewTimer(time.Hour) // the next read of the watched batch
	later.Stop()
	defer later.Stop()
	armed := false
	watching := batchID != ""
	var batchNext time.Time
	frame := d.hub.frameDone()
	var secs []section
	for {
		if watching && !armed && !time.Now().Before(batchNext) {
			var done bool
			data := d.batchDetail(r.Context(), batchID, &done)
			if data != nil {
				writeEvent(&buf, "batch", data)
			}
			batchNext = time.Now().Add(batchEvery)
			watching = !done
		}
		var gone bool
		secs, gone = s.take(secs[:0])
		for _, sec := range secs {
			writeEvent(&buf, sec.name, sec.data)
		}
		if buf.Len() > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(d.cfg.StreamWriteTimeout))
			if _, err := w.Write(buf.Bytes()); err != nil {
				return // the page went away, or does not read
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf.Reset()
		}
		if gone {
			return
		}
		select {
		case <-s.notify:
		case <-frame:
			frame = d.hub.frameDone()
			if watching && !armed {
				// Re-read the batch after this frame, but no sooner than
				// batchEvery after the last read.
				later.Reset(max(time.Until(batchNext), 0))
				armed = true
			}
		case <-later.C:
			armed = false
		case <-ping.C:
			buf.WriteString(": ping\n\n")
		case <-r.Context().Done():
			return
		case <-d.ctx.Done():
			return
		}
	}
}

// joined makes the next frame come at once, with the series, for a stream
// that just opened.
func (d *Dashboard) joined() {
	d.joinFlag.Store(true)
	d.active.Store(false)
	d.poke()
}

func writeEvent(buf *bytes.Buffer, name string, data []byte) {
	buf.WriteString("event: ")
	buf.WriteString(name)
	buf.WriteString("\ndata: ")
	buf.Write(data)
	buf.WriteString("\n\n")
}

// batchDetailJSON is the "batch" event: a batch with its tasks' states,
// one letter each by index (p pending, r running, d done, f failed, c
// cancelled), the first maxGrid of them.
type batchDetailJSON struct {
	batchJSON
	States    string `json:"states"`
	Truncated bool   `json:"truncated,omitempty"`
}

var stateLetters = [...]byte{queue.TaskPending: 'p', queue.TaskRunning: 'r', queue.TaskDone: 'd', queue.TaskFailed: 'f', queue.TaskCanceled: 'c'}

// batchDetail reads batch id's detail; done reports that watching it can
// stop (it finished, or cannot be read for good).
func (d *Dashboard) batchDetail(ctx context.Context, id string, done *bool) []byte {
	if d.in == nil {
		*done = true
		b, _ := json.Marshal(map[string]string{"id": id, "error": "this broker cannot be inspected: no per-task states"})
		return b
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	bd, err := d.in.Batch(ctx, id)
	if err != nil {
		if ctx.Err() != nil && d.ctx.Err() != nil {
			*done = true
			return nil
		}
		*done = errors.Is(err, queue.ErrNotFound)
		b, _ := json.Marshal(map[string]string{"id": id, "error": err.Error()})
		return b
	}
	out := batchDetailJSON{batchJSON: batchOut(bd.BatchInfo)}
	n := min(len(bd.States), maxGrid)
	st := make([]byte, n)
	for i, s := range bd.States[:n] {
		if int(s) < len(stateLetters) {
			st[i] = stateLetters[s]
		} else {
			st[i] = '?'
		}
	}
	out.States, out.Truncated = string(st), len(bd.States) > n
	*done = out.Finished
	b, _ := json.Marshal(out)
	return b
}
