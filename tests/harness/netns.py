"""A private network for the brokers of one cluster, so that a test can cut one broker off from the
others while clients still reach it (the kernel here has no tc netem; nftables does the cutting).

Layout of slot ``k`` (0..63, one per running cluster on the machine)::

    root namespace (clients, tools)          namespace srep<k>-n<i> (node i, i = 1..N)
    bridge stratarep<k> 10.213.<k>.1/24  <-veth srep<k>-v<i> / eth0->  10.213.<k>.<10+i>/24

Node-to-node packets cross the bridge (the bridge family's forward hook); client packets go from
the bridge's own address to a node (input/output, never forward). :meth:`BridgeNetwork.isolate`
drops forwarded packets between one node and every other node, in both directions, in the nft
table ``bridge stratarep<k>``; clients are untouched. The 10.213.0.0/16 range and the names keep
clear of the real-node Kubernetes environment (``strata-nodes``, 10.200/16, 10.201.0/24).

Teardown (``close``) kills what still runs inside the node namespaces (by PID, from ``ip netns
pids``: only the brokers this harness started live there), deletes the namespaces (their veths go
with them), the bridge and the nft table. The same script runs from a watchdog when the test
process dies without tearing down, and a later run reclaims a slot whose owner is gone.
"""
import os
import subprocess
import textwrap
from pathlib import Path

SLOTS_DIR = Path("/run/strata-rep")
MAX_SLOTS = 64
SUBNET_PREFIX = "10.213"


class NetworkUnavailable(RuntimeError):
    """Namespaces, the bridge or nftables could not be set up; the message names the command."""


def _run(cmd, check=True):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise NetworkUnavailable(f"`{' '.join(cmd)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class BridgeNetwork:
    """One bridge and ``nodes`` namespaces; see the module docstring."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.slot = None
        self._isolated = set()
        self._loss = 0

    # --- names -----------------------------------------------------------------------------------
    @property
    def bridge(self):
        return f"stratarep{self.slot}"

    @property
    def table(self):
        return f"stratarep{self.slot}"

    def netns(self, i):
        return f"srep{self.slot}-n{i}"

    def veth(self, i):
        return f"srep{self.slot}-v{i}"

    def address(self, i):
        """Address of node ``i`` (1-based) inside its namespace."""
        return f"{SUBNET_PREFIX}.{self.slot}.{10 + i}"

    @property
    def gateway(self):
        """The bridge's address: where clients in the root namespace come from."""
        return f"{SUBNET_PREFIX}.{self.slot}.1"

    def wrap(self, i, cmd):
        """``cmd`` run inside node ``i``'s namespace (``ip netns exec`` execs it: same PID)."""
        return ["ip", "netns", "exec", self.netns(i), *[str(c) for c in cmd]]

    # --- set-up and teardown -----------------------------------------------------------------------
    def open(self):
        """Claims a free slot and builds the bridge and the namespaces. Raises NetworkUnavailable
        (after undoing what was built) when the machine cannot do it."""
        if os.geteuid() != 0:
            raise NetworkUnavailable("network namespaces need root (euid is %d)" % os.geteuid())
        for tool in ("ip", "nft"):
            if _run(["sh", "-c", f"command -v {tool}"], check=False).returncode != 0:
                raise NetworkUnavailable(f"`{tool}` is not installed (tests/env/install/netns.sh)")
        self.slot = self._claim_slot()
        self._write_teardown_script()
        _spawn_cleanup(self._slot_dir, os.getpid())
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for i in range(1, self.nodes + 1):
                ns, veth = self.netns(i), self.veth(i)
                _run(["ip", "netns", "add", ns])
                _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
                _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
                _run(["ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0"])
                _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            self._apply_rules()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def _slot_dir(self):
        return SLOTS_DIR / f"slot{self.slot}"

    def _claim_slot(self):
        SLOTS_DIR.mkdir(parents=True, exist_ok=True)
        for k in range(MAX_SLOTS):
            d = SLOTS_DIR / f"slot{k}"
            try:
                d.mkdir()
            except FileExistsError:
                try:
                    owner = int((d / "owner").read_text().strip())
                except (OSError, ValueError):
                    continue  # being claimed right now by someone else
                if _pid_alive(owner):
                    continue
                # Left behind by a test process that died: tear it down, then claim it.
                script = d / "teardown.sh"
                if script.exists():
                    _run(["bash", str(script)], check=False)
                try:
                    d.mkdir()
                except FileExistsError:
                    continue
            (d / "owner").write_text(str(os.getpid()))
            return k
        raise NetworkUnavailable(f"all {MAX_SLOTS} network slots under {SLOTS_DIR} are in use")

    def _write_teardown_script(self):
        namespaces = " ".join(self.netns(i) for i in range(1, self.nodes + 1))
        veths = " ".join(self.veth(i) for i in range(1, self.nodes + 1))
        # The veths are deleted explicitly: with their namespace they would go asynchronously.
        script = textwrap.dedent(f"""\
            # Teardown of network slot {self.slot} (written by tests/harness/netns.py).
            nft delete table bridge {self.table} 2>/dev/null
            for veth in {veths}; do ip link del "$veth" 2>/dev/null; done
            for ns in {namespaces}; do
              [ -e "/run/netns/$ns" ] || continue
              for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
              ip netns del "$ns" 2>/dev/null
            done
            ip link del {self.bridge} 2>/dev/null
            rm -rf {self._slot_dir}
            exit 0
            """)
        (self._slot_dir / "teardown.sh").write_text(script)

    def close(self):
        """Removes everything :meth:`open` built (idempotent; the slot number stays readable so
        that :meth:`leftovers` can check the result)."""
        if self.slot is None or self.closed:
            return
        script = self._slot_dir / "teardown.sh"
        if script.exists():
            _run(["bash", str(script)], check=False)
        self._isolated.clear()
        self.closed = True

    closed = False

    def leftovers(self):
        """Names of this slot's devices, namespaces, nft table and slot directory that exist."""
        if self.slot is None:
            return []
        found = []
        links = _run(["ip", "-o", "link", "show"], check=False).stdout
        found += [w for w in (self.bridge, *[self.veth(i) for i in range(1, self.nodes + 1)])
                  if f" {w}:" in links or f" {w}@" in links]
        found += [self.netns(i) for i in range(1, self.nodes + 1) if os.path.exists(f"/run/netns/{self.netns(i)}")]
        if _run(["nft", "list", "table", "bridge", self.table], check=False).returncode == 0:
            found.append(f"nft table bridge {self.table}")
        if self._slot_dir.exists():
            found.append(str(self._slot_dir))
        return found

    # --- faults ------------------------------------------------------------------------------------
    def isolate(self, i):
        """Drops every packet between node ``i`` and the other nodes; clients still reach it."""
        if self.slot is None or self.closed:
            raise NetworkUnavailable("the network is not open")
        self._isolated.add(i)
        self._apply_rules()

    def packet_loss(self, percent):
        """Drops ``percent`` % of the packets between this network's nodes, at random (0: none);
        clients and other networks are untouched."""
        if self.slot is None or self.closed:
            raise NetworkUnavailable("the network is not open")
        self._loss = int(percent)
        self._apply_rules()

    def heal(self, i=None):
        """Undoes :meth:`isolate` for node ``i`` (every node, and any packet loss, when None)."""
        if i is None:
            self._isolated.clear()
            self._loss = 0
        else:
            self._isolated.discard(i)
        if self.slot is not None and not self.closed:
            self._apply_rules()

    @property
    def isolated(self):
        return frozenset(self._isolated)

    def _apply_rules(self):
        rules = []
        for i in sorted(self._isolated):
            others = ", ".join(self.address(j) for j in range(1, self.nodes + 1) if j != i)
            if not others:
                continue
            rules.append(f"ip saddr {self.address(i)} ip daddr {{ {others} }} drop")
            rules.append(f"ip daddr {self.address(i)} ip saddr {{ {others} }} drop")
        if self._loss > 0:
            # Only packets between two nodes cross the bridge's forward hook; the bridge family's
            # hook sees every bridge of the host, so the rule names this slot's subnet (another
            # cluster's network, run beside this one, keeps its packets).
            subnet = f"{SUBNET_PREFIX}.{self.slot}.0/24"
            rules.append(f"ip saddr {subnet} ip daddr {subnet} numgen random mod 100 < {self._loss} drop")
        body = "\n".join(f"    {r}" for r in rules)
        # One transaction: the table is replaced atomically (declare, delete, recreate).
        ruleset = textwrap.dedent(f"""\
            table bridge {self.table}
            delete table bridge {self.table}
            table bridge {self.table} {{
              chain forward {{
                type filter hook forward priority 0; policy accept;
            {body}
              }}
            }}
            """)
        proc = subprocess.run(["nft", "-f", "-"], input=ruleset, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise NetworkUnavailable(f"`nft -f -` exited {proc.returncode}: {proc.stderr.strip()}\n{ruleset}")


# Runs the slot's teardown script when the test process is gone without having removed the slot.
# The slot must still be its owner's: once a finished test process has removed it, the next one
# may claim the same slot before this wakes, and its network is not this watchdog's to remove.
_CLEANUP_WATCHDOG = r"""
slot=$1 owner=$2
while kill -0 "$owner" 2>/dev/null; do
  [ -d "$slot" ] || exit 0
  sleep 2
done
[ "$(cat "$slot/owner" 2>/dev/null)" = "$owner" ] || exit 0
[ -f "$slot/teardown.sh" ] && bash "$slot/teardown.sh"
exit 0
"""


def _spawn_cleanup(slot_dir, owner_pid):
    subprocess.run(["setsid", "-f", "bash", "-c", _CLEANUP_WATCHDOG, "strata-net-watchdog", str(slot_dir),
                    str(owner_pid)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=30, check=True)
