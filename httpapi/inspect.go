package httpapi

// This file mirrors queue.Inspector until it lands in package queue; then
// these copies go and the handlers use the queue types directly. Only what
// this package consumes is copied.

import (
	"context"
	"time"

	"github.com/gather-go/gather/queue"
)

// Inspector mirrors queue.Inspector: the optional interface of brokers that
// list queues, batches and dead letters. The endpoints that need it answer
// 501 with code "unsupported" when the broker lacks it.
type Inspector interface {
	Queues(ctx context.Context) ([]QueueInfo, error)
	Batches(ctx context.Context, f BatchFilter) (page []BatchInfo, next string, err error)
	Batch(ctx context.Context, id string) (*BatchDetail, error)
	FindDeadLetters(ctx context.Context, f DeadLetterFilter) (page []queue.DeadLetter, next string, err error)
}

// QueueInfo mirrors queue.QueueInfo.
type QueueInfo struct {
	Name     string
	Depth    [queue.NumPriorities]int
	InFlight int
}

// BatchInfo mirrors queue.BatchInfo.
type BatchInfo struct {
	ID, Kind, Queue              string
	Size, Done, Failed, Canceled int
	Created                      time.Time
}

// Finished reports whether every task of the batch has an outcome.
func (b BatchInfo) Finished() bool { return b.Done+b.Failed+b.Canceled >= b.Size }

// TaskState mirrors queue.TaskState.
type TaskState uint8

// The task states.
const (
	TaskPending TaskState = iota
	TaskRunning
	TaskDone
	TaskFailed
	TaskCanceled
)

// String returns the state's name: pending, running, done, failed or canceled.
func (s TaskState) String() string {
	switch s {
	case TaskPending:
		return "pending"
	case TaskRunning:
		return "running"
	case TaskDone:
		return "done"
	case TaskFailed:
		return "failed"
	case TaskCanceled:
		return "canceled"
	}
	return "unknown"
}

// BatchDetail mirrors queue.BatchDetail.
type BatchDetail struct {
	BatchInfo
	States []TaskState
}

// BatchFilter mirrors queue.BatchFilter.
type BatchFilter struct {
	Queue string
	State string
	After string
	Limit int
}

// DeadLetterFilter mirrors queue.DeadLetterFilter.
type DeadLetterFilter struct {
	Queue, Kind, ErrorContains string
	After                      string
	Limit                      int
}
