"""The image test's tools: reading the Dockerfile, building with buildah and running with podman in
a private, throw-away storage (nothing pulled, nothing left behind), and network namespaces.

The test's Containerfile is not written by hand: it is the Dockerfile's runtime stage (everything
after its last ``FROM scratch``, plus the global ARGs) with ``COPY --from=build /out/...`` turned
into ``COPY out/...`` from a local context holding the binaries built on this machine. The user,
paths, environment, labels and command of the tested image are therefore the Dockerfile's own.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
TARGET = "x86_64-unknown-linux-gnu"


def workspace_version() -> str:
    return tomllib.loads((REPO_ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


# -- the Dockerfile ------------------------------------------------------------------------------

def dockerfile_lines(text: str | None = None) -> list[str]:
    """Instructions of the Dockerfile, continuation lines joined, comments and blanks dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current.strip())
    return out


def global_args(lines: list[str]) -> dict[str, str]:
    """ARGs declared before the first FROM, with their defaults (quotes removed)."""
    args = {}
    for line in lines:
        if line.upper().startswith("FROM "):
            break
        m = re.match(r"ARG\s+(\w+)(?:=(.*))?$", line, re.I)
        if m:
            args[m.group(1)] = (m.group(2) or "").strip().strip('"')
    return args


def binaries(lines: list[str] | None = None) -> list[str]:
    """The programs the image ships: the Dockerfile's ``ARG BINARIES``."""
    return global_args(lines or dockerfile_lines())["BINARIES"].split()


def stages(lines: list[str]) -> list[list[str]]:
    """Instructions grouped by stage; each stage starts with its FROM line."""
    out: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


def runtime_stage(lines: list[str]) -> list[str]:
    return stages(lines)[-1]


def containerfile_from_dockerfile(lines: list[str] | None = None) -> str:
    """The test's Containerfile: global ARGs + the runtime stage, copying from the local context."""
    lines = lines or dockerfile_lines()
    stage = runtime_stage(lines)
    globals_ = [line for line in lines[: lines.index(stages(lines)[0][0])] if line.upper().startswith("ARG ")]
    body = []
    for line in stage:
        body.append(_local_copy(line) if line.upper().startswith("COPY ") else line)
    return "\n".join(globals_ + body) + "\n"


def _local_copy(line: str) -> str:
    """``COPY --from=build [flags] /out/SRC DEST`` -> ``COPY [flags] out/SRC DEST``."""
    words = line.split()
    flags = [w for w in words[1:] if w.startswith("--")]
    paths = [w for w in words[1:] if not w.startswith("--")]
    if "--from=build" not in flags or len(paths) != 2 or not paths[0].startswith("/out/"):
        raise ValueError(f"runtime stage COPY the test cannot map to its context: {line}")
    flags.remove("--from=build")
    return " ".join(["COPY", *flags, paths[0][1:], paths[1]])


# -- buildah and podman in a private storage ------------------------------------------------------

def run(cmd: list[str], *, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                             f"{proc.stderr.strip()}\n{proc.stdout.strip()}"[-4000:])
    return proc


class Engine:
    """buildah and podman sharing one storage under ``root`` (vfs: no overlay mounts needed)."""

    # The kernel here does not let root raise hard rlimits (no CAP_SYS_RESOURCE), so podman's
    # defaults (nofile/nproc above the host's hard limits) fail in runc; these fit under them.
    ULIMITS = ["--ulimit", "nofile=1024:4096", "--ulimit", "nproc=4096:8192"]

    def __init__(self, root: Path):
        self.root = root
        self.storage = ["--root", str(root / "storage"), "--runroot", str(root / "run"),
                        "--storage-driver", "vfs"]

    def buildah(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(["buildah", *self.storage, *args], **kw)

    def podman(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return run(["podman", *self.storage, "--tmpdir", str(self.root / "libpod"), "--runtime", "runc",
                    "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args], **kw)

    def build(self, context: Path, tag: str) -> None:
        self.buildah("bud", "--isolation", "chroot", "--pull=never", "--layers=false", "-q",
                     "-f", str(context / "Containerfile"), "-t", tag, str(context), timeout=600)

    def save(self, tag: str, archive: Path, name: str | None = None) -> None:
        """Writes the image as a docker archive, named ``name`` (default: ``tag``) inside."""
        self.buildah("push", "-q", tag, f"docker-archive:{archive}:{name or tag}", timeout=300)

    def inspect(self, tag: str) -> dict:
        return json.loads(self.podman("image", "inspect", tag).stdout)[0]

    def run_once(self, tag: str, *argv: str, entrypoint: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess:
        """``podman run --rm`` without a network, as the image's default user."""
        extra = ["--entrypoint", entrypoint] if entrypoint else []
        return self.podman("run", "--rm", "--pull", "never", "--network", "none", *self.ULIMITS,
                           *extra, tag, *argv, check=check, timeout=60)

    @contextmanager
    def mounted(self, tag: str):
        """The image's root filesystem, read through a throw-away working container."""
        ctr = self.buildah("from", "--pull=never", tag).stdout.strip()
        try:
            yield Path(self.buildah("mount", ctr).stdout.strip())
        finally:
            self.buildah("umount", ctr, check=False)
            self.buildah("rm", ctr, check=False)

    def destroy(self) -> None:
        """Removes every container and image of this storage, then the storage itself."""
        self.podman("rm", "--all", "--force", "--time", "5", check=False, timeout=60)
        self.buildah("rm", "--all", check=False)
        self.podman("rmi", "--all", "--force", check=False, timeout=60)
        for mount in reversed(_mounts_under(self.root)):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p.startswith(prefix)]


# -- network namespaces ---------------------------------------------------------------------------

@contextmanager
def netns(name: str):
    """A fresh network namespace with only loopback up; deleted on exit, even on failure."""
    run(["ip", "netns", "del", name], check=False)
    run(["ip", "netns", "add", name])
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        yield name
    finally:
        run(["ip", "netns", "del", name], check=False)


def in_netns(name: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return run(["ip", "netns", "exec", name, *argv], **kw)


# -- the image of this checkout --------------------------------------------------------------------

def release_bins_dir() -> tuple[Path, float | None]:
    """Directory of this checkout's release binaries, and the seconds a build took here (None
    when none was needed). tests/run.sh has built them (its one release build) and exports
    STRATA_BROKER_BIN; without it (a suite run alone) this runs ``cargo build --release --bins``."""
    built = os.environ.get("STRATA_BROKER_BIN")
    if built:
        return Path(built).parent, None
    t0 = time.monotonic()
    proc = subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise AssertionError(f"release build failed:\n{proc.stderr[-4000:]}")
    return REPO_ROOT / "target" / "release", time.monotonic() - t0


def runtime_libraries(binaries_: list[Path]) -> list[str]:
    """The shared libraries (and the loader) the binaries load, as ``ldd`` names them: what the
    Dockerfile's build stage copies into ``/out/runtime``."""
    out = run(["ldd", *map(str, binaries_)]).stdout
    return sorted(set(re.findall(r"/[^ :]*\.so[.0-9]*", out)))


def build_image(engine: "Engine", bins: Path, context: Path, tag: str) -> int:
    """Builds the Dockerfile's runtime stage as ``tag`` around stripped copies of the Dockerfile's
    BINARIES from ``bins`` and the shared libraries they load (``context`` is a scratch
    directory, removed afterwards). Returns the total size of the binaries in bytes."""
    lines = dockerfile_lines()
    (context / "out" / "bin").mkdir(parents=True)
    (context / "out" / "data").mkdir(parents=True)
    (context / "out" / "runtime").mkdir(parents=True)
    total = 0
    shipped = []
    for name in binaries(lines):
        src = bins / name
        assert src.is_file(), f"{src} missing: the release build did not produce {name}"
        strip_copy(src, context / "out" / "bin" / name)
        shipped.append(context / "out" / "bin" / name)
        total += (context / "out" / "bin" / name).stat().st_size
    for lib in runtime_libraries(shipped):
        dst = context / "out" / "runtime" / lib.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(lib).resolve(), dst)
        os.chmod(dst, 0o755)
    (context / "Containerfile").write_text(containerfile_from_dockerfile(lines))
    engine.build(context, tag)
    shutil.rmtree(context, ignore_errors=True)  # the image holds its own copy
    return total


def image_name() -> str:
    """The name users pull and the chart defaults to: ghcr.io/strata-dev/strata:<version>."""
    return f"ghcr.io/strata-dev/strata:{workspace_version()}"


def human_size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def strip_copy(src: Path, dst: Path) -> None:
    """The binary without symbols and debug info (the release profile keeps line tables; the
    Dockerfile builds with CARGO_PROFILE_RELEASE_STRIP=symbols)."""
    run(["strip", "--strip-all", "-o", str(dst), str(src)])
    os.chmod(dst, 0o755)
