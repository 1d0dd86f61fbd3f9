#!/usr/bin/env bash
# Load benchmark for latchkey: builds the release binaries, seeds a throwaway
# MariaDB database (latchkey_bench_<random>, dropped on exit) and a throwaway
# SQLite file, drives the service with wrk and prints one markdown table.
#
#   bench/run.sh                      # full run: 3 rounds of 15 s per scenario, writes bench/RESULTS.md
#   BENCH_DURATION=3 bench/run.sh     # quick pass
#
# Every knob is an environment variable; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH_DIR=$ROOT/bench
export BENCH_DIR

DEFAULT_DURATION=15
DURATION=${BENCH_DURATION:-$DEFAULT_DURATION}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-$(nproc)}
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-8}
FLOOD_LOGIN_CONNECTIONS=${BENCH_FLOOD_LOGIN_CONNECTIONS:-200}
FLOOD_CHECK_CONNECTIONS=${BENCH_FLOOD_CHECK_CONNECTIONS:-32}
USERS=${BENCH_USERS:-1000}
LOGIN_USERS=${BENCH_LOGIN_USERS:-100}
SCALE_SESSIONS=${BENCH_SCALE_SESSIONS:-1000000}
SCALE_SAMPLE=${BENCH_SCALE_SAMPLE:-1000}
SCALE_WIDE_SAMPLE=${BENCH_SCALE_WIDE_SAMPLE:-10000}
BCRYPT_SAMPLES=${BENCH_BCRYPT_SAMPLES:-5}
MYSQL_SERVER=${BENCH_MYSQL_URL:-mysql://root@127.0.0.1:3306}
# The `postgres` scenarios (baseline-read/-write, status, status-touch0 on
# PostgreSQL) run on this server, in a database of their own.
POSTGRES_SERVER=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
SCENARIOS=${BENCH_SCENARIOS:-baseline-read,baseline-write,status,verify,status-touch0,status-sqlite,postgres,login,flood,scale}
if [ -z "${BENCH_WRITE_RESULTS:-}" ]; then
    # Full runs (the default duration) keep their output; quick passes do not.
    if [ "$DURATION" = "$DEFAULT_DURATION" ]; then BENCH_WRITE_RESULTS=1; else BENCH_WRITE_RESULTS=0; fi
fi
WRITE_RESULTS=$BENCH_WRITE_RESULTS
# Rounds: every scenario runs once per round, the rounds one after another.
# The table gives each scenario's median and each ratio the median of the
# rounds' ratios: on a shared machine one 15 s run per scenario swings by
# ±10-20 %, which flipped verdicts from run to run. Full runs take 3 rounds,
# quick passes 1.
if [ -z "${BENCH_ROUNDS:-}" ]; then
    if [ "$DURATION" = "$DEFAULT_DURATION" ]; then BENCH_ROUNDS=3; else BENCH_ROUNDS=1; fi
fi
ROUNDS=$BENCH_ROUNDS
WRK_TIMEOUT=${BENCH_WRK_TIMEOUT:-30}

RUN_STARTED=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for n in DURATION ROUNDS CONNECTIONS THREADS LOGIN_CONNECTIONS FLOOD_LOGIN_CONNECTIONS \
         FLOOD_CHECK_CONNECTIONS USERS LOGIN_USERS SCALE_SESSIONS SCALE_SAMPLE SCALE_WIDE_SAMPLE BCRYPT_SAMPLES; do
    [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "BENCH_$n must be a positive integer, got '${!n}'"
done
# Only loopback: the benchmark must never reach another machine.
[[ $MYSQL_SERVER =~ ^mysql://[^/@]+@(127\.[0-9.]+|localhost|\[::1\])(:[0-9]+)?$ ]] ||
    die "BENCH_MYSQL_URL must be mysql://USER[:PASS]@127.0.0.1[:PORT] (loopback, no database), got '$MYSQL_SERVER'"
wants() { [[ ",$SCENARIOS," == *",$1,"* ]]; }

# The service sees the documented defaults, not whatever this shell has set
# (RUST_BACKTRACE=1 would make every internal error capture and symbolise a
# backtrace, which alone raises the peak RSS by tens of MiB).
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(LATCHKEY_|DATABASE_URL$|RUST_LOG$|RUST_BACKTRACE$|RUST_LIB_BACKTRACE$)' || true)

# --- tools ------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (apt-get)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q wrk >&2
fi
command -v curl >/dev/null 2>&1 || die "curl is required"
scripts/install-deps.sh >&2

log "building release binaries (latchkey, examples baseline and bench-seed)"
cargo build --release --locked --bin latchkey --example baseline --example bench-seed >&2
LATCHKEY=$ROOT/target/release/latchkey
# BENCH_LATCHKEY: another build of the service to measure (e.g. a copy of an
# older commit's target/release/latchkey), for A/B comparisons.
if [ -n "${BENCH_LATCHKEY:-}" ]; then
    [ -x "$BENCH_LATCHKEY" ] || die "BENCH_LATCHKEY is not an executable: $BENCH_LATCHKEY"
    LATCHKEY=$BENCH_LATCHKEY
fi
BASELINE=$ROOT/target/release/examples/baseline
SEED=$ROOT/target/release/examples/bench-seed

# --- scratch space, database, clean-up ----------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")
DB_NAME="latchkey_bench_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
# The big table of `scale` lives in a database of its own, so that the other
# scenarios of later rounds still see the small one.
SCALE_DB_NAME="${DB_NAME}scale"
DBS_CREATED=()
PG_DBS_CREATED=()
SERVER_PID=""
MONITOR_PID=""
BG_PIDS=()

cleanup() {
    local status=$?
    set +e
    for pid in "${BG_PIDS[@]}" $SERVER_PID $MONITOR_PID; do
        kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    local db
    for db in "${DBS_CREATED[@]}"; do
        if "$SEED" drop-db --server "$MYSQL_SERVER" --name "$db"; then
            log "dropped database $db"
        else
            log "warning: could not drop database $db"
        fi
    done
    for db in "${PG_DBS_CREATED[@]}"; do
        if "$SEED" drop-db --server "$POSTGRES_SERVER" --name "$db"; then
            log "dropped PostgreSQL database $db"
        else
            log "warning: could not drop PostgreSQL database $db"
        fi
    done
    if [ -n "${BENCH_KEEP_WORKDIR:-}" ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free loopback port (nothing answers on it).
# pick_port: a free port below the kernel's ephemeral range, which the
# flood's hundreds of thousands of client connections sweep through: a port
# taken from that range was once busy as some socket's local port by the
# time the next scenario bound it ("Address already in use").
pick_port() {
    local port low
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    ((low > 11000)) || die "the ephemeral port range starts at $low; set BENCH_PORT"
    for _ in $(seq 1 50); do
        port=$((10000 + RANDOM % (low - 10000)))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}
PORT=${BENCH_PORT:-$(pick_port)}
BASE_URL="http://127.0.0.1:$PORT"

MYSQL_URL="$MYSQL_SERVER/$DB_NAME"
SCALE_URL="$MYSQL_SERVER/$SCALE_DB_NAME"
SQLITE_FILE="$WORK/sqlite/latchkey.sqlite3"
SQLITE_URL="sqlite://$SQLITE_FILE"
POSTGRES_URL="$POSTGRES_SERVER/${DB_NAME}pg"
mkdir -p "$WORK/mysql" "$WORK/sqlite" "$WORK/postgres" "$WORK/out"

"$SEED" create-db --server "$MYSQL_SERVER" --name "$DB_NAME"
DBS_CREATED+=("$DB_NAME")
log "created database $DB_NAME; scratch directory $WORK"

log "seeding MariaDB: $USERS users with a session, $LOGIN_USERS login users (one bcrypt hash, shared); timing bcrypt"
"$SEED" seed --url "$MYSQL_URL" --out "$WORK/mysql" --users "$USERS" --login-users "$LOGIN_USERS"
if wants postgres; then
    "$SEED" create-db --server "$POSTGRES_SERVER" --name "${DB_NAME}pg"
    PG_DBS_CREATED+=("${DB_NAME}pg")
    log "seeding PostgreSQL the same way (database ${DB_NAME}pg)"
    "$SEED" seed --url "$POSTGRES_URL" --out "$WORK/postgres" --users "$USERS" --login-users "$LOGIN_USERS"
fi
if wants status-sqlite; then
    log "seeding SQLite the same way"
    "$SEED" seed --url "$SQLITE_URL" --out "$WORK/sqlite" --users "$USERS" --login-users "$LOGIN_USERS"
fi

# --- other load on the machine ------------------------------------------------
# Other people compile here. Before each scenario, wait (up to
# BENCH_QUIET_WAIT seconds) for a second with at least BENCH_QUIET_IDLE % idle
# CPU; and note which scenarios overlapped with compiler processes.
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
QUIET_IDLE=${BENCH_QUIET_IDLE:-80}
COMPILERS='rustc|cargo|cc1|cc1plus|ld|ld.lld|rust-lld|clang|gcc|c\+\+'
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
idle_pct() {
    local t0 i0 t1 i1
    read -r t0 i0 < <(cpu_ticks)
    sleep 1
    read -r t1 i1 < <(cpu_ticks)
    echo $((100 * (i1 - i0) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
wait_for_quiet() {
    local idle waited=0
    while idle=$(idle_pct) && ((idle < QUIET_IDLE)); do
        if ((waited == 0)); then
            log "machine busy (idle $idle %, $(pgrep -c -x "$COMPILERS" || true) compiler processes); waiting up to ${QUIET_WAIT} s"
        fi
        waited=$((waited + 1))
        if ((waited >= QUIET_WAIT)); then
            log "still busy after ${QUIET_WAIT} s (idle $idle %); going on"
            break
        fi
    done
}
( while sleep 1; do echo "$(date +%s) $(pgrep -c -x "$COMPILERS" || true)"; done ) >"$WORK/monitor.txt" 2>/dev/null &
MONITOR_PID=$!

# --- processes ----------------------------------------------------------------
# start_process LABEL VAR=VALUE... COMMAND...: starts it in the background,
# waits for GET /readyz = 200 and sets READY_MS (start → ready).
start_process() {
    local label=$1
    shift
    local logfile="$WORK/out/$label.log"
    local t0 now
    wait_for_quiet
    CURRENT_LABEL=$label
    SCENARIO_T0=$(date +%s)
    t0=$(date +%s%N)
    env "$@" >"$logfile" 2>&1 &
    SERVER_PID=$!
    until curl -fs -o /dev/null --max-time 1 "$BASE_URL/readyz"; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            tail -n 20 "$logfile" >&2
            SERVER_PID=""
            die "$label exited before it was ready (log above)"
        fi
        now=$(date +%s%N)
        ((now - t0 < 60000000000)) || die "$label was not ready after 60 s"
        sleep 0.005
    done
    now=$(date +%s%N)
    READY_MS=$(((now - t0) / 1000000))
    DB_BEFORE=$(db_counters)
    CPU_BEFORE="$(cpu_ms "$SERVER_PID") $(db_cpu_ms)"
}

# cpu_ms PID: user + system CPU time the process has used, in ms ("" if gone).
cpu_ms() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 0
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$1/stat"
}
# BENCH_MARIADB_PID: the server whose CPU the table reports, when
# BENCH_MYSQL_URL is not the machine's own (bench/galera.sh passes node 0's).
mariadb_pid() { echo "${BENCH_MARIADB_PID:-$(pgrep -o -x 'mariadbd|mysqld' || true)}"; }
# db_cpu_ms: CPU time of the database the current scenario uses, in ms:
# MariaDB's server, or for the *-postgres scenarios every postgres process
# together (PostgreSQL runs a process per connection; the pool's are open
# from ready to stop, so none of its work is missed).
db_cpu_ms() {
    if [[ $CURRENT_LABEL == *-postgres ]]; then
        local pid total=0 ms
        for pid in $(pgrep -x postgres); do
            ms=$(cpu_ms "$pid")
            total=$((total + ${ms:-0}))
        done
        echo "$total"
    else
        cpu_ms "$(mariadb_pid)"
    fi
}

# cpu_snapshot SERVICE_PID: "label ms" lines — each wrk (by its path), the
# service, its bcrypt threads, MariaDB, and every process on the machine.
cpu_snapshot() {
    local pid cmd
    for pid in $(pgrep -x wrk); do
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
        case $cmd in
        *auth/login*) echo "wrk-flood $(cpu_ms "$pid")" ;;
        *) echo "wrk-check $(cpu_ms "$pid")" ;;
        esac
    done
    echo "latchkey $(cpu_ms "$1")"
    echo "bcrypt-threads $(for task in /proc/"$1"/task/*; do
        [ "$(cat "$task/comm" 2>/dev/null)" = latchkey-bcrypt ] && cpu_ms_of "$task/stat"
    done | awk '{ s += $1 } END { print s + 0 }')"
    echo "mariadbd $(cpu_ms "$(mariadb_pid)")"
    awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print "all", int(($2 + $3 + $4 + $7 + $8) * 1000 / hz) }' /proc/stat
}
cpu_ms_of() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "$1"; }
# flood_cpu_split SERVICE_PID SECONDS: cores used by each, over SECONDS
# starting a second from now.
flood_cpu_split() {
    sleep 1
    local before after t0 t1
    before=$(cpu_snapshot "$1")
    t0=$(date +%s%N)
    sleep "$2"
    after=$(cpu_snapshot "$1")
    t1=$(date +%s%N)
    awk -v wall_ms="$(((t1 - t0) / 1000000))" 'NR == FNR { a[$1] = $2; next }
        ($1 in a) { printf "%s%s %.2f", sep, $1, ($2 - a[$1]) / wall_ms; sep = ", " } END { print "" }' \
        <(echo "$before") <(echo "$after")
}

# MariaDB's statement counters (SELECT UPDATE INSERT DELETE PREPARE) and
# InnoDB buffer-pool misses (page reads from disk / OS cache), to count what
# each scenario's requests cost the database. Empty without the
# mysql client.
# mysql_query SQL: runs one query with the mysql client on BENCH_MYSQL_URL's
# server; prints nothing (and succeeds) when there is no client.
mysql_query() {
    command -v mysql >/dev/null 2>&1 || return 0
    local host_port=${MYSQL_SERVER#*@} host port
    host=${host_port%:*}
    port=3306
    [[ $host_port == *:* ]] && port=${host_port##*:}
    local user=${MYSQL_SERVER#mysql://}
    user=${user%@*}
    local pass=""
    [[ $user == *:* ]] && { pass=${user#*:}; user=${user%%:*}; }
    MYSQL_PWD=$pass mysql -N -h "$host" -P "$port" -u "$user" -e "$1" 2>/dev/null || true
}
db_counters() {
    command -v mysql >/dev/null 2>&1 || return 0
    mysql_query "SHOW GLOBAL STATUS WHERE Variable_name IN
        ('Com_select', 'Com_update', 'Com_insert', 'Com_delete', 'Com_stmt_prepare', 'Innodb_buffer_pool_reads')" |
        awk '{ v[$1] = $2 } END { print v["Com_select"], v["Com_update"], v["Com_insert"], v["Com_delete"], v["Com_stmt_prepare"], v["Innodb_buffer_pool_reads"] }'
}

# BENCH_SERVICE_ENV: extra VAR=VALUE words for every latchkey start, to compare
# settings (e.g. "LATCHKEY_DB_POOL_SIZE=4"); the table then says so.
read -r -a SERVICE_ENV <<<"${BENCH_SERVICE_ENV:-}"
for word in "${SERVICE_ENV[@]}"; do
    [[ $word =~ ^(LATCHKEY_[A-Z_]+|RUST_LOG)=.*$ ]] || die "BENCH_SERVICE_ENV takes LATCHKEY_*=VALUE (or RUST_LOG=...) words, got '$word'"
done

start_latchkey() { # LABEL DATABASE_URL [VAR=VALUE...]
    local label=$1 url=$2
    shift 2
    start_process "$label" DATABASE_URL="$url" LATCHKEY_BIND="127.0.0.1:$PORT" "$@" "${SERVICE_ENV[@]}" "$LATCHKEY" serve
}

start_baseline() { # LABEL [VAR=VALUE...] (a later DATABASE_URL=… wins)
    local label=$1
    shift
    start_process "$label" DATABASE_URL="$MYSQL_URL" BASELINE_BIND="127.0.0.1:$PORT" "$@" "$BASELINE"
}

# Reads the peak RSS (VmHWM) and stops the process; sets RSS_KB.
stop_process() {
    RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")
    ROUND_CPU=$(delta "$CPU_BEFORE" "$(cpu_ms "$SERVER_PID") $(db_cpu_ms)")
    CPU_DELTA[$CURRENT_LABEL]=$(add "${CPU_DELTA[$CURRENT_LABEL]:-}" "$ROUND_CPU")
    local db_after
    db_after=$(db_counters)
    if [ -n "$db_after" ] && [ -n "${DB_BEFORE:-}" ]; then
        DB_DELTA[$CURRENT_LABEL]=$(add "${DB_DELTA[$CURRENT_LABEL]:-}" "$(delta "$DB_BEFORE" "$db_after")")
    fi
    kill -TERM "$SERVER_PID"
    local waited=0
    while kill -0 "$SERVER_PID" 2>/dev/null && ((waited < 400)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    local logfile="$WORK/out/$CURRENT_LABEL.log"
    LOG_VOLUME[$CURRENT_LABEL]=$(wc -lc <"$logfile" | awk '{ printf "%d lines, %.1f MiB", $1, $2 / 1048576 }')
    local errors
    errors=$(log_errors "$logfile")
    [ -n "$errors" ] && LOG_ERRORS[$CURRENT_LABEL]="${LOG_ERRORS[$CURRENT_LABEL]:+${LOG_ERRORS[$CURRENT_LABEL]}; }round $ROUND: $errors"
    COMPILING[$CURRENT_LABEL]=$(awk -v t0="$SCENARIO_T0" -v t1="$(date +%s)" -v m="${COMPILING[$CURRENT_LABEL]:-0}" \
        '$1 >= t0 && $1 <= t1 && $2 > m { m = $2 } END { print m + 0 }' "$WORK/monitor.txt")
}

# delta BEFORE AFTER / add A B: element-wise on space-separated counters
# (an empty A counts as zeros).
delta() {
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? " " : ""), y[i] - x[i] }'
}
add() {
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(b, y, " "); split(a, x, " "); for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? " " : ""), x[i] + y[i] }'
}

# The failures a service log reports: internal errors (500) by cause, and
# "dependency unavailable" (503) warnings. Empty when there are none.
log_errors() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
        / latchkey::error: request failed / { want = 1; n++; next }
        want && /^Caused by:/ { getline; sub(/^ +/, ""); causes[$0]++; want = 0 }
        /dependency unavailable/ { unavailable++ }
        END {
            sep = ""
            if (n) { printf "%d internal errors (500):", n; for (c in causes) { printf " \"%s\" × %d", c, causes[c] }; sep = "; " }
            if (unavailable) printf "%s%d \"dependency unavailable\" (503)", sep, unavailable
        }'
}

# run_wrk OUT CONNECTIONS SCRIPT PATH [VAR=VALUE...] [-- extra seconds]
run_wrk() {
    local out=$1 conns=$2 script=$3 path=$4 seconds=$DURATION
    shift 4
    if [ "${1:-}" = "--seconds" ]; then
        seconds=$2
        shift 2
    fi
    local threads=$((THREADS < conns ? THREADS : conns))
    env "$@" wrk -t"$threads" -c"$conns" -d"${seconds}s" --timeout "${WRK_TIMEOUT}s" --latency \
        -s "$BENCH_DIR/$script" "$BASE_URL$path" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk failed ($out)"; }
    grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "wrk printed no BENCH line ($out)"; }
}

# field FILE KEY: a value of the BENCH line.
field() {
    awk -v k="$2" '/^BENCH / { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) v = a[2] } } END { print v }' "$1"
}

ms() { [ -n "${1:-}" ] && awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }' || echo "—"; }
mib() { [ -n "${1:-}" ] && awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }' || echo "—"; }

# Per scenario, over all rounds: RPS, P50, P99 and OKRPS are medians (set by
# summarise_rounds), NON2XX, SOCKERR, REQUESTS, CPU_DELTA and DB_DELTA sums,
# RSS and READY maxima. ROUND_RPS and ROUND_P99 hold each round's figure,
# keyed "NAME#ROUND", for the ratios.
declare -A RPS P50 P99 NON2XX SOCKERR RSS READY OKRPS LOG_VOLUME LOG_ERRORS COMPILING DB_DELTA CPU_DELTA REQUESTS
declare -A ROUND_RPS ROUND_P50 ROUND_P99 ROUND_OKRPS
CURRENT_LABEL=""
SCENARIO_T0=0
ROUND_CPU=""
record() { # NAME WRK_OUT
    local name=$1 out=$2 key="$1#$ROUND" requests sockerr
    requests=$(field "$out" requests)
    sockerr=$(($(field "$out" connect) + $(field "$out" read) + $(field "$out" write) + $(field "$out" timeout)))
    ROUND_RPS[$key]=$(field "$out" rps)
    ROUND_P50[$key]=$(field "$out" p50_us)
    ROUND_P99[$key]=$(field "$out" p99_us)
    RPS[$name]=${ROUND_RPS[$key]}
    REQUESTS[$name]=$((${REQUESTS[$name]:-0} + requests))
    NON2XX[$name]=$((${NON2XX[$name]:-0} + $(field "$out" non2xx)))
    SOCKERR[$name]=$((${SOCKERR[$name]:-0} + sockerr))
    ((${RSS_KB:-0} > ${RSS[$name]:-0})) && RSS[$name]=$RSS_KB
    ((${READY_MS:-0} > ${READY[$name]:-0})) && READY[$name]=$READY_MS
    local ok
    ok=$(field "$out" ok)
    if [ -n "$ok" ]; then
        ROUND_OKRPS[$key]=$(awk -v ok="$ok" -v s="$(field "$out" duration_s)" 'BEGIN { printf "%.2f", ok / s }')
    fi
    cp "$out" "$WORK/out/$name.wrk"
    log "  $name: $(printf '%.0f' "${ROUND_RPS[$key]}") req/s, p50 $(ms "${ROUND_P50[$key]}"), p99 $(ms "${ROUND_P99[$key]}"), non-2xx $(field "$out" non2xx), socket errors $sockerr, peak RSS $(mib "$RSS_KB"), ready ${READY_MS} ms$(
        [ "$name" = "$CURRENT_LABEL" ] && awk -v d="$ROUND_CPU" -v r="$requests" \
            'BEGIN { split(d, x, " "); if (r > 0 && d != "") printf ", CPU/request %.0f µs service + %.0f µs database", x[1] * 1000 / r, x[2] * 1000 / r }')"
}

# median NUMBER...: the middle value (mean of the two middle ones), empty
# for no numbers.
median() {
    [ $# -gt 0 ] || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rounds_of ARRAY NAME: NAME's figures of every round in which it ran.
rounds_of() {
    local -n values=$1
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        [ -n "${values[$2#$r]:-}" ] && echo "${values[$2#$r]}"
    done
}

# Sets the table's figures to the medians of the rounds.
summarise_rounds() {
    local name
    for name in "${!RPS[@]}"; do
        RPS[$name]=$(median $(rounds_of ROUND_RPS "$name"))
        P50[$name]=$(median $(rounds_of ROUND_P50 "$name"))
        P99[$name]=$(median $(rounds_of ROUND_P99 "$name"))
        [ -n "$(rounds_of ROUND_OKRPS "$name")" ] &&
            OKRPS[$name]=$(median $(rounds_of ROUND_OKRPS "$name") | awk '{ printf "%.2f", $1 }')
    done
    return 0
}

refresh() { "$SEED" refresh --url "$1" --tokens "$2"; }

MYSQL_TOKENS=$WORK/mysql/tokens.txt
STATUS_ENV=(BENCH_TOKENS_FILE="$MYSQL_TOKENS")
# All load comes from 127.0.0.1 against 100 accounts, so latchkey's per-IP and
# per-account login throttles (when the build has them) would answer 429 after
# a few attempts and the bcrypt path would never be measured. The login and
# flood scenarios therefore switch them off (a flood from many addresses);
# BENCH_LOGIN_THROTTLE=default keeps them.
LOGIN_SERVICE_ENV=(LATCHKEY_LOGIN_LIMIT_PER_ACCOUNT=0 LATCHKEY_LOGIN_LIMIT_PER_IP=0)
[ "${BENCH_LOGIN_THROTTLE:-off}" = default ] && LOGIN_SERVICE_ENV=()
LOGIN_ENV=(BENCH_EMAILS_FILE="$WORK/mysql/login_emails.txt" BENCH_PASSWORD_FILE="$WORK/mysql/password.txt")

# --- scenarios ----------------------------------------------------------------
# One round: every wanted scenario once. (Seeding the big table and timing
# bcrypt happen in the first round only.)
run_round() {
if wants baseline-read; then
    log "baseline-read: bare handler, one indexed SELECT by digest, $CONNECTIONS connections, ${DURATION} s"
    start_baseline baseline-read
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /read "${STATUS_ENV[@]}"
    stop_process
    record baseline-read "$WORK/wrk.out"
    # Diagnostic: the same handler with its queries run through web::block,
    # as actix's diesel example does, i.e. the usual way to write it.
    log "baseline-block: baseline-read with its queries on tokio's blocking pool (web::block)"
    start_baseline baseline-block BASELINE_DISPATCH=block
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /read "${STATUS_ENV[@]}"
    stop_process
    record baseline-block "$WORK/wrk.out"
fi

if wants baseline-write; then
    log "baseline-write: bare handler, SELECT + UPDATE last_updated_at"
    start_baseline baseline-write
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /write "${STATUS_ENV[@]}"
    stop_process
    record baseline-write "$WORK/wrk.out"
fi

if wants status; then
    log "status: GET /auth/status, default configuration"
    refresh "$MYSQL_URL" "$MYSQL_TOKENS"
    start_latchkey status "$MYSQL_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status "${STATUS_ENV[@]}"
    stop_process
    record status "$WORK/wrk.out"
fi

if wants verify; then
    log "verify: GET /auth/verify (forward authentication), default configuration"
    start_latchkey verify "$MYSQL_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/verify "${STATUS_ENV[@]}"
    stop_process
    record verify "$WORK/wrk.out"
fi

if wants postgres; then
    PG_STATUS_ENV=(BENCH_TOKENS_FILE="$WORK/postgres/tokens.txt")
    log "baseline-read-postgres: the bare handler on PostgreSQL"
    start_baseline baseline-read-postgres DATABASE_URL="$POSTGRES_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /read "${PG_STATUS_ENV[@]}"
    stop_process
    record baseline-read-postgres "$WORK/wrk.out"
    log "baseline-write-postgres: the bare handler on PostgreSQL, SELECT + UPDATE"
    start_baseline baseline-write-postgres DATABASE_URL="$POSTGRES_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /write "${PG_STATUS_ENV[@]}"
    stop_process
    record baseline-write-postgres "$WORK/wrk.out"
    log "status-postgres: GET /auth/status on PostgreSQL, default configuration"
    refresh "$POSTGRES_URL" "$WORK/postgres/tokens.txt"
    start_latchkey status-postgres "$POSTGRES_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status "${PG_STATUS_ENV[@]}"
    stop_process
    record status-postgres "$WORK/wrk.out"
    log "status-touch0-postgres: LATCHKEY_TOUCH_INTERVAL=0 on PostgreSQL"
    start_latchkey status-touch0-postgres "$POSTGRES_URL" LATCHKEY_TOUCH_INTERVAL=0
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status "${PG_STATUS_ENV[@]}"
    stop_process
    record status-touch0-postgres "$WORK/wrk.out"
fi

if wants status-touch0; then
    log "status-touch0: LATCHKEY_TOUCH_INTERVAL=0 (a write on every request)"
    start_latchkey status-touch0 "$MYSQL_URL" LATCHKEY_TOUCH_INTERVAL=0
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status "${STATUS_ENV[@]}"
    stop_process
    record status-touch0 "$WORK/wrk.out"
fi

if wants status-sqlite; then
    log "status-sqlite: the embedded SQLite database"
    refresh "$SQLITE_URL" "$WORK/sqlite/tokens.txt"
    start_latchkey status-sqlite "$SQLITE_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status BENCH_TOKENS_FILE="$WORK/sqlite/tokens.txt"
    stop_process
    record status-sqlite "$WORK/wrk.out"
fi

if ((ROUND == 1)) && { wants login || wants flood; }; then
    log "timing $BCRYPT_SAMPLES bcrypt verifications at cost 12 (latchkey's hasher, one at a time)"
    wait_for_quiet
    "$SEED" time-bcrypt --samples "$BCRYPT_SAMPLES" --out "$WORK/bcrypt.txt"
    kv() { awk -F= -v k="$2" '$1 == k { print $2 }' "$1"; }
    BCRYPT_MS=$(kv "$WORK/bcrypt.txt" bcrypt_ms)
    BCRYPT_CEILING=$(kv "$WORK/bcrypt.txt" ceiling)
    CORES=$(kv "$WORK/bcrypt.txt" cores)
fi

if wants login; then
    log "login: POST /auth/login, bcrypt cost 12, $LOGIN_CONNECTIONS connections"
    start_latchkey login "$MYSQL_URL" "${LOGIN_SERVICE_ENV[@]}"
    run_wrk "$WORK/wrk.out" "$LOGIN_CONNECTIONS" login.lua /auth/login "${LOGIN_ENV[@]}"
    stop_process
    record login "$WORK/wrk.out"
fi

if wants flood; then
    log "flood: $FLOOD_LOGIN_CONNECTIONS connections of logins while $FLOOD_CHECK_CONNECTIONS connections check tokens"
    refresh "$MYSQL_URL" "$MYSQL_TOKENS"
    start_latchkey flood "$MYSQL_URL" "${LOGIN_SERVICE_ENV[@]}"
    # The login flood starts first and outlasts the token checks by a second
    # on each side, so every measured check runs under the flood.
    run_wrk "$WORK/flood-login.out" "$FLOOD_LOGIN_CONNECTIONS" login.lua /auth/login \
        --seconds $((DURATION + 2)) "${LOGIN_ENV[@]}" &
    BG_PIDS+=($!)
    sleep 1
    # Single requests timed with curl during the flood: logins (are they
    # refused at once?) and, for reference, GET /healthz (no work at all).
    (
        sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 4 }')"
        body=$(printf '{"email":"%s","password":"%s"}' "$(head -n 1 "$WORK/mysql/login_emails.txt")" "$(head -n 1 "$WORK/mysql/password.txt")")
        for _ in $(seq 1 10); do
            curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "$body" \
                -w 'login %{http_code} %{time_total} %header{retry-after}\n' --max-time 5 "$BASE_URL/auth/login" || true
            curl -s -o /dev/null -w 'healthz %{http_code} %{time_total}\n' --max-time 5 "$BASE_URL/healthz" || true
            sleep 0.1
        done
    ) >"$WORK/out/flood-probe.txt" &
    BG_PIDS+=($!)
    # Where the CPU goes during the flood, per process (and the service's
    # bcrypt threads), sampled inside the check run.
    flood_cpu_split "$SERVER_PID" "$((DURATION > 4 ? DURATION - 3 : 1))" >"$WORK/out/flood-cpu.txt" &
    BG_PIDS+=($!)
    run_wrk "$WORK/flood-check.out" "$FLOOD_CHECK_CONNECTIONS" status.lua /auth/status "${STATUS_ENV[@]}"
    for pid in "${BG_PIDS[@]}"; do wait "$pid" || die "a flood process failed"; done
    BG_PIDS=()
    stop_process
    record flood-check "$WORK/flood-check.out"
    record flood-login "$WORK/flood-login.out"
fi

if wants scale; then
    # `scale` is `status` on a big table: the same number of tokens in use
    # (BENCH_SCALE_SAMPLE, default = the 1,000 of status), spread evenly over
    # the 1,000,000 rows. `scale-wide` (diagnostic) rotates over
    # BENCH_SCALE_WIDE_SAMPLE tokens, whose pages may not fit MariaDB's
    # buffer pool: it shows what a working set larger than the pool costs.
    WIDE=$((SCALE_WIDE_SAMPLE > SCALE_SAMPLE ? SCALE_WIDE_SAMPLE : SCALE_SAMPLE))
    if ((ROUND == 1)); then
        log "scale: seeding database $SCALE_DB_NAME like the first, then up to $SCALE_SESSIONS sessions (bulk inserts)"
        "$SEED" create-db --server "$MYSQL_SERVER" --name "$SCALE_DB_NAME"
        DBS_CREATED+=("$SCALE_DB_NAME")
        mkdir -p "$WORK/scale"
        "$SEED" seed --url "$SCALE_URL" --out "$WORK/scale" --users "$USERS" --login-users "$LOGIN_USERS"
        t0=$(date +%s)
        "$SEED" scale --url "$SCALE_URL" --total "$SCALE_SESSIONS" --sample "$WIDE" \
            --sample-out "$WORK/mysql/scale_wide_tokens.txt"
        SCALE_SEED_S=$(($(date +%s) - t0))
        awk -v n="$(wc -l <"$WORK/mysql/scale_wide_tokens.txt")" -v k="$SCALE_SAMPLE" \
            'BEGIN { step = int(n / k); if (step < 1) step = 1 } (NR - 1) % step == 0 && taken < k { print; taken++ }' \
            "$WORK/mysql/scale_wide_tokens.txt" >"$WORK/mysql/scale_tokens.txt"
        mysql_query "ANALYZE TABLE \`$SCALE_DB_NAME\`.authentication_tokens" >/dev/null
        SCALE_SIZES=$(mysql_query "SELECT CONCAT(ROUND((data_length + index_length) / 1048576), ' MiB (data + indexes) against an InnoDB buffer pool of ', ROUND(@@innodb_buffer_pool_size / 1048576), ' MiB') FROM information_schema.tables WHERE table_schema = '$SCALE_DB_NAME' AND table_name = 'authentication_tokens'")
    fi
    # Like status: the tokens in use were used just now (which also brings
    # their pages into the buffer pool, as use would).
    refresh "$SCALE_URL" "$WORK/mysql/scale_tokens.txt"
    start_latchkey scale "$SCALE_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status BENCH_TOKENS_FILE="$WORK/mysql/scale_tokens.txt"
    stop_process
    record scale "$WORK/wrk.out"
    # Diagnostic: the bare handler on the same table and tokens, to tell the
    # database's share of any slowdown from latchkey's.
    log "scale-baseline: baseline-read on the $SCALE_SESSIONS-row table and the same tokens"
    start_baseline scale-baseline DATABASE_URL="$SCALE_URL"
    run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /read BENCH_TOKENS_FILE="$WORK/mysql/scale_tokens.txt"
    stop_process
    record scale-baseline "$WORK/wrk.out"
    if ((SCALE_WIDE_SAMPLE > SCALE_SAMPLE)); then
        log "scale-wide: status on the big table, rotating over $WIDE tokens"
        refresh "$SCALE_URL" "$WORK/mysql/scale_wide_tokens.txt"
        start_latchkey scale-wide "$SCALE_URL"
        run_wrk "$WORK/wrk.out" "$CONNECTIONS" status.lua /auth/status BENCH_TOKENS_FILE="$WORK/mysql/scale_wide_tokens.txt"
        stop_process
        record scale-wide "$WORK/wrk.out"
    fi
fi
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    ((ROUNDS > 1)) && log "round $ROUND of $ROUNDS"
    run_round
done
summarise_rounds

# --- the table ------------------------------------------------------------------
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 >= b + 0) }'; }
# verdict CHECK ARGS…: "met" or "MISSED"; "n/a" when the first argument (a
# ratio) is empty because a scenario it needs did not run.
verdict() {
    if [ $# -ge 2 ] && [ -z "$2" ]; then
        echo "n/a"
    elif "$@"; then
        echo "met"
    else
        echo "**MISSED**"
    fi
}
has() { [ -n "${RPS[$1]:-}" ]; }

# paired ARRAY NAME BASE: NAME's figure over BASE's, in each round in which
# both ran (one per line).
paired() {
    local -n values=$1
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        [ -n "${values[$2#$r]:-}" ] && [ -n "${values[$3#$r]:-}" ] && div "${values[$2#$r]}" "${values[$3#$r]}" && echo
    done
}

ratio() { # NAME BASE → median over the rounds of the ratio of requests/s
    has "$1" && has "$2" && median $(paired ROUND_RPS "$1" "$2") | awk '{ printf "%.2f", $1 }'
}

# spread NAME BASE: " (rounds: 0.91, 0.88, 0.95)" when there were rounds.
spread() {
    ((ROUNDS > 1)) || return 0
    local list
    list=$(paired ROUND_RPS "$1" "$2" | paste -sd, - | sed 's/,/, /g')
    [ -n "$list" ] && echo " (rounds: $list)"
}

row() { # NAME RATIO_TEXT TARGET_TEXT
    local n=$1 non2xx=${NON2XX[$1]:-}
    [ "${SOCKERR[$n]:-0}" -gt 0 ] && non2xx="$non2xx (+${SOCKERR[$n]} socket errors/timeouts)"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$n" "$(printf '%.0f' "${RPS[$n]}")" "$(ms "${P50[$n]}")" "$(ms "${P99[$n]}")" "$non2xx" \
        "$(mib "${RSS[$n]}")" "$2" "$3" "${READY[$n]} ms"
}

report() {
    echo "| scenario | requests/s | p50 | p99 | non-2xx | peak RSS | ratio | target | ready |"
    echo "|---|---:|---:|---:|---:|---:|---|---|---:|"
    local r
    has baseline-read && row baseline-read "— (ceiling for status)" "—"
    if has baseline-block; then
        r=$(ratio baseline-block baseline-read)
        row baseline-block "diagnostic: ${r:-—} of baseline-read (queries through web::block)" "—"
    fi
    has baseline-write && row baseline-write "— (ceiling for status-touch0)" "—"
    if has status; then
        r=$(ratio status baseline-read)
        row status "${r:-—} status/baseline-read$(spread status baseline-read)" "≥ 0.85: $(verdict ge "$r" 0.85)"
    fi
    if has verify; then
        r=$(ratio verify status)
        row verify "${r:-—} verify/status$(spread verify status)" "≥ 0.95: $(verdict ge "$r" 0.95)"
    fi
    if has status-touch0; then
        r=$(ratio status-touch0 baseline-write)
        row status-touch0 "${r:-—} status-touch0/baseline-write$(spread status-touch0 baseline-write)" \
            "≥ 0.85, 0 non-2xx: $(verdict touch0_ok "$r")"
    fi
    if has status-postgres; then
        row baseline-read-postgres "— (ceiling for status-postgres)" "—"
        row baseline-write-postgres "— (ceiling for status-touch0-postgres)" "—"
        r=$(ratio status-postgres baseline-read-postgres)
        row status-postgres "${r:-—} status-postgres/baseline-read-postgres$(spread status-postgres baseline-read-postgres)" "≥ 1.50: $(verdict ge "$r" 1.5)"
        r=$(ratio status-touch0-postgres baseline-write-postgres)
        row status-touch0-postgres "${r:-—} status-touch0-postgres/baseline-write-postgres$(spread status-touch0-postgres baseline-write-postgres)" "≥ 0.85: $(verdict ge "$r" 0.85)"
    fi
    if has status-sqlite; then
        r=$(ratio status-sqlite status)
        row status-sqlite "${r:-—} status-sqlite/status$(spread status-sqlite status)" "≥ 1.00: $(verdict ge "$r" 1.0)"
    fi
    if has login; then
        r=$(div "${OKRPS[login]}" "$BCRYPT_CEILING")
        row login "$r login/bcrypt ceiling (${OKRPS[login]} ÷ $BCRYPT_CEILING logins/s)" \
            "≥ 0.90, 0 non-2xx: $(verdict login_ok "$r")"
    fi
    if has flood-check; then
        r=$(ratio flood-check status)
        local p99x=""
        has status && p99x=$(median $(paired ROUND_P99 flood-check status) | awk '{ printf "%.2f", $1 }')
        row flood-check "${r:-—} flood-check/status$(spread flood-check status); p99 ${p99x:-—}× status p99" \
            "≥ 0.50, p99 ≤ 4×, none fails: $(verdict flood_check_ok "$r" "$p99x")"
    fi
    if has flood-login; then
        local out=$WORK/out/flood-login.wrk
        local refused retry
        refused=$(($(field "$out" refused) + $(field "$out" throttled)))
        retry=$(($(field "$out" refused_retry_after) + $(field "$out" throttled_retry_after)))
        r=$(div "${OKRPS[flood-login]}" "$BCRYPT_CEILING")
        row flood-login "$r answered logins/bcrypt ceiling (${OKRPS[flood-login]}/s); $refused refused$( ((ROUNDS > 1)) && echo " in the last round")" \
            "refused at once (median < 100 ms) with Retry-After, no other errors: $(verdict flood_login_ok "$refused" "$retry")"
    fi
    if has scale; then
        r=$(ratio scale status)
        row scale "${r:-—} scale/status$(spread scale status)" "≥ 0.90: $(verdict ge "$r" 0.90)"
    fi
    if has scale-baseline; then
        r=$(ratio scale scale-baseline)
        local db_share
        db_share=$(ratio scale-baseline baseline-read)
        row scale-baseline "diagnostic: scale/scale-baseline ${r:-—} (baseline-read on the scale table; ${db_share:-—} of baseline-read)" "—"
    fi
    if has scale-wide; then
        r=$(ratio scale-wide status)
        row scale-wide "diagnostic: ${r:-—} scale-wide/status ($(wc -l <"$WORK/mysql/scale_wide_tokens.txt") tokens in use)" "—"
    fi
}

touch0_ok() { # RATIO
    ge "$1" 0.85 && [ "${NON2XX[status-touch0]}" = 0 ] && [ "${SOCKERR[status-touch0]}" = 0 ]
}
login_ok() { # RATIO
    ge "$1" 0.90 && [ "${NON2XX[login]}" = 0 ] && [ "${SOCKERR[login]}" = 0 ]
}
flood_check_ok() { # RATIO P99_RATIO
    ge "$1" 0.5 && [ -n "$2" ] && ! ge "$2" 4.0001 &&
        [ "${NON2XX[flood-check]}" = 0 ] && [ "${SOCKERR[flood-check]}" = 0 ]
}
# probe_median KIND STATUS_REGEX: median seconds of the curl probes.
probe_median() {
    awk -v kind="$1" -v re="$2" '$1 == kind && $2 ~ re { print $3 }' "$WORK/out/flood-probe.txt" |
        sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
# Logins were refused, every refusal carried Retry-After, and the refusals
# timed by curl during the flood came back within 100 ms (median).
# No login failed otherwise (no 500, no other 503).
flood_login_ok() { # REFUSED WITH_RETRY_AFTER (503 + 429)
    local median out=$WORK/out/flood-login.wrk
    median=$(probe_median login '^(503|429)$')
    [ "$1" -gt 0 ] && [ "$1" = "$2" ] && [ -n "$median" ] && ! ge "$median" 0.1 &&
        [ "$(field "$out" other)" = 0 ] && [ "$(field "$out" unavailable)" = 0 ]
}

notes() {
    local service_rss_max ready_list ready_max
    service_rss_max=$(for n in status verify status-touch0 status-sqlite status-postgres status-touch0-postgres login flood-check scale scale-wide; do
        [ -n "${RSS[$n]:-}" ] && echo "${RSS[$n]}"; done | sort -n | tail -n 1)
    ready_list=$(for n in status verify status-touch0 status-sqlite status-postgres status-touch0-postgres login flood-check scale scale-wide; do
        [ -n "${READY[$n]:-}" ] && printf '%s %s ms, ' "$n" "${READY[$n]}"; done)
    ready_max=$(for n in status verify status-touch0 status-sqlite status-postgres status-touch0-postgres login flood-check scale scale-wide; do
        [ -n "${READY[$n]:-}" ] && echo "${READY[$n]}"; done | sort -n | tail -n 1)
    echo
    [ -n "${BCRYPT_CEILING:-}" ] && echo "- bcrypt ceiling: $CORES cores ÷ ${BCRYPT_MS} ms per verification at cost 12 (median of $BCRYPT_SAMPLES, latchkey's hasher, measured in this run) = $BCRYPT_CEILING logins/s."
    if [ -n "$service_rss_max" ]; then
        echo "- latchkey peak RSS (VmHWM, per scenario, fresh process each): max $(mib "$service_rss_max") — target ≤ 64 MiB: $(verdict [ "$service_rss_max" -le 65536 ])."
    fi
    if [ -n "$ready_max" ]; then
        echo "- start → first 200 from /readyz on an already-migrated database: ${ready_list%, } — target ≤ 1 s: $(verdict [ "$ready_max" -le 1000 ])."
    fi
    if has flood-login; then
        local out=$WORK/out/flood-login.wrk
        echo "- flood logins: $(field "$out" requests) answers in $(field "$out" duration_s) s: $(field "$out" ok) × 200, $(field "$out" refused) × 503 \"too many password checks\" (of which $(field "$out" refused_retry_after) with Retry-After), $(field "$out" throttled) × 429 (of which $(field "$out" throttled_retry_after) with Retry-After), $(field "$out" unavailable) × other 503, $(field "$out" unauthorized) × 401, $(field "$out" other) other (statuses: $(field "$out" other_codes)); $(field "$out" timeout) timeouts (> ${WRK_TIMEOUT} s)."
        [ -s "$WORK/out/flood-cpu.txt" ] && echo "- cores used during the flood (of $(nproc); \"all\" = every process on the machine): $(cat "$WORK/out/flood-cpu.txt")."
        echo "- single requests timed with curl during the flood: login → $(awk '$1 == "login" { printf "%s%s in %.0f ms", sep, $2, $3 * 1000; sep = ", " }' "$WORK/out/flood-probe.txt") (median refusal $(awk -v s="$(probe_median login '^(503|429)$')" 'BEGIN { if (s == "") print "—"; else printf "%.0f ms", s * 1000 }')); GET /healthz for reference: median $(awk -v s="$(probe_median healthz '^200$')" 'BEGIN { if (s == "") print "—"; else printf "%.0f ms", s * 1000 }')."
    fi
    if has scale; then
        echo "- scale: $SCALE_SESSIONS sessions in the table (bulk-seeded in ${SCALE_SEED_S} s; the table is ${SCALE_SIZES:-of unknown size}), tokens rotated over $(wc -l <"$WORK/mysql/scale_tokens.txt") of them, spread evenly over the table (status rotates over $USERS); scale-wide over $(wc -l <"$WORK/mysql/scale_wide_tokens.txt")."
    fi
    local label busy=""
    for label in baseline-read baseline-write status verify status-touch0 status-sqlite baseline-read-postgres baseline-write-postgres status-postgres status-touch0-postgres login flood scale; do
        [ -n "${LOG_ERRORS[$label]:-}" ] && echo "- service log of $label: ${LOG_ERRORS[$label]}."
        [ "${COMPILING[$label]:-0}" -gt 0 ] && busy="$busy $label"
    done
    local per_request=""
    for label in baseline-read baseline-block baseline-write status verify status-touch0 baseline-read-postgres baseline-write-postgres status-postgres status-touch0-postgres login flood scale scale-baseline scale-wide; do
        [ -n "${DB_DELTA[$label]:-}" ] || continue
        local requests=${REQUESTS[$label]:-0}
        [ "$label" = flood ] && requests=$((${REQUESTS[flood-check]:-0} + ${REQUESTS[flood-login]:-0}))
        per_request="$per_request$(awk -v l="$label" -v d="${DB_DELTA[$label]}" -v r="$requests" 'BEGIN {
            split(d, x, " "); if (r == 0) exit
            printf "%s %.2f SELECT + %.2f UPDATE + %.2f INSERT + %.2f DELETE (%.2f PREPARE, %.2f buffer-pool misses); ", l, x[1] / r, x[2] / r, x[3] / r, x[4] / r, x[5] / r, x[6] / r }')"
    done
    local cpu=""
    for label in baseline-read baseline-block baseline-write status verify status-touch0 status-sqlite \
        baseline-read-postgres baseline-write-postgres status-postgres status-touch0-postgres login flood scale scale-baseline scale-wide; do
        [ -n "${CPU_DELTA[$label]:-}" ] || continue
        local requests=${REQUESTS[$label]:-0}
        [ "$label" = flood ] && requests=$((${REQUESTS[flood-check]:-0} + ${REQUESTS[flood-login]:-0}))
        cpu="$cpu$(awk -v l="$label" -v d="${CPU_DELTA[$label]}" -v r="$requests" 'BEGIN {
            split(d, x, " "); if (r == 0) exit
            printf "%s %.0f + %.0f µs; ", l, x[1] * 1000 / r, x[2] * 1000 / r }')"
    done
    [ -n "$cpu" ] && echo "- CPU time per HTTP request, service + database (MariaDB; PostgreSQL's processes for the *-postgres rows; from /proc, ready → stop; steadier than requests/s on a shared machine): ${cpu%; }."
    [ -n "$per_request" ] && echo "- MariaDB statements per HTTP request (server counters, whole process lifetime, requests = wrk's count): ${per_request%; }."
    [ -n "${LOG_VOLUME[status]:-}" ] && echo "- log volume at the default RUST_LOG=info (one line per request; of 503 answers, at most 10 lines a second): status wrote ${LOG_VOLUME[status]}${LOG_VOLUME[flood]:+, flood ${LOG_VOLUME[flood]}}."
    if [ -n "$busy" ]; then
        echo "- **other compilations ran on this machine during:$busy** — those rows are pessimistic."
    else
        echo "- no compiler processes of other users were seen during the scenarios (sampled every second)."
    fi
    echo "- status, verify, status-sqlite, flood and scale start with the rotated sessions used just now (bench-seed refresh), i.e. the steady state of the 60 s touch interval: reads only. baseline-* and status-touch0 write as their names say."
    echo "- wrk, MariaDB and the service share the same $(nproc) cores; wrk uses $THREADS threads. Durations: ${DURATION} s per scenario (flood logins $((DURATION + 2)) s around the ${DURATION} s of checks)."
    if ((ROUNDS > 1)); then
        echo "- $ROUNDS rounds, one after another, each running every scenario once: requests/s, p50 and p99 are the medians of the rounds, every ratio the median of the rounds' ratios (each taken within one round), non-2xx counts and CPU per request cover all rounds, peak RSS and ready times are the maxima. The flood-login row and the flood details above (refusals, cores, curl probes) are the last round's; the login row's logins/s is the median."
    fi
}

TABLE=$(report)
NOTES=$(notes)
ELAPSED=$(($(date +%s) - RUN_STARTED))
echo
echo "$TABLE"
echo "$NOTES"
echo
echo "Total run time: $((ELAPSED / 60)) min $((ELAPSED % 60)) s."

if [ "$WRITE_RESULTS" = 1 ]; then
    commit=$(git rev-parse --short HEAD)
    [ -n "$(git status --porcelain)" ] && commit="$commit (with uncommitted changes in the working tree)"
    mariadb_version=$(mysql_query 'SELECT VERSION()')
    {
        echo "# latchkey load benchmark — results"
        echo
        echo "Produced by \`bench/run.sh\` (see bench/README.md). Re-run to refresh."
        echo
        echo "- machine: $(nproc) cores (\`nproc\`), $(lscpu | awk -F: '/^Model name/ { gsub(/^[ \t]+/, "", $2); print $2; exit }'), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)"
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); git commit $commit"
        echo "- MariaDB ${mariadb_version:-(version unknown)} on 127.0.0.1 (server defaults); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2); load average before the run: $LOAD_BEFORE"
        echo "- settings: BENCH_DURATION=$DURATION BENCH_ROUNDS=$ROUNDS BENCH_CONNECTIONS=$CONNECTIONS BENCH_THREADS=$THREADS BENCH_LOGIN_CONNECTIONS=$LOGIN_CONNECTIONS BENCH_FLOOD_LOGIN_CONNECTIONS=$FLOOD_LOGIN_CONNECTIONS BENCH_FLOOD_CHECK_CONNECTIONS=$FLOOD_CHECK_CONNECTIONS BENCH_SCALE_SESSIONS=$SCALE_SESSIONS BENCH_SCALE_SAMPLE=$SCALE_SAMPLE BENCH_SCALE_WIDE_SAMPLE=$SCALE_WIDE_SAMPLE${BENCH_SERVICE_ENV:+ BENCH_SERVICE_ENV=\"$BENCH_SERVICE_ENV\"}"
        echo "- total run time (build, seeding, all scenarios): $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
        echo
        echo "$TABLE"
        echo "$NOTES"
        echo
        echo "<details><summary>wrk output per scenario$( ((ROUNDS > 1)) && echo " (last round)")</summary>"
        echo
        for f in "$WORK"/out/*.wrk; do
            echo "### $(basename "$f" .wrk)"
            echo
            echo '```'
            cat "$f"
            echo '```'
            echo
        done
        echo "</details>"
    } >"$BENCH_DIR/RESULTS.md"
    log "wrote bench/RESULTS.md"
fi
