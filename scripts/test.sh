#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the black-box HTTP
# and CLI tests on MariaDB and SQLite (each test on its own fresh database).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/ensure-mariadb.sh

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
