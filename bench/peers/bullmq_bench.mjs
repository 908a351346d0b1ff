// BullMQ for bench/deployed.sh: a worker process or the producer process of the
// BullMQ rows, on the redis-server the script starts. The driver (bench/cmd/deployed)
// starts it the way it starts the Go systems' roles:
//
//   node bullmq_bench.mjs worker  --redis HOST:PORT
//   node bullmq_bench.mjs produce --redis HOST:PORT [--sizes 1,1000,10000] [--chunk 10000]
//                                 [--benchtime SECONDS] [--timeout SECONDS]
//
// A worker is one bullmq Worker on queue "bench" with concurrency 64 (BullMQ's default
// is 1; 64 as asynq's rows have, in its favour: a no-op job then never waits for a
// free slot). It prints "ready" once connected and runs until SIGTERM, SIGINT or the
// end of stdin (the driver died), then closes gracefully.
//
// The producer awaits a batch of N jobs the way BullMQ documents for another process
// than the worker's: one QueueEvents subscription, counting the "completed" events of
// the batch's job IDs (given by the producer, so the count starts before addBulk
// returns). Jobs are added with addBulk, one round trip for the batch, with
// removeOnComplete (in BullMQ's favour: Redis keeps no finished job). It prints one
// JSON line per measurement, with the fields of bench/cmd/deployed's result.
import { Queue, QueueEvents, Worker } from 'bullmq';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';

const QUEUE = 'bench';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    redis: { type: 'string' },
    sizes: { type: 'string', default: '1,1000,10000' },
    chunk: { type: 'string', default: '10000' },
    benchtime: { type: 'string', default: '2' },
    timeout: { type: 'string', default: '120' },
  },
});

function usage(msg) {
  process.stderr.write(`bullmq_bench: ${msg}\nusage: node bullmq_bench.mjs worker|produce --redis HOST:PORT [...]\n`);
  process.exit(2);
}

const m = /^(.+):(\d+)$/.exec(opt.redis ?? '');
if (!m) usage(`--redis ${JSON.stringify(opt.redis)}: want HOST:PORT`);
const connection = { host: m[1], port: Number(m[2]) };

async function worker() {
  const w = new Worker(QUEUE, async () => null, { connection, concurrency: 64 });
  w.on('error', (err) => process.stderr.write(`bullmq worker: ${err}\n`));
  await w.waitUntilReady();
  let closing = null;
  const stop = () => {
    closing ??= w.close().then(() => process.exit(0), (err) => {
      process.stderr.write(`bullmq worker: close: ${err}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
  process.stdout.write('ready\n');
}

async function produce() {
  const ns = [Number(opt.chunk), ...opt.sizes.split(',').map(Number)];
  if (ns.some((n) => !Number.isInteger(n) || n < 1)) usage(`--sizes ${opt.sizes} --chunk ${opt.chunk}: want positive integers`);
  const sizes = [...new Set(ns)].sort((a, b) => a - b);
  const benchtime = Number(opt.benchtime) * 1000;
  const timeout = Number(opt.timeout) * 1000;
  if (!(benchtime >= 0) || !(timeout > 0)) usage(`--benchtime ${opt.benchtime} --timeout ${opt.timeout}: want seconds`);

  // The events stream is trimmed at about maxLen entries, three a job (added, active,
  // completed): far more than a batch's, so that no event is trimmed before it is read.
  const queue = new Queue(QUEUE, { connection, streams: { events: { maxLen: 200000 } } });
  // From the stream's start: the driver flushed Redis, and events of another batch
  // are ignored, so no event of the first batch can be missed.
  const events = new QueueEvents(QUEUE, { connection, lastEventId: '0-0' });
  await queue.waitUntilReady();
  await events.waitUntilReady();

  let batch = null; // { pending: Set of job IDs, resolve, reject }
  events.on('completed', ({ jobId }) => {
    if (batch?.pending.delete(jobId) && batch.pending.size === 0) batch.resolve();
  });
  events.on('failed', ({ jobId, failedReason }) => {
    if (batch?.pending.has(jobId)) batch.reject(new Error(`job ${jobId} failed: ${failedReason}`));
  });

  let seq = 0;
  const gather = async (n) => {
    const key = `${process.pid}-${++seq}`;
    const jobs = Array.from({ length: n }, (_, i) => ({
      name: 'noop',
      data: {},
      opts: { jobId: `${key}-${i}`, removeOnComplete: true },
    }));
    const done = new Promise((resolve, reject) => {
      batch = { pending: new Set(jobs.map((j) => j.opts.jobId)), resolve, reject };
    });
    const timer = setTimeout(() => batch.reject(new Error(`${batch.pending.size} of ${n} jobs unfinished after ${timeout} ms`)), timeout);
    try {
      await queue.addBulk(jobs);
      await done;
    } finally {
      clearTimeout(timer);
      batch = null;
    }
  };

  const pct = (sorted, p) => sorted[Math.max(Math.ceil((p * sorted.length) / 100) - 1, 0)];
  for (const n of sizes) {
    await gather(Math.min(n, 1000)); // warm-up, untimed
    const lat = [];
    const start = performance.now();
    do {
      const t = performance.now();
      await gather(n);
      lat.push(performance.now() - t);
    } while (performance.now() - start < benchtime);
    const elapsed = (performance.now() - start) / 1000;
    lat.sort((a, b) => a - b);
    const res = { system: 'bullmq', op: 'await', n, iters: lat.length, tasks_per_s: (n * lat.length) / elapsed, p50_ms: pct(lat, 50), p99_ms: pct(lat, 99) };
    process.stdout.write(JSON.stringify(res) + '\n');
    if (n === Number(opt.chunk)) process.stdout.write(JSON.stringify({ ...res, op: 'throughput' }) + '\n');
  }
  await events.close();
  await queue.close();
}

switch (positionals[0]) {
  case 'worker':
    await worker();
    break;
  case 'produce':
    await produce();
    break;
  default:
    usage(`unknown role ${JSON.stringify(positionals[0])}`);
}
