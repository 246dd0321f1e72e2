"""Kubernetes chores of the end-to-end suites, on a ControlPlane of tests/env/k8s/controlplane.py:
installing the CRDs, namespaces that clean up after themselves, reading conditions and events."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
CRD_NAMES = ["kafkaclusters.kafka.strata.dev", "kafkatopics.kafka.strata.dev",
             "mirrorflows.kafka.strata.dev"]

# (cp, namespace) pairs that exist right now, for failure reports
live_namespaces: list = []


def install_crds(cp) -> str:
    """Applies crds/ and waits until the API server serves and publishes the three kinds."""
    out = cp.kubectl("apply", "-f", str(CRD_DIR))
    cp.kubectl("wait", "--for", "condition=Established", "--timeout=60s",
               *[f"crd/{n}" for n in CRD_NAMES])
    # discovery and the OpenAPI document lag behind the Established condition
    cp.wait_until(lambda: cp.kubectl("get", "kafkaclusters,kafkatopics,mirrorflows", "-A", check=False) is not None
                  and "kafkaclusters" in cp.kubectl("api-resources", "--api-group=kafka.strata.dev"),
                  timeout=60, what="kafka.strata.dev resources in discovery")
    return out


# --- namespaces ---------------------------------------------------------------------------------

def create_namespace(cp, name: str) -> str:
    if cp.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name"):
        delete_namespace(cp, name)
    # volumes released by namespaces deleted earlier (without waiting) go back to the pool
    cp.recycle_volumes()
    cp.kubectl("create", "namespace", name)
    cp.wait_until(lambda: cp.kubectl("get", "serviceaccount", "default", "-n", name, check=False),
                  timeout=60, what=f"default ServiceAccount in {name}")
    live_namespaces.append((cp, name))
    return name


def delete_namespace(cp, name: str, timeout: float = 90, wait: bool = True) -> None:
    """Deletes the namespace and (with ``wait``) waits until it is gone, then recycles released
    volumes. A KafkaTopic finalizer nobody honours (no operator left) is removed after the
    timeout so the session can go on; that is reported as an error, not hidden."""
    cp.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
    if not wait:
        if (cp, name) in live_namespaces:
            live_namespaces.remove((cp, name))
        return
    try:
        cp.wait_until(lambda: not cp.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name"),
                      timeout=timeout, what=f"namespace {name} deleted")
    except TimeoutError:
        stuck = cp.kubectl("get", "kafkatopics,kafkaclusters", "-n", name, "-o",
                           "custom-columns=NAME:.metadata.name,FINALIZERS:.metadata.finalizers", check=False)
        for kt in cp.kubectl("get", "kafkatopics", "-n", name, "-o", "name", check=False).split():
            cp.kubectl("patch", kt, "-n", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                       check=False)
        cp.wait_until(lambda: not cp.kubectl("get", "namespace", name, "--ignore-not-found", "-o", "name"),
                      timeout=60, what=f"namespace {name} deleted after clearing finalizers")
        raise AssertionError(f"namespace {name} was stuck deleting for {timeout}s:\n{stuck}")
    finally:
        if (cp, name) in live_namespaces:
            live_namespaces.remove((cp, name))
    # PVCs removed with the namespace leave Released volumes behind: back to the pool
    cp.recycle_volumes()


class Namespaces:
    def __init__(self, cp):
        self.cp = cp
        self.made: list[str] = []

    def make(self, name: str) -> str:
        create_namespace(self.cp, name)
        self.made.append(name)
        return name

    def cleanup(self) -> None:
        """Deletes the namespaces. Only a namespace whose KafkaTopics still carry a finalizer is
        waited for (the operator must process them while it runs); the others finish in the
        background (about 10 s each: namespace controller, garbage collector, kwok)."""
        errors = []
        for name in reversed(self.made):
            try:
                pending = self.cp.kubectl("get", "kafkatopics", "-n", name, "-o",
                                          "jsonpath={.items[*].metadata.finalizers}", check=False).strip()
                delete_namespace(self.cp, name, wait=bool(pending))
            except Exception as e:  # delete every namespace even when one is stuck
                errors.append(e)
        self.made.clear()
        if errors:
            raise errors[0]


# --- reading Kubernetes objects -----------------------------------------------------------------

def condition(obj, ctype):
    """The condition of type ``ctype`` in ``obj.status.conditions`` (None when absent)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def has_condition(obj, ctype, status, reason=None):
    c = condition(obj, ctype)
    return c is not None and c.get("status") == status and (reason is None or c.get("reason") == reason)


def events_for(cp, namespace, name, reason=None):
    """Events of the object ``name`` in ``namespace`` (optionally of one reason), oldest first."""
    evs = [e for e in cp.items("events", namespace=namespace)
           if e.get("involvedObject", {}).get("name") == name
           and (reason is None or e.get("reason") == reason)]
    # eventTime (events.k8s.io, microseconds) orders events of the same second; core events
    # only have lastTimestamp
    return sorted(evs, key=lambda e: (e.get("eventTime") or e.get("lastTimestamp") or "",
                                      e["metadata"].get("creationTimestamp", "")))


def namespace_report(cp, namespace):
    """The state of a namespace for a failure report: custom resources, workloads, pods and claims,
    the custom resources' status, and the latest events."""
    try:
        state = cp.kubectl("get", "kafkaclusters,kafkatopics,statefulsets,deployments,pods,pvc", "-n",
                           namespace, "-o", "wide", check=False, timeout=20)
        conds = cp.kubectl("get", "kafkaclusters,kafkatopics", "-n", namespace, "-o",
                           "jsonpath={range .items[*]}{.kind}/{.metadata.name} gen={.metadata.generation} "
                           "{.status}{\"\\n\"}{end}", check=False, timeout=20)
        events = cp.kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False,
                            timeout=20)
    except (RuntimeError, subprocess.TimeoutExpired) as e:  # KubectlError is a RuntimeError
        return str(e)
    return f"{state}\n{conds}\n{events[-4000:]}"
