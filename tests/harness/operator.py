"""The Strata operator binary run out of cluster for end-to-end tests, and small readers of what
it exposes (Prometheus metrics, Lease holder) plus a recorder of pod events.

    op = OperatorProcess(kubeconfig, log_path, namespaces=["ns"], lease_namespace="ns",
                         holder_id="op-a", overrides={"ns/c": "127.0.0.1:9092"}).start()
    op.metric("strata_operator_leader")          # -> 1.0 / 0.0
    op.stop()                                    # SIGTERM, SIGKILL after the grace period

The process is a ``ManagedProcess``: a session of its own, stopped by PID, killed by a watchdog when
the test process disappears without running its teardown. Its stderr (the log) goes to ``log_path``.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .brokers import REPO_ROOT
from .metrics import metric_sum, parse_metrics
from .process import ManagedProcess
from .util import free_port, wait_until

STOP_TIMEOUT = 20.0  # SIGTERM grace period of the operator before SIGKILL
START_TIMEOUT = 30.0  # until /healthz answers


def operator_bin() -> Path:
    """$STRATA_OPERATOR_BIN or <repo>/target/release/strata-operator."""
    return Path(os.environ.get("STRATA_OPERATOR_BIN") or REPO_ROOT / "target" / "release" / "strata-operator")


class OperatorStartError(AssertionError):
    pass


class OperatorProcess(ManagedProcess):
    """``strata-operator run`` with the options of the test contract."""

    what = "strata-operator"

    def __init__(self, kubeconfig, log_path, *, namespaces=(), leader_election=True,
                 lease_name="strata-operator", lease_namespace="default", holder_id="e2e",
                 overrides=None, progress_interval=1, extra_args=(), env=None, rust_log=None):
        super().__init__(Path(log_path))
        self.kubeconfig = str(kubeconfig)
        self.namespaces = list(namespaces)
        self.leader_election = leader_election
        self.lease_name = lease_name
        self.lease_namespace = lease_namespace
        self.holder_id = holder_id
        self.overrides = dict(overrides or {})
        self.progress_interval = progress_interval
        self.extra_args = list(extra_args)
        self.env = dict(env or os.environ)
        self.rust_log = rust_log or os.environ.get("STRATA_OPERATOR_RUST_LOG", "info,strata_operator=debug")
        self.metrics_port = None

    # -- lifecycle -------------------------------------------------------------------------
    def command(self):
        cmd = [str(operator_bin()), "run",
               "--leader-election", "true" if self.leader_election else "false",
               "--lease-name", self.lease_name, "--lease-namespace", self.lease_namespace,
               "--holder-id", self.holder_id,
               "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
               "--progress-interval", str(self.progress_interval)]
        for ns in self.namespaces:
            cmd += ["--namespace", ns]
        for cluster, addr in self.overrides.items():
            cmd += ["--kafka-bootstrap-override", f"{cluster}={addr}"]
        return cmd + self.extra_args

    def start(self):
        binary = operator_bin()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise OperatorStartError(f"operator binary missing at {binary}: "
                                     f"cargo build --release -p strata-operator")
        self.metrics_port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.env, KUBECONFIG=self.kubeconfig, RUST_LOG=self.rust_log, RUST_BACKTRACE="1", NO_COLOR="1")
        # These would otherwise override what the command line does not set.
        for var in ("STRATA_WATCH_NAMESPACES", "STRATA_TEST_BOOTSTRAP_OVERRIDES", "POD_NAME",
                    "POD_NAMESPACE", "STRATA_LEADER_ELECTION", "STRATA_LEASE_NAME", "STRATA_METRICS_ADDR"):
            env.pop(var, None)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(self.command())}\n".encode())
        self._popen(self.command(), env=env)

        def healthy():
            if self._proc.poll() is not None:
                raise OperatorStartError(f"operator exited with {self._proc.returncode} at start; "
                                         f"log {self.log_path}:\n{self.log_tail()}")
            return self.http("/healthz")[0] == 200
        try:
            wait_until(healthy, START_TIMEOUT, f"operator {self.holder_id} /healthz", interval=0.1)
        except OperatorStartError:
            raise
        except AssertionError as e:
            self.stop()
            raise OperatorStartError(f"{e}; log {self.log_path}:\n{self.log_tail()}") from None
        return self

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, SIGKILL (``killed`` says so). Returns the exit status (negative: killed
        by a signal); None when it was never started."""
        if self._proc is None:
            return None
        super().stop(timeout)
        return self._proc.returncode

    # -- observation -----------------------------------------------------------------------
    def http(self, path, timeout=3.0):
        """(status, body) of GET http://127.0.0.1:<metrics port><path>; (0, error) when refused."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as e:
            return 0, str(e)

    def metrics(self):
        """Every sample of ``/metrics``: [(name, labels, value)]."""
        status, body = self.http("/metrics")
        if status != 200:
            raise AssertionError(f"/metrics of {self.holder_id} answered {status}: {body[:200]}")
        return parse_metrics(body)

    def metric(self, name, **labels):
        """Sum of the samples of ``name`` whose labels include ``labels`` (None when absent)."""
        return metric_sum(self.metrics(), name, **labels)


class PodWatch:
    """Records every pod event of a label selector from ``kubectl get pods --watch`` in a thread:
    ``events`` is a list of (monotonic time, type, pod object). Used to prove orderings and
    availability over a whole rollout, which polling could miss."""

    def __init__(self, kubectl, env, namespace, selector):
        self.cmd = [str(kubectl), "get", "pods", "-n", namespace, "-l", selector, "--watch",
                    "--output-watch-events", "-o", "json"]
        self.env = env
        self.events = []
        self._lock = threading.Lock()
        self._proc = None
        self._thread = None

    def start(self):
        self._proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      stdin=subprocess.DEVNULL, env=self.env, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self):
        decoder = json.JSONDecoder()
        buf = ""
        for line in self._proc.stdout:
            buf += line
            while True:
                stripped = buf.lstrip()
                if not stripped:
                    buf = ""
                    break
                try:
                    obj, end = decoder.raw_decode(stripped)
                except ValueError:
                    buf = stripped
                    break
                buf = stripped[end:]
                with self._lock:
                    self.events.append((time.monotonic(), obj.get("type"), obj.get("object", {})))

    def snapshot(self):
        with self._lock:
            return list(self.events)

    def describe(self):
        """One line per event: seconds since the first, type, pod, uid, deletion, phase, readiness,
        template revision (for failure messages)."""
        evs = self.snapshot()
        t0 = evs[0][0] if evs else 0.0
        return "\n".join(
            f"{t - t0:7.2f} {etype:8} {p['metadata']['name']} {p['metadata'].get('uid', '')[:8]} "
            f"del={'y' if p['metadata'].get('deletionTimestamp') else 'n'} phase={p.get('status', {}).get('phase')} "
            f"ready={pod_ready(p)} rev={p['metadata'].get('labels', {}).get('controller-revision-hash')}"
            for t, etype, p in evs)

    def stop(self):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def pod_ready(pod):
    """Running, Ready and not being deleted."""
    st = pod.get("status", {})
    return (st.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
            and any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in st.get("conditions", []) or []))


def replay_availability(events, expected_pods):
    """Replays watch events; returns (max number of ``expected_pods`` not ready at once,
    deletions as [(pod name, uid)] in the order their deletion started)."""
    state = {}  # name -> (uid, ready)
    worst = 0
    deletions = []
    seen_deleting = set()
    listed = False  # the watch first lists the pods one by one; count from a full picture on
    for _, etype, pod in events:
        name = pod["metadata"]["name"]
        uid = pod["metadata"].get("uid")
        if etype == "DELETED":
            state.pop(name, None)
            if uid not in seen_deleting:
                seen_deleting.add(uid)
                deletions.append((name, uid))
        else:
            state[name] = (uid, pod_ready(pod))
            if pod["metadata"].get("deletionTimestamp") and uid not in seen_deleting:
                seen_deleting.add(uid)
                deletions.append((name, uid))
        listed = listed or all(p in state for p in expected_pods)
        if listed:
            worst = max(worst, sum(1 for p in expected_pods if not state.get(p, (None, False))[1]))
    return worst, deletions

