#!/usr/bin/env bash
# Issue 14's load test of the gather program (bench/cmd/httpload): `gather serve` in its own
# process (no built-in workers; results kept --result-ttl 5s in the API and --retention 10s in
# the streams), two `gather worker` processes on its NATS port, and producers posting echo
# batches with ?wait, all over 127.0.0.1 TCP with tokens; then overload against a queue bounded
# with --max-depth. Prints JSON lines (one per phase) and the Markdown rows of BENCHMARKS.md's
# "gather serve under load". Non-interactive; needs go. Stops by itself; every process it starts
# is stopped on exit (and killed by the kernel if the driver dies). See BENCHMARKS.md.
#
#   bench/httpload.sh           1,000,000 tasks in batches of 1,000 from 4 producers, then 20 s
#                               of overload against a queue bounded at 20,000 tasks of 2 ms
#                               (about a minute and a half on 2 cores, half of it waiting for
#                               results to expire)
#   bench/httpload.sh --smoke   20,000 tasks, then 5 s of overload bounded at 2,000, for CI
#                               (about 25 s with the build, most of it waiting for results to
#                               expire: it checks that everything runs and nothing is lost)
#   bench/httpload.sh --sse 4   also a second run of the load with 4 event streams held open on
#                               the dashboard's /dashboard/events, and its throughput over the
#                               first run's (issue 14's goal: 0.95 or more)
#
# Other flags go to httpload as they are (`go run ./cmd/httpload -h` lists them: -tasks,
# -batch, -producers, -workers, -concurrency, -result-ttl, -retention, -sse-path, -overload,
# -max-depth, -overload-task, -overload-pause, -settle, -timeout).
# Environment: OUT (the JSON lines and table, default bench/last-httpload.out).
set -euo pipefail
cd "$(dirname "$0")"

args=()
for a in "$@"; do
  case $a in
    --smoke) args+=(-tasks 20000 -overload 5s -max-depth 2000) ;;
    *) args+=("$a") ;;
  esac
done
out=${OUT:-last-httpload.out}
# See run.sh: the bench module replaces the root module with ../.
export GOFLAGS="${GOFLAGS:-} -mod=mod"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd .. && go build -o "$tmp/gather" ./cmd/gather)
go build -o "$tmp/httpload" ./cmd/httpload
{
  echo "# $(date -u +%FT%TZ) $(go version) GOMAXPROCS=${GOMAXPROCS:-$(nproc)}"
  echo "# $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# httpload ${args[*]}"
} | tee "$out" >&2
rc=0
"$tmp/httpload" -gather "$tmp/gather" -dir "$tmp/stores" "${args[@]}" | tee -a "$out" || rc=$?
[[ $out == /* ]] && shown=$out || shown=bench/$out
echo "output: $shown" >&2
exit "$rc"
