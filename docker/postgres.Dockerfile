# PostgreSQL 15 (Debian's postgresql-15) for docker/compose.ha.yaml: one image for
# the primary and its synchronous standby; docker/postgres-entrypoint.sh says how
# each is set up.
#   docker build -f docker/postgres.Dockerfile -t hookvault-postgres:15 docker
# The entrypoint starts as root with only the capabilities compose.ha.yaml grants
# (reading the password secrets, switching user) and runs PostgreSQL as `postgres`.
FROM debian:12-slim
LABEL org.opencontainers.image.title=hookvault-postgres
# No cluster from the package's postinst: the entrypoint runs initdb into the volume.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confold postgresql-15 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/hookvault-pg
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/hookvault-pg"]
CMD ["primary"]
