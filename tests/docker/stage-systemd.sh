# shellcheck shell=bash disable=SC2154  # $repo, $work and the rest come from scripts/test-docker
# scripts/test-docker's stage `systemd` (sourced by it): the .deb under systemd in a
# container, as the README's "systemd / .deb" section says. Uses tests/docker/lib.sh.

# In the systemd container.
sd() { docker exec "$sd_name" "$@"; }
sd_sh() { docker exec "$sd_name" sh -c "$1"; }
# How many of the unit's journal lines contain TEXT.
journal_count() { sd journalctl -u hookvault -o cat --no-pager | grep -cF -- "$1" || true; }
journal_has() { [ "$(journal_count "$1")" -gt "${2:-0}" ]; }

stage_systemd() {
  local deb=${HOOKVAULT_DEB:-}
  if [ -z "$deb" ]; then deb=$(scripts/package build | tail -1); fi
  [ -f "$deb" ] || fail "no .deb at $deb"
  docker image inspect hookvault-test-systemd:latest >/dev/null 2>&1 || fail "no hookvault-test-systemd image"
  docker rm -f -v "$sd_name" >/dev/null 2>&1 || true

  log "systemd: a container booted with systemd"
  docker run -d --name "$sd_name" --tmpfs /run --tmpfs /run/lock \
    -v /sys/fs/cgroup:/sys/fs/cgroup:ro -p 127.0.0.1::8443 hookvault-test-systemd:latest >/dev/null
  local state=
  booted() {
    state=$(sd systemctl is-system-running 2>&1) || true
    case $state in running | degraded | maintenance | stopping | offline) ;; *) return 1 ;; esac
  }
  eventually 120 booted || true
  [ "$state" = running ] || { sd systemctl --failed --no-pager; fail "systemd is $state"; }
  echo "systemd: $state"

  log "systemd: install the package (README: dpkg -i; apt-get fetches its dependencies)"
  docker cp "$deb" "$sd_name:/tmp/hookvault.deb"
  sd_sh 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/hookvault.deb' \
    >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "installing the package"; }
  sd cat /lib/systemd/system/hookvault.service | cmp -s - config/hookvault.service ||
    fail "the installed unit is not config/hookvault.service"
  sd systemd-analyze security --offline=true --threshold=20 --no-pager hookvault.service \
    >"$work/security.log" 2>&1 || { cat "$work/security.log"; fail "systemd-analyze security of the installed unit"; }
  grep -o 'Overall exposure level for hookvault.service: [0-9.]* [A-Z]*' "$work/security.log"

  log "systemd: setup as the README says"
  sd_sh 'hookvault init --dir /etc/hookvault' >"$work/init.log" || { cat "$work/init.log"; fail "init"; }
  grep -q "kept existing hookvault.toml" "$work/init.log" || fail "init replaced the config"
  sd chown -R hookvault:hookvault /etc/hookvault/tls /etc/hookvault/keys
  sd rmdir /etc/hookvault/data
  local dyn=$work/dynamic_webhook_secret nodit=$work/nodit_signing_key
  ( umask 077
    printf '%s' "dyn_$(random_secret)" >"$dyn"
    printf '%s' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$nodit" )
  docker cp "$dyn" "$sd_name:/etc/hookvault/secrets/dynamic_webhook_secret"
  docker cp "$nodit" "$sd_name:/etc/hookvault/secrets/nodit_signing_key"
  sd_sh 'chown root:root /etc/hookvault/secrets/* && chmod 0600 /etc/hookvault/secrets/*'

  log "systemd: the container's drop-in (tests/docker/hookvault-container.conf)"
  check_dropin
  sd mkdir -p /etc/systemd/system/hookvault.service.d
  docker cp tests/docker/hookvault-container.conf \
    "$sd_name:/etc/systemd/system/hookvault.service.d/container.conf"
  sd systemctl daemon-reload

  log "systemd: systemctl enable --now hookvault"
  if ! sd systemctl enable --now hookvault >"$work/enable.log" 2>&1; then
    cat "$work/enable.log"
    sd journalctl -u hookvault --no-pager -n 30 | tee "$work/journal.txt"
    if grep -q 'secret_credentials.*readable by group or others' "$work/journal.txt"; then
      echo "test-docker: where systemd cannot mount a file system for credentials (this"
      echo "container), it hands them over as mode 0440 with a POSIX ACL that lets only the"
      echo "service's user read them; hookvault must not take the ACL's mask for group access."
    fi
    fail "enable --now"
  fi
  local port ca=$work/cert.pem url
  port=$(docker port "$sd_name" 8443/tcp | head -n 1 | sed 's/.*://')
  docker cp "$sd_name:/etc/hookvault/tls/cert.pem" "$ca"
  # Type=notify: the start job ends at READY=1, so /readyz answers at once.
  curl -sf --cacert "$ca" "https://127.0.0.1:$port/readyz" -o /dev/null ||
    fail "/readyz did not answer 200 right after systemctl start returned"
  local props
  props=$(sd systemctl show hookvault -p Type -p ActiveState -p SubState -p NotifyAccess -p WatchdogUSec)
  echo "$props" | tr '\n' ' '; echo
  for want in Type=notify ActiveState=active SubState=running NotifyAccess=main WatchdogUSec=30s; do
    grep -qx "$want" <<<"$props" || fail "systemctl show: no $want"
  done

  log "systemd: the unit's hardening in force"
  check_hardening

  log "systemd: a signed delegation, the secrets from LoadCredential="
  # The packaged config names the secrets as credentials only; /etc/hookvault/secrets is
  # root's, so the daemon has them from LoadCredential= or not at all.
  sd grep -qx 'secret_credentials = \["dynamic_webhook_secret"\]' /etc/hookvault/hookvault.toml ||
    fail "the packaged config does not read the Dynamic secret as a credential"
  [ "$(sd stat -c '%U %a' /etc/hookvault/secrets)" = "root 700" ] || fail "/etc/hookvault/secrets is not root's"
  url=https://127.0.0.1:$port/webhooks/dynamic
  local wallet sig
  wallet=$(cat /proc/sys/kernel/random/uuid)
  docker cp "$sd_name:/etc/hookvault/keys/dynamic_rsa.pub.pem" "$work/rsa.pub.pem"
  sig=$(signed_delegation "$work/rsa.pub.pem" "$dyn" "$wallet" "$work/delegation.json")
  code=$(post "$url" "$ca" "$sig" "$work/delegation.json" "$work/answer")
  [ "$code" = 200 ] && grep -q '"materials":"stored"' "$work/answer" ||
    { sd journalctl -u hookvault --no-pager -n 20; fail "signed delegation: $code $(cat "$work/answer")"; }
  echo "signed delegation: 200 $(cat "$work/answer")"

  log "systemd: an operator command as the README runs it (materials get)"
  sd_sh "mkdir -m 700 /run/hv-creds && cp /etc/hookvault/secrets/* /run/hv-creds && chown -R hookvault /run/hv-creds
         runuser -u hookvault -- env CREDENTIALS_DIRECTORY=/run/hv-creds hookvault materials get $wallet --source dynamic
         rc=\$?; rm -r /run/hv-creds; exit \$rc" >"$work/materials.json" || fail "materials get"
  check_materials "$work/materials.json" "$wallet"
  echo "materials get: the delegation's materials"

  log "systemd: systemctl reload re-reads the config: the log level, and a new webhook secret"
  local old=$work/old_secret next=$work/next_secret main_pid requests
  cp "$dyn" "$old"
  main_pid=$(sd systemctl show -p MainPID --value hookvault)
  # [log] level = "warn": a delivery is no longer logged (requests are logged at info).
  sd sed -i 's/^level = "info"/level = "warn"/' /etc/hookvault/hookvault.toml
  sd systemctl reload hookvault || { sd journalctl -u hookvault --no-pager -n 20; fail "systemctl reload"; }
  delivery_unlogged() {
    requests=$(journal_count '"msg":"request"')
    sig=$(signed_ping "$old" "$work/ping.json")
    [ "$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")" = 200 ] || return 1
    sleep 0.5
    [ "$(journal_count '"msg":"request"')" = "$requests" ]
  }
  eventually 30 delivery_unlogged || fail "reload did not apply [log] level = \"warn\""
  sd sed -i 's/^level = "warn"/level = "info"/' /etc/hookvault/hookvault.toml
  sd systemctl reload hookvault || fail "systemctl reload"
  delivery_logged() {
    requests=$(journal_count '"msg":"request"')
    sig=$(signed_ping "$old" "$work/ping.json")
    [ "$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")" = 200 ] || return 1
    sleep 0.5
    [ "$(journal_count '"msg":"request"')" -gt "$requests" ]
  }
  eventually 30 delivery_logged || fail "reload did not apply [log] level = \"info\""
  echo "reload: [log] level applied twice, same process"
  # Rotation by reload, as the README's systemd section says: the new secret in a file only
  # the service user reads, named beside the credential; the old one keeps verifying.
  ( umask 077; printf '%s' "dyn_$(random_secret)" >"$next" )
  docker cp "$next" "$sd_name:/etc/hookvault/keys/dynamic_webhook_secret.next"
  sd_sh 'chown hookvault:hookvault /etc/hookvault/keys/dynamic_webhook_secret.next &&
         chmod 0600 /etc/hookvault/keys/dynamic_webhook_secret.next'
  sd sed -i 's|^secret_credentials = \["dynamic_webhook_secret"\]$|&\nsecret_files = ["keys/dynamic_webhook_secret.next"]|' \
    /etc/hookvault/hookvault.toml
  sd grep -q 'dynamic_webhook_secret.next' /etc/hookvault/hookvault.toml || fail "could not add the new secret"
  sd systemctl reload hookvault || { sd journalctl -u hookvault --no-pager -n 20; fail "systemctl reload"; }
  new_secret_verifies() {
    sig=$(signed_ping "$next" "$work/ping.json")
    [ "$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")" = 200 ]
  }
  eventually 30 new_secret_verifies || fail "reload did not pick up the new webhook secret"
  sig=$(signed_ping "$old" "$work/ping.json")
  code=$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")
  [ "$code" = 200 ] || fail "the old secret got $code during the rotation"
  [ "$(sd systemctl show -p MainPID --value hookvault)" = "$main_pid" ] || fail "reload restarted the daemon"
  echo "reload: a new webhook secret verifies (200), the old one still does, same process"
  # A credential's own content is copied when the service starts (systemd 252), not on
  # reload: replacing it takes a restart (README, "systemd / .deb").
  cp "$next" "$dyn"
  docker cp "$dyn" "$sd_name:/etc/hookvault/secrets/dynamic_webhook_secret"
  sd_sh 'chown root:root /etc/hookvault/secrets/dynamic_webhook_secret && chmod 0600 /etc/hookvault/secrets/dynamic_webhook_secret'
  sd sed -i '/dynamic_webhook_secret.next/d' /etc/hookvault/hookvault.toml
  sd systemctl reload hookvault || fail "systemctl reload"
  sig=$(signed_ping "$old" "$work/ping.json")
  code=$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")
  [ "$code" = 200 ] || fail "the credential changed on reload ($code): update the README's systemd section"
  sd systemctl restart hookvault || { sd journalctl -u hookvault --no-pager -n 20; fail "systemctl restart"; }
  sig=$(signed_ping "$dyn" "$work/ping.json")
  code=$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")
  [ "$code" = 200 ] || fail "the new secret got $code after restart"
  sig=$(signed_ping "$old" "$work/ping.json")
  code=$(post "$url" "$ca" "$sig" "$work/ping.json" "$work/answer")
  [ "$code" = 401 ] || fail "the old secret still gets $code after restart"
  main_pid=$(sd systemctl show -p MainPID --value hookvault)
  echo "credential replaced: the old secret until restart, then only the new one"

  log "systemd: the watchdog restarts a hung daemon (WatchdogSec=30s)"
  journal_has '"msg":"watchdog enabled"' || fail "the daemon did not enable its watchdog"
  local restarts
  restarts=$(sd systemctl show -p NRestarts --value hookvault)
  sd kill -STOP "$main_pid"
  # systemd sends SIGABRT once no ping came for 30 s; the stopped process takes it when continued.
  eventually 60 journal_has "Watchdog timeout" ||
    { sd kill -CONT "$main_pid"; fail "no watchdog timeout for a stopped daemon"; }
  sd kill -CONT "$main_pid" 2>/dev/null || true
  restarted() {
    [ "$(sd systemctl show -p NRestarts --value hookvault)" -gt "$restarts" ] &&
      [ "$(sd systemctl is-active hookvault)" = active ]
  }
  eventually 60 restarted || { sd journalctl -u hookvault --no-pager -n 20; fail "not restarted after the watchdog"; }
  [ "$(sd systemctl show -p MainPID --value hookvault)" != "$main_pid" ] || fail "the same process after the watchdog"
  curl -sf --cacert "$ca" "https://127.0.0.1:$port/readyz" -o /dev/null || fail "/readyz after the restart"
  sd journalctl -u hookvault -o cat --no-pager | grep -E 'Watchdog timeout|Scheduled restart' | head -n 2

  log "systemd: systemctl stop drains a request in flight"
  sig=$(signed_ping "$dyn" "$work/ping.json")
  local drains
  drains=$(journal_count '"msg":"draining"')
  start_inflight "$url" "$ca" "$sig" "$work/ping.json"
  sd systemctl stop hookvault >"$work/stop.log" 2>&1 &
  local stop_pid=$!
  eventually 30 journal_has '"msg":"draining"' "$drains" || fail "no draining in the journal"
  finish_inflight
  wait "$stop_pid" || { cat "$work/stop.log"; fail "systemctl stop"; }
  local result
  result=$(sd systemctl show hookvault -p Result -p ExecMainStatus -p ActiveState | tr '\n' ' ')
  echo "$result"
  [[ "$result" == *"Result=success"* && "$result" == *"ExecMainStatus=0"* && "$result" == *"ActiveState=inactive"* ]] ||
    fail "after stop: $result"

  log "systemd: journalctl -u hookvault: JSON lines, no secret"
  sd journalctl -u hookvault -o json --no-pager >"$work/journal.json"
  python3 - "$work/journal.json" <<'PY' || fail "the daemon's journal lines"
import json, sys
daemon = other = 0
for line in open(sys.argv[1]):
    entry = json.loads(line)
    if entry.get("SYSLOG_IDENTIFIER") != "hookvault":
        other += 1
        continue
    msg = entry.get("MESSAGE")
    if isinstance(msg, list):
        msg = bytes(msg).decode("utf-8", "replace")
    record = json.loads(msg)  # raises on a line that is not JSON
    if not isinstance(record, dict) or not {"ts", "level", "msg"} <= record.keys():
        raise SystemExit(f"not a log record: {msg}")
    daemon += 1
if daemon == 0:
    raise SystemExit("no line from the daemon")
print(f"journal: {daemon} JSON lines from hookvault, {other} from systemd")
PY
  local s
  for s in "$(cat "$dyn")" "$(cat "$old")" "$(cat "$nodit")" "$share" "$api_key" \
           "$(sd cat /etc/hookvault/keys/kek.key)"; do
    if grep -qF -- "$s" "$work/journal.json"; then fail "a secret is in the journal"; fi
  done
  docker rm -f -v "$sd_name" >/dev/null
  echo "systemd ok"
}

# The drop-in turns off exactly the options of the shipped unit with which systemd cannot
# start a service in this container: each option is tried alone in a probe service (as
# User=hookvault), and the ones that fail must be the drop-in's, no more and no fewer. A
# probe prints its own namespaces: an option that needs a namespace (below) but whose probe
# shares that namespace with PID 1 is one systemd skipped, and is listed as not in force.
check_dropin() {
  local dropin=tests/docker/hookvault-container.conf
  python3 - config/hookvault.service >"$work/probe-options" <<'PY'
import sys
# How it runs, not how it is confined; the *Directory= lines would change the real folders.
skip = ("Exec", "Type", "NotifyAccess", "Restart", "Watchdog", "Timeout", "User", "Group",
        "StateDirectory", "ConfigurationDirectory")
section = None
for raw in open(sys.argv[1]):
    line = raw.strip()
    if line.startswith("["):
        section = line
    elif section == "[Service]" and line and not line.startswith("#") and "=" in line:
        if not line.startswith(skip):
            print(line)
PY
  # Per probe: "N ok|failed MNT UTS USER" (the probe's namespaces), then PID 1's.
  docker cp "$work/probe-options" "$sd_name:/tmp/probe-options"
  docker exec -i "$sd_name" sh -s >"$work/probes" 2>&1 <<'SH' ||
cd /run/systemd/system
n=0
while IFS= read -r line; do
  printf '%s\n' '[Service]' 'Type=oneshot' 'User=hookvault' \
    "ExecStart=/bin/sh -c 'echo ns \$\$(readlink /proc/self/ns/mnt /proc/self/ns/uts /proc/self/ns/user)'" \
    "$line" >"hookvault-probe-$n.service"
  n=$((n + 1))
done </tmp/probe-options
systemctl daemon-reload
i=0
while [ "$i" -lt "$n" ]; do
  unit=hookvault-probe-$i.service
  if systemctl start "$unit" >/dev/null 2>&1; then r=ok; else r=failed; fi
  ns=
  for _ in 1 2 3 4 5 6 7 8 9 10; do  # journald may take a moment to store the line
    ns=$(journalctl -u "$unit" -o cat --no-pager | sed -n 's/^ns //p' | tail -n 1)
    [ -n "$ns" ] || [ "$r" = failed ] && break
    sleep 0.2
  done
  echo "$i $r $ns"
  [ "$r" = ok ] || journalctl -u "$unit" -o cat --no-pager | grep -m 1 'Failed at step' | sed 's/^/  /'
  i=$((i + 1))
done
rm -f hookvault-probe-*.service
systemctl daemon-reload
systemctl reset-failed
echo pid1 - $(readlink /proc/1/ns/mnt /proc/1/ns/uts /proc/1/ns/user)
SH
    { cat "$work/probes"; fail "probing the unit's options"; }
  if ! python3 - "$work/probe-options" "$work/probes" "$dropin" <<'PY'
import sys
options = [l.rstrip("\n") for l in open(sys.argv[1])]
lines = open(sys.argv[2]).read().splitlines()
# The namespace each of these options needs (systemd.exec(5)).
needs = {o: 0 for o in ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
                        "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                        "ProtectControlGroups", "ProtectProc", "ProcSubset")}
needs.update({"ProtectHostname": 1, "PrivateUsers": 2})
pid1 = next(l.split()[2:] for l in lines if l.startswith("pid1 "))
failed, skipped = set(), []
for l in lines:
    if l.startswith("  "):
        print(l)
        continue
    words = l.split()
    if not words or not words[0].isdigit():
        continue
    key = options[int(words[0])].split("=", 1)[0]
    if words[1] == "failed":
        failed.add(key)
    elif len(words) != 5:
        sys.exit(f"the probe for {key} printed no namespaces: {l}")
    elif key in needs and words[2 + needs[key]] == pid1[needs[key]]:
        skipped.append(key)
want = set()
for l in open(sys.argv[3]):
    if "=" in l and not l.startswith("#"):
        want.add(l.split("=", 1)[0].strip())
print(f"options that fail here alone (of {len(options)} tried): {' '.join(sorted(failed)) or 'none'}")
print("not in force here (systemd skipped their namespaces): " + (" ".join(skipped) or "none"))
if want != failed:
    sys.exit(f"the drop-in turns off {sorted(want)}; the options that fail here are {sorted(failed)}")
PY
  then
    cat "$work/probes"
    fail "$dropin is not what this container needs"
  fi
}

# What of the unit's hardening the running daemon has, from /proc (root in the container
# may read these of another user's process; not its environment or namespaces).
check_hardening() {
  local pid
  pid=$(sd systemctl show -p MainPID --value hookvault)
  sd cat "/proc/$pid/status" >"$work/status"
  sd cat "/proc/$pid/limits" >"$work/limits"
  check_status "$(sd id -u hookvault)" "$work/status" || fail "the daemon's credentials"
  awk '/^Seccomp:/ { if ($2 != 2) { print "Seccomp " $2; bad = 1 } }
       /^Umask:/ { if ($2 != "0077") { print "Umask " $2; bad = 1 } }
       END { exit bad }' "$work/status" || fail "the daemon's seccomp filter or umask"
  # LimitMEMLOCK=16M: systemd cannot raise a limit above the container's own hard limit
  # (no CAP_SYS_RESOURCE), so the daemon gets the lower of the two.
  local memlock container_memlock
  container_memlock=$(sd cat /proc/1/limits | awk '/^Max locked memory/ { print $5 }')
  memlock=16777216
  [ "$container_memlock" = unlimited ] || [ "$container_memlock" -ge "$memlock" ] ||
    memlock=$container_memlock
  awk -v memlock="$memlock" '
    /^Max core file size/ { if ($5 != 0) { print; bad = 1 } }
    /^Max locked memory/ { if ($4 != memlock) { print; bad = 1 } }
    END { exit bad }' "$work/limits" || fail "the daemon's limits"
  echo "in force: User=hookvault, no capabilities, NoNewPrivileges, a seccomp filter, UMask=0077," \
    "LimitCORE=0, LimitMEMLOCK=$((memlock / 1048576))M"
  [ "$memlock" = 16777216 ] ||
    echo "not in force: LimitMEMLOCK=16M (the container's hard limit is $((memlock / 1048576))M)"
}
