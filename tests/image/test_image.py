"""The container image, built without a registry: buildah builds the Dockerfile's runtime stage
(FROM scratch) around the release binaries of this checkout and the C runtime they load, podman
runs it.

1. The Dockerfile and the test's Containerfile agree (one is derived from the other) and the
   Dockerfile builds what the test builds.
2. The image holds the binaries, the shared libraries they load (glibc's loader at the path the
   binaries name, libc, libm, libgcc_s) and the data directory, nothing else: no shell; every
   binary answers --version with the workspace version; the default user is 65532:65532.
3. A broker started as a pod starts it (command /usr/local/bin/strata-broker, --config from a
   read-only mount, read-only root filesystem, no capabilities, data on a volume at
   /var/lib/strata) serves kcat in its own network namespace, stops cleanly on SIGTERM, and
   serves the same records after a restart.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time
import tomllib
import uuid
from pathlib import Path

import pytest

import oci
from harness.util import wait_until

pytestmark = pytest.mark.timeout(900)

VERSION = oci.workspace_version()
UID = GID = 65532


# -- 1. Dockerfile and Containerfile ----------------------------------------------------------

def test_runtime_stage_is_scratch_nonroot_with_binaries_on_path():
    lines = oci.dockerfile_lines()
    stage = oci.runtime_stage(lines)
    assert stage[0] == "FROM scratch", stage[0]
    assert f"USER {UID}:{GID}" in stage
    assert "ENV PATH=/usr/local/bin" in stage
    assert "WORKDIR /var/lib/strata" in stage
    assert "COPY --from=build /out/bin/ /usr/local/bin/" in stage
    assert "COPY --from=build /out/runtime/ /" in stage
    assert f"COPY --from=build --chown={UID}:{GID} /out/data/ /var/lib/strata/" in stage
    # No ENTRYPOINT: the command names the program (docker run IMAGE strata-broker ...; pods set
    # command: [/usr/local/bin/strata-broker]).
    assert not [line for line in stage if line.upper().startswith("ENTRYPOINT")]
    assert stage[-1] == 'CMD ["strata", "--help"]'
    # Nothing in the runtime stage may need a shell.
    assert not [line for line in stage if line.upper().startswith("RUN")]


def test_dockerfile_builds_what_the_test_builds():
    lines = oci.dockerfile_lines()
    args = oci.global_args(lines)
    assert args["VERSION"] == VERSION
    cargo = tomllib.loads((oci.REPO_ROOT / "Cargo.toml").read_text())
    assert args["RUST_VERSION"] == cargo["workspace"]["package"]["rust-version"]
    build = oci.stages(lines)[0]
    assert re.match(r"FROM docker\.io/library/rust:\$\{RUST_VERSION\}-slim-bookworm AS build$", build[0])
    assert f"ARG TARGET={oci.TARGET}" in build
    run = " ".join(line for line in build if line.startswith("RUN"))
    assert 'cargo build --release --locked --target "$TARGET" --bins' in run
    # The shared libraries come from ldd, as the test's own image takes them (oci.runtime_libraries).
    assert "ldd /out/bin/*" in run and "/out/runtime/" in run
    # Every shipped program is a binary target of the workspace (adding strata-mirror is one
    # word in ARG BINARIES).
    meta = json.loads(oci.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                              cwd=oci.REPO_ROOT).stdout)
    bins = {t["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
    shipped = oci.binaries(lines)
    assert {"strata", "strata-broker", "strata-operator"} <= set(shipped)
    assert set(shipped) <= bins, f"not binary targets: {set(shipped) - bins}"


def test_containerfile_is_the_dockerfile_runtime_stage():
    lines = oci.dockerfile_lines()
    stage = oci.runtime_stage(lines)
    derived = oci.containerfile_from_dockerfile(lines).splitlines()
    assert not [line for line in derived if "--from=" in line]
    # Same instructions in the same order; only the COPY sources differ.
    assert len([d for d in derived if not d.startswith("ARG ") or d in stage]) == len(stage)
    body = derived[len(derived) - len(stage):]
    for ours, theirs in zip(body, stage):
        if theirs.startswith("COPY"):
            assert ours == theirs.replace("--from=build ", "").replace(" /out/", " out/"), (ours, theirs)
        else:
            assert ours == theirs
    with pytest.raises(ValueError):
        oci.containerfile_from_dockerfile(lines[:-1] + ["COPY --from=elsewhere /x /y", lines[-1]])


# -- 2. what the image holds ---------------------------------------------------------------------

def test_image_config(engine, image):
    config = engine.inspect(image)["Config"]
    assert config["User"] == f"{UID}:{GID}"
    assert "PATH=/usr/local/bin" in config["Env"]
    assert config["WorkingDir"] == "/var/lib/strata"
    assert not config.get("Entrypoint")
    assert config["Cmd"] == ["strata", "--help"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


def _interpreter(path: Path) -> str | None:
    """The program interpreter (PT_INTERP) an ELF executable names, if any."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, f"{path} is not a 64-bit ELF"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        kind, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if kind == 3:  # PT_INTERP
            offset, = struct.unpack_from("<Q", data, phoff + i * phentsize + 8)
            size, = struct.unpack_from("<Q", data, phoff + i * phentsize + 32)
            return data[offset:offset + size].rstrip(b"\0").decode()
    return None


def test_image_holds_only_the_binaries_their_libraries_and_the_data_dir(engine, image):
    shipped = oci.binaries()
    with engine.mounted(image) as rootfs:
        files = sorted("/" + str(p.relative_to(rootfs)) for p in rootfs.rglob("*")
                       if not p.is_dir() or not any(p.iterdir()))
        data = rootfs / "var/lib/strata"
        assert (data.stat().st_uid, data.stat().st_gid) == (UID, GID)
        binaries = [rootfs / "usr/local/bin" / name for name in shipped]
        for binary in binaries:
            assert binary.stat().st_uid == 0 and binary.stat().st_mode & 0o777 == 0o755
            loader = _interpreter(binary)
            assert loader and (rootfs / loader.lstrip("/")).is_file(), \
                f"{binary.name}: its loader {loader} is not in the image"
        libraries = oci.runtime_libraries(binaries)
    assert {lib.rsplit("/", 1)[-1].split(".so")[0] for lib in libraries} <= \
        {"ld-linux-x86-64", "libc", "libm", "libgcc_s"}, libraries
    # Podman's run-time mount points (/etc/hosts, /dev, /proc, ...) are not in the image.
    assert files == sorted([f"/usr/local/bin/{n}" for n in shipped] + ["/var/lib/strata"] + libraries)


def test_there_is_no_shell(engine, image):
    proc = engine.run_once(image, "/bin/sh", "-c", "true", check=False)
    assert proc.returncode != 0
    assert "no such file" in (proc.stderr + proc.stdout).lower()


@pytest.mark.parametrize("name", oci.binaries())
def test_every_binary_answers_version(engine, image, name):
    proc = engine.run_once(image, name, "--version")
    assert proc.stdout.strip() == f"{name} {VERSION}", proc.stdout + proc.stderr


def test_operator_renders_an_example_in_the_image(engine, image):
    """The operator in the image runs its real code path (parse, validate, build the children)."""
    examples = oci.REPO_ROOT / "deploy" / "examples"
    proc = engine.podman("run", "--rm", "--pull", "never", "--network", "none", *oci.Engine.ULIMITS,
                         "--read-only", "-v", f"{examples}:/examples:ro", image,
                         "strata-operator", "render", "-f", "/examples/stretch-3-zone.yaml",
                         timeout=60)
    assert proc.stdout.count("kind: StatefulSet") == 3, proc.stdout[-2000:] + proc.stderr
    assert f"image: ghcr.io/strata-dev/strata:{VERSION}" in proc.stdout


def test_default_command_prints_help(engine, image):
    proc = engine.run_once(image)
    assert "Usage: strata" in proc.stdout, proc.stdout + proc.stderr


# -- 3. a broker as a pod runs it -----------------------------------------------------------------

RECORDS = 5000


def _kcat(ns: str, *args: str, input: str | None = None, timeout: float = 60, check: bool = True):
    return oci.in_netns(ns, "kcat", "-b", "127.0.0.1:9092", *args, input=input, timeout=timeout,
                        check=check)


def _consume(ns: str, topic: str) -> list[str]:
    out = _kcat(ns, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k=%s\\n").stdout
    return out.splitlines()


def test_broker_starts_serves_stops_and_keeps_its_data(engine, image, tmp_path, record_figure):
    conf = tmp_path / "conf"
    data = tmp_path / "data"
    conf.mkdir()
    data.mkdir()
    os.chown(data, UID, GID)  # a fresh PersistentVolume as fsGroup/the provisioner hands it over
    (conf / "server.properties").write_text(
        "node.id=1\n"
        "listeners=PLAINTEXT://127.0.0.1:9092\n"
        "log.dirs=/var/lib/strata/data\n"
        "offsets.topic.num.partitions=4\n"
        "num.partitions=1\n")
    name = f"strata-img-{uuid.uuid4().hex[:8]}"
    topic = "smoke"
    expected = [f"k{i}=value-{i}" for i in range(RECORDS)]

    def running() -> bool:
        state = json.loads(engine.podman("inspect", name).stdout)[0]["State"]
        if not state["Running"]:
            logs = engine.podman("logs", name, check=False).stderr[-3000:]
            # pytest.fail, not an assertion: wait_until retries on exceptions, this is final.
            pytest.fail(f"broker container exited {state['ExitCode']}:\n{logs}")
        return True

    def serving(ns: str) -> bool:
        running()
        return _kcat(ns, "-L", "-m", "2", timeout=15, check=False).returncode == 0

    with oci.netns(name) as ns:
        t0 = time.monotonic()
        engine.podman(
            "run", "-d", "--name", name, "--pull", "never", "--network", f"ns:/run/netns/{ns}",
            *oci.Engine.ULIMITS, "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges",
            "-v", f"{conf}:/etc/strata:ro", "-v", f"{data}:/var/lib/strata",
            "--entrypoint", "/usr/local/bin/strata-broker",
            image, "--config", "/etc/strata/server.properties")
        try:
            wait_until(lambda: serving(ns), timeout=60, what="broker in the container serving metadata",
                       interval=0.2)
            record_figure("broker container start to serving", f"{time.monotonic() - t0:.1f} s")

            payload = "".join(f"k{i}:value-{i}\n" for i in range(RECORDS))
            _kcat(ns, "-P", "-t", topic, "-K:", "-X", "acks=all", input=payload)
            assert _consume(ns, topic) == expected

            t1 = time.monotonic()
            engine.podman("stop", "--time", "30", name, timeout=60)
            state = json.loads(engine.podman("inspect", name).stdout)[0]["State"]
            assert state["ExitCode"] == 0, engine.podman("logs", name, check=False).stderr[-3000:]
            record_figure("broker SIGTERM to exit", f"{time.monotonic() - t1:.1f} s")
            # Everything it wrote is on the volume (the root filesystem is read-only).
            assert (data / "data" / f"{topic}-0").is_dir()

            engine.podman("start", name)
            wait_until(lambda: serving(ns), timeout=60, what="restarted broker serving", interval=0.2)
            assert _consume(ns, topic) == expected
            record_figure("broker smoke (start, produce+consume 5000, stop, restart, consume)",
                          f"{time.monotonic() - t0:.1f} s")
        finally:
            engine.podman("rm", "--force", "--time", "5", name, check=False)
