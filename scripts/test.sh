#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the black-box HTTP
# and CLI tests on MariaDB, PostgreSQL and SQLite (each test on its own fresh
# database), behind a real nginx; the client crate's and the bookstore's
# tests against a real latchkey.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --test
scripts/ensure-mariadb.sh
scripts/ensure-postgres.sh

cargo fmt --all -- --check
# The workspace: latchkey, the client crate (with and without its actix
# feature) and the bookstore example.
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
cargo clippy --locked -p latchkey-client --all-targets -- -D warnings
cargo test --locked --workspace --all-features
