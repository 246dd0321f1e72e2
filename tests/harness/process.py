"""A managed child process for the suites, the one base of every process the harness runs
(brokers, the operator, strata-mirror, MirrorMaker 2, cluster nodes, load generators): started in
a session of its own (so a signal reaches it alone), watched by a watchdog that kills it when the
test process dies, stopped by PID. Subclasses start it (``_popen``, or ``_adopt`` for a process a
script started) and say what it is (``what``)."""
import os
import signal
import subprocess
import time

from .util import process_alive, tail

STOP_TIMEOUT = 30.0  # SIGTERM grace period before SIGKILL

# Kills the process when the test process that started it is gone (a killed or timed-out pytest
# never runs its teardown, and the processes run in sessions of their own).
_WATCHDOG = r"""
owner=$1 child=$2
while kill -0 "$owner" 2>/dev/null; do
  kill -0 "$child" 2>/dev/null || exit 0
  sleep 2
done
kill -TERM "$child" 2>/dev/null || exit 0
for _ in $(seq 1 30); do kill -0 "$child" 2>/dev/null || exit 0; sleep 1; done
kill -KILL "$child" 2>/dev/null
"""


def spawn_watchdog(pid):
    """Starts the watchdog of ``pid``; it outlives nothing but the test process."""
    # setsid -f forks the watchdog off and returns at once: nothing is left for us to reap.
    subprocess.run(["setsid", "-f", "bash", "-c", _WATCHDOG, "strata-test-watchdog", str(os.getpid()), str(pid)],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30, check=True)


class ManagedProcess:
    what = "process"

    def __init__(self, log_path):
        self.log_path = log_path
        self.pid = None
        self.killed = False  # the last stop() needed SIGKILL
        self._proc = None
        self._paused = False

    def _popen(self, cmd, *, cwd=None, env=None):
        """Starts ``cmd`` with stdout and stderr appended to the log, and its watchdog."""
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                          start_new_session=True)
        self._adopt(self._proc.pid)

    def _adopt(self, pid):
        """Takes charge of process ``pid`` (started by ``_popen``, or by a script that detached
        it) and starts its watchdog."""
        self.pid = pid
        self._paused = False
        self.killed = False
        spawn_watchdog(pid)

    def _reap(self):
        """Called once the process is gone; subclasses clean up after it (a PID file, say)."""

    def running(self):
        return self.pid is not None and process_alive(self.pid)

    @property
    def returncode(self):
        """The exit status of a process started by ``_popen`` (None while it runs)."""
        return None if self._proc is None else self._proc.poll()

    def _wait_exit(self, timeout):
        """True when the process has exited within ``timeout`` seconds."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)  # poll interval of the deadline loop
        return True

    def _gone(self):
        if self._proc is not None:
            try:
                self._proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self._reap()
        self.pid = None
        self._paused = False

    def terminate(self):
        """Sends SIGTERM without waiting."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)

    def wait_exit(self, timeout):
        """The exit status once the process has exited within ``timeout`` seconds (0 for one
        this object did not start), else None."""
        if not self._wait_exit(timeout):
            return None
        return 0 if self._proc is None else self._proc.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. True when it exited in time;
        idempotent."""
        clean = True
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            if self._paused:
                os.kill(self.pid, signal.SIGCONT)
                self._paused = False
            clean = self._wait_exit(timeout)
            if not clean:
                self.kill9()
        self._gone()
        self.killed = not clean
        return clean

    def kill9(self):
        """SIGKILL, then wait until the process is gone."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            if not self._wait_exit(STOP_TIMEOUT):
                raise AssertionError(f"{self.what} pid {self.pid} survived SIGKILL")
        self._gone()

    def pause(self):
        """SIGSTOP: the process keeps its connections but does nothing."""
        os.kill(self.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self):
        """SIGCONT after :meth:`pause`."""
        os.kill(self.pid, signal.SIGCONT)
        self._paused = False

    def log_tail(self, lines=60):
        return tail(self.log_path, lines)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<{type(self).__name__} pid={self.pid} log={self.log_path}>"
