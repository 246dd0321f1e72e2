"""Fixtures of the container-image test.

- ``release_bins``: directory of this checkout's release binaries (tests/run.sh's one release
  build; run alone, ``pytest tests/image``, the fixture runs ``cargo build --release --bins``).
- ``engine``/``image``: the runtime image built with buildah from the Dockerfile's runtime stage
  (see oci.py), in a private storage that is removed afterwards, with the figures (image size,
  build time) printed at the end of the run and written to tests/.work/image-figures.txt.
"""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import oci  # noqa: E402

FIGURES: dict[str, str] = {}


def _record(name: str, value: str) -> None:
    FIGURES[name] = value


@pytest.fixture(scope="session")
def release_bins() -> Path:
    try:
        path, seconds = oci.release_bins_dir()
    except AssertionError as e:
        pytest.fail(str(e))
    if seconds is not None:
        _record("release build (cargo, in the fixture)", f"{seconds:.0f} s")
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    eng = oci.Engine(tmp_path_factory.mktemp("oci"))
    try:
        yield eng
    finally:
        eng.destroy()


@pytest.fixture(scope="module")
def image(engine, release_bins, tmp_path_factory):
    """Tag of the built image; its context holds stripped copies of the Dockerfile's BINARIES."""
    tag = f"localhost/strata-image-test:{uuid.uuid4().hex[:10]}"
    t0 = time.monotonic()
    total = oci.build_image(engine, release_bins, tmp_path_factory.mktemp("context"), tag)
    _record("image build (buildah, FROM scratch)", f"{time.monotonic() - t0:.1f} s")
    size = int(engine.inspect(tag)["Size"])
    _record("image size", f"{oci.human_size(size)} ({size} bytes; binaries {oci.human_size(total)})")
    return tag


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("container image")
    lines = [f"{k}: {v}" for k, v in FIGURES.items()]
    for line in lines:
        terminalreporter.write_line(line)
    out = oci.REPO_ROOT / "tests" / ".work"
    out.mkdir(parents=True, exist_ok=True)
    (out / "image-figures.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def record_figure():
    return _record
