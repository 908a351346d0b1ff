// Package chaos tests the queue the way it is deployed, with faults: use it
// to prove the promises of GUARANTEES.md against real processes, and
// package queuetest to prove a broker's semantics one at a time.
//
// Run starts an embedded NATS server in a process of its own (SyncAlways,
// a fixed data directory and a loopback port; or three such servers in a
// cluster with R3 streams), a producer process that enqueues and awaits
// batches without pause (Await, AwaitSettled, Results, and Attach from a
// second connection; in the modes that settle, some tasks fail by design),
// and worker processes. While the producer runs, Run
// SIGKILLs workers and restarts them at random, and SIGKILLs the server and
// restarts it on the same directory (in the cluster form: one of the three
// servers at a time). Each process re-executes the running binary in a
// role (see RunRole), so a test binary whose TestMain calls RunRole is the
// whole harness.
//
// Everything that happens is written down: the producer records every
// enqueue it tried and everything each await returned, the workers record
// the start and end of every execution (a file per process, written before
// the handler returns, so a SIGKILL loses nothing: the kernel keeps the
// pages of a killed process), and Run records every fault with its time.
// Check then reads that history and proves that every accepted task has
// exactly one recorded result, with the right value at the right index;
// that no await returned a wrong, missing or duplicated index; that every
// await ended; and that no task ran more often than the bound on duplicate
// executions (once, plus once per fault injected during its life).
//
// Everything stays on 127.0.0.1, stops by itself after Config.Duration, and
// every process Run started is killed before it returns.
package chaos
