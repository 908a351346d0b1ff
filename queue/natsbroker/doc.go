// Package natsbroker is the queue.Broker on NATS JetStream: use it when
// tasks must outlive the process that enqueued them or be shared by workers
// on several processes or machines; use queue/membroker when producers and
// workers share one process and speed matters more than surviving a
// restart. It takes a jetstream.JetStream the caller built, so importing it
// does not link nats-server; queue/natsbroker/natsserver starts an embedded
// server (the program's default) when there is no cluster to connect to.
//
// # Processes that share a queue
//
// Processes find each other through the NATS server (or cluster) they
// connect to and the Config.Prefix they use: every broker on the same
// server or cluster, in the same account, with the same prefix, shares the
// same queues, batches, results and dead letters, and any of them may
// enqueue, claim, await, cancel, inspect or re-drive. Nothing else is
// configured between them: no process registers with another, and there is
// no coordinator; a process may start or stop at any time. Deployments that
// must not see each other use different prefixes (or accounts).
// The queues' controls (pauses, global concurrency slots and rates, see
// Broker.Pause) live in a key-value bucket "<prefix>_ctl" that every
// broker watches, so they hold for every process of the prefix.
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
// A process that disagrees gets the error from New (for the state
// stream's settings) or from the first call that uses the queue (for a
// queue's bound): a later process never weakens what the first one set.
//
// # What is guaranteed
//
//   - Execution is at least once: a task runs again if its worker dies or
//     its lease expires, and its first recorded outcome wins, in every
//     process that reads it.
//   - Nothing acknowledged is lost within the durability tier above, and
//     Enqueue is all or none (see Known edges for what that costs).
//   - After a server crash, a task whose outcome is recorded does not run
//     again, and a task runs at most once more per crash (measured with the
//     server killed three times under two worker processes,
//     TestServerCrashNoDuplicateStorm); the work streams are empty moments
//     after the last outcome. A task whose outcome the crash lost runs
//     again, once; a broker that connected only after the restart does not
//     know of the crash and checks nothing delivered for the first time.
//   - A claim that starts after Cancel returned does not start a task of
//     the cancelled batch.
//   - A worker never sees a task message it cannot decode (see Bad wire
//     data).
//
// The mechanics (the streams and subjects, packs of tasks in one message,
// leases, delayed tasks, wake-ups, idle pulls, cancel notices, the results
// feed, the checks after a crash, the anchor that keeps an emptied queue's
// file store from replacing a file per task) are described with the code
// that implements them.
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
// sized by it. A worker waiting for work keeps a pull request waiting on
// each level of each queue it serves; a consumer holds 512 by default (its
// MaxWaiting), so past about 500 worker processes on one queue the
// requests that do not fit are refused: an idle worker then learns of work
// by wake-ups, a round trip later, and a busy worker's claim can be refused
// too until idle requests expire (within half a second).
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
//     the whole message again, and the claim that gets it hands out only
//     the tasks without a recorded outcome (see "After a server crash"):
//     a task moved out of it that has none yet (a retried one before its
//     retry is due) may run once more; its first outcome stays.
//   - Depth counts a message's tasks until the message is acknowledged:
//     its finished tasks while others of it run, and tasks moved out of it
//     (a split's rest, a retried task) twice until then.
//   - A message a claim kept for the next one and handed back unclaimed
//     counts an attempt for its tasks, as does a message that arrives
//     after its pull request was given up.
//   - With Replicas > 1 a claim may be answered by a replica that has not
//     yet applied an acknowledged enqueue: for that moment a higher
//     priority level looks empty, and queue.Strict can run a lower level's
//     task before it (the cluster suite's StrictPriority allows for it).
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
package natsbroker
