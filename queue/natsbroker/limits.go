package natsbroker

import (
	"fmt"
	"time"

	"github.com/gather-go/gather/queue"
)

// Name limits, in bytes of subject token (see tok: letters, digits, '-' and
// '_' take one byte, any other byte three). A NATS server closes a
// connection whose protocol line passes its max_control_line (4 KiB unless
// configured, and not announced to clients), and JetStream refuses stream
// names over 255 bytes. Within these limits every subject the broker builds
// stays under 1.5 KiB, which leaves the default control line room for the
// reply subject and sizes; names beyond them are refused before they reach
// the server.
const (
	maxPrefix     = 32   // Config.Prefix
	maxStreamName = 255  // JetStream's limit: "<prefix>_qd_<queue>"
	maxIDTok      = 512  // batch IDs (the client's have 32 bytes)
	maxKeyTok     = 1024 // idempotency keys
)

// MaxLease implements queue.Limiter: the consumers' AckWait, the longest
// lease the server keeps without a heartbeat.
func (b *Broker) MaxLease() time.Duration { return b.ackWait }

// MaxPayload implements queue.Limiter: the largest output that fits a
// results message of the server's max_payload.
func (b *Broker) MaxPayload() int { return int(b.nc.MaxPayload()) - resOverhead }

// resOverhead bounds a results message's bytes besides one output: the
// magic, the index, the status and the output's length.
const resOverhead = 64

// CheckQueue implements queue.Limiter: a queue name must not be empty, and
// its subject token (see tok) must leave the stream name
// "<prefix>_qd_<queue>" within JetStream's 255 bytes.
func (b *Broker) CheckQueue(name string) error {
	if name == "" {
		return fmt.Errorf("natsbroker: %w: empty queue name", queue.ErrBadInput)
	}
	if n, limit := tokLen(name), b.maxQueueTok(); n > limit {
		return fmt.Errorf("natsbroker: %w: queue name %q is %d bytes as a subject token: want at most %d with prefix %q (letters, digits, '-' and '_' take one byte, any other byte three)",
			queue.ErrBadInput, clip(name), n, limit, b.prefix)
	}
	return nil
}

func (b *Broker) maxQueueTok() int { return maxStreamName - len(b.prefix) - len("_qd_") }

// checkID returns an error wrapping queue.ErrNotFound for a batch ID too
// long to be one: no batch with it can be stored, and a subject built from
// it could pass the server's control line.
func checkID(id string) error {
	if n := tokLen(id); n > maxIDTok {
		return fmt.Errorf("batch %q: %w: its ID is %d bytes as a subject token, and batch IDs have at most %d", clip(id), queue.ErrNotFound, n, maxIDTok)
	}
	return nil
}

// clip shortens a caller's string for an error message: hostile input may
// be megabytes long.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}

// tokLen returns len(tok(s)) without building it.
func tokLen(s string) int {
	if s == "" {
		return 1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if tokByte(s[i]) {
			n++
		} else {
			n += 3
		}
	}
	return n
}
