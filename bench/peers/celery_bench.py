#!/usr/bin/python3
"""Celery for bench/deployed.sh: a worker process or the producer process of the
Celery rows, on the redis-server the script starts (broker and result backend).
It needs Debian's python3-celery and python3-redis (run it with /usr/bin/python3).
The driver (bench/cmd/deployed) starts it the way it starts the Go systems' roles:

  celery_bench.py worker  --redis redis://HOST:PORT/0 --name w1
  celery_bench.py produce --redis redis://HOST:PORT/0 [--sizes 1,1000,10000]
                          [--chunk 10000] [--benchtime SECONDS] [--timeout SECONDS]

A worker is one Celery worker node with Celery's default prefork pool (as many
child processes as CPUs), without gossip, mingle and heartbeats (nothing here needs
them). It prints "ready" once it consumes and runs until SIGTERM (Celery's warm
shutdown), SIGINT or the end of stdin (the driver died).

The producer awaits a batch as Celery documents: group(noop.s() for each task)
.apply_async(), then .get() on the GroupResult (with the Redis backend, a native
join over pub/sub), polling every 1 ms instead of 0.5 s. It prints one JSON line per measurement, with the fields of
bench/cmd/deployed's result.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
import warnings

from celery import Celery, group
from celery.exceptions import SecurityWarning
from celery.signals import worker_ready


def make_app(url):
    app = Celery("gather_bench", broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=600,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )

    @app.task(name="bench.noop")
    def noop():
        return None

    return app, noop


def worker(args):
    app, _ = make_app(args.redis)

    @worker_ready.connect
    def ready(**_):
        os.write(1, b"ready\n")  # straight to the driver, past Celery's logging

    def watch_stdin():
        # os.read, not sys.stdin: the pool's children are forked while this thread
        # reads, and would deadlock on the lock of sys.stdin's buffer when closing it.
        while os.read(0, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_stdin, daemon=True).start()
    # The benchmark runs as root on CI machines, which Celery warns about (with JSON
    # only, nothing is unpickled).
    warnings.filterwarnings("ignore", category=SecurityWarning)
    app.worker_main([
        "--quiet", "worker", "--pool=prefork", "--loglevel=WARNING", "-n", args.name + "@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ])


def percentile(s, p):
    return s[max(-(-p * len(s) // 100) - 1, 0)]


def produce(args):
    _, noop = make_app(args.redis)
    try:
        sizes = sorted({args.chunk, *(int(f) for f in args.sizes.split(","))})
    except ValueError:
        sys.exit(f"celery_bench: --sizes {args.sizes!r}: want comma-separated positive integers")
    if min(sizes) < 1:
        sys.exit(f"celery_bench: --sizes {args.sizes} --chunk {args.chunk}: want positive integers")

    def gather(n):
        res = group(noop.s() for _ in range(n)).apply_async()
        # interval bounds each wait for the backend's pub/sub messages: at its default
        # of 0.5 s a lone task's round trip took 500 ms; 1 ms is in Celery's favour.
        out = res.get(timeout=args.timeout, interval=0.001)
        if len(out) != n:
            raise RuntimeError(f"{len(out)} results for {n} tasks")

    for n in sizes:
        gather(min(n, 1000))  # warm-up, untimed
        lat = []
        start = time.perf_counter()
        while not lat or time.perf_counter() - start < args.benchtime:
            t = time.perf_counter()
            gather(n)
            lat.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - start
        lat.sort()
        res = {
            "system": "celery", "op": "await", "n": n, "iters": len(lat),
            "tasks_per_s": n * len(lat) / elapsed,
            "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
        }
        print(json.dumps(res), flush=True)
        if n == args.chunk:
            print(json.dumps({**res, "op": "throughput"}), flush=True)


def main():
    p = argparse.ArgumentParser(description="Celery rows of bench/deployed.sh")
    p.add_argument("role", choices=["worker", "produce"])
    p.add_argument("--redis", required=True, help="redis://HOST:PORT/0")
    p.add_argument("--name", default="w1", help="worker node name")
    p.add_argument("--sizes", default="1,1000,10000")
    p.add_argument("--chunk", type=int, default=10000)
    p.add_argument("--benchtime", type=float, default=2.0)
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args()
    if args.role == "worker":
        worker(args)
    else:
        produce(args)


if __name__ == "__main__":
    main()
