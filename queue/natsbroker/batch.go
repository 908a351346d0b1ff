package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gather-go/gather/queue"
)

type binfo struct {
	size     int  // tasks in the batch; 0 if not read
	recheck  bool // a notice may have been missed: read the record again
	canceled chan struct{}
	// ahead is closed when a read of the record made ahead of the first
	// claim (see readAhead) has ended; nil if none was made. aheadTok
	// names the read while it is pending.
	ahead    chan struct{}
	aheadTok string
	done     bool
	used     time.Time
	fin      *finished // its recorded outcomes, once a claim checked them
}

// batchRecord is the stored state of a batch.
type batchRecord struct {
	Size     int       `json:"size"`
	Kind     string    `json:"kind"`
	Queue    string    `json:"queue"`
	Canceled bool      `json:"canceled,omitempty"`
	Created  time.Time `json:"created"`
}

// batchRecord reads batch id's record. An ID too long to be a batch's is
// not found without asking the server; a record whose fields are out of
// range (a size outside 1 to queue.MaxBatch: a forged or damaged one) is
// an error, so that no reader sizes anything by it.
func (b *Broker) batchRecord(ctx context.Context, id string) (*batchRecord, uint64, error) {
	if err := checkID(id); err != nil {
		return nil, 0, err
	}
	m, err := b.state.GetLastMsgForSubject(ctx, b.batchSubj(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, fmt.Errorf("batch %s: %w", id, queue.ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	var r batchRecord
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return nil, 0, fmt.Errorf("batch %s: bad state record: %v", id, err)
	}
	switch {
	case r.Size < 1 || r.Size > queue.MaxBatch:
		return nil, 0, fmt.Errorf("batch %s: bad state record: size %d out of range [1, %d]", id, r.Size, queue.MaxBatch)
	case r.Kind == "" || r.Queue == "":
		return nil, 0, fmt.Errorf("batch %s: bad state record: no kind or queue", id)
	}
	return &r, m.Sequence, nil
}

// canceled returns the channel closed when batch id is cancelled, and the
// batch's size: 0 if the batch is gone, -1 if its record could not be read
// now and the size is not known from before; hdr is the hdrBatch header of
// the claimed message. On the batch's first use it reads the batch record
// from the stream leader (or waits for the read that the batch's enqueue
// wake-up started, see readAhead), unless the batch cannot have been
// cancelled before this broker subscribed to cancel notices (see trusted),
// so that a broker's first claim of a batch after Cancel returned never
// starts a task of it; a Cancel after that is told by its notice, which
// Cancel flushes before it returns and the claim drains first
// (drainNotices). The record is read again when a notice may have been
// missed (checkNotices) or the last read failed.
func (b *Broker) canceled(ctx context.Context, id, hdr string) (<-chan struct{}, int) {
	now := time.Now()
	b.mu.Lock()
	bi := b.batches[id]
	if bi == nil {
		b.mu.Unlock()
		size, ok := b.trusted(ctx, hdr)
		b.mu.Lock()
		if bi = b.batches[id]; bi == nil && ok {
			bi = b.addBatchLocked(id, now)
			bi.size = size
			b.mu.Unlock()
			return bi.canceled, size
		}
	}
	if bi != nil && !bi.recheck && bi.ahead != nil && bi.aheadTok != "" {
		// Its record is being read ahead: wait for that read.
		ahead := bi.ahead
		b.mu.Unlock()
		b.awaitAhead(ctx, bi, ahead)
		b.mu.Lock()
	}
	if bi != nil && !bi.recheck {
		bi.used = now
		size := bi.size
		b.mu.Unlock()
		return bi.canceled, size
	}
	if bi == nil {
		// Registered before the lookup, so a cancel notice arriving
		// meanwhile is not missed.
		bi = b.addBatchLocked(id, now)
	}
	bi.recheck = false
	b.mu.Unlock()
	r, _, err := b.batchRecord(ctx, id)
	if err != nil {
		// Read again on the next claim, unless the batch is gone; the size
		// known from before still serves (it does not change).
		if errors.Is(err, queue.ErrNotFound) {
			return bi.canceled, 0
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		bi.recheck = true
		if bi.size == 0 {
			return bi.canceled, -1
		}
		return bi.canceled, bi.size
	}
	b.mu.Lock()
	bi.size = r.Size
	b.mu.Unlock()
	if r.Canceled {
		b.markCanceled(id)
	}
	return bi.canceled, r.Size
}

// aheadMax bounds the batch records being read ahead at once.
const aheadMax = 64

// readAhead starts reading the record of batch id, announced by an
// enqueue's wake-up, when this broker serves a worker (Notify was called),
// the batch is new to it, and its first claim will read the record (on a
// cluster; see trusted): the read is then under way while the worker's
// claim fetches the batch's first tasks, rather than after it (see
// canceled). Every worker's broker reads the record of every batch once (one
// request each, as its first claim of the batch would), whether or not it
// claims a task of it. Like the read a first claim makes, it starts after
// the cancel notices' subscriptions were made, so a Cancel it does not see
// is announced to this broker. The reply comes to the broker's reply
// subscription (onAhead); a claim waits for it at most readTimeout, and
// reads the record itself when the read failed.
func (b *Broker) readAhead(id string) {
	b.mu.Lock()
	if b.closed || !b.serving || b.sinceOn || b.batches[id] != nil || len(b.aheads) >= aheadMax {
		b.mu.Unlock()
		return
	}
	// Registered before the read, so a cancel notice arriving meanwhile
	// is not missed.
	bi := b.addBatchLocked(id, time.Now())
	b.aseq++
	bi.ahead, bi.aheadTok = make(chan struct{}), strconv.FormatUint(b.aseq, 36)
	b.aheads[bi.aheadTok] = bi
	tok := bi.aheadTok
	b.mu.Unlock()
	req := append(append([]byte(`{"last_by_subj":"`), b.batchSubj(id)...), `"}`...)
	if err := b.nc.PublishRequest(b.getSubj, b.ainbox+"."+tok, req); err != nil {
		b.endAhead(tok, nil)
	}
}

// onAhead takes the reply to a read made by readAhead.
func (b *Broker) onAhead(m *nats.Msg) {
	var resp struct {
		Error   *json.RawMessage `json:"error"`
		Message *struct {
			Data []byte `json:"data"`
		} `json:"message"`
	}
	var rec *batchRecord
	if json.Unmarshal(m.Data, &resp) == nil && resp.Error == nil && resp.Message != nil {
		var r batchRecord
		// A record out of range is left to the claim's own read
		// (batchRecord), which refuses it.
		if json.Unmarshal(resp.Message.Data, &r) == nil && r.Size >= 1 && r.Size <= queue.MaxBatch && r.Kind != "" && r.Queue != "" {
			rec = &r
		}
	}
	b.endAhead(strings.TrimPrefix(m.Subject, b.ainbox+"."), rec)
}

// endAhead ends the read ahead named tok with the record read, or nil when
// the read failed (not found yet, an error, no reply): the batch's claim
// then reads it itself.
func (b *Broker) endAhead(tok string, r *batchRecord) {
	b.mu.Lock()
	bi := b.aheads[tok]
	if bi == nil {
		b.mu.Unlock()
		return
	}
	delete(b.aheads, tok)
	bi.aheadTok = ""
	if r == nil {
		bi.recheck = true
	} else {
		bi.size = r.Size
	}
	canceled := r != nil && r.Canceled && !bi.done
	if canceled {
		bi.done = true
		close(bi.canceled)
	}
	close(bi.ahead)
	b.mu.Unlock()
}

// awaitAhead waits for the read ahead of bi's record, at most readTimeout or
// until ctx ends; a read not ended then is given up.
func (b *Broker) awaitAhead(ctx context.Context, bi *binfo, ahead chan struct{}) {
	t := time.NewTimer(b.readTimeout())
	defer t.Stop()
	select {
	case <-ahead:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	b.mu.Lock()
	tok := bi.aheadTok
	b.mu.Unlock()
	b.endAhead(tok, nil)
}

// dropAheadsLocked gives up every read ahead still pending: a claim
// waiting for one reads the record itself. b.mu is held.
func (b *Broker) dropAheadsLocked() {
	for k, bi := range b.aheads {
		delete(b.aheads, k)
		bi.recheck, bi.aheadTok = true, ""
		close(bi.ahead)
	}
}

// batchMemory is how long the cancellation state of a batch is kept after
// its last use or notice.
const batchMemory = 10 * time.Minute

// addBatchLocked adds batch id to b.batches, first forgetting the batches
// unused for batchMemory when the map has doubled since it last did.
func (b *Broker) addBatchLocked(id string, now time.Time) *binfo {
	if len(b.batches) >= b.pruneAt {
		for k, v := range b.batches {
			if now.Sub(v.used) > batchMemory {
				delete(b.batches, k)
			}
		}
		b.pruneAt = max(1<<14, 2*len(b.batches))
	}
	bi := &binfo{canceled: make(chan struct{}), used: now}
	b.batches[id] = bi
	return bi
}

// markCanceled records that batch id is cancelled, whether or not this
// broker has seen it yet, and closes its Canceled channel.
func (b *Broker) markCanceled(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bi := b.batches[id]
	if bi == nil {
		bi = b.addBatchLocked(id, time.Now())
	}
	if !bi.done {
		bi.done = true
		close(bi.canceled)
	}
}
