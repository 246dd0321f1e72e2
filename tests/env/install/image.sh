#!/usr/bin/env bash
# What the container-image test (tests/image/) needs: the Rust target x86_64-unknown-linux-musl
# (rustup) with musl-tools (Debian's musl-gcc, for the crates that compile C such as zstd-sys and
# ring), binutils (strip), buildah, podman and runc from Debian to build and run the image without
# a daemon.
# Nothing is pulled from a registry: the image is built FROM scratch out of the static binaries.
# Idempotent: apt installs only what is missing, rustup adds the target only when it is absent.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
MUSL_TARGET=x86_64-unknown-linux-musl

apt_install musl-tools binutils buildah podman runc iproute2
if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"; then
  log "image: rustup target add $MUSL_TARGET"
  rustup target add "$MUSL_TARGET" >/dev/null 2>&1
fi
rustup target list --installed | grep -qx "$MUSL_TARGET"
command -v musl-gcc >/dev/null
buildah --version >/dev/null
podman --version >/dev/null
runc --version >/dev/null
