#!/bin/bash
# The PostgreSQL containers of docker/compose.ha.yaml (image docker/postgres.Dockerfile).
#
#   hookvault-pg primary           first start: initdb into the volume, the roles `hookvault`
#                                  (owner of the database `hookvault`) and `replicator`, with
#                                  the passwords of the secrets pg_password and
#                                  pg_replication_password (scram-sha-256, from the compose
#                                  network only); synchronous_standby_names = 'FIRST 1 (db2)'
#   hookvault-pg standby PRIMARY   first start: pg_basebackup from PRIMARY as `replicator`,
#                                  then streams from it as the synchronous standby `db2`
#   hookvault-pg health            the HEALTHCHECK: the primary accepts connections; the
#                                  standby streams from the primary
#
# Runs as root with CAP_DAC_READ_SEARCH (to read the secrets, owned by the hookvault
# container's user), CAP_SETUID and CAP_SETGID (to become `postgres`), nothing else; the
# server itself runs as `postgres` without any capability. The passwords are read from
# /run/secrets when the cluster is created (a changed secret needs ALTER ROLE) and, on the
# standby, at every start into a passfile in /tmp (a tmpfs): never into an argument, the
# environment, the log or the volume. The servers' sockets are in /tmp.
set -euo pipefail

bin=/usr/lib/postgresql/15/bin
data=/var/lib/postgresql/data
secrets=/run/secrets
export PGHOST=/tmp

as_postgres() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }
die() { echo "hookvault-pg: $*" >&2; exit 1; }

secret() {  # NAME: the secret's text (a trailing newline dropped)
  [ -r "$secrets/$1" ] || die "no secret $1 (compose.ha.yaml gives it as /run/secrets/$1)"
  local v
  v=$(cat "$secrets/$1")
  [ -n "$v" ] || die "secret $1 is empty"
  printf '%s' "$v"
}
sql_literal() { local v=${1//\'/\'\'}; printf "'%s'" "$v"; }

# Settings of both servers (the standby gets the primary's by pg_basebackup).
server_conf() {
  cat <<'CONF'
# docker/postgres-entrypoint.sh
listen_addresses = '*'
unix_socket_directories = '/tmp'
wal_level = replica
max_wal_senders = 4
wal_keep_size = '256MB'
hot_standby = on
synchronous_commit = on
synchronous_standby_names = 'FIRST 1 (db2)'
password_encryption = 'scram-sha-256'
log_min_messages = warning
CONF
}

init_primary() {
  echo "hookvault-pg: creating the primary"
  local pw rpw
  pw=$(secret pg_password)
  rpw=$(secret pg_replication_password)
  as_postgres "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
  server_conf | as_postgres tee -a "$data/postgresql.conf" >/dev/null
  # `samenet`: the compose network the server is on (db), nothing else.
  printf '%s\n' 'host replication replicator samenet scram-sha-256' \
    'host hookvault hookvault samenet scram-sha-256' | as_postgres tee -a "$data/pg_hba.conf" >/dev/null
  as_postgres "$bin/pg_ctl" -D "$data" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
  # The passwords reach psql on its standard input. No standby exists yet: these commits
  # do not wait for one.
  printf '%s\n' 'SET synchronous_commit = local;' \
    "CREATE ROLE hookvault LOGIN PASSWORD $(sql_literal "$pw");" \
    "CREATE ROLE replicator LOGIN REPLICATION PASSWORD $(sql_literal "$rpw");" \
    'CREATE DATABASE hookvault OWNER hookvault;' |
    as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres >/dev/null
  as_postgres "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
}

# The replication password as a libpq passfile in /tmp (a tmpfs), owned by postgres.
write_passfile() {
  local rpw
  rpw=$(secret pg_replication_password)
  rpw=${rpw//\\/\\\\}
  rpw=${rpw//:/\\:}
  printf '*:*:*:replicator:%s\n' "$rpw" |
    as_postgres sh -c 'umask 077 && cat >/tmp/pgpass'
}

init_standby() {
  local primary=$1
  echo "hookvault-pg: creating the standby of $primary"
  # (as `hookvault`: a probe the server does not log as a failed connection)
  until as_postgres "$bin/pg_isready" -q -h "$primary" -p 5432 -U hookvault -d hookvault; do sleep 1; done
  as_postgres env PGPASSFILE=/tmp/pgpass "$bin/pg_basebackup" -h "$primary" -p 5432 -U replicator \
    -D "$data" -X stream -c fast
  as_postgres touch "$data/standby.signal"
  printf "primary_conninfo = 'host=%s port=5432 user=replicator passfile=/tmp/pgpass application_name=db2'\n" \
    "$primary" | as_postgres tee -a "$data/postgresql.auto.conf" >/dev/null
}

case ${1:-primary} in
  primary)
    [ -s "$data/PG_VERSION" ] || init_primary
    ;;
  standby)
    primary=${2:?usage: hookvault-pg standby PRIMARY}
    write_passfile
    [ -s "$data/PG_VERSION" ] || init_standby "$primary"
    ;;
  health)
    if [ -e "$data/standby.signal" ]; then
      [ "$(as_postgres "$bin/psql" -X -Atq -U postgres -d postgres \
        -c 'SELECT status FROM pg_stat_wal_receiver')" = streaming ]
    else
      as_postgres "$bin/pg_isready" -q
    fi
    exit
    ;;
  *)
    die "usage: hookvault-pg primary | standby PRIMARY | health"
    ;;
esac
exec setpriv --reuid=postgres --regid=postgres --clear-groups -- "$bin/postgres" -D "$data"
