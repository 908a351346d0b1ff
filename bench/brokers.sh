#!/usr/bin/env bash
# Runs BenchmarkBroker (brokers_test.go): gather's queue on natsbroker, the raw JetStream
# ceiling, asynq on Redis and River on PostgreSQL, all on this machine in one run, and
# prints the Markdown table of BENCHMARKS.md with ratios and issue 4's goals.
# Non-interactive; needs go, and root or the packages already installed.
#
#   bench/brokers.sh            full run: batches of 1, 100, 1,000 and 10,000, chunks of
#                               10,000 for throughput, 2 s a benchmark, 2 rounds (about 2 min)
#   bench/brokers.sh --smoke    one iteration of every benchmark with batches of 1 and 100
#                               and chunks of 1,000, for CI (about 10 s once installed and built)
#
# It installs redis-server and PostgreSQL with apt-get if they are missing, starts them in a
# temporary directory on 127.0.0.1 only, passes their addresses to the benchmarks in
# GATHER_BENCH_REDIS and GATHER_BENCH_POSTGRES, and always stops them and removes the
# directory on exit: servers.sh, shared with deployed.sh, says how and with which settings.
#
# Environment: COUNT (rounds, default 2), BENCHTIME (default 2s), SIZES (batch sizes, default
# 1,100,1000,10000), CHUNK (throughput chunk, default 10000), BENCH (which sub-benchmarks, a
# -test.bench pattern, default all of BenchmarkBroker), OUT (raw output, default
# bench/last-brokers.out), STAT (median or min over rounds, default median), REDIS_PORT
# (default 16379), PG_PORT (default 15432).
set -euo pipefail
cd "$(dirname "$0")"

mode=full
case "${1:-}" in
  --smoke) mode=smoke ;;
  "") ;;
  *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

if [[ $mode == smoke ]]; then
  benchtime=1x count=1 sizes=${SIZES:-1,100} chunk=${CHUNK:-1000} timeout=5m optimeout=30s
else
  benchtime=${BENCHTIME:-2s} count=${COUNT:-2} sizes=${SIZES:-1,100,1000,10000} chunk=${CHUNK:-10000} timeout=30m optimeout=2m
fi
pattern=${BENCH:-^BenchmarkBroker\$}
out=${OUT:-last-brokers.out}
# See run.sh: the bench module replaces the root module with ../.
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { echo "brokers.sh: $*" >&2; }

. ./servers.sh
servers_install

tmp=$(mktemp -d)
chmod 755 "$tmp"
cleanup() {
  set +e
  servers_stop
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
servers_start "$tmp"

go test -c -o "$tmp/bench.test" .
{
  echo "# $(date -u +%FT%TZ) mode=$mode $(go version) GOMAXPROCS=${GOMAXPROCS:-$(nproc)}"
  echo "# $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# $(servers_versions)"
  # As in run.sh, each round runs every system once, so a burst of load from elsewhere on
  # the machine spreads over all of them; the table takes the median over rounds.
  for round in $(seq "$count"); do
    echo "# round $round/$count: go test -c && bench.test -test.run '^\$' -test.bench '$pattern' -test.benchtime $benchtime -broker-timeout $optimeout -broker-sizes=$sizes -broker-chunk=$chunk"
    # A failing system (its rows missing from the table) must not hide the others' figures:
    # the failure is noted in the output and becomes the script's exit status below.
    "$tmp/bench.test" -test.run '^$' -test.bench "$pattern" -test.benchtime "$benchtime" \
      -test.timeout "$timeout" -broker-timeout "$optimeout" -broker-sizes="$sizes" -broker-chunk="$chunk" ||
      echo "# round $round/$count FAILED (exit status $?): see the --- FAIL lines above"
  done
  echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out" >&2

echo "raw output: bench/$out" >&2
go run ./cmd/brokertable -stat "${STAT:-median}" <"$out"
[[ $mode == smoke ]] && log "smoke run: one iteration of each, so the figures only show that every benchmark runs"
if grep -q '^# round .* FAILED' "$out"; then
  log "some benchmarks failed: their rows are missing (see bench/$out)"
  exit 1
fi
