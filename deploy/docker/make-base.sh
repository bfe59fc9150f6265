#!/usr/bin/env bash
# A Debian 12 (bookworm) base image made with debootstrap, for building the image where Docker
# Hub cannot be reached:
#   sudo deploy/docker/make-base.sh                       # → localhost/debian:bookworm-slim
#   podman build --build-arg BASE=localhost/debian:bookworm-slim -f deploy/docker/Dockerfile -t tessera:0.1.0 .
# Needs debootstrap and podman (Debian packages), root, and the Debian mirror.
set -euo pipefail
IMAGE=${IMAGE:-localhost/debian:bookworm-slim}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
# Security updates too, as the official image has them.
echo "deb http://deb.debian.org/debian-security bookworm-security main" >> "$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - "$IMAGE"
echo "$IMAGE"
