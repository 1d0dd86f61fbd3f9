#!/usr/bin/env bash
# Makes sure a MariaDB server answers on 127.0.0.1:3306 for the tests:
# installs it if absent, starts it if stopped, then waits until it answers.
# It never creates or drops any database itself.
set -euo pipefail

host=127.0.0.1
answers() { mysqladmin --protocol=TCP -h "$host" -u root ping >/dev/null 2>&1; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! command -v mysqladmin >/dev/null 2>&1 || [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server" >&2
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q mariadb-server mariadb-client
fi

if ! answers; then
    echo "starting MariaDB" >&2
    $sudo mkdir -p /run/mysqld
    $sudo chown mysql:mysql /run/mysqld 2>/dev/null || true
    $sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 1 60); do
        answers && break
        sleep 1
    done
fi

if ! answers; then
    echo "error: MariaDB does not answer on $host:3306 (user root, empty password)" >&2
    exit 1
fi
