#!/usr/bin/env bash
# Runs the fan-out benchmarks (Go, then Python's asyncio.gather) on this machine and prints
# the Markdown table of BENCHMARKS.md with ratios. Non-interactive; needs go and python3.
#
#   bench/run.sh            full run: N = 1e3, 1e5, 1e6, 1 s a benchmark, 3 rounds (about 5 min)
#   bench/run.sh --smoke    the agreement test and one iteration of every benchmark at N = 1e3,
#                           for CI (about 20 s, most of it building)
#
# Environment: COUNT (full run's rounds, default 3), BENCHTIME (default 1s),
# SIZES (default 1000,100000,1000000; 1000 with --smoke), OUT (raw output file, default bench/last-run.out),
# STAT (median or min over rounds, default median).
set -euo pipefail
cd "$(dirname "$0")"

mode=full
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

sizes=${SIZES:-1000,100000,1000000}
[[ $mode == smoke ]] && sizes=${SIZES:-1000}
out=${OUT:-last-run.out}
# The bench module replaces the root module with ../, whose requirements change as the
# library grows; -mod=mod lets go.sum catch up instead of failing on a fresh clone.
export GOFLAGS="${GOFLAGS:-} -mod=mod"

# The smoke run also runs TestImplsAgree, which checks every implementation's results.
if [[ $mode == smoke ]]; then
  benchtime=1x count=1 pysizes=1000 pytime=0 tests=.
else
  benchtime=${BENCHTIME:-1s} count=${COUNT:-3} pysizes=$sizes pytime=1 tests='^$'
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/bench.test" .

{
  echo "# $(date -u +%FT%TZ) mode=$mode $(go version) GOMAXPROCS=${GOMAXPROCS:-$(nproc)}"
  echo "# $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  # Each round runs every implementation once, so a burst of load from elsewhere on the
  # machine spreads over all of them instead of hitting one implementation's repetitions
  # (as -count would); the table takes the median over rounds.
  for round in $(seq "$count"); do
    echo "# round $round/$count: go test -c && bench.test -test.run '$tests' -test.bench Fanout -test.benchtime $benchtime -sizes=$sizes"
    "$tmp/bench.test" -test.run "$tests" -test.bench Fanout -test.benchtime "$benchtime" -sizes="$sizes"
  done
  if command -v python3 >/dev/null; then
    echo "# python3 asyncio_gather.py --sizes $pysizes --benchtime $pytime"
    python3 asyncio_gather.py --sizes "$pysizes" --benchtime "$pytime"
  else
    echo "# python3 not found: asyncio.gather not measured"
  fi
  echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out" >&2

echo "raw output: bench/$out" >&2
go run ./cmd/table -stat "${STAT:-median}" <"$out"
