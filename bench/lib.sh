# Shared by the bench scripts (bench/run, bench/ab-nodit, bench/burst-priority):
# sourced, not run.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Renames the subscriptions of a Nodit delivery file made by gen.js (lines
# "x-signature<TAB>SIG<TAB>BODY") and signs each body again with NODIT_KEY:
# subscriptionId "FROMn" becomes "TOn". gen.js names its subscriptions
# "sub-0".."sub-7", while hookvault admits digits only (docs/protocols.md):
# `nodit_resign FILE sub- 1` makes them "10".."17".
#   nodit_resign FILE FROM TO     env: NODIT_KEY
nodit_resign() {
  sed -i "s/\"subscriptionId\":\"$2\([0-9]*\)\"/\"subscriptionId\":\"$3\1\"/" "$1"
  node -e '
const fs = require("fs"), c = require("crypto"), k = process.env.NODIT_KEY;
const out = fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map((l) => {
  const b = l.split("\t")[2];
  return "x-signature\t" + c.createHmac("sha256", k).update(b).digest("hex") + "\t" + b; });
fs.writeFileSync(process.argv[1], out.join("\n") + "\n");' "$1"
}

# Writes hookvault's config for a store made by `hookvault init --dir DIR`:
# the public listener on PORT, the admin listener on ADMIN_PORT (the init's
# "signer" client may read /metrics), and the sources named (nodit, dynamic).
#   hv_config FILE DIR PORT ADMIN_PORT SOURCE...     env: THREADS=0
# With PG_CONNINFO and PG_PASSWORD_FILE set, the store is PostgreSQL
# (docs/postgresql.md) instead of DIR's SQLite file.
hv_config() {
  local file=$1 dir=$2 port=$3 admin_port=$4 source secret extra storage
  shift 4
  storage="path = \"$dir/data/hookvault.db\""
  if [[ -n ${PG_CONNINFO:-} ]]; then
    storage="backend = \"postgresql\"
conninfo = \"$PG_CONNINFO\"
password_file = \"$PG_PASSWORD_FILE\""
  fi
  cat >"$file" <<EOF
[server]
listen = "127.0.0.1:$port"
tls_cert = "$dir/tls/cert.pem"
tls_key = "$dir/tls/key.pem"
threads = ${THREADS:-0}
[storage]
$storage
[kek]
provider = "file"
file = "$dir/keys/kek.key"
[admin]
listen = "127.0.0.1:$admin_port"
tls_cert = "$dir/tls/admin-cert.pem"
tls_key = "$dir/tls/admin-key.pem"
client_ca = "$dir/tls/admin-ca.pem"
[[admin.clients]]
subject_cn = "signer"
roles = ["metrics:read"]
[log]
format = "json"
level = "warn"
EOF
  for source in "$@"; do
    case $source in
      nodit) secret=nodit_signing_key extra= ;;
      dynamic) secret=dynamic_webhook_secret extra="rsa_private_keys = [\"$dir/keys/dynamic_rsa.pem\"]" ;;
      *) echo "hv_config: unknown source $source" >&2; return 2 ;;
    esac
    cat >>"$file" <<EOF
[[sources]]
name = "$source"
provider = "$source"
path = "/webhooks/$source"
secret_files = ["$dir/secrets/$secret"]
$extra
EOF
  done
}

# hookvault's /metrics into OUT (empty when it cannot be read), as the
# signer `hookvault init --dir DIR` made in DIR-offline.
#   hv_scrape DIR ADMIN_PORT OUT
hv_scrape() {
  curl -skf --cert "$1-offline/signer-cert.pem" --key "$1-offline/signer-key.pem" \
    "https://127.0.0.1:$2/metrics" >"$3" || : >"$3"
}

# A histogram of hookvault's between two scrapes: "count mean_ms over_10ms
# slowest_ms", the slowest as the upper bound of the lowest bucket that holds
# every observation.
#   histogram_figures NAME BEFORE AFTER
histogram_figures() {
  python3 - "$1" "$2" "$3" <<'PY'
import re, sys
def read(path):
    v = {}
    for line in open(path):
        m = re.match('^' + re.escape(sys.argv[1]) + r'_(bucket\{le="([^"]+)"\}|sum|count) (\S+)$', line)
        if m:
            v[m.group(2) or m.group(1)] = float(m.group(3))
    return v
a, b = read(sys.argv[2]), read(sys.argv[3])
d = {k: b[k] - a.get(k, 0) for k in b}
n = d.get('count', 0)
if n <= 0:
    print('0 nan nan nan')
    sys.exit()
over10 = n - d.get('0.01', n)
slowest = 'inf'
for bound, key in sorted((float(k), k) for k in d if k not in ('sum', 'count', '+Inf')):
    if d[key] >= n:
        slowest = '%g' % (bound * 1000)
        break
print(int(n), '%.3f' % (1000 * d['sum'] / n), int(over10), slowest)
PY
}
# The WAL syncs (every answer waits for one) and the WAL checkpoints.
sync_figures() { histogram_figures hookvault_store_wal_sync_seconds "$@"; }
checkpoint_figures() { histogram_figures hookvault_store_wal_checkpoint_seconds "$@"; }
