"""Python handle on the test Kubernetes control plane of tests/env/k8s/cluster.sh.

    cp = ControlPlane(tmpdir).up()          # etcd, apiserver, controller-manager, scheduler, kwok
    cp.kubectl("get", "nodes")               # -> stdout (str); raises KubectlError on failure
    cp.get_json("pods", namespace="x")       # -> parsed `kubectl get -o json`
    cp.apply(yaml_text)
    cp.wait_until(lambda: ..., timeout=60, what="...")
    cp.env                                    # KUBECONFIG + PATH (kubectl, helm) for subprocesses
    cp.down()

With ``real_nodes=True`` it also runs one real node per zone (kubelet + containerd, kube-proxy,
CoreDNS; see nodes.sh):

    cp.import_images(archive)                 # a docker/OCI archive into every node's containerd
    cp.zone_down("zone-b"); cp.zone_up("zone-b")
    cp.cluster_dns_command(["kafka-topics", ...])  # argv that resolves cluster names (CoreDNS)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

K8S_DIR = Path(__file__).resolve().parent
CLUSTER_SH = K8S_DIR / "cluster.sh"


_WATCHDOG = r"""
owner=$1 sh=$2 dir=$3
while kill -0 "$owner" 2>/dev/null; do sleep 2; done
"$sh" down "$dir" >/dev/null 2>&1
"""


def versions() -> dict[str, str]:
    """The pinned versions and image names of versions.env."""
    return dict(line.split("=", 1) for line in (K8S_DIR / "versions.env").read_text().splitlines()
                if line and not line.startswith("#"))


class KubectlError(RuntimeError):
    pass


class ControlPlane:
    def __init__(self, directory: os.PathLike | str, zones: int = 3, nodes_per_zone: int = 2,
                 pvs_per_zone: int = 12, up_timeout: int = 240, real_nodes: bool = False):
        self.dir = Path(directory).resolve()
        self.zones = zones
        self.nodes_per_zone = nodes_per_zone
        self.pvs_per_zone = pvs_per_zone
        self.up_timeout = up_timeout
        self.real_nodes = real_nodes
        self.up_seconds: float | None = None
        self._env: dict[str, str] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def up(self) -> "ControlPlane":
        self.dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, STRATA_K8S_UP_TIMEOUT=str(self.up_timeout))
        t0 = time.monotonic()
        for attempt in (1, 2):
            proc = subprocess.run(
                [str(CLUSTER_SH), "up", str(self.dir), "--zones", str(self.zones),
                 "--nodes-per-zone", str(self.nodes_per_zone), "--pvs-per-zone", str(self.pvs_per_zone),
                 *(["--real-nodes"] if self.real_nodes else [])],
                env=env, capture_output=True, text=True, timeout=self.up_timeout + 60)
            if proc.returncode == 0 or attempt == 2 or " exited;" not in proc.stderr:
                break
            # A control-plane process that died during start-up (seen once in a loaded CI run:
            # kube-controller-manager gone within 5 s, its log empty) gets one more start; the
            # first failure is printed so that it stays visible.
            print(f"cluster.sh up: a process exited during start-up, starting again:\n{proc.stderr}",
                  file=sys.stderr)
            self.down()
        self.up_seconds = time.monotonic() - t0
        if proc.returncode != 0:
            # Nothing of a failed start stays running (a caller's `with` never reaches __exit__).
            self.down()
            raise RuntimeError(f"cluster.sh up failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        self._load_env()
        return self

    def down(self) -> None:
        subprocess.run([str(CLUSTER_SH), "down", str(self.dir)], capture_output=True, text=True,
                       timeout=180, check=False)

    # -- real nodes ------------------------------------------------------------------------
    def _cluster_sh(self, *args: str, timeout: float = 180) -> str:
        proc = subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"cluster.sh {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stderr}{proc.stdout}")
        return proc.stdout

    def import_images(self, *archives: os.PathLike | str) -> None:
        """Imports image archives (docker-archive or OCI) into the containerd of every real node
        that is up."""
        self._cluster_sh("import", str(self.dir), *map(str, archives))

    def zone_down(self, zone: str) -> None:
        """The zone's real node dies: kubelet SIGKILLed, containers killed, bridge down."""
        self._cluster_sh("zone-down", str(self.dir), zone)

    def zone_up(self, zone: str) -> None:
        """The zone's real node comes back; returns once the Node is Ready again."""
        self._cluster_sh("zone-up", str(self.dir), zone)

    @property
    def resolv_conf(self) -> Path:
        """A resolv.conf naming the cluster DNS (the kube-dns Service), for host clients."""
        return self.dir / "nodes" / "resolv.conf"

    def cluster_dns_command(self, argv: list[str]) -> list[str]:
        """``argv`` run on the host as a machine of the cluster network: resolving through the
        cluster DNS (the kube-dns Service, reached through kube-proxy), so that Service and pod
        names (e.g. the brokers' advertised listeners) resolve. The resolv.conf is bound over
        /etc/resolv.conf in a private mount namespace of that process only."""
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', str(self.resolv_conf), *argv]

    def node_log(self, component: str) -> Path:
        """Log of a real-node process: kubelet-zone-a, containerd-zone-b, kube-proxy, ..."""
        return self.dir / "log" / f"{component}.log"

    def down_when_gone(self, owner_pid: int) -> None:
        """Starts a watchdog that takes this cluster down once ``owner_pid`` is gone (a test
        process killed, or timed out hard, never runs its teardown)."""
        subprocess.run(["setsid", "-f", "bash", "-c", _WATCHDOG, "strata-cp-watchdog", str(owner_pid),
                        str(CLUSTER_SH), str(self.dir)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, timeout=30)

    def __enter__(self) -> "ControlPlane":
        return self.up()

    def __exit__(self, *exc: Any) -> None:
        self.down()

    # -- access ----------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG and a PATH with kubectl, kwok and helm first."""
        if self._env is None:
            self._load_env()
        assert self._env is not None
        return dict(self._env)

    @property
    def bin_dir(self) -> Path:
        return Path(self.env["PATH"].split(os.pathsep, 1)[0])

    def log(self, component: str) -> Path:
        """Log file of etcd, kube-apiserver, kube-controller-manager, kube-scheduler or kwok."""
        return self.dir / "log" / f"{component}.log"

    def _load_env(self) -> None:
        out = subprocess.run([str(CLUSTER_SH), "env", str(self.dir)], capture_output=True,
                             text=True, check=True).stdout
        env = dict(os.environ)
        for line in out.splitlines():
            if line.startswith("export ") and "=" in line:
                key, value = line[len("export "):].split("=", 1)
                env[key] = value.replace("$PATH", os.environ.get("PATH", ""))
        self._env = env

    # -- kubectl ---------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> str:
        proc = subprocess.run([str(self.bin_dir / "kubectl"), *args], input=input, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}): "
                               f"{proc.stderr.strip()}")
        return proc.stdout

    def apply(self, manifest: str, *extra: str) -> str:
        return self.kubectl("apply", "-f", "-", *extra, input=manifest)

    def get_json(self, *what: str, namespace: str | None = None, selector: str | None = None) -> Any:
        args = ["get", *what, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args))

    def items(self, *what: str, **kw: Any) -> list[dict]:
        return self.get_json(*what, **kw).get("items", [])

    # -- waiting ---------------------------------------------------------------------------
    def wait_until(self, predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.5,
                   what: str = "condition", describe: Callable[[], Any] | None = None) -> Any:
        """Polls predicate until it returns something truthy (returned), or raises TimeoutError.

        The error names the last kubectl failure, what ``describe()`` reports of the state at the
        deadline, and any process of this cluster that has exited (so a dead controller manager
        or kubelet is named instead of only a condition that never came)."""
        deadline = time.monotonic() + timeout
        last_err: Exception | None = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
            except (KubectlError, subprocess.TimeoutExpired) as e:
                last_err = e
            if time.monotonic() >= deadline:
                detail = [f"last error: {last_err}"] if last_err else []
                if describe is not None:
                    try:
                        detail.append(f"at the deadline: {describe()}")
                    except (KubectlError, subprocess.TimeoutExpired) as e:
                        detail.append(f"state unknown: {e}")
                detail += [f"exited: {gone}" for gone in self.exited_processes()]
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                                   + (f" ({'; '.join(detail)})" if detail else ""))
            time.sleep(interval)

    def exited_processes(self) -> list[str]:
        """The processes cluster.sh started and still records (run/NAME.pid: control plane,
        kubelets, containerds, kube-proxy) that are no longer running, each with the last line
        of its log. A zone taken down on purpose has no record any more."""
        gone = []
        for pid_file in sorted((self.dir / "run").glob("*.pid")):
            try:
                pid = int(pid_file.read_text().strip())
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    continue
            except (OSError, ValueError, IndexError):
                pass
            try:
                lines = self.log(pid_file.stem).read_text(errors="replace").strip().splitlines()
                last = lines[-1][:200] if lines else "empty log"
            except OSError:
                last = "no log"
            gone.append(f"{pid_file.stem} ({last})")
        return gone

    # -- cluster facts ---------------------------------------------------------------------
    def node_zones(self) -> dict[str, str]:
        """Node name -> topology.kubernetes.io/zone."""
        return {n["metadata"]["name"]: n["metadata"]["labels"].get("topology.kubernetes.io/zone", "")
                for n in self.items("nodes")}

    def ready_nodes(self) -> list[str]:
        return [n["metadata"]["name"] for n in self.items("nodes") if _cond(n, "Ready")]

    def ready_pods(self, namespace: str, selector: str | None = None) -> list[dict]:
        return [p for p in self.items("pods", namespace=namespace, selector=selector)
                if p.get("status", {}).get("phase") == "Running" and _cond(p, "Ready")
                and not p["metadata"].get("deletionTimestamp")]

    def recycle_volumes(self) -> int:
        """Makes Released PersistentVolumes of strata-local Available again (clears claimRef),
        so that a long test session does not run out of the static pool. The directory of a real
        node's volume is emptied first, as a provisioner's Delete would: the next claim starts
        with an empty volume. Returns how many."""
        n = 0
        for pv in self.items("pv"):
            if pv.get("status", {}).get("phase") == "Released" and \
                    pv["spec"].get("storageClassName") == "strata-local":
                path = Path((pv["spec"].get("local") or {}).get("path", "/nonexistent"))
                if self.dir in path.parents and path.is_dir():
                    shutil.rmtree(path)
                    path.mkdir()
                self.kubectl("patch", "pv", pv["metadata"]["name"], "--type=json",
                             "-p", '[{"op":"remove","path":"/spec/claimRef"}]')
                n += 1
        return n


def _cond(obj: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions", []) or [])


def names(objs: Iterable[dict]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)
