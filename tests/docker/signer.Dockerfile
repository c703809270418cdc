# A stand-in for a signing service in the compose test (scripts/test-docker): curl, as a
# non-root user, nothing else. It reaches hookvault's admin listener over mutual TLS on the
# compose network with the signer certificate `hookvault init` made (compose.signer.yaml).
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
USER 10002:10002
