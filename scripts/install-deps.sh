#!/usr/bin/env bash
# Installs the system packages latchkey needs to build, if they are
# missing: the MySQL/MariaDB and PostgreSQL client libraries (diesel links
# them) and pkg-config. With --test, also the servers the tests start
# themselves: nginx (the forward-authentication tests), galera-4 and rsync
# (a three-node Galera cluster) and haproxy (in front of that cluster).
# SQLite is compiled in (libsqlite3-sys "bundled"), so it needs nothing.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed; install a Rust toolchain (1.88 or newer) first" >&2
    exit 1
fi

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists libmariadb 2>/dev/null && ! pkg-config --exists mysqlclient 2>/dev/null; then
    missing+=(libmariadb-dev)
fi
pkg-config --exists libpq 2>/dev/null || missing+=(libpq-dev)
if [ "${1:-}" = "--test" ]; then
    # nginx: the forward-authentication tests run latchkey behind a real one.
    [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    # A three-node Galera cluster (galera-4, with rsync for its state transfers;
    # mariadb-server comes from ensure-mariadb.sh) for the cluster tests.
    [ -f /usr/lib/galera/libgalera_smm.so ] || missing+=(galera-4)
    command -v rsync >/dev/null 2>&1 || missing+=(rsync)
    # HAProxy, which the cluster tests put in front of the Galera nodes.
    [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi
