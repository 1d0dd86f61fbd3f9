#!/usr/bin/env bash
# Builds and starts latchkey. With no DATABASE_URL it uses the embedded
# SQLite database ./latchkey.sqlite3; extra arguments go to `latchkey`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
exec cargo run --locked --release -- "$@"
