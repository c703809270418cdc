# shellcheck shell=bash disable=SC2154  # $repo, $work and the rest come from scripts/test-docker
# Helpers for scripts/test-docker's stages (sourced by it): polling, /proc checks, and
# signed deliveries. Uses $repo and $work, and fail() and log(), from scripts/test-docker.

# Polls `$@` every half second until it succeeds or `limit` seconds pass.
eventually() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.5
  done
}

# /proc/PID/status (FILE) of a process that runs as UID with no capability at all and
# no_new_privs; prints what is not so.
check_status() {
  awk -v uid="$1" '
    /^Uid:/ { if ($2 != uid || $3 != uid) { print "Uid " $2 " " $3; bad = 1 } }
    /^(CapInh|CapPrm|CapEff|CapBnd|CapAmb):/ {
      if ($2 != "0000000000000000") { print $1 " " $2; bad = 1 } }
    /^NoNewPrivs:/ { if ($2 != 1) { print "NoNewPrivs " $2; bad = 1 } }
    END { exit bad }' "$2"
}

# A wallet.delegation.created event for WALLET, encrypted to PUBKEY_PEM and signed with
# the secret in SECRET_FILE by examples/signer-node's test helper (as Dynamic builds it):
# the body goes to BODY_FILE, `sha256=<hex>` to stdout. The share and the API key are the
# fixed test values below.
share=hookvault-docker-test-share
api_key=hookvault-docker-test-api-key
signed_delegation() {
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    const [helper, pubFile, secretFile, walletId, share, walletApiKey, out] = process.argv.slice(1);
    const { delegationCreatedEvent, signedDelivery } = await import(helper);
    const event = delegationCreatedEvent({ publicKeyPem: readFileSync(pubFile, "utf8"), walletId,
      userId: "docker-test-user", share, walletApiKey });
    const delivery = signedDelivery(event, readFileSync(secretFile, "utf8"));
    writeFileSync(out, delivery.body);
    console.log(delivery.headers["x-dynamic-signature-256"]);
  ' "$repo/examples/signer-node/test/helpers/dynamic-webhook.js" "$1" "$2" "$3" "$share" \
    "$api_key" "$4"
}

# A Dynamic ping with a fresh event id into BODY_FILE, signed with SECRET_FILE's text.
signed_ping() {
  local secret_file=$1 body_file=$2
  printf '{"messageId":"%s","eventId":"%s","eventName":"ping","timestamp":"2026-01-01T00:00:00.000Z","data":{}}' \
    "$(cat /proc/sys/kernel/random/uuid)" "$(cat /proc/sys/kernel/random/uuid)" >"$body_file"
  echo "sha256=$(openssl dgst -sha256 -hmac "$(cat "$secret_file")" -r <"$body_file" | cut -d' ' -f1)"
}

# POSTs BODY_FILE to URL with SIGNATURE, trusting CAFILE; prints the status code, the answer
# goes to ANSWER_FILE.
post() {
  local url=$1 cafile=$2 signature=$3 body_file=$4 answer_file=$5
  curl -s --cacert "$cafile" -o "$answer_file" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "x-dynamic-signature-256: $signature" --data-binary "@$body_file" "$url" || true
}

# Expects the materials JSON in FILE to be WALLET's test materials (without printing them).
check_materials() {
  python3 - "$1" "$2" "$share" "$api_key" <<'PY' || fail "materials do not match the delivery"
import json, sys
path, wallet, share, api_key = sys.argv[1:]
m = json.load(open(path))
bad = [k for k, v in (("walletId", wallet), ("delegatedShare", share), ("walletApiKey", api_key))
       if m.get(k) != v]
if bad:
    print("wrong fields: " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}

# Starts a delivery that stays in flight until GO is touched (tests/docker/inflight_post.py);
# returns once its head and half its body are sent. Its answer goes to $work/inflight.out.
inflight_pid=
start_inflight() {
  local url=$1 cafile=$2 signature=$3 body_file=$4
  rm -f "$work/inflight.ready" "$work/inflight.go"
  "$repo/tests/docker/inflight_post.py" "$url" "$cafile" "$signature" "$body_file" "$work/inflight.ready" \
    "$work/inflight.go" >"$work/inflight.out" 2>&1 &
  inflight_pid=$!
  eventually 30 test -e "$work/inflight.ready" || { cat "$work/inflight.out"; fail "in-flight delivery did not start"; }
}
finish_inflight() {
  touch "$work/inflight.go"
  wait "$inflight_pid" || { cat "$work/inflight.out"; fail "the in-flight delivery got no answer"; }
  read -r code answer <"$work/inflight.out"
  [ "$code" = 200 ] || fail "the in-flight delivery got $code $answer"
  echo "in-flight delivery during the stop: $code $answer"
}

random_secret() { head -c 24 /dev/urandom | base64 | tr '+/' '-_'; }

