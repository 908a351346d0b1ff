package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

// bury keeps a dead task, with its recorded attempts, in the dead-letter
// subject of its queue.
func (b *Broker) bury(ctx context.Context, c *queue.Completion) error {
	d := c.Delivery
	now := time.Now()
	dl := queue.DeadLetter{Message: d.Message, At: now}
	asub := b.attSubj(d.BatchID, d.Index)
	for seq := uint64(1); ; {
		m, err := b.state.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(asub))
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				b.log.Warn("natsbroker: reading attempts", "task", d.ID(), "err", err)
			}
			break
		}
		var a queue.AttemptError
		if json.Unmarshal(m.Data, &a) == nil {
			dl.Attempts = append(dl.Attempts, a)
		}
		seq = m.Sequence + 1
	}
	if f := c.Outcome.Err; f != nil {
		dl.Attempts = append(dl.Attempts, queue.AttemptError{Attempt: d.Attempt, At: now, Error: string(f.Code) + ": " + f.Message})
	}
	data, err := b.deadLetterData(&dl)
	if err != nil {
		return fmt.Errorf("natsbroker: dead-lettering task %s: %w", d.ID(), err)
	}
	if _, err := b.js.Publish(ctx, b.deadSubj(d.Queue, d.BatchID, d.Index), data); err != nil {
		return fmt.Errorf("natsbroker: dead-lettering task %s: %w", d.ID(), err)
	}
	if err := b.state.Purge(ctx, jetstream.WithPurgeSubject(asub)); err != nil {
		b.log.Warn("natsbroker: purging attempts", "task", d.ID(), "err", err)
	}
	return nil
}

// buryBad dead-letters a task message that does not decode, with the
// reason, records a failure for the tasks its Gather-Task and Gather-Count
// headers name (so their batch still completes; indices past the batch's
// size are ignored), and removes it from the queue.
func (b *Broker) buryBad(ctx context.Context, q *bqueue, msg taskMsg, delivered uint64, reason string) {
	now := time.Now()
	reason = "natsbroker: bad wire data: " + reason
	var dl queue.DeadLetter
	dl.Queue, dl.Payload, dl.At, dl.Attempt = q.name, msg.Data(), now, int(delivered)
	dl.Attempts = []queue.AttemptError{{Attempt: int(delivered), At: now, Error: reason}}
	id := msg.Headers().Get(hdrTask)
	batch, index, err := queue.ParseTaskID(id)
	if err == nil {
		err = checkID(batch) // a subject is built from it
	}
	if err == nil {
		dl.BatchID, dl.Index = batch, index
		count := 1
		if c := msg.Headers().Get(hdrCount); c != "" {
			if k, err := strconv.Atoi(c); err == nil && k > 1 && k <= maxPack {
				count = k
			}
		}
		if rec, _, err := b.batchRecord(ctx, batch); err == nil {
			count = min(count, rec.Size-index)
		}
		buf := startResults(nil, resOutcomes)
		for i := range max(count, 0) {
			buf = appendOutcome(buf, &queue.Outcome{Index: index + i, Err: &queue.Failure{Code: queue.CodeBadInput, Message: reason, Attempts: int(delivered)}})
		}
		if count > 0 { // else not a task of that batch
			if _, err := b.js.Publish(ctx, b.resSubj(batch), buf); err != nil {
				b.log.Error("natsbroker: recording the failure of a bad task message", "task", id, "err", err)
			}
		}
	} else {
		seq := uint64(0)
		if meta, err := msg.Metadata(); err == nil {
			seq = meta.Sequence.Stream
		}
		dl.BatchID = "bad-" + q.tok + "-" + strconv.FormatUint(seq, 10)
		reason += fmt.Sprintf(" (and header %s is %q: %v)", hdrTask, clip(id), err)
		dl.Attempts[0].Error = reason
	}
	b.log.Error("natsbroker: dead-lettering a task message", "queue", q.name, "task", clip(id), "reason", reason)
	data, err := b.deadLetterData(&dl)
	if err != nil {
		b.log.Error("natsbroker: dead-lettering a bad task message", "err", err)
		_ = msg.Term()
		return
	}
	if _, err := b.js.Publish(ctx, b.deadSubj(q.name, dl.BatchID, dl.Index), data); err != nil {
		// Keep it rather than lose it; it comes back later.
		b.log.Error("natsbroker: dead-lettering a bad task message", "err", err)
		_ = msg.NakWithDelay(b.ackWait)
		return
	}
	_ = msg.Term()
}

// inputNotKept starts the note of a dead letter stored without its input.
const inputNotKept = "natsbroker: input not kept"

// deadLetterData encodes dl for the state stream within the server's
// max_payload: a dead letter that would not fit (its input is stored in
// base64, its attempts' errors up to 64 KiB each) is stored without its
// input and, if need be, without its oldest attempts' errors, with a note
// saying so; such a dead letter can be listed, not re-driven. Storing it
// whole would fail, and so would the Complete that buries it, forever.
func (b *Broker) deadLetterData(dl *queue.DeadLetter) ([]byte, error) {
	limit := int(b.nc.MaxPayload()) - 256
	data, err := json.Marshal(dl)
	if err != nil || len(data) <= limit {
		return data, err
	}
	note := queue.AttemptError{At: dl.At, Error: fmt.Sprintf("%s: the dead letter was %d bytes, past the server's max_payload of %d: its input (%d bytes)",
		inputNotKept, len(data), b.nc.MaxPayload(), len(dl.Payload))}
	atts := dl.Attempts
	dl.Payload = nil
	for dropped := 0; ; dropped++ {
		n := note
		if dropped > 0 {
			n.Error += fmt.Sprintf(" and the errors of its %d oldest attempts are not kept", dropped)
		} else {
			n.Error += " is not kept"
		}
		dl.Attempts = append(slices.Clone(atts[dropped:]), n)
		if data, err = json.Marshal(dl); err != nil || len(data) <= limit || dropped == len(atts) {
			break
		}
	}
	if err == nil && len(data) > limit {
		err = fmt.Errorf("dead letter of %d bytes past the server's max_payload of %d", len(data), b.nc.MaxPayload())
	}
	return data, err
}

// DeadLetters implements queue.DeadLetterer.
func (b *Broker) DeadLetters(ctx context.Context, name, after string, limit int) ([]queue.DeadLetter, error) {
	filter := b.prefix + ".d." + tok(name) + ".>"
	seq := uint64(1)
	if after != "" {
		batch, index, err := queue.ParseTaskID(after)
		if err != nil {
			return nil, fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		if checkID(batch) != nil || b.CheckQueue(name) != nil {
			return nil, nil // no dead letter has that ID or queue
		}
		m, err := b.state.GetLastMsgForSubject(ctx, b.deadSubj(name, batch, index))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		seq = m.Sequence + 1
	}
	if b.CheckQueue(name) != nil {
		return nil, nil // no queue has that name
	}
	var out []queue.DeadLetter
	for limit <= 0 || len(out) < limit {
		m, err := b.state.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		seq = m.Sequence + 1
		var dl queue.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			b.log.Error("natsbroker: skipping a dead letter that does not decode", "seq", m.Sequence, "err", err)
			continue
		}
		out = append(out, dl)
	}
	return out, nil
}

// Redrive implements queue.DeadLetterer. It removes the dead letter first
// (so two concurrent redrives enqueue once) and puts it back if the enqueue
// fails.
func (b *Broker) Redrive(ctx context.Context, id string) (string, error) {
	batch, index, err := queue.ParseTaskID(id)
	if err != nil {
		return "", fmt.Errorf("natsbroker: redrive: %w", err)
	}
	if err := checkID(batch); err != nil {
		return "", fmt.Errorf("natsbroker: redrive %s: %w", clip(id), err)
	}
	subj := b.prefix + ".d.*." + tok(batch) + "." + strconv.Itoa(index)
	m, err := b.state.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, err)
	}
	var dl queue.DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		return "", fmt.Errorf("natsbroker: redrive %s: bad dead letter: %v", id, err)
	}
	for _, a := range dl.Attempts {
		if strings.HasPrefix(a.Error, inputNotKept) {
			return "", fmt.Errorf("natsbroker: redrive %s: %w: the dead letter does not hold its input (too large to keep): it can be listed, not re-driven", id, queue.ErrBadInput)
		}
	}
	if err := b.state.DeleteMsg(ctx, m.Sequence); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", fmt.Errorf("natsbroker: redrive %s: %w", id, queue.ErrNotFound)
		}
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, err)
	}
	msg := &dl.Message
	s := &queue.Submission{
		BatchID: newID(), Queue: msg.Queue, Kind: msg.Kind, Priority: msg.Priority, MaxAttempts: max(msg.MaxAttempts, 1),
		Timeout: msg.Timeout, BackoffMin: msg.BackoffMin, BackoffMax: msg.BackoffMax, EnqueuedAt: time.Now(),
		Headers: msg.Headers, Payloads: [][]byte{msg.Payload},
	}
	nid, err := b.Enqueue(ctx, s)
	if err != nil {
		if _, perr := b.js.PublishMsg(context.WithoutCancel(ctx), &nats.Msg{Subject: m.Subject, Data: m.Data}); perr != nil {
			b.log.Error("natsbroker: restoring a dead letter after a failed redrive", "task", id, "err", perr)
		}
		return "", fmt.Errorf("natsbroker: redrive %s: %w", id, err)
	}
	return nid, nil
}

// FindDeadLetters implements queue.Inspector. The cursor is a state stream
// sequence: the page holds the dead letters stored after it. Like the rest
// of the inspection it reads what the streams already hold: the
// dead-letter subjects ("<prefix>.d.<queue>.>") read forward from the
// cursor, at most 10*limit+100 dead letters a call (deadScanPerItem).
func (b *Broker) FindDeadLetters(ctx context.Context, f queue.DeadLetterFilter) ([]queue.DeadLetter, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", fmt.Errorf("natsbroker: dead letters: %w", err)
	}
	seq := uint64(1)
	if f.After != "" {
		n, err := strconv.ParseUint(f.After, 10, 64)
		if err != nil || n == 0 {
			return nil, "", fmt.Errorf("natsbroker: dead letters: %w", queue.BadCursor(f.After))
		}
		seq = n + 1
	}
	if b.isClosed() {
		return nil, "", errClosed
	}
	filter := b.prefix + ".d.>"
	if f.Queue != "" {
		filter = b.prefix + ".d." + tok(f.Queue) + ".>"
	}
	limit := f.PageLimit()
	var page []queue.DeadLetter
	var last uint64
	for reads := 0; reads < deadScanPerItem*limit+100; reads++ {
		m, err := b.state.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return page, "", nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("natsbroker: dead letters: %w", err)
		}
		seq, last = m.Sequence+1, m.Sequence
		var dl queue.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			b.log.Error("natsbroker: skipping a dead letter that does not decode", "seq", m.Sequence, "err", err)
			continue
		}
		if !f.Match(&dl) {
			continue
		}
		page = append(page, dl)
		if len(page) == limit {
			break
		}
	}
	return page, strconv.FormatUint(last, 10), nil
}
