#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time (default 600 s each):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Installs cargo-fuzz from crates.io if missing. cargo-fuzz needs nightly
# compiler flags (-Z sanitizer); on a stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them. Crashes land in fuzz/artifacts/<target>/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-600}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(authorization_header token_decoder request_body)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
scripts/install-deps.sh

export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s" >&2
    cargo fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 2>&1 | tail -n 20
done
