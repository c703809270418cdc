#!/usr/bin/env bash
# No Docker engine runs here, so check what can be checked of docker/Dockerfile:
#  1. every file or folder a COPY (from the build context) names exists;
#  2. the runtime stage installs the Debian package of every shared library
#     `ldd hookvault` lists (libc, libstdc++ and libgcc are in the base image).
set -euo pipefail
root=$1
binary=$2
dockerfile=$root/docker/Dockerfile
fail=0
while read -r src; do
  [ -e "$root/$src" ] || { echo "Dockerfile copies $src, which does not exist"; fail=1; }
done < <(grep -E '^COPY ' "$dockerfile" | grep -v -- '--from' | awk '{for (i = 2; i < NF; i++) print $i}' | grep -v '^\.$')
runtime=$(awk '/^FROM debian:12-slim/{rt=1} rt' "$dockerfile")
for lib in $(ldd "$binary" | awk '$3 ~ /^\// {print $3}'); do
  pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1 || true)
  [ -z "$pkg" ] && pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1 || true)
  case "$pkg" in libc6|libstdc++6|libgcc-s1|"") continue ;; esac
  grep -qw -- "$pkg" <<<"$runtime" || { echo "runtime stage lacks $pkg (for $lib)"; fail=1; }
done
[ $fail = 0 ] && echo "docker checks ok"
exit $fail
