#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API against its own OpenAPI document
# (Schemathesis, from PyPI): every answer must be one the document declares,
# with the declared content type and schema, and never a 500. Runs a fresh
# latchkey on a temporary SQLite file, once anonymously and once with an
# admin's token, and exits non-zero on any failure.
#
#   scripts/openapi-fuzz.sh            # 100 examples per operation and phase
#   FUZZ_EXAMPLES=20 scripts/openapi-fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${FUZZ_EXAMPLES:-100}
venv=${FUZZ_VENV:-${TMPDIR:-/tmp}/latchkey-schemathesis}
if [ ! -x "$venv/bin/schemathesis" ]; then
    echo "installing schemathesis into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi

cargo build --locked --bin latchkey >&2
bin=target/debug/latchkey
work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="sqlite://$work/fuzz.sqlite3"
export LATCHKEY_BCRYPT_COST=10
admin_email=fuzz-admin@example.com
admin_password='a long fuzzing admin passphrase'
echo "$admin_password" | "$bin" user create --email "$admin_email" --admin --password-stdin >&2

# No throttles: the fuzzer would only meet 429s (which are declared). A
# webhook nobody answers, so that the routes that send a message answer as
# in production (messages wait in the outbox) instead of 503.
LATCHKEY_BIND=127.0.0.1:$port \
LATCHKEY_LOGIN_LIMIT_PER_ACCOUNT=0 LATCHKEY_LOGIN_LIMIT_PER_IP=0 \
LATCHKEY_REGISTER_LIMIT_PER_IP=0 LATCHKEY_RECOVERY_LIMIT_PER_EMAIL=0 \
LATCHKEY_RECOVERY_LIMIT_PER_IP=0 RUST_LOG=warn \
LATCHKEY_WEBHOOK_URL=http://127.0.0.1:9/unreachable \
LATCHKEY_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
    "$bin" serve > "$work/server.log" 2>&1 &
server=$!
base=http://127.0.0.1:$port
for _ in $(seq 1 100); do
    curl -sf "$base/healthz" > /dev/null && break
    sleep 0.1
done

token=$(curl -sf "$base/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$admin_email\", \"password\": \"$admin_password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# The checks that hold the answers to the document. Left out:
# positive_data_acceptance (a body the schema allows can still break a
# rule the schema cannot say, e.g. a password that is too easy to guess:
# 422 is declared), use_after_free/ensure_resource_availability (the
# fuzzer's own DELETEs end the sessions it uses) and ignored_auth (the
# admin's session may be ended by a fuzzed logout, then 401 is right).
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,missing_required_header,unsupported_method
status=0
run() {
    "$venv/bin/schemathesis" run "$base/openapi.json" --checks "$checks" \
        --max-examples "$examples" --workers 1 --seed 42 \
        --suppress-health-check all "$@" || status=1
}
echo "== anonymous ==" >&2
run
echo "== as an admin ==" >&2
# Not the routes that end the admin's own session or account: the rest of
# the run would only see 401s.
run -H "Authorization: Bearer $token" \
    --exclude-path /auth/logout --exclude-path /auth/logout-all \
    --exclude-path /auth/account --exclude-path /auth/password \
    --exclude-path-regex '^/auth/sessions/' \
    --exclude-path-regex '^/admin/users/[^/]+(/sessions)?$'
# latchkey's own errors (a 500 is logged as one); actix-web's notes about
# requests it could not even parse are not.
if grep -q 'ERROR latchkey' "$work/server.log"; then
    echo "latchkey logged errors:" >&2
    grep 'ERROR latchkey' "$work/server.log" >&2
    status=1
fi
exit $status
