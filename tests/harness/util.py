"""Small helpers shared by the suites: waiting for a condition with a deadline, free loopback ports,
unique names. Pure standard library."""
import os
import socket
import time
import uuid


def wait_until(predicate, timeout, what, interval=0.1):
    """Calls ``predicate`` until it returns a truthy value, which is returned.

    Raises AssertionError naming ``what`` when ``timeout`` seconds pass first; the last exception the
    predicate raised (if any) is chained, so the failure says why the condition never held.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_error = None
        except Exception as e:  # the predicate may fail until the condition holds
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}") from last_error
        time.sleep(interval)  # poll interval of the deadline loop


def free_ports(n, host="127.0.0.1"):
    """``n`` distinct TCP ports of ``host`` that were free a moment ago (bound together, released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host="127.0.0.1"):
    """A TCP port of ``host`` that was free a moment ago."""
    return free_ports(1, host)[0]


def port_accepts(port, host="127.0.0.1", timeout=1.0):
    """True when a TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unique_topic(prefix="t"):
    """A topic name no other test uses: ``<prefix>-<8 hex digits>``."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def process_alive(pid):
    """True when process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def tail(path, lines=40):
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def read_exact(sock, n):
    """Exactly ``n`` bytes from ``sock``; ConnectionError when the peer closes first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        buf += chunk
    return buf
