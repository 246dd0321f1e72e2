"""Fixtures of the real-node suites (tests/nodes/): pods that run processes.

- ``nodes``: ONE cluster per test session with a real node per zone (zone-a/b/c: kubelet +
  containerd + runc + CNI bridge each, one kube-proxy, CoreDNS behind kube-dns; 6 local
  PersistentVolumes per zone pinned to its node), from ``tests/env/k8s/cluster.sh up
  --real-nodes``; no kwok nodes. A watchdog takes it down when the test process dies without its
  teardown.
- ``strata_image``: the project's image built from this checkout's release binaries (as the image
  test builds it) and imported into every node's containerd as ghcr.io/strata-dev/strata:<version>,
  the name the chart and the operator use; nothing is pulled.
- ``operator_release``: ``helm install`` of charts/strata-operator into strata-system with its
  defaults: the operator runs as pods of its own image under its ServiceAccount.
- ``kafka``: host clients (harness/hostkafka.py) resolving through the cluster DNS.
- ``namespaces``: ``make(name)``, deleted at the end of the module.

A failing test shows the state and events of the namespaces that exist and the operator pods' logs.
Figures (cluster up, image build and import) are printed at the end of the run and written to
tests/.work/nodes-figures.txt.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for p in (TESTS, TESTS / "env" / "k8s", TESTS / "image"):
    sys.path.insert(0, str(p))

import oci  # noqa: E402
from controlplane import ControlPlane  # noqa: E402
from harness import kube  # noqa: E402
from harness.hostkafka import HostKafka  # noqa: E402
from harness.kube import Namespaces  # noqa: E402

CHART = REPO / "charts" / "strata-operator"
RELEASE = "strata-operator"
SYSTEM_NS = "strata-system"
FIGURES: dict[str, str] = {}


def record(name: str, value: str) -> None:
    FIGURES[name] = value


def pytest_collection_modifyitems(items):
    """The failover module runs last: it kills operator pods, which the other modules expect
    untouched (restart counts, the Lease holder)."""
    items.sort(key=lambda item: item.module.__name__.endswith("test_failover_pods"))


@pytest.fixture(scope="session")
def nodes(tmp_path_factory):
    """The session's cluster of real nodes, one per zone."""
    plane = ControlPlane(tmp_path_factory.mktemp("realnodes"), zones=3, nodes_per_zone=0,
                         pvs_per_zone=6, real_nodes=True, up_timeout=300)
    plane.down_when_gone(os.getpid())
    try:
        plane.up()
        record("real-node cluster up (control plane, 3 nodes Ready, CoreDNS ready)", f"{plane.up_seconds:.1f} s")
        print(f"\nreal-node cluster up in {plane.up_seconds:.1f}s ({plane.dir})")
        yield plane
    finally:
        t0 = time.monotonic()
        plane.down()
        record("real-node cluster down", f"{time.monotonic() - t0:.1f} s")
        left = leftovers(plane.dir)
        record("left behind by down", "nothing" if not left else "; ".join(left))
        assert not left, f"cluster.sh down left these behind: {left}"


def leftovers(directory: Path) -> list[str]:
    """What of a real-node cluster under ``directory`` outlives ``down``: processes started from
    or working in it (kubelets, containerd, shims, containers), mounts under it, its network
    namespace and the host end of its link."""
    found, mark = [], str(directory).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{entry}/cwd").encode()
        except OSError:
            continue
        if b"strata-cp-watchdog" in cmdline:
            continue  # the watchdog of down_when_gone: it waits for this test process, by design
        if mark in cmdline or cwd.startswith(mark):
            shown = cmdline.replace(b"\0", b" ")[:120].decode(errors="replace")
            found.append(f"process {entry}: {shown}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point.startswith(str(directory)):
            found.append(f"mount {point}")
    if Path("/run/netns/strata-nodes").exists():
        found.append("network namespace strata-nodes")
    if Path("/sys/class/net/stn-host").exists():
        found.append("link stn-host")
    return found


@pytest.fixture(scope="session")
def strata_image(nodes, tmp_path_factory) -> str:
    """ghcr.io/strata-dev/strata:<version>, built here and imported into every node."""
    try:
        bins, seconds = oci.release_bins_dir()
    except AssertionError as e:
        pytest.fail(str(e))
    if seconds is not None:
        record("release build (cargo, in the fixture)", f"{seconds:.0f} s")
    work = tmp_path_factory.mktemp("node-image")
    engine = oci.Engine(work / "engine")
    tag = oci.image_name()
    archive = work / "strata.tar"
    t0 = time.monotonic()
    try:
        oci.build_image(engine, bins, work / "context", tag)
        engine.save(tag, archive)
    finally:
        engine.destroy()
    t1 = time.monotonic()
    nodes.import_images(archive)
    record("project image build (buildah) / import into 3 nodes", f"{t1 - t0:.1f} s / {time.monotonic() - t1:.1f} s")
    archive.unlink()
    return tag


def helm(cp, *args, check=True, timeout=300):
    proc = subprocess.run(["helm", *args], env=cp.env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {pods_state(cp, SYSTEM_NS)}"
                             f"\n{proc.stdout}\n{proc.stderr}")
    return proc


def pods_state(cp, namespace: str) -> str:
    """One line on the pods of ``namespace`` (node, phase, readiness, why a container waits) and
    the cluster's processes that have exited: what a failed wait on them needs to be understood."""
    try:
        pods = cp.items("pods", namespace=namespace)
    except (RuntimeError, subprocess.TimeoutExpired) as e:  # KubectlError is a RuntimeError
        return f"pods of {namespace} unknown ({e})"
    shown = []
    for p in pods:
        status = p.get("status", {})
        waiting = {c["name"]: (c.get("state", {}).get("waiting") or {}).get("reason")
                   for c in status.get("containerStatuses") or [] if c.get("state", {}).get("waiting")}
        ready = [c["status"] for c in status.get("conditions") or [] if c["type"] == "Ready"]
        shown.append(f"{p['metadata']['name']} on {p['spec'].get('nodeName')} {status.get('phase')} "
                     f"ready={ready[0] if ready else '?'}" + (f" waiting={waiting}" if waiting else ""))
    gone = cp.exited_processes()
    return f"pods of {namespace}: {shown or 'none'}" + (f"; exited: {gone}" if gone else "")


@pytest.fixture(scope="session")
def operator_release(nodes, strata_image):
    """The chart installed with its defaults (two operator pods, leader election); uninstalled at
    the end of the session."""
    t0 = time.monotonic()
    helm(nodes, "install", RELEASE, str(CHART), "-n", SYSTEM_NS, "--create-namespace",
         "--wait", "--timeout", "180s")
    record("helm install --wait (operator pods Ready)", f"{time.monotonic() - t0:.1f} s")
    kube.live_namespaces.append((nodes, SYSTEM_NS))
    try:
        yield RELEASE
    finally:
        kube.live_namespaces.remove((nodes, SYSTEM_NS))
        helm(nodes, "uninstall", RELEASE, "-n", SYSTEM_NS, "--wait", "--timeout", "120s", check=False)


@pytest.fixture(scope="session")
def kafka(nodes):
    return HostKafka(nodes)


@pytest.fixture(scope="module")
def namespaces(nodes):
    ns = Namespaces(nodes)
    yield ns
    ns.cleanup()


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("real nodes")
    lines = [f"{k}: {v}" for k, v in FIGURES.items()]
    for line in lines:
        terminalreporter.write_line(line)
    out = REPO / "tests" / ".work"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nodes-figures.txt").write_text("\n".join(lines) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for plane, ns in list(kube.live_namespaces):
        if not getattr(plane, "real_nodes", False):
            continue
        report.sections.append((f"namespace {ns}", kube.namespace_report(plane, ns)))
        if ns == SYSTEM_NS:
            logs = plane.kubectl("logs", "-n", ns, "-l", "app.kubernetes.io/name=strata-operator",
                                 "--tail=30", "--prefix", check=False, timeout=30)
            report.sections.append(("operator pods' logs", logs))
