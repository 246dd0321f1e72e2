# syntax=docker/dockerfile:1
# The Strata image: strata (CLI), strata-broker and strata-operator as static musl binaries in an
# otherwise empty image (no shell, no libc, no package manager).
#
#   docker build -t ghcr.io/strata-dev/strata:0.1.0 .        (BuildKit: cache mounts below)
#   docker run --rm ghcr.io/strata-dev/strata:0.1.0 strata-broker --version
#   podman build -t ghcr.io/strata-dev/strata:0.1.0 .         (buildah/podman work as well)
#
# Build stage: rust:<MSRV>-alpine. Alpine's native target is x86_64-unknown-linux-musl and its gcc
# is a musl compiler, so the crates that compile C (zstd-sys, ring) need no cross toolchain; the
# tag is the workspace's rust-version, the oldest compiler the code promises to build with.
# Runtime stage: FROM scratch. There is no ENTRYPOINT: every binary is on PATH, so the command
# names the program (`docker run IMAGE strata-broker --config FILE`, and pods set
# `command: ["/usr/local/bin/strata-broker"]` or `["/usr/local/bin/strata-operator"]`).
# tests/image/ builds its image from this file's runtime stage (the part after `FROM scratch`),
# with the same binaries built on the test machine.

ARG RUST_VERSION=1.89
ARG VERSION=0.1.0
# Programs shipped in the image, one name per binary target of the workspace.
ARG BINARIES="strata strata-broker strata-operator strata-mirror"

FROM docker.io/library/rust:${RUST_VERSION}-alpine AS build
ARG BINARIES
ARG TARGET=x86_64-unknown-linux-musl
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
# The release profile keeps line tables for backtraces; the image ships stripped binaries.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "$TARGET" --bins \
 && mkdir -p /out/bin /out/data \
 && for bin in $BINARIES; do cp "target/$TARGET/release/$bin" /out/bin/; done

FROM scratch
ARG VERSION
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Kafka-wire-compatible broker, CLI and Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/strata-dev/strata" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/bin/ /usr/local/bin/
# The only writable path of a broker pod (its PersistentVolumeClaim); owned by the runtime user so
# that a fresh volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data/ /var/lib/strata/
ENV PATH=/usr/local/bin
USER 65532:65532
WORKDIR /var/lib/strata
CMD ["strata", "--help"]
