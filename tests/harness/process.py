"""A managed child process for the suites: started in a session of its own (so a signal reaches it
alone), watched by a watchdog that kills it when the test process dies, stopped by PID. Subclasses
start it (``_popen``) and say what it is (``what``)."""
import os
import signal
import subprocess

from .util import process_alive, tail

STOP_TIMEOUT = 30.0  # SIGTERM grace period before SIGKILL


class ManagedProcess:
    what = "process"

    def __init__(self, log_path):
        self.log_path = log_path
        self.pid = None
        self._proc = None
        self._paused = False

    def _popen(self, cmd, *, cwd, env):
        """Starts ``cmd`` with stdout and stderr appended to the log, and its watchdog."""
        from .brokers import _spawn_watchdog

        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                          start_new_session=True)
        self.pid = self._proc.pid
        self._paused = False
        _spawn_watchdog(self.pid)

    def running(self):
        return self.pid is not None and process_alive(self.pid)

    @property
    def returncode(self):
        return None if self._proc is None else self._proc.returncode

    def _wait_exit(self, timeout):
        try:
            self._proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. True when it exited in time;
        idempotent."""
        if self._proc is None:
            return True
        clean = True
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            if self._paused:
                os.kill(self.pid, signal.SIGCONT)
                self._paused = False
            clean = self._wait_exit(timeout)
            if not clean:
                self.kill9()
        self._proc.wait(timeout=STOP_TIMEOUT)
        self.pid = None
        return clean

    def kill9(self):
        """SIGKILL, then wait until the process is gone."""
        if self._proc is None:
            return
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        if not self._wait_exit(STOP_TIMEOUT):
            raise AssertionError(f"{self.what} pid {self.pid} survived SIGKILL")
        self.pid = None
        self._paused = False

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

    def __enter__(self):
        if not self.running():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<{type(self).__name__} pid={self.pid} log={self.log_path}>"
