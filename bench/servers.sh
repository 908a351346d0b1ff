# Sourced by brokers.sh and deployed.sh: installs redis-server and PostgreSQL with
# apt-get if they are missing, starts both in a temporary directory on 127.0.0.1 only,
# on free non-default ports (from REDIS_PORT and PG_PORT up), exports their addresses
# in GATHER_BENCH_REDIS and GATHER_BENCH_POSTGRES, and stops them again.
#
#   servers_install [PKG...]   apt-get install redis-server, postgresql and PKG... where
#                              missing (root only); stops the cluster Debian's package
#                              may have started on port 5432
#   servers_start DIR          start both, their files under DIR (the caller's temporary
#                              directory, which it removes)
#   servers_stop               stop what servers_start started; safe to call at any time,
#                              and more than once (the caller's EXIT trap calls it)
#
# The servers' settings, chosen to match the durability of the embedded nats-server's
# default file store (written to the OS at once, fsynced every 2 minutes): Redis without
# persistence (no RDB snapshots, no AOF); PostgreSQL with synchronous_commit=off (commits
# return before their WAL is flushed; fsync stays on, so a crash loses recent commits but
# corrupts nothing). Both choices favour the peers.
#
# After servers_start: redis_pid is redis-server's PID and pg_data PostgreSQL's data
# directory (its postmaster.pid names the postmaster).

redis_pid= pg_data= pgbin=

servers_log() { echo "$(basename "$0"): $*" >&2; }

servers_pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }

servers_install() {
  local missing=() p
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
  [[ -x "$(servers_pgbin)/initdb" ]] || missing+=(postgresql)
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
      servers_log "${missing[*]} not installed, and installing needs root"; exit 1
    fi
    servers_log "installing ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    # Debian's package may start its default cluster (port 5432) where an init system
    # runs; these scripts use their own, so stop that one again.
    if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
      pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $1, $2}' |
        while read -r ver name; do pg_ctlcluster "$ver" "$name" stop || true; done
    fi
  fi
  pgbin=$(servers_pgbin)
}

# servers_free_port P: the first port from P up that nothing on 127.0.0.1 accepts
# connections on.
servers_free_port() {
  local p
  for ((p = $1; p < $1 + 100; p++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  servers_log "no free port from $1 up"; exit 1
}

# PostgreSQL refuses to run as root: run it as the postgres user the package created.
servers_as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

servers_start() {
  local dir=$1 i redis_port pg_port
  pgbin=${pgbin:-$(servers_pgbin)}
  redis_port=$(servers_free_port "${REDIS_PORT:-16379}")
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" --daemonize no &
  redis_pid=$!
  for ((i = 0; ; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
    ((i < 100)) || { servers_log "redis-server did not start:"; cat "$dir/redis.log" >&2; exit 1; }
    sleep 0.1
  done

  pg_port=$(servers_free_port "${PG_PORT:-15432}")
  mkdir "$dir/pg" "$dir/sock"
  [[ $(id -u) == 0 ]] && chown postgres: "$dir/pg" "$dir/sock"
  servers_as_pg "$pgbin/initdb" -D "$dir/pg/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  pg_data=$dir/pg/data
  servers_as_pg "$pgbin/pg_ctl" -D "$pg_data" -l "$dir/pg/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$dir/sock -c synchronous_commit=off" \
    start >/dev/null || { cat "$dir/pg/log" >&2; exit 1; }
  servers_as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bench

  export GATHER_BENCH_REDIS=127.0.0.1:$redis_port
  export GATHER_BENCH_POSTGRES="postgres://postgres@127.0.0.1:$pg_port/bench?sslmode=disable"
  servers_log "$(servers_versions): Redis on $GATHER_BENCH_REDIS, PostgreSQL on 127.0.0.1:$pg_port"
}

# servers_versions prints the servers' versions, for the raw output's header.
servers_versions() {
  echo "redis-server $(redis-server --version | grep -o 'v=[^ ]*'), PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}')"
}

servers_stop() {
  if [[ -n $pg_data ]]; then
    servers_as_pg "$pgbin/pg_ctl" -D "$pg_data" -m fast -w -t 30 stop >/dev/null
    pg_data=
  fi
  if [[ -n $redis_pid ]]; then
    kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    redis_pid=
  fi
  return 0
}
