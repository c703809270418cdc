# shellcheck shell=bash disable=SC2154  # $repo, $work and the rest come from scripts/test-docker
# scripts/test-docker's stage `compose` (sourced by it): docker/compose.yaml run as the
# README's "Docker" section says, in a scratch copy of docker/. Uses tests/docker/lib.sh.

stage_compose() {
  docker image inspect hookvault:latest >/dev/null 2>&1 || fail "no hookvault:latest (stage image)"
  compose_dir=$work/docker
  mkdir -p "$compose_dir"
  cp docker/compose.yaml docker/hookvault.toml "$compose_dir/"
  (cd "$compose_dir" && COMPOSE_PROJECT_NAME=$project HOOKVAULT_PUBLISH=127.0.0.1: compose_flow)
}

compose_flow() {
  local signer_file=$repo/tests/docker/compose.signer.yaml
  # Leftovers of an interrupted run.
  compose -f compose.yaml -f "$signer_file" down -v --remove-orphans >/dev/null 2>&1 || true

  log "compose: the README's steps"
  mkdir -p config secrets offline && cp hookvault.toml config/
  chown 10001:10001 config offline
  ( umask 077
    printf '%s' "dyn_$(random_secret)" >secrets/dynamic_webhook_secret
    printf '%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >secrets/nodit_signing_key )
  chown -R 10001:10001 secrets
  compose --profile init run --rm init >"$work/init.log" 2>&1 || { cat "$work/init.log"; fail "init"; }
  grep -q "kept existing hookvault.toml" "$work/init.log" || { cat "$work/init.log"; fail "init replaced hookvault.toml"; }
  grep -q "BEGIN PUBLIC KEY" "$work/init.log" || fail "init did not print the RSA public key"
  compose up -d 2>&1
  local id
  id=$(compose ps -q hookvault)
  [ -n "$id" ] || fail "no hookvault container"

  log "compose: healthy through the image's HEALTHCHECK"
  health() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ]; }
  if ! eventually 180 health; then
    docker inspect -f '{{json .State.Health}}' "$id"; compose logs hookvault | tail -n 30
    fail "the container did not become healthy"
  fi
  docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$id" | grep -v '^$' | tail -n 1

  log "compose: non-root, read-only root, no capabilities"
  local pid
  pid=$(docker inspect -f '{{.State.Pid}}' "$id")
  check_status 10001 "/proc/$pid/status" || fail "the daemon's credentials in the container"
  awk '$5 == "/" { split($6, o, ","); if (o[1] != "ro") exit 1; found = 1 } END { exit !found }' \
    "/proc/$pid/mountinfo" || fail "the container's root is not read-only"
  if out=$(docker exec -u 0 "$id" touch /etc/hookvault-write-test 2>&1); then
    fail "root could write to the container's root filesystem"
  fi
  grep -q "Read-only file system" <<<"$out" || fail "writing to the root: $out"
  echo "uid 10001, no capabilities, no_new_privs, read-only root ($out)"

  log "compose: a signed Dynamic delegation from the host"
  local port url ca=config/tls/cert.pem wallet
  port=$(compose port hookvault 8443 | sed 's/.*://')
  url=https://127.0.0.1:$port/webhooks/dynamic
  wallet=$(cat /proc/sys/kernel/random/uuid)
  local sig
  sig=$(signed_delegation config/keys/dynamic_rsa.pub.pem secrets/dynamic_webhook_secret "$wallet" "$work/delegation.json")
  code=$(post "$url" "$ca" "$sig" "$work/delegation.json" "$work/answer")
  [ "$code" = 200 ] || { cat "$work/answer"; fail "signed delegation: $code"; }
  grep -q '"status":"accepted"' "$work/answer" && grep -q '"materials":"stored"' "$work/answer" ||
    fail "delegation answer: $(cat "$work/answer")"
  echo "signed delegation: 200 $(cat "$work/answer")"
  code=$(post "$url" "$ca" "sha256=$(printf '%064d' 0)" "$work/delegation.json" "$work/answer")
  [ "$code" = 401 ] || fail "a wrong signature got $code"

  log "compose: a signer container fetches the materials over mutual TLS"
  mkdir -p signer
  [ -e config/tls/admin-ca.key ] && fail "init left the admin CA's key in the daemon's config"
  cp config/tls/admin-ca.pem offline/signer-cert.pem offline/signer-key.pem signer/
  chown -R 10002:10002 signer && chmod 0700 signer && chmod 0600 signer/signer-key.pem
  # The admin certificate `init` makes names localhost: the signer checks that name while
  # connecting to the service `hookvault` on the compose network.
  signer_get() {
    compose -f compose.yaml -f "$signer_file" --profile test run --rm -T signer \
      curl -sS --cacert /signer/admin-ca.pem --connect-to localhost:9443:hookvault:9443 \
      -w '\n%{http_code}' "$@" "https://localhost:9443/v1/materials/$wallet?source=dynamic" 2>/dev/null
  }
  signer_get --cert /signer/signer-cert.pem --key /signer/signer-key.pem >"$work/signer.out" ||
    fail "the signer container could not reach hookvault: $(tail -n 1 "$work/signer.out")"
  [ "$(tail -n 1 "$work/signer.out")" = 200 ] || fail "signer: HTTP $(tail -n 1 "$work/signer.out")"
  head -n 1 "$work/signer.out" >"$work/materials.json"
  check_materials "$work/materials.json" "$wallet"
  echo "signer: 200, the delegation's materials"
  signer_get >"$work/signer.out" || true
  [ "$(tail -n 1 "$work/signer.out")" = 401 ] || fail "without a client certificate: $(cat "$work/signer.out")"
  echo "signer without a certificate: 401"

  log "compose: stop drains a request in flight and exits 0"
  local ping_sig
  ping_sig=$(signed_ping secrets/dynamic_webhook_secret "$work/ping.json")
  start_inflight "$url" "$ca" "$ping_sig" "$work/ping.json"
  compose stop hookvault >"$work/stop.log" 2>&1 &
  local stop_pid=$!
  container_draining() { docker logs "$id" 2>&1 | grep -qF '"msg":"draining"'; }
  eventually 30 container_draining || fail "no draining in the log"
  finish_inflight
  wait "$stop_pid" || { cat "$work/stop.log"; fail "compose stop"; }
  local exit_code
  exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
  [ "$exit_code" = 0 ] || { docker logs "$id" 2>&1 | tail -n 20; fail "the daemon exited $exit_code"; }
  docker logs "$id" 2>&1 | grep -q '"msg":"stopped"' || fail "no stopped in the log"
  echo "stopped: exit 0"

  log "compose: down and up keep the store (volume)"
  # The container's anonymous volumes (the image's VOLUME /run/secrets) outlive `down`:
  # removed at the end.
  docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}' "$id" |
    grep -vx "${project}_hookvault-state" >>"$work/anonymous-volumes" || true
  compose down 2>&1
  compose up -d 2>&1
  port=$(compose port hookvault 8443 | sed 's/.*://')
  url=https://127.0.0.1:$port/webhooks/dynamic
  eventually 120 curl -sf --cacert "$ca" "https://127.0.0.1:$port/readyz" -o /dev/null ||
    { compose logs hookvault | tail -n 20; fail "no /readyz after up"; }
  code=$(post "$url" "$ca" "$sig" "$work/delegation.json" "$work/answer")
  [ "$code" = 200 ] && grep -q '"status":"duplicate"' "$work/answer" ||
    fail "the delegation again after down/up: $code $(cat "$work/answer")"
  code=$(post "$url" "$ca" "$ping_sig" "$work/ping.json" "$work/answer")
  [ "$code" = 200 ] && grep -q '"status":"duplicate"' "$work/answer" ||
    fail "the in-flight delivery is not stored: $code $(cat "$work/answer")"
  signer_get --cert /signer/signer-cert.pem --key /signer/signer-key.pem >"$work/signer.out" || true
  [ "$(tail -n 1 "$work/signer.out")" = 200 ] || fail "materials after down/up: $(tail -n 1 "$work/signer.out")"
  head -n 1 "$work/signer.out" >"$work/materials.json"
  check_materials "$work/materials.json" "$wallet"
  echo "after down/up: both deliveries are duplicates, the materials are there"

  log "compose: the logs hold no secret"
  compose logs --no-color hookvault >"$work/compose.log" 2>&1
  local s
  for s in "$(cat secrets/dynamic_webhook_secret)" "$(cat secrets/nodit_signing_key)" "$share" "$api_key"; do
    if grep -qF -- "$s" "$work/compose.log"; then fail "a secret is in the container's log"; fi
  done
  compose down -v 2>&1
  echo "compose ok"
}
