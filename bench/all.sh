#!/usr/bin/env bash
# Runs every benchmark behind BENCHMARKS.md, one suite after another on a machine left to
# itself, and keeps the raw output in bench/results/<UTC date>-<suite>.txt:
#   gather    bench/run.sh (BenchmarkFanout and asyncio.gather)
#   queue     BenchmarkQueue and BenchmarkQueueAwait (membroker against pond v2 and ants)
#   snapshot  the snapshot package's benchmarks against its naive baselines
#   brokers   bench/brokers.sh (natsbroker in-process, raw JetStream, asynq on Redis, River on
#             PostgreSQL)
#   deployed  bench/deployed.sh --half (the same and Celery and BullMQ, every part in its own
#             process over loopback TCP, at full and at half speed)
# Usage: bench/all.sh [suite ...]   (default: all five, in that order; about 25 minutes)
set -euo pipefail
cd "$(dirname "$0")"
export GOFLAGS="${GOFLAGS:-} -mod=mod"
stamp=$(date -u +%Y-%m-%d)
mkdir -p results
suites=("$@")
((${#suites[@]})) || suites=(gather queue snapshot brokers deployed)
for s in "${suites[@]}"; do
  out="results/$stamp-$s.txt"
  echo "== $s -> bench/$out (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  case $s in
    gather) COUNT=${COUNT:-3} OUT="$out.raw" ./run.sh >"$out" ;;
    queue)
      { go test -run '^$' -bench 'BenchmarkQueue$' -queue-sizes 1,100,10000 -benchtime 1s -count 3 .
        go test -run '^$' -bench 'BenchmarkQueue$' -queue-sizes 1000000 -benchtime 3x -count 3 .
        go test -run '^$' -bench 'BenchmarkQueueAwait$' -benchtime 1s -count 3 .
      } >"$out" ;;
    snapshot) (cd .. && go test -run '^$' -bench . -benchmem -benchtime 0.5s -count 3 ./snapshot/) >"$out" ;;
    brokers) COUNT=${COUNT:-3} OUT="$out.raw" ./brokers.sh >"$out" ;;
    deployed) COUNT=${COUNT:-2} OUT="$out.raw" ./deployed.sh --half >"$out" ;;
    *) echo "unknown suite $s: want gather, queue, snapshot, brokers or deployed" >&2; exit 2 ;;
  esac
done
