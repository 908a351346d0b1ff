package queue

import (
	"context"
	"encoding/json"
	"fmt"
)

// Raw is a Codec that keeps JSON as bytes: Append appends them unchanged and
// Decode copies them. Use it, through RawKind, where the program only knows
// a kind by name, such as an HTTP API that passes request bodies through to
// workers that decode them with the kind's own types. It does not check that
// the bytes are JSON: the caller does. The zero value is ready to use.
type Raw struct{}

// Append implements Codec.
func (Raw) Append(dst []byte, v json.RawMessage) ([]byte, error) {
	if len(v) == 0 {
		return dst, fmt.Errorf("empty raw JSON value")
	}
	return append(dst, v...), nil
}

// Decode implements Codec. It copies data, which belongs to the broker.
func (Raw) Decode(data []byte, v *json.RawMessage) error {
	*v = append((*v)[:0:0], data...)
	return nil
}

// RawKind returns the kind called name with inputs and outputs kept as JSON
// bytes (the Raw codec): EnqueueBatch with it enqueues tasks that a worker
// registered with a typed Kind of the same name decodes, since the typed
// kind's default codec is JSON too. It returns an error wrapping ErrBadInput
// for an empty name rather than panicking, since the name may come from a
// request.
func RawKind(name string) (Kind[json.RawMessage, json.RawMessage], error) {
	if name == "" {
		return Kind[json.RawMessage, json.RawMessage]{}, fmt.Errorf("%w: empty kind name", ErrBadInput)
	}
	return Kind[json.RawMessage, json.RawMessage]{name: name, in: Raw{}, out: Raw{}}, nil
}

// AttachRaw returns the batch with ID id with its outputs as JSON bytes,
// whatever its kind, for callers that know a batch by ID only. It returns an
// error wrapping ErrNotFound for an unknown batch.
func AttachRaw(ctx context.Context, c *Client, id string) (*Batch[json.RawMessage], error) {
	sub, err := c.b.Subscribe(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("queue: attach to batch %s: %w", id, err)
	}
	defer sub.Close()
	return &Batch[json.RawMessage]{c: c, out: Raw{}, id: id, n: sub.Size(), kind: sub.Kind()}, nil
}

// Kind returns the name of the batch's kind.
func (b *Batch[Out]) Kind() string { return b.kind }
