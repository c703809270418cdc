# Debian 12 booted with systemd, for the .deb test (scripts/test-docker systemd): the
# container runs /lib/systemd/systemd as PID 1; the test installs the package into it with
# apt-get (which fetches the package's dependencies), so apt's package lists stay in the image.
FROM debian:12
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd \
 && apt-get clean && rm -f /var/cache/apt/*.bin \
 && systemctl mask getty.target systemd-logind.service
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
