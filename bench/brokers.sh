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
# temporary directory on 127.0.0.1 only, on free non-default ports (from REDIS_PORT and
# PG_PORT up), passes their addresses to the benchmarks in GATHER_BENCH_REDIS and
# GATHER_BENCH_POSTGRES, and always stops them and removes the directory on exit.
#
# The servers' settings, chosen to match the durability of the embedded nats-server's default
# file store (written to the OS at once, fsynced every 2 minutes): Redis without persistence
# (no RDB snapshots, no AOF); PostgreSQL with synchronous_commit=off (commits return before
# their WAL is flushed; fsync stays on, so a crash loses recent commits but corrupts nothing).
# Both choices favour the peers.
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

# Install what is missing.
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
missing=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
[[ -x "$(pgbin)/initdb" ]] || missing+=(postgresql)
if ((${#missing[@]})); then
  if [[ $(id -u) != 0 ]]; then
    log "${missing[*]} not installed, and installing needs root"; exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  # Debian's package may start its default cluster (port 5432) where an init system runs;
  # this script uses its own, so stop that one again.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $1, $2}' |
      while read -r ver name; do pg_ctlcluster "$ver" "$name" stop || true; done
  fi
fi
pgbin=$(pgbin)

# free_port P: the first port from P up that nothing on 127.0.0.1 accepts connections on.
free_port() {
  local p
  for ((p = $1; p < $1 + 100; p++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  log "no free port from $1 up"; exit 1
}

tmp=$(mktemp -d)
chmod 755 "$tmp"
redis_pid= pg_data=
cleanup() {
  set +e
  if [[ -n $pg_data ]]; then
    as_pg "$pgbin/pg_ctl" -D "$pg_data" -m fast -w -t 30 stop >/dev/null
  fi
  if [[ -n $redis_pid ]]; then
    kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# PostgreSQL refuses to run as root: run it as the postgres user the package created.
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

redis_port=$(free_port "${REDIS_PORT:-16379}")
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
  --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no &
redis_pid=$!
for ((i = 0; ; i++)); do
  [[ $(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
  ((i < 100)) || { log "redis-server did not start:"; cat "$tmp/redis.log" >&2; exit 1; }
  sleep 0.1
done

pg_port=$(free_port "${PG_PORT:-15432}")
mkdir "$tmp/pg" "$tmp/sock"
[[ $(id -u) == 0 ]] && chown postgres: "$tmp/pg" "$tmp/sock"
as_pg "$pgbin/initdb" -D "$tmp/pg/data" -U postgres -A trust -E UTF8 --no-sync >"$tmp/initdb.log" ||
  { cat "$tmp/initdb.log" >&2; exit 1; }
pg_data=$tmp/pg/data
as_pg "$pgbin/pg_ctl" -D "$pg_data" -l "$tmp/pg/log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$tmp/sock -c synchronous_commit=off" \
  start >/dev/null || { cat "$tmp/pg/log" >&2; exit 1; }
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bench

export GATHER_BENCH_REDIS=127.0.0.1:$redis_port
export GATHER_BENCH_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/bench?sslmode=disable"
log "redis-server $(redis-server --version | grep -o 'v=[^ ]*') on $GATHER_BENCH_REDIS, PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"

go test -c -o "$tmp/bench.test" .
{
  echo "# $(date -u +%FT%TZ) mode=$mode $(go version) GOMAXPROCS=${GOMAXPROCS:-$(nproc)}"
  echo "# $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# redis-server $(redis-server --version | grep -o 'v=[^ ]*'), PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}')"
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
