// Package natsbroker is the queue.Broker on NATS JetStream: use it when
// tasks must outlive the process that enqueued them or be shared by workers
// on several processes or machines; use queue/membroker when producers and
// workers share one process and speed matters more than surviving a
// restart. It takes a jetstream.JetStream the caller built, so importing it
// does not link nats-server; queue/natsbroker/natsserver starts an embedded
// server (the program's default) when there is no cluster to connect to.
//
// # Layout
//
// Per queue, a work-queue stream "<prefix>_q_<queue>" with subjects and one
// durable pull consumer per priority level (JetStream has no per-message
// priority; the worker's scheduler picks the level), and a work-queue
// stream "<prefix>_qd_<queue>" where delayed tasks wait, with one consumer.
// A claim is a no-wait pull request to the level's consumer, made by the
// broker itself through a pool of inbox subscriptions (no subscription,
// goroutine or timer per claim); a lease is the consumer's AckWait, renewed by InProgress (see
// Config.AckWait for leases shorter than it). Delayed tasks are moved to
// their level when due (by whichever broker claims next; a duplicate move
// is dropped by the stream's de-duplication; a move into full levels is
// tried again a second later). The delayed tasks' stream is apart so that
// such a move needs no place under the bound that the task itself holds.
// A key-value bucket "<prefix>_ctl" holds the queues' controls (pauses,
// see Broker.Pause), which every broker watches.
//
// A message carries one task or, for a large batch, a pack of consecutive
// tasks (Config.PackSize; a batch of n tasks goes out in messages of
// min(PackSize, n/64) tasks): what JetStream stores, delivers, acknowledges
// and removes is a message, and that was most of a task's cost. The pack
// size is the last token of the subject ("<prefix>.q.<queue>.<level>" for
// one task, ".<k>" appended for k), so Depth counts tasks from the
// stream's per-subject totals without reading them. Leases and
// acknowledgements are per message; retries, attempts and outcomes per
// task. A claim sizes its request by the tasks per message of the level's
// last claim; a message none of whose tasks fit is kept for the level's
// next claim in the same broker (handed back if none comes within a
// second), and a message only some of whose tasks fit has the rest moved
// to a message of its own, which keeps their attempts.
// Retry of a task alone in its message is a negative acknowledgement
// delayed until the retry is due (JetStream's delivery count is then the
// attempt number); a task that came with others moves to a message of its
// own, due at its retry time, carrying its attempts. A message is
// acknowledged once all its tasks are finished and what moved out of it is
// stored, and handed back whole if a move failed. A local lease that
// expires moves the message's unfinished tasks likewise.
//
// One limits stream "<prefix>_state" (kept for Config.Retention) holds the
// rest, one subject per use: the batch record (size, kind, queue,
// cancelled; written first-write-wins, so a batch ID is used once),
// the batch's results (several outcomes per message, written before the
// task is acknowledged), idempotency keys (first-write-wins with a
// per-message TTL), the errors of failed attempts, and dead letters.
// The first outcome of a task in the results subject wins: every reader
// reads the subject in stream order and drops later ones, so a task that
// ran twice is recorded once, and every process agrees on which run counts.
// Cancelling a batch appends a marker that stands for every task without an
// outcome before it (a repeated Cancel repeats it; the first counts): O(1),
// not O(batch). The low-latency result path is
// one results feed per broker: an ordered consumer on every results
// subject, started by the first Subscribe, that hands each results message
// (with its stream sequence) to the live subscriptions of its batch. A
// subscription registers with the feed, then replays its batch's stored
// results from the stream leader and drops what the feed brings below the
// replay's cursor: nothing missed, nothing twice, stream order kept, and no
// consumer created per await. Once the feed runs, Enqueue registers a
// subscription for the batch before publishing it (batches up to 4,096
// tasks; the 64 newest, for 2 s), so the Subscribe that follows it in the
// same broker costs no round trip.
//
// A claim must not start a task of a cancelled batch. Cancel marks the
// batch record, then sends every broker of the prefix a notice on a
// core-NATS subject and flushes it before it returns; a claim takes the
// notices that came before its pull requests were answered (the client
// hands them to a channel in the order it reads the connection), so on one
// server a claim that starts after Cancel returned sees the batch
// cancelled. That covers the batches cancelled after the broker
// subscribed; for the others a broker's first claim of a batch reads its
// record from the stream leader. Which ones: Enqueue sends with the tasks
// the highest state stream sequence it had seen stored before it stored
// the batch record, and a broker reads the state stream's last sequence
// once its subscriptions are in place; a batch stored after that cannot
// have been cancelled unheard, and its first claim costs no round trip.
// On a cluster (where a subscription reaches the other servers a moment
// later) every first claim reads the record, a worker's broker starting
// the read as the batch's enqueue wake-up arrives, while it claims. When
// notices may have been missed (a reconnect, a dropped notice), the next
// claim of each batch reads its record again, and the last sequence is
// read again.
//
// Idle workers sleep on a core-NATS wake-up subject that Enqueue (before
// its publishes are acknowledged, so that claims overlap the store, and
// again after when the store was slow), Retry, expired leases and promoted
// delayed tasks publish to; delays and retries
// this process scheduled wake it by a timer; Config.IdleRecheck bounds the
// sleep for what nobody could announce (a crashed process's retry or lease).
// There is no polling loop.
//
// # Settings every process of a prefix shares
//
// The brokers of one Config.Prefix share its streams, so what is stored
// with them must agree between processes: Replicas, Memory, AckWait,
// Retention, the state caps and each queue's bound. The first process to
// set a stream up records them; a later one that leaves a setting at its
// zero value takes the recorded one, and one that sets another value gets
// an error wrapping queue.ErrBadConfig naming both (see Config). A worker's
// lease must fit AckWait: the broker implements queue.Limiter, so
// queue.NewWorker refuses a longer WorkerConfig.Lease and lowers the
// default lease to AckWait.
//
// # Limits
//
// Names become subject tokens (letters, digits, '-' and '_' as they are,
// every other byte as three), and a NATS server closes a connection whose
// protocol line passes its max_control_line (4 KiB by default), so names
// are bounded before they reach the server: Config.Prefix at most 32
// bytes; a queue's token at most 251 bytes less the prefix (so that the
// stream "<prefix>_qd_<queue>" stays within JetStream's 255); an
// idempotency key's at most 1,024; a batch ID's at most 512 (longer ones
// are not found). Every subject the broker builds then stays under 1.5 KiB.
// An input must fit one message of the server's max_payload with its
// envelope (about 200 bytes); packs are cut to fit. So must an output
// (MaxPayload: a worker fails a task with a larger one); results messages
// are cut to fit, and a dead letter that would not fit is kept without its
// input (it can be listed, not re-driven). Times keep their
// instant whatever the year (the zero time means none), and a batch
// record's size is checked against queue.MaxBatch before anything is
// sized by it.
//
// # Bad wire data
//
// A task message whose body does not decode (not an envelope, a truncated
// or out-of-range field), whose Gather-Task header is missing or disagrees
// with the body, is dead-lettered with the reason and removed from the
// queue; when the header names a task, that task gets a bad_input failure
// so its batch still completes. A worker never sees it, and the queue keeps
// flowing. An unknown kind is the worker's to fail (queue.ErrUnknownKind).
//
// # Durability
//
// What an acknowledged Enqueue or Complete survives:
//
//   - One embedded server, default sync interval (natsserver.Config
//     SyncAlways false): the file store writes every message to the
//     operating system before acknowledging it and fsyncs every 2 minutes.
//     A crash of the process (kill -9, panic) loses nothing: the data is in
//     the kernel's page cache and the server recovers it on restart. A power
//     loss or kernel crash can lose what was written since the last fsync,
//     up to the sync interval.
//   - One embedded server with SyncAlways: every write is fsynced before it
//     is acknowledged, so a power loss loses nothing acknowledged. It costs
//     an fsync per write batch: on a typical SSD from a few hundred
//     microseconds to a few milliseconds per publish round, so single-task
//     latency grows accordingly while large pipelined batches amortise it.
//   - A cluster with Config.Replicas 3 (R3): a write is acknowledged once a
//     majority of the three servers has it, so the loss of any one server
//     (process, disk or machine) loses nothing and the queue keeps working;
//     with SyncAlways off, losing power to a majority at once can lose the
//     last sync interval.
//
// # Known edges
//
//   - Leases the server enforces (Claim's lease at least AckWait, or a
//     holder that stopped heartbeating): JetStream matches an
//     acknowledgement to the message, not to the delivery, so a stale
//     holder's negative acknowledgement or heartbeat would act on the copy
//     the server gave another worker. Retry, Extend and the local hand-back
//     therefore do nothing once AckWait (less a skew of AckWait/10, at most
//     500 ms) has passed since the claim or last heartbeat was sent. A
//     stale Complete still records its outcome (the first recorded wins);
//     for a task alone in its message it also acknowledges, which ends the
//     live copy's message: its run goes on and its outcome is dropped.
//   - A local lease (shorter than AckWait) that expires hands back only
//     the unfinished tasks of its messages. When the server's AckWait runs
//     out instead (the holder died or stopped heartbeating), it delivers
//     the whole message again: its finished tasks, and those moved out of
//     it (a retried one before its retry is due), run once more, and their
//     first outcome stays.
//   - Depth counts a message's tasks until the message is acknowledged:
//     its finished tasks while others of it run, and tasks moved out of it
//     (a split's rest, a retried task) twice until then.
//   - A message a claim kept for the next one and handed back unclaimed
//     counts an attempt for its tasks, as does a message that arrives
//     after its pull request was given up.
//   - Moved tasks (the part of a pack a claim had no room for, a retried
//     task of a pack) go to the back of their level: with slow tasks,
//     claimed one at a time, a large batch's tasks can fall behind work
//     enqueued after it.
//   - Enqueue's all-or-none is a rollback, not a transaction: the tasks
//     published before a publish failed (the bound reached by a concurrent
//     enqueue, a lost connection, ctx ending) are visible to workers until
//     the rollback deletes them, so a worker may run one of them, and its
//     outcome goes to a batch that no longer exists. When an
//     acknowledgement never comes (JetStream client's default timeout) the
//     publisher stops waiting, and the tasks whose acks are missing cannot
//     be rolled back: they may be stored and run. Closing this needs
//     two-phase visibility (publish where no consumer reads, then move).
//   - A bounded queue (Config.MaxDepth, QueueMaxDepth) stores one task per
//     message, since the server keeps the bound per message; on the others
//     the default bound counts messages.
//   - Tasks of a cancelled batch stay in the work-queue stream until a
//     worker claims and drops them (delayed ones once due): until then
//     they count in Depth and against the bound.
//   - On a replicated stream a finished task leaves Depth and the bound a
//     moment after its outcome is readable (acknowledgements are applied
//     asynchronously).
//
// Execution is at least once: a task runs again if its worker dies or its
// lease expires, and its first recorded outcome wins.
package natsbroker
