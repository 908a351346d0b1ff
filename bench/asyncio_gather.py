#!/usr/bin/env python3
"""Time asyncio.gather over N trivial coroutines, the Python peer of BenchmarkFanout.

Each coroutine returns i*2, as the Go task does. One timed call is
`await asyncio.gather(*(task(i) for i in range(n)))`: making the N coroutine objects,
wrapping each in a Task, running them and collecting the ordered results. The event
loop is started once per N, outside the timing. Calls repeat until --benchtime seconds
have passed (at least once); the mean is reported.

Output: one line per N in `go test -bench` form, so bench/cmd/table reads both:

    BenchmarkFanout/n=1000/impl=asyncio.gather  <calls>  <ns/op> ns/op  <ns/task> ns/task
"""

import argparse
import asyncio
import gc
import platform
import time


async def task(i):
    return i * 2


async def measure(n, benchtime):
    calls, elapsed = 0, 0
    while calls == 0 or elapsed < benchtime * 1e9:
        gc.collect()  # start each call from the same heap, as the Go side does per run
        t0 = time.perf_counter_ns()
        out = await asyncio.gather(*(task(i) for i in range(n)))
        elapsed += time.perf_counter_ns() - t0
        calls += 1
        if len(out) != n or out[-1] != (n - 1) * 2:
            raise SystemExit(f"asyncio.gather returned wrong results for n={n}")
    return calls, elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,100000,1000000", help="comma-separated N")
    p.add_argument("--benchtime", type=float, default=1.0, help="seconds per N (at least one call)")
    args = p.parse_args()
    print(f"# python {platform.python_version()} ({platform.python_implementation()})")
    for n in (int(s) for s in args.sizes.split(",")):
        calls, elapsed = asyncio.run(measure(n, args.benchtime))
        print(f"BenchmarkFanout/n={n}/impl=asyncio.gather\t{calls}\t"
              f"{elapsed / calls:.0f} ns/op\t{elapsed / calls / n:.1f} ns/task", flush=True)


if __name__ == "__main__":
    main()
