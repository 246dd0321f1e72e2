#!/usr/bin/env bash
# What the container-image test (tests/image/) needs: binutils (strip), buildah, podman and runc
# from Debian to build and run the image without a daemon.
# Nothing is pulled from a registry: the image is built FROM scratch out of the release binaries
# and the shared libraries they load (ldd).
# Idempotent: apt installs only what is missing.
set -euo pipefail
. "$(dirname "$0")/../common.sh"

apt_install binutils buildah podman runc iproute2
command -v ldd >/dev/null
buildah --version >/dev/null
podman --version >/dev/null
runc --version >/dev/null
