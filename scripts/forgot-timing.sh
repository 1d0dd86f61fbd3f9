#!/usr/bin/env bash
# Prints the median answer time of POST /auth/password/forgot for an email
# that has an account and for one that does not (30 requests each,
# alternating), against a running latchkey. A timing check belongs here, not
# in the test suite's assertions.
#
#   scripts/forgot-timing.sh alice@example.com [http://127.0.0.1:8080] [30]
#
# Run it with the recovery throttle off for the run
# (LATCHKEY_RECOVERY_LIMIT_PER_EMAIL=0 LATCHKEY_RECOVERY_LIMIT_PER_IP=0), or
# the later requests measure 429 answers.
set -euo pipefail

known=${1:?usage: $0 EXISTING_EMAIL [BASE_URL] [COUNT]}
base=${2:-http://127.0.0.1:8080}
count=${3:-30}
unknown="nobody-$RANDOM$RANDOM@example.invalid"

time_one() {
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
        -H 'Content-Type: application/json' \
        -d "{\"email\": \"$1\"}" "$base/auth/password/forgot"
}

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

known_times=()
unknown_times=()
for _ in $(seq 1 "$count"); do
    read -r status t < <(time_one "$known")
    [ "$status" = 202 ] || { echo "error: got $status for the known email" >&2; exit 1; }
    known_times+=("$t")
    read -r status t < <(time_one "$unknown")
    [ "$status" = 202 ] || { echo "error: got $status for the unknown email" >&2; exit 1; }
    unknown_times+=("$t")
done
k=$(printf '%s\n' "${known_times[@]}" | median)
u=$(printf '%s\n' "${unknown_times[@]}" | median)
awk -v k="$k" -v u="$u" -v n="$count" 'BEGIN {
    printf "existing account: median %.2f ms over %d\n", k * 1000, n
    printf "no such account:  median %.2f ms over %d\n", u * 1000, n
}'
