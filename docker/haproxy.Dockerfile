# HAProxy (Debian's haproxy) in front of docker/compose.ha.yaml's hookvault
# instances; its config is docker/haproxy.cfg, mounted read-only.
#   docker build -f docker/haproxy.Dockerfile -t hookvault-haproxy:latest docker
FROM debian:12-slim
LABEL org.opencontainers.image.title=hookvault-haproxy
RUN apt-get update \
 && apt-get install -y --no-install-recommends haproxy \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Ports above 1024 only: no capability needed, not even to bind.
USER haproxy:haproxy
EXPOSE 8443
STOPSIGNAL SIGUSR1
ENTRYPOINT ["/usr/sbin/haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
