// Package queue is a task queue whose producers can wait for a whole batch as
// if it were one call: asyncio.gather across processes and machines.
//
// Use queue when the work is too large or too dynamic for one call of package
// gather: when it must survive a restart, be spread over several workers or
// machines, be retried with backoff, be prioritised, or be awaited by another
// process. Use gather when the work fits in one process and one call.
//
// A Kind is a named, typed task (JSON by default). A Worker runs kinds with
// handlers shaped like net/http (Handle, HandlerFunc). A Client enqueues one
// task (Enqueue, then Task.Await) or a batch (EnqueueBatch), and awaits the
// batch ordered and fail-fast (Batch.Await), ordered and settled
// (Batch.AwaitSettled, []gather.Result index-aligned with the inputs), or in
// completion order (Batch.Results); Attach lets another client finish the
// wait by batch ID.
//
// Per-call settings are Options made by the With functions (WithPriority,
// WithTimeout, WithMaxAttempts, ...); per-process settings are the fields of
// ClientConfig and WorkerConfig, where a zero field means its default. A
// queue.Option is not a gather.Option, and the names differ on purpose:
// queue's options set fields of each task's envelope (Message.Priority,
// Message.Timeout, ...), and the bare names are taken (Priority is a type), so
// they read "a task with priority p"; gather's configure how one call runs.
// WithTimeout bounds each attempt of a task that may be retried, where
// gather.Timeout bounds one call; gather.Limit's counterpart is
// WorkerConfig.Concurrency, since workers, not producers, decide how many
// tasks run at once.
//
// Guarantees: a task runs at least once (a worker that dies without
// acknowledging loses its lease and the task is delivered again); its outcome
// is recorded once (a second completion of a task that ran twice is dropped,
// so awaiters never see duplicates); failed attempts are retried with
// exponential backoff and jitter up to MaxAttempts, then the task goes to the
// dead-letter store (inspect with Client.DeadLetters, re-run with
// Client.Redrive); a bounded queue returns ErrQueueFull rather than grow.
//
// Storage is a Broker: queue/membroker keeps everything in the process (the
// fastest path, for libraries and tests); queue/natsbroker uses NATS
// JetStream. Every broker passes the conformance suite in queue/queuetest.
//
// Controls, each on brokers that implement its optional interface (both
// brokers here do), each checked by a subtest of queuetest named after it:
//   - Middleware: WorkerConfig.Middleware wraps every task's run, shaped
//     like net/http middleware; ClientConfig.EnqueueMiddleware wraps every
//     enqueue and can add headers (Submission.SetHeader) that reach the
//     handler's middleware as Message.Headers. Subtest Middleware.
//   - Pause and resume (Pauser): a paused queue's tasks are not claimed by
//     any worker of the broker; running ones finish; enqueue is accepted.
//     Subtest PauseResume.
//   - Global concurrency limits (WorkerConfig.GlobalLimits, Semaphore): at
//     most Max tasks of a queue or kind run at once across every worker;
//     a dead worker's slots come back when their lease ends; a worker
//     that keeps claiming does not starve one waiting for a slot.
//     Subtests GlobalLimit, GlobalLimitLease and GlobalLimitFair.
//   - Global rate limits (WorkerConfig.GlobalRates, RateLimiter): at most
//     Burst + PerSecond×t tasks are admitted in any stretch t, across
//     every worker, each starting within 10 ms of its admission; unused
//     tokens go back to the bucket. Subtests GlobalRate and RateReturn.
//   - Periodic tasks (Scheduler, Periodic, Every, Cron): one task per tick,
//     however many processes run the schedule, none lost while one runs.
//     Subtest Periodic.
//
// Every process must be given the same limits, rates and schedules: they
// are configuration, not state the broker keeps.
//
// Clients and workers report what happens to an Observer (queue/metrics
// turns the events into Prometheus metrics), and brokers that implement
// Inspector list their queues, batches, per-task states and dead letters.
// queue/otelqueue carries OpenTelemetry traces from the enqueue to every
// attempt of every task and back to the await, as middleware on both
// sides; queue itself does not import OpenTelemetry.
package queue
