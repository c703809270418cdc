# shellcheck shell=bash disable=SC2154  # $repo, $work and the rest come from scripts/test-docker
# scripts/test-docker's stage `ha` (sourced by it): docker/compose.ha.yaml run as the README's
# "Several instances (PostgreSQL + HAProxy) in Docker" says, in a scratch copy of docker/:
# PostgreSQL primary + synchronous standby, two hookvault instances, HAProxy in front. Signed
# deliveries through HAProxy while one instance is killed; every delivery that got a 200 is
# stored exactly once. Uses tests/docker/lib.sh.

ha_project=hookvault-test-ha    # compose project name
ha_files=(compose.ha.yaml hookvault.ha.toml haproxy.cfg postgres.Dockerfile postgres-entrypoint.sh
  haproxy.Dockerfile)

ha_compose() { compose -f compose.ha.yaml "$@"; }

# The scratch copy of docker/, and the README's `build` of the PostgreSQL and HAProxy images
# there, in the background while other stages run (scripts/test-docker waits for it).
build_ha_images() {
  ha_dir=$work/docker-ha
  mkdir -p "$ha_dir"
  local f
  for f in "${ha_files[@]}"; do cp "docker/$f" "$ha_dir/"; done
  (cd "$ha_dir" && COMPOSE_PROJECT_NAME=$ha_project ha_compose build) >"$work/image-ha.log" 2>&1 &
  test_image_pids+=("$!:ha")
}

stage_ha() {
  docker image inspect hookvault:latest >/dev/null 2>&1 || fail "no hookvault:latest (stage image)"
  [ -n "$ha_dir" ] || fail "the ha images were not built"
  # The images these replaced (a changed Dockerfile or entrypoint), about 370 MB for PostgreSQL.
  local t
  for t in hookvault-postgres hookvault-haproxy; do
    docker images -q -f dangling=true -f "label=org.opencontainers.image.title=$t" |
      xargs -r docker rmi >/dev/null 2>&1 || true
  done
  local start=$SECONDS
  (cd "$ha_dir" && COMPOSE_PROJECT_NAME=$ha_project HOOKVAULT_PUBLISH=127.0.0.1: \
    HOOKVAULT_STATS_PUBLISH=127.0.0.1: ha_flow)
  log "ha: passed in $((SECONDS - start)) s (the images built beforehand)"
}

# hookvault1=UP hookvault2=UP, as HAProxy's statistics say.
ha_servers() {
  curl -s "http://$stats/;csv" |
    awk -F, '$1 == "hookvault" && $2 ~ /^hookvault[12]$/ { printf "%s=%s ", $2, $18 }'
}
ha_both_up() { [ "$(ha_servers)" = "hookvault1=UP hookvault2=UP " ]; }
ha_wait_both_up() {
  if ! eventually "$1" ha_both_up; then
    echo "HAProxy: $(ha_servers)"; ha_compose ps; ha_compose logs --no-color | tail -n 40
    fail "HAProxy does not see both instances up"
  fi
}

# A psql query as the superuser in the PostgreSQL container SERVICE (peer authentication on
# the container's socket; nothing reaches it from the host).
ha_psql() { ha_compose exec -T -u postgres "$1" psql -X -h /tmp -d hookvault -Atc "$2"; }

# Requests the instance in container ID answered 200 on the public webhook path.
ha_served() { docker logs "$1" 2>&1 | grep -F '"path":"/webhooks/dynamic"' | grep -c '"status":200' || true; }

ha_flow() {
  local stats
  # Leftovers of an interrupted run.
  ha_compose down -v --remove-orphans >/dev/null 2>&1 || true

  log "ha: the README's steps"
  mkdir -p config secrets offline && cp hookvault.ha.toml config/hookvault.toml
  chown 10001:10001 config offline
  ( umask 077
    printf '%s' "dyn_$(random_secret)" >secrets/dynamic_webhook_secret
    printf '%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >secrets/nodit_signing_key
    head -c 24 /dev/urandom | base64 | tr -d '\n' >secrets/pg_password
    head -c 24 /dev/urandom | base64 | tr -d '\n' >secrets/pg_replication_password )
  chown -R 10001:10001 secrets
  ha_compose --profile init run --rm init >"$work/ha-init.log" 2>&1 || { cat "$work/ha-init.log"; fail "init"; }
  grep -q "kept existing hookvault.toml" "$work/ha-init.log" || { cat "$work/ha-init.log"; fail "init replaced hookvault.toml"; }
  # `build` ran in the background beforehand (build_ha_images); `up` finds the images.
  ha_compose up -d 2>&1
  stats=$(ha_compose port haproxy 8404)
  local port ca=config/tls/cert.pem url
  port=$(ha_compose port haproxy 8443 | sed 's/.*://')
  url=https://127.0.0.1:$port/webhooks/dynamic

  log "ha: HAProxy sees both instances up (GET /readyz over TLS)"
  ha_wait_both_up 240
  echo "HAProxy: $(ha_servers)"
  local repl
  repl=$(ha_psql db1 "SELECT application_name || ' ' || sync_state FROM pg_stat_replication")
  [ "$repl" = "db2 sync" ] || fail "db2 is not db1's synchronous standby: '$repl'"
  echo "db1 replicates to: $repl"

  log "ha: non-root, no capabilities, read-only roots"
  local service id pid pg_uid ha_uid
  for service in hookvault1 hookvault2 haproxy db1 db2; do
    id=$(ha_compose ps -q "$service")
    pid=$(docker inspect -f '{{.State.Pid}}' "$id")
    [ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$id")" = true ] || fail "$service: root is writable"
    case $service in
      hookvault*) check_status 10001 "/proc/$pid/status" || fail "$service: the daemon's credentials" ;;
      haproxy)
        ha_uid=$(docker exec "$id" id -u)
        check_status "$ha_uid" "/proc/$pid/status" || fail "haproxy's credentials" ;;
      db*)
        # The server runs as postgres with no capability (its bounding set keeps the three the
        # entrypoint used, which no process can regain: no_new_privs, no setuid file).
        pg_uid=$(docker exec "$id" id -u postgres)
        awk -v uid="$pg_uid" '
          /^Uid:/ { if ($2 != uid || $3 != uid || $4 != uid) bad = 1 }
          /^(CapInh|CapPrm|CapEff|CapAmb):/ { if ($2 != "0000000000000000") bad = 1 }
          /^NoNewPrivs:/ { if ($2 != 1) bad = 1 }
          END { exit bad }' "/proc/$pid/status" || { cat "/proc/$pid/status"; fail "$service: the server's credentials"; }
        ;;
    esac
  done
  echo "hookvault: uid 10001, haproxy: uid $ha_uid, postgres: uid $pg_uid; no capabilities, read-only roots"

  log "ha: one delivery through HAProxy twice (two connections: both instances)"
  local sig code
  sig=$(signed_ping secrets/dynamic_webhook_secret "$work/ha-ping.json")
  code=$(post "$url" "$ca" "$sig" "$work/ha-ping.json" "$work/answer")
  if [ "$code" != 200 ] || ! grep -q '"status":"accepted"' "$work/answer"; then
    fail "first: $code $(cat "$work/answer")"
  fi
  code=$(post "$url" "$ca" "$sig" "$work/ha-ping.json" "$work/answer")
  if [ "$code" != 200 ] || ! grep -q '"status":"duplicate"' "$work/answer"; then
    fail "again: $code $(cat "$work/answer")"
  fi
  code=$(post "$url" "$ca" "sha256=$(printf '%064d' 0)" "$work/ha-ping.json" "$work/answer")
  [ "$code" = 401 ] || fail "a wrong signature got $code"
  echo "accepted, then duplicate; a wrong signature: 401"

  log "ha: 600 signed deliveries through HAProxy, hookvault1 killed after 150 answers"
  local id1 id2 count=600
  id1=$(ha_compose ps -q hookvault1)
  id2=$(ha_compose ps -q hookvault2)
  "$repo/tests/docker/ha_load.py" "$url" "$ca" secrets/dynamic_webhook_secret "$count" \
    "$work/ha-load.jsonl" --kill-at 150 -- docker kill "$id1" ||
    fail "a delivery never got 200 (retried 20 times): $(grep -v '"ok": true' "$work/ha-load.jsonl" | head -n 3)"
  [ "$(docker inspect -f '{{.State.Running}}' "$id1")" = false ] || fail "hookvault1 still runs"
  local served1 served2
  served1=$(ha_served "$id1")
  served2=$(ha_served "$id2")
  echo "200s answered: hookvault1 $served1 (before the kill), hookvault2 $served2"
  if [ "$served1" -eq 0 ] || [ "$served2" -eq 0 ]; then fail "HAProxy did not spread the deliveries"; fi

  log "ha: every delivery that got a 200 is stored exactly once"
  ha_compose exec -T hookvault2 hookvault events list --source dynamic --limit 100000 >"$work/ha-events.jsonl" ||
    fail "events list on hookvault2"
  ha_check_stored "$work/ha-load.jsonl" "$work/ha-events.jsonl" "$work/ha-ping.json"
  # On the standby too: every acknowledged commit was flushed there (replayed soon after).
  local expected=$((count + 1))
  standby_has_all() {
    [ "$(ha_psql db2 "SELECT count(*) || ' ' || count(DISTINCT idempotency_key) FROM events")" = "$expected $expected" ]
  }
  eventually 30 standby_has_all ||
    fail "the standby holds $(ha_psql db2 'SELECT count(*) FROM events') events, not $expected"
  echo "db2 (standby): $expected events, $expected distinct event ids"

  log "ha: hookvault1 started again takes deliveries again"
  ha_compose start hookvault1 2>&1
  ha_wait_both_up 120
  "$repo/tests/docker/ha_load.py" "$url" "$ca" secrets/dynamic_webhook_secret 100 "$work/ha-load2.jsonl" ||
    fail "deliveries after the restart"
  [ "$(ha_served "$id1")" -gt "$served1" ] || fail "hookvault1 answered nothing after its restart"
  ha_compose exec -T hookvault1 hookvault events list --source dynamic --limit 100000 >"$work/ha-events.jsonl" ||
    fail "events list on hookvault1"
  cat "$work/ha-load2.jsonl" >>"$work/ha-load.jsonl"
  ha_check_stored "$work/ha-load.jsonl" "$work/ha-events.jsonl" "$work/ha-ping.json"

  log "ha: no secret in any log or container definition"
  ha_compose logs --no-color >"$work/ha-compose.log" 2>&1
  for service in db1 db2 hookvault1 hookvault2 haproxy; do
    docker inspect "$(ha_compose ps -q "$service")" >>"$work/ha-compose.log"
  done
  local s
  for s in dynamic_webhook_secret nodit_signing_key pg_password pg_replication_password; do
    if grep -qF -- "$(cat "secrets/$s")" "$work/ha-compose.log"; then fail "secret $s is in a log or docker inspect"; fi
  done
  echo "no secret in $(wc -l <"$work/ha-compose.log") lines of logs and docker inspect"

  log "ha: down -v"
  ha_compose down -v --remove-orphans 2>&1
  local left
  left=$(docker ps -aq -f "label=com.docker.compose.project=$ha_project"; \
    docker volume ls -q -f "label=com.docker.compose.project=$ha_project")
  [ -z "$left" ] || fail "left after down -v: $left"
  echo "ha ok"
}

# Every delivery in LOAD_JSONL (ha_load.py's results) and the ping in PING_FILE is in
# EVENTS_JSONL (`hookvault events list`) exactly once, and nothing else is.
ha_check_stored() {
  python3 - "$@" <<'PY' || fail "the store does not hold each acknowledged delivery once"
import collections, json, sys
load, events, ping = sys.argv[1:]
sent = [json.loads(l) for l in open(load)]
acked = {d["eventId"] for d in sent if d["ok"]}
if len(acked) != len(sent):
    sys.exit(f"{len(sent) - len(acked)} deliveries never got 200")
acked.add(json.load(open(ping))["eventId"])
stored = collections.Counter(json.loads(l)["eventId"] for l in open(events))
twice = [k for k, n in stored.items() if n > 1]
missing = acked - set(stored)
extra = set(stored) - acked
for what, ids in (("stored more than once", twice), ("acknowledged, not stored", missing),
                  ("stored, never sent", extra)):
    if ids:
        print(f"{len(ids)} {what}: {sorted(ids)[:3]}", file=sys.stderr)
if twice or missing or extra:
    sys.exit(1)
print(f"{len(acked)} acknowledged deliveries, each stored exactly once; nothing else stored")
PY
}
