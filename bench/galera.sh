#!/usr/bin/env bash
# What read-your-writes across Galera nodes costs a token check.
#
# Starts a three-node MariaDB Galera cluster on loopback (each node its own
# data directory and ports, run as `mysql`, as tests/api/galera_cluster.rs
# does; never the machine's own MariaDB), then
#   1. times one indexed SELECT by a 32-byte key on node 0 with
#      wsrep_sync_wait = 0 and = 1 (mariadb-slap, BENCH_SLAP_CLIENTS
#      clients), the statement-level cost of the causal wait;
#   2. runs bench/run.sh's BENCH_SCENARIOS (default baseline-read, -write, status,
#      status-touch0) against node 0, where latchkey sets wsrep_sync_wait = 1
#      on its connections and the bare baseline does not.
# Stops the nodes by PID and removes their directory on exit.
#
#   bench/galera.sh                        # 3 rounds of 15 s, as run.sh
#   BENCH_DURATION=5 bench/galera.sh       # quick pass
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
GALERA=/usr/lib/galera/libgalera_smm.so
SLAP_CLIENTS=${BENCH_SLAP_CLIENTS:-8}
SLAP_QUERIES=${BENCH_SLAP_QUERIES:-200000}
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

scripts/install-deps.sh --test >&2
command -v mariadb-slap >/dev/null || { log "mariadb-slap (mariadb-client) is required"; exit 1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-galera-bench.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$DIR"
    exit "$status"
}
trap cleanup EXIT

SQL=() GROUP=()
for i in 0 1 2; do SQL+=("$(free_port)"); GROUP+=("$(free_port)"); done
GCOMM="127.0.0.1:${GROUP[0]},127.0.0.1:${GROUP[1]},127.0.0.1:${GROUP[2]}"
for i in 0 1 2; do
    n=$DIR/n$i
    mkdir -p "$n"
    cat >"$n/my.cnf" <<CNF
[mysqld]
user=mysql
datadir=$n/data
socket=$n/sock
port=${SQL[$i]}
bind-address=127.0.0.1
pid-file=$n/pid
log-error=$n/err.log
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=256M
wsrep_on=ON
wsrep_provider=$GALERA
wsrep_cluster_name=latchkey_bench
wsrep_cluster_address=gcomm://$GCOMM
wsrep_node_name=n$i
wsrep_node_address=127.0.0.1
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:${GROUP[$i]};ist.recv_addr=127.0.0.1:$(free_port);gcache.size=64M"
wsrep_sst_method=rsync
wsrep_sst_receive_address=127.0.0.1:$(free_port)
CNF
done
chown -R mysql:mysql "$DIR"

client() { mariadb -h 127.0.0.1 -P "${SQL[$1]}" -u root -N "${@:2}"; }
for i in 0 1 2; do
    mariadb-install-db --defaults-file="$DIR/n$i/my.cnf" --auth-root-authentication-method=normal >/dev/null 2>&1
    extra=()
    [ "$i" -eq 0 ] && extra=(--wsrep-new-cluster)
    /usr/sbin/mariadbd --defaults-file="$DIR/n$i/my.cnf" "${extra[@]}" </dev/null >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 480); do
        state=$(client "$i" -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2 || true)
        [ "$state" = Synced ] && break
        sleep 0.25
    done
    [ "$state" = Synced ] || { log "node $i did not join"; cat "$DIR/n$i/err.log" >&2; exit 1; }
    log "node $i synced (port ${SQL[$i]})"
done

# 1. The statement-level cost of the causal wait.
client 0 -e "CREATE DATABASE latchkey_bench_galera_slap; USE latchkey_bench_galera_slap;
  CREATE TABLE t (digest BINARY(32) PRIMARY KEY, v INT NOT NULL);
  INSERT INTO t SELECT UNHEX(SHA2(seq, 256)), seq FROM seq_1_to_1000;"
slap() {
    client 0 -e "SET GLOBAL wsrep_sync_wait = $1"
    mariadb-slap -h 127.0.0.1 -P "${SQL[0]}" -u root --create-schema=latchkey_bench_galera_slap \
        --concurrency="$SLAP_CLIENTS" --number-of-queries="$SLAP_QUERIES" --iterations=3 \
        --query="SELECT v FROM t WHERE digest = UNHEX('$(printf 500 | sha256sum | cut -c1-64)')" |
        awk '/Average number of seconds/ { print $(NF-1) }'
}
without=$(slap 0)
with=$(slap 1)
client 0 -e "SET GLOBAL wsrep_sync_wait = 0"
awk -v q="$SLAP_QUERIES" -v a="$without" -v b="$with" -v c="$SLAP_CLIENTS" 'BEGIN {
    printf "\n| one SELECT by key on a Galera node, %d clients | queries/s | µs per query and client |\n|---|---:|---:|\n", c
    printf "| wsrep_sync_wait = 0 | %.0f | %.1f |\n", q / a, a * 1e6 * c / q
    printf "| wsrep_sync_wait = 1 | %.0f | %.1f |\n\n", q / b, b * 1e6 * c / q
}'

# 2. latchkey on node 0.
BENCH_MYSQL_URL="mysql://root@127.0.0.1:${SQL[0]}" BENCH_MARIADB_PID="${PIDS[0]}" \
    BENCH_SCENARIOS=${BENCH_SCENARIOS:-baseline-read,baseline-write,status,status-touch0} \
    BENCH_WRITE_RESULTS=${BENCH_WRITE_RESULTS:-0} "$ROOT/bench/run.sh"
