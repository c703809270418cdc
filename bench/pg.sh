# bench/run's PostgreSQL rows (sourced by bench/run, not run; it uses
# bench/run's variables and functions): a primary with its synchronous
# standby (scripts/pg-cluster), hookvault instances a and b on it (the config
# of the SQLite instance but for [storage]), HAProxy in front of both as
# tests/pg/ha_cluster.cpp runs it, and what is measured beside each row.
# shellcheck shell=bash
# shellcheck disable=SC2154  # tmp, hv, repo, pids, CONNS, ...: bench/run's

wait_ready() {  # PORT: until /readyz answers 200 (60 s at most)
  for _ in $(seq 1 600); do
    [[ $(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$1/readyz" || true) == 200 ]] && return 0
    sleep 0.1
  done
  echo "bench/run: hookvault on port $1 never became ready" >&2
  return 1
}
hap_up() {  # SOCKET: how many of HAProxy's hookvault servers are UP
  python3 - "$1" <<'PY' 2>/dev/null || echo 0
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
d = b""
while True:
    c = s.recv(65536)
    if not c:
        break
    d += c
lines = d.decode().splitlines()
head = lines[0].lstrip("# ").split(",")
rows = [dict(zip(head, l.split(","))) for l in lines[1:] if l]
print(sum(1 for r in rows if r.get("pxname") == "hookvault" and r.get("svname") not in ("FRONTEND", "BACKEND")
          and r.get("status") == "UP"))
PY
}
pg_primary_pid() { head -1 "$pg_dir/primary/postmaster.pid"; }
pg_standby_pid() { head -1 "$pg_dir/standby/postmaster.pid"; }
pg_start() {  # sets pg_dir, the instances' pids and ports, hap_pid, hap_port
  echo "creating a PostgreSQL primary and its synchronous standby (scripts/pg-cluster)..." >&2
  pg_dir=$tmp/pg
  if ! PG_BIN=$pg_bin "$repo/scripts/pg-cluster" create "$pg_dir" >"$tmp/pg-create.log" 2>&1; then
    cat "$tmp/pg-create.log" >&2
    exit 1
  fi
  pg_conninfo=$(sed -n 's/^CONNINFO="\(.*\)"$/\1/p' "$pg_dir/env")
  pg_a_port=$(free_port)
  pg_a_admin_port=$(free_port)
  pg_b_port=$(free_port)
  pg_b_admin_port=$(free_port)
  PG_CONNINFO=$pg_conninfo PG_PASSWORD_FILE=$pg_dir/password THREADS=0 \
    hv_config "$tmp/hv/pg-a.toml" "$tmp/hv" "$pg_a_port" "$pg_a_admin_port" dynamic nodit
  PG_CONNINFO=$pg_conninfo PG_PASSWORD_FILE=$pg_dir/password THREADS=0 \
    hv_config "$tmp/hv/pg-b.toml" "$tmp/hv" "$pg_b_port" "$pg_b_admin_port" dynamic nodit
  "$hv" serve --config "$tmp/hv/pg-a.toml" 2>"$tmp/hv-pg-a.log" &
  pg_a_pid=$!
  pids+=("$pg_a_pid")
  "$hv" serve --config "$tmp/hv/pg-b.toml" 2>"$tmp/hv-pg-b.log" &
  pg_b_pid=$!
  pids+=("$pg_b_pid")
  wait_ready "$pg_a_port"
  wait_ready "$pg_b_port"
  hap_port=$(free_port)
  mkdir -p "$tmp/haproxy"
  cat >"$tmp/haproxy/haproxy.cfg" <<EOF
global
  stats socket $tmp/haproxy/haproxy.sock mode 600 level admin
  maxconn 4000
defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 5s
  retries 2
  option redispatch
frontend hookvault
  bind 127.0.0.1:$hap_port
  default_backend hookvault
backend hookvault
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  server a 127.0.0.1:$pg_a_port check check-ssl verify none inter 1s fall 2 rise 2
  server b 127.0.0.1:$pg_b_port check check-ssl verify none inter 1s fall 2 rise 2
EOF
  "$haproxy_bin" -db -f "$tmp/haproxy/haproxy.cfg" >"$tmp/haproxy/haproxy.log" 2>&1 &
  hap_pid=$!
  pids+=("$hap_pid")
  for _ in $(seq 1 300); do
    [[ $(hap_up "$tmp/haproxy/haproxy.sock") == 2 ]] && break
    sleep 0.1
  done
  if [[ $(hap_up "$tmp/haproxy/haproxy.sock") != 2 ]]; then
    echo "bench/run: HAProxy never saw both instances ready" >&2
    cat "$tmp/haproxy/haproxy.log" >&2
    exit 1
  fi
}

# Beside a PostgreSQL row, the cores of the primary's and the standby's
# processes (every backend, the WAL writer and sender, the standby's
# receiver and startup process) and of HAProxy.
declare -A PGP PGS HAP RQ
side_pids() {  # primary|standby|haproxy|hookvault
  case $1 in
  hookvault) echo "$pg_a_pid"; echo "$pg_b_pid" ;;
  primary) descendants "$(pg_primary_pid)" ;;
  standby) descendants "$(pg_standby_pid)" ;;
  haproxy) echo "$hap_pid" ;;
  esac
}
side_snap() {  # primary|standby|haproxy|hookvault OUT: "pid ticks runq_ns" of each of its
  # processes: CPU time, and time its threads spent runnable waiting for a core (schedstat)
  local p
  for p in $(side_pids "$1"); do
    echo "$p $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)" \
      "$(cat /proc/"$p"/task/*/schedstat 2>/dev/null | awk '{s += $2} END {print s + 0}')"
  done >"$2"
}
side_runq() {  # BEFORE AFTER SECONDS: run-queue wait, seconds per second of the row
  awk -v t="$3" 'NR == FNR {b[$1] = $3; next} {s += $3 - b[$1]} END {printf "%.2f", s / 1e9 / t}' "$1" "$2"
}
side_cores() {  # BEFORE AFTER SECONDS: cores of the processes alive at the end (a backend
  # that ended during the row is not counted)
  awk -v hz="$(getconf CLK_TCK)" -v t="$3" 'NR == FNR {b[$1] = $2; next} {s += $2 - b[$1]}
    END {printf "%.2f", s / hz / t}' "$1" "$2"
}
pg_scrape() {  # OUT: instance a's and b's /metrics, one after the other
  hv_scrape "$tmp/hv" "$pg_a_admin_port" "$tmp/scrape-a.txt"
  hv_scrape "$tmp/hv" "$pg_b_admin_port" "$tmp/scrape-b.txt"
  cat "$tmp/scrape-a.txt" "$tmp/scrape-b.txt" >"$1"
}
committed() {  # FILE: requests committed (the batch-size histogram's sum) in a scrape
  awk '/^hookvault_store_batch_size_sum / {print $2}' "$1"
}
# The primary's own counters ("name value" lines): commits and deadlocks of the
# database, WAL writes and syncs, rows written per table (sequence_gaps: the
# events that came out of order, each costing the writer more statements).
pg_counters() {  # OUT
  "$repo/scripts/pg-cluster" psql "$pg_dir" primary "
    SELECT 'commits ' || xact_commit FROM pg_stat_database WHERE datname = 'hookvault'
    UNION ALL SELECT 'deadlocks ' || deadlocks FROM pg_stat_database WHERE datname = 'hookvault'
    UNION ALL SELECT 'wal_writes ' || wal_write FROM pg_stat_wal
    UNION ALL SELECT 'wal_syncs ' || wal_sync FROM pg_stat_wal
    UNION ALL SELECT 'wal_mib ' || round(wal_bytes / 1048576.0, 1) FROM pg_stat_wal
    UNION ALL SELECT relname || '_written ' || (n_tup_ins + n_tup_upd + n_tup_del)
      FROM pg_stat_all_tables WHERE relname IN ('events', 'sequences', 'sequence_gaps', 'writers')" \
    hookvault >"$1" 2>/dev/null || : >"$1"
}
pg_counter_deltas() {  # BEFORE AFTER: "name=delta ..." on one line
  awk 'NR == FNR {b[$1] = $2; next} {printf "%s%s=%s", sep, $1, $2 - b[$1]; sep = " "} END {print ""}' "$1" "$2"
}
declare -A PGW PGC
pg_row() {  # SYSTEM PORT FILE
  local sys=$1
  pg_counters "$tmp/pgc-before.txt"
  pg_scrape "$tmp/pg-before.txt"
  hv_scrape "$tmp/hv" "$pg_a_admin_port" "$tmp/pg-a-before.txt"
  replay_run "nodit/$sys" "$2" /webhooks/nodit "$3" "$CONNS"
  pg_scrape "$tmp/pg-after.txt"
  hv_scrape "$tmp/hv" "$pg_a_admin_port" "$tmp/pg-a-after.txt"
  sleep 1.5  # backends report their statistics about once a second
  pg_counters "$tmp/pgc-after.txt"
  PGC[$sys]=$(pg_counter_deltas "$tmp/pgc-before.txt" "$tmp/pgc-after.txt")
  local kv
  for kv in ${PGC[$sys]}; do row_value "nodit_primary_${kv%%=*}" "$sys" "${kv#*=}" count; done
  PGW[$sys]=$(writer_figures "$tmp/pg-before.txt" "$tmp/pg-after.txt")
  local wb wc wv ws share
  read -r wb wc wv ws <<<"${PGW[$sys]}"
  row_value nodit_writer_batch "$sys" "$wb" requests
  row_value nodit_writer_commit "$sys" "$wc" ms
  row_value nodit_stage_verify "$sys" "$wv" ms
  row_value nodit_stage_store "$sys" "$ws" ms
  row_value nodit_postgres_primary_cores "$sys" "${PGP[nodit/$sys]}" cores
  row_value nodit_postgres_standby_cores "$sys" "${PGS[nodit/$sys]}" cores
  row_value nodit_haproxy_cores "$sys" "${HAP[nodit/$sys]}" cores
  local -a rq
  read -r -a rq <<<"${RQ[nodit/$sys]}"
  local i
  for ((i = 0; i + 1 < ${#rq[@]}; i += 2)); do
    row_value "nodit_runqueue_wait_${rq[i]}" "$sys" "${rq[i + 1]}" s/s
  done
  # The share of the committed requests instance a stored.
  share=$(awk -v a0="$(committed "$tmp/pg-a-before.txt")" -v a1="$(committed "$tmp/pg-a-after.txt")" \
    -v t0="$(awk '/^hookvault_store_batch_size_sum / {s += $2} END {print s + 0}' "$tmp/pg-before.txt")" \
    -v t1="$(awk '/^hookvault_store_batch_size_sum / {s += $2} END {print s + 0}' "$tmp/pg-after.txt")" \
    'BEGIN { if (t1 - t0 <= 0) print "nan"; else printf "%.2f", (a1 - a0) / (t1 - t0) }')
  row_value nodit_instance_a_share "$sys" "$share" fraction
}
