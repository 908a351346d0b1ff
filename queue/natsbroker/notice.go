package natsbroker

import (
	"context"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// noticeBuffer is how many cancel notices wait for a claim to drain them
// (drainNotices); one that comes when the buffer is full is dropped, which
// checkNotices notices: the batches then read their records again.
const noticeBuffer = 256

// drainNotices takes the cancel notices that came before it, on the
// connection, and then checks for missed ones (checkNotices). A claim calls
// it once its pull requests are answered: the notice of a Cancel that
// returned before the server answered came before the answer (the server
// sends a connection's messages in order, and the client hands each to its
// subscription's channel as it reads it), so the claim sees that batch
// cancelled however late the notices' callback (onCancel) runs.
func (b *Broker) drainNotices() {
	b.nmu.Lock()
	for {
		select {
		case m := <-b.nch:
			b.markCanceled(string(m.Data))
			continue
		default:
		}
		break
	}
	b.nmu.Unlock()
	b.checkNotices()
}

// checkNotices has the batches not known cancelled read their records again
// on their next claim when cancel notices may have been missed: the
// connection was re-established, or a notices' subscription dropped one.
func (b *Broker) checkNotices() {
	rc := b.nc.Stats().Reconnects
	dropped, err := b.csub.Dropped()
	if n, nerr := b.nsub.Dropped(); nerr == nil {
		dropped += n
	} else {
		err = nerr
	}
	if err == nil && rc == b.noticeRC.Load() && int64(dropped) == b.noticeDrop.Load() {
		return
	}
	if rc != b.noticeRC.Load() {
		// The server may have restarted and forgotten deliveries.
		b.suspectFor()
	}
	b.noticeRC.Store(rc)
	b.noticeDrop.Store(int64(dropped))
	b.sinceStale.Store(true)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bi := range b.batches {
		if !bi.done {
			bi.recheck = true
		}
	}
	b.dropAheadsLocked() // their replies may be lost with the connection
}

// onCancel marks a noticed batch cancelled, and drains the claims' channel
// of notices, so that it does not fill while no claim comes.
//
// A claim must not start a task of a cancelled batch. Cancel marks the
// batch record, then sends every broker of the prefix a notice on a
// core-NATS subject and flushes it before it returns; a claim takes the
// notices that came before its pull requests were answered (the client
// hands them to a channel in the order it reads the connection,
// drainNotices), so on one server a claim that starts after Cancel returned
// sees the batch cancelled. That covers the batches cancelled after the
// broker subscribed; for the others a broker's first claim of a batch reads
// its record from the stream leader (Broker.canceled). Which ones: Enqueue
// sends with the tasks the highest state stream sequence it had seen stored
// before it stored the batch record (hdrBatch), and a broker reads the
// state stream's last sequence once its subscriptions are in place; a batch
// stored after that cannot have been cancelled unheard, and its first claim
// costs no round trip (trusted). On a cluster (where a subscription reaches
// the other servers a moment later) every first claim reads the record, a
// worker's broker starting the read as the batch's enqueue wake-up
// arrives, while it claims (readAhead). When notices may have been missed
// (a reconnect, a dropped notice), the next claim of each batch reads its
// record again, and the last sequence is read again (checkNotices).
func (b *Broker) onCancel(m *nats.Msg) {
	b.markCanceled(string(m.Data))
	b.drainNotices()
}

// seen records that the state stream stored sequence seq.
func (b *Broker) seen(seq uint64) {
	for {
		old := b.stateSeen.Load()
		if seq <= old || b.stateSeen.CompareAndSwap(old, seq) {
			return
		}
	}
}

// hdrBatch is the header Enqueue puts on a batch's task messages: "<size>
// <sequence>", the batch's size and the highest state stream sequence the
// enqueuing broker had seen stored before it stored the batch record.
const hdrBatch = "Gather-Batch"

// batchHeader is hdrBatch's value for a batch of n tasks enqueued now.
func (b *Broker) batchHeader(n int) string {
	return strconv.Itoa(n) + " " + strconv.FormatUint(b.stateSeen.Load(), 10)
}

// trusted reports whether a first claim of a batch whose task message
// carries hdrBatch value h can skip reading the batch record, and the
// batch's size from h. The record was stored after the sequence h names;
// when that is at or after sinceSeq, so is any cancel of the batch, and
// the cancel's notice, published after, comes to this broker's
// subscriptions, made before sinceSeq was read, and before any claim that
// starts after the Cancel returned is answered (see drainNotices). Not on a
// cluster, where a subscription reaches the other servers a moment later,
// and not while notices may have been missed (sinceStale: sinceSeq is read
// again first).
func (b *Broker) trusted(ctx context.Context, h string) (int, bool) {
	if !b.sinceOn || h == "" {
		return 0, false
	}
	sz, sq, ok := strings.Cut(h, " ")
	if !ok {
		return 0, false
	}
	size, err := strconv.Atoi(sz)
	if err != nil || size < 1 {
		return 0, false
	}
	seq, err := strconv.ParseUint(sq, 10, 64)
	if err != nil {
		return 0, false
	}
	if b.sinceStale.Load() && !b.resyncSince(ctx) {
		return 0, false
	}
	return size, seq >= b.sinceSeq.Load()
}

// resyncSince reads sinceSeq again after notices may have been missed (see
// checkNotices), and reports whether it is current.
func (b *Broker) resyncSince(ctx context.Context) bool {
	b.sinceMu.Lock()
	defer b.sinceMu.Unlock()
	if !b.sinceStale.Load() {
		return true
	}
	b.checkNotices() // what was missed so far is accounted for before the read
	info, err := b.state.Info(ctx)
	if err != nil {
		return false
	}
	b.sinceSeq.Store(info.State.LastSeq)
	b.seen(info.State.LastSeq)
	b.sinceStale.Store(false)
	return true
}
