#!/usr/bin/env bash
# Runs the task queues in their deployed shape (bench/cmd/deployed): the server in its own
# OS process, one or two worker processes, a producer process, all over 127.0.0.1 TCP, for
# gather's queue on natsbroker (packed and unpacked), raw JetStream, asynq on Redis, River
# on PostgreSQL, Celery on Redis and BullMQ on Redis, beside natsbroker in-process (server,
# workers and producer in one process, as BenchmarkBroker measures it), and prints the
# Markdown tables of BENCHMARKS.md with ratios and issue 10's goals (bench/cmd/deployedtable).
# Non-interactive; needs go, and root or the packages already installed.
#
#   bench/deployed.sh           full run: 1 and 2 worker processes, a lone task, batches of
#                               1,000 and 10,000 (throughput: batches of 10,000), 2 s a
#                               measurement, a warm-up round then 2 rounds (about 9 minutes)
#   bench/deployed.sh --smoke   one batch of 1 and one of 100 per system and worker count,
#                               for CI (about 30 s once installed, most of it the processes'
#                               start-up and River's 250 ms completer ticks)
#   bench/deployed.sh --half    the full run, then the same again on a machine about half as
#                               fast, and the "no cliff" verdict: no goal's ratio more than
#                               25% worse than the full-speed run's (about 18 minutes)
#
# The warm-up round (WARMUP, default 1; none in a smoke run) runs first and its results are
# left out: each system's first round after its server started ran slower, River's a third
# as fast as its later rounds (8,000 tasks/s against 19,000-25,000), BullMQ's and the
# in-process row's 70-80%. The half-speed pass follows on warm servers and has none.
#
# It installs (apt-get) redis-server, postgresql, python3-celery, python3-redis, and nodejs
# and npm when node is missing; and BullMQ into bench/peers/node_modules with `npm ci`
# (bench/peers/package-lock.json): those the systems run need (none for NATS systems alone). It starts Redis and PostgreSQL as servers.sh says (loopback
# only, temporary directory, non-default ports); the driver starts a fresh nats-server process
# for each NATS run and flushes Redis or empties River's table before each other run. On exit,
# however it ends, every process it started is stopped and the directory removed.
#
# "Half as fast" (HALF_MODE): quota (the default where the cgroup v1 or v2 cpu controller can
# be written, as root can on a plain Debian machine) puts the servers, the driver and so every
# worker and producer into one cgroup whose CPU time is capped at half of the machine's
# (nproc × 10 ms per 20 ms period); hog instead runs one busy loop per CPU beside the
# benchmark, at the same priority, so that every process gets about half a CPU when it wants
# one. Neither halves the clock: quota halves the CPU time and throttles in 20 ms periods (a
# lone task's p99 can take a throttled stretch); hog leaves a task that just woke up to
# preempt the loop at once (latencies suffer less than a half-speed CPU's would).
#
# Environment: COUNT (rounds, default 2), WARMUP (rounds left out, default 1), BENCHTIME (default 2s), SIZES (await sizes, default
# 1,1000,10000), CHUNK (throughput batch, default 10000), WORKERS (worker-process counts,
# default 1,2), SYSTEMS (default all), OUT (raw output, default bench/last-deployed.out),
# STAT (median or min over rounds), HALF_MODE (quota or hog), REDIS_PORT, PG_PORT (as
# servers.sh).
set -euo pipefail
cd "$(dirname "$0")"

mode=full half=
for a in "$@"; do
  case $a in
    --smoke) mode=smoke ;;
    --half) half=1 ;;
    *) echo "usage: $0 [--smoke] [--half]" >&2; exit 2 ;;
  esac
done
if [[ $mode == smoke ]]; then
  benchtime=0s count=1 warmup=0 sizes=${SIZES:-1} chunk=${CHUNK:-100} timeout=1m
else
  benchtime=${BENCHTIME:-2s} count=${COUNT:-2} warmup=${WARMUP:-1} sizes=${SIZES:-1,1000,10000} chunk=${CHUNK:-10000} timeout=5m
fi
out=${OUT:-last-deployed.out}
# See run.sh: the bench module replaces the root module with ../.
export GOFLAGS="${GOFLAGS:-} -mod=mod"

log() { echo "deployed.sh: $*" >&2; }

. ./servers.sh
# wants SYSTEM: whether the run includes SYSTEM (every system unless SYSTEMS names some).
wants() { [[ -z ${SYSTEMS:-} || ,$SYSTEMS, == *,$1,* ]]; }
# Redis, PostgreSQL, Celery and BullMQ are installed and started only for the peers that
# need them: a run of NATS systems alone needs none.
peers=
for s in asynq river celery bullmq; do wants $s && peers=1; done
if [[ -n $peers ]]; then
  extra=()
  wants celery && extra+=(python3-celery python3-redis)
  if wants bullmq; then
    command -v node >/dev/null && command -v npm >/dev/null || extra+=(nodejs npm)
  fi
  servers_install "${extra[@]}"
fi
if wants bullmq && { [[ ! -d peers/node_modules/bullmq ]] || [[ peers/package-lock.json -nt peers/node_modules/.package-lock.json ]]; }; then
  log "installing BullMQ into bench/peers/node_modules (npm ci)"
  (cd peers && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

tmp=$(mktemp -d)
chmod 755 "$tmp"
driver_pid= hogs=() cg=
cleanup() {
  set +e
  if [[ -n $driver_pid ]]; then # it stops its own children when it gets SIGTERM
    kill "$driver_pid" 2>/dev/null
    wait "$driver_pid" 2>/dev/null
  fi
  for p in "${hogs[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  servers_stop
  if [[ -n $cg ]]; then
    # Everything in it has stopped; move any straggler out, then remove it.
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do echo "$p" >"$(dirname "$cg")/cgroup.procs"; done
    rmdir "$cg"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[[ -z $peers ]] || servers_start "$tmp"
go build -o "$tmp/deployed" ./cmd/deployed

# note LINE: a comment line for the raw output and for the person watching.
note() { echo "# $*" | tee -a "$out" >&2; }

# drive SPEED WARMUP [PREFIX...]: one run of the driver, its results appended to the raw
# output (and its progress on stderr).
drive() {
  local speed=$1 warm=$2
  shift 2
  note "speed=$speed: deployed drive -speed $speed -warmup $warm -count $count -workers ${WORKERS:-1,2} -sizes $sizes -chunk $chunk -benchtime $benchtime${SYSTEMS:+ -systems $SYSTEMS}"
  "$@" "$tmp/deployed" drive -speed "$speed" -warmup "$warm" -count "$count" -workers "${WORKERS:-1,2}" \
    -sizes "$sizes" -chunk "$chunk" -benchtime "$benchtime" -timeout "$timeout" \
    ${SYSTEMS:+-systems "$SYSTEMS"} -peers peers -python /usr/bin/python3 -node "$(command -v node)" >>"$out" &
  driver_pid=$!
  local rc=0
  wait "$driver_pid" || rc=$?
  driver_pid=
  ((rc == 0)) || note "speed=$speed: the driver FAILED (exit status $rc): see the FAILED lines"
}

# half_start: make the machine about half as fast for what starts next, by HALF_MODE;
# sets half_prefix to the command that starts the driver inside the cgroup, if any.
half_prefix=()
half_start() {
  local n period=20000 v1=/sys/fs/cgroup/cpu v2=/sys/fs/cgroup
  n=$(nproc)
  local want=${HALF_MODE:-quota}
  if [[ $want == quota ]]; then
    if [[ -w $v1/cpu.cfs_quota_us ]] && mkdir "$v1/gather-bench-$$" 2>/dev/null; then
      cg=$v1/gather-bench-$$
      { echo $period >"$cg/cpu.cfs_period_us" && echo $((n * period / 2)) >"$cg/cpu.cfs_quota_us"; } 2>/dev/null ||
        { rmdir "$cg"; cg=; }
    elif grep -qw cpu "$v2/cgroup.controllers" 2>/dev/null && mkdir "$v2/gather-bench-$$" 2>/dev/null; then
      cg=$v2/gather-bench-$$
      echo +cpu >"$v2/cgroup.subtree_control" 2>/dev/null || true
      echo "$((n * period / 2)) $period" >"$cg/cpu.max" 2>/dev/null || { rmdir "$cg"; cg=; }
    fi
    if [[ -z $cg ]]; then
      log "no writable cgroup cpu controller here: HALF_MODE=hog instead"
      want=hog
    fi
  fi
  if [[ $want == quota ]]; then
    # The servers started before: move them in (PostgreSQL's backends fork from the
    # postmaster, so later ones follow it).
    local p pm
    pm=$(head -n1 "$pg_data/postmaster.pid")
    for p in "$redis_pid" "$pm" $(ps -o pid= --ppid "$pm"); do echo "$p" >"$cg/cgroup.procs"; done
    half_prefix=(bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg")
    note "half speed: cgroup cpu quota $((n * period / 2)) µs per $period µs period ($n CPUs)"
  elif [[ $want == hog ]]; then
    for ((i = 0; i < n; i++)); do
      bash -c 'while :; do :; done' &
      hogs+=($!)
    done
    note "half speed: $n busy loops beside the benchmark"
  else
    log "HALF_MODE=$want: want quota or hog"; exit 2
  fi
}

: >"$out"
note "$(date -u +%FT%TZ) mode=$mode $(go version) GOMAXPROCS=${GOMAXPROCS:-$(nproc)}"
note "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
versions=()
[[ -z $peers ]] || versions+=("$(servers_versions)")
wants celery && versions+=("$(/usr/bin/python3 -c 'import celery; print("Celery", celery.__version__)')")
wants bullmq && versions+=("node $(node --version), BullMQ $(node -p 'require("./peers/node_modules/bullmq/package.json").version')")
((${#versions[@]} == 0)) || note "$(IFS=,; echo "${versions[*]}" | sed 's/,/, /g')"
drive full "$warmup"
if [[ -n $half ]]; then
  half_start
  drive half 0 "${half_prefix[@]}"
fi
note "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "raw output: bench/$out" >&2
go run ./cmd/deployedtable -stat "${STAT:-median}" <"$out"
[[ $mode == smoke ]] && log "smoke run: one batch of each size, so the figures only show that every system runs"
if grep -q 'FAILED' "$out"; then
  log "some runs failed: their rows are missing (see bench/$out)"
  exit 1
fi
