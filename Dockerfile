# syntax=docker/dockerfile:1
# The Strata image: strata (CLI), strata-broker, strata-operator and strata-mirror with the C runtime
# they link (glibc's loader, libc, libm, libgcc_s) in an otherwise empty image (no shell, no
# package manager).
#
#   docker build -t ghcr.io/strata-dev/strata:0.1.0 .        (BuildKit: cache mounts below)
#   docker run --rm ghcr.io/strata-dev/strata:0.1.0 strata-broker --version
#   podman build -t ghcr.io/strata-dev/strata:0.1.0 .         (buildah/podman work as well)
#
# Build stage: rust:<MSRV>-slim-bookworm (its gcc builds the crates that compile C: zstd-sys, ring);
# the tag is the workspace's rust-version, the oldest compiler the code promises to build with.
# The binaries are glibc builds, not static musl ones: measured on the same machine, the musl
# broker served consumers about 30% slower and spent about 30% more CPU on the same produce load
# (musl's allocator and memcpy; see the README), and the image runs what the benchmarks measure.
# `ldd` names the shared libraries the binaries load; they are copied with the loader's paths.
# Runtime stage: FROM scratch. There is no ENTRYPOINT: every binary is on PATH, so the command
# names the program (`docker run IMAGE strata-broker --config FILE`, and pods set
# `command: ["/usr/local/bin/strata-broker"]` or `["/usr/local/bin/strata-operator"]`).
# tests/image/ builds its image from this file's runtime stage (the part after `FROM scratch`),
# with the same binaries built on the test machine.

ARG RUST_VERSION=1.89
ARG VERSION=0.1.0
# Programs shipped in the image, one name per binary target of the workspace.
ARG BINARIES="strata strata-broker strata-operator strata-mirror"

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
ARG BINARIES
ARG TARGET=x86_64-unknown-linux-gnu
WORKDIR /src
COPY . .
# The release profile keeps line tables for backtraces; the image ships stripped binaries.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_INCREMENTAL=false
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target "$TARGET" --bins \
 && mkdir -p /out/bin /out/data /out/runtime \
 && for bin in $BINARIES; do cp "target/$TARGET/release/$bin" /out/bin/; done \
 && for lib in $(ldd /out/bin/* | grep -o '/[^ :]*\.so[.0-9]*' | sort -u); do \
      cp --parents --dereference "$lib" /out/runtime/; \
    done

FROM scratch
ARG VERSION
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Kafka-wire-compatible broker, CLI and Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/strata-dev/strata" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/runtime/ /
COPY --from=build /out/bin/ /usr/local/bin/
# The only writable path of a broker pod (its PersistentVolumeClaim); owned by the runtime user so
# that a fresh volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data/ /var/lib/strata/
ENV PATH=/usr/local/bin
USER 65532:65532
WORKDIR /var/lib/strata
CMD ["strata", "--help"]
