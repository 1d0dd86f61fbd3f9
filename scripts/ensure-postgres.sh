#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the tests
# (user postgres, trust authentication over TCP from 127.0.0.1): starts the
# installed cluster if it is stopped, or installs one if there is none. A
# cluster this script did not install is started, never reconfigured. It
# never creates or drops a database itself.
set -euo pipefail

host=127.0.0.1
answers() { pg_isready -q -h "$host" -p 5432 2>/dev/null && psql -h "$host" -U postgres -d postgres -Atc 'SELECT 1' >/dev/null 2>&1; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
installed_here=0
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "installing postgresql" >&2
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q postgresql postgresql-client
    installed_here=1
fi

version=$(ls /etc/postgresql | sort -V | tail -1)
if [ "$installed_here" = 1 ]; then
    # Our own fresh cluster: let the tests in from loopback without a password.
    hba=/etc/postgresql/$version/main/pg_hba.conf
    $sudo sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
    $sudo sed -i -E 's/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
fi

if ! answers; then
    echo "starting PostgreSQL $version" >&2
    $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    [ "$installed_here" = 1 ] && $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
    for _ in $(seq 1 60); do
        answers && break
        sleep 1
    done
fi

if ! answers; then
    echo "error: PostgreSQL does not answer on $host:5432 (user postgres, no password)" >&2
    exit 1
fi
