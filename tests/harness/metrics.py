"""Prometheus text exposition as the suites read it from /metrics of strata-mirror and the
operator: one parser, one way to pick a sample."""
import re
import urllib.request

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text exposition -> [(name, {label: value}, float)]; comments and samples whose
    value is not a number are left out."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = {k: bytes(v, "utf-8").decode("unicode_escape") for k, v in _LABEL.findall(m.group(2) or "")}
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), labels, value))
    return out


def scrape(url, timeout=5):
    """Every sample served at ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return parse_metrics(r.read().decode())


def metric_sum(samples, name, **labels):
    """Sum of the samples of ``name`` whose labels include ``labels`` (values compared as
    strings); None when no sample matches."""
    want = {k: str(v) for k, v in labels.items()}
    values = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items())]
    return sum(values) if values else None


class CounterWatch:
    """Follows a counter (the sum of the matching samples of ``name``) served by several
    processes, across their restarts, while in a ``with`` block: a thread scrapes each process
    every ``interval`` seconds; when a process's pid changes, what its previous life counted is
    kept. :meth:`moved` is what all of them counted since the block began. What a process counts
    after its last scrape and before it exits (at most ``interval`` seconds of its life) is not
    seen: scrape it with :meth:`scrape` right before stopping it to narrow that.

    ``targets``: {key: (url, pid)} where ``pid()`` returns the process's current pid."""

    def __init__(self, targets, name, label_filter=lambda labels: True, interval=0.2):
        import threading
        self._targets = dict(targets)
        self._name, self._filter, self._interval = name, label_filter, interval
        self._base = {k: 0.0 for k in self._targets}
        self._last = {k: 0.0 for k in self._targets}
        self._pid = {k: None for k in self._targets}
        self._start = 0.0
        self.series = {}  # (key, pid, labels as a sorted tuple) -> last value
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def scrape(self, key):
        """Scrapes one process now."""
        url, pid_of = self._targets[key]
        pid = pid_of()
        try:
            samples = scrape(url, timeout=2)
        except OSError:
            return  # down or restarting
        if pid != pid_of():
            return  # restarted while being read: which life answered is unknown
        with self._lock:
            if pid != self._pid[key]:
                self._base[key] += self._last[key]
                self._last[key] = 0.0
                self._pid[key] = pid
            value = 0.0
            for n, labels, v in samples:
                if n == self._name and self._filter(labels):
                    value += v
                    self.series[(key, pid, tuple(sorted(labels.items())))] = v
            self._last[key] = value

    def _run(self):
        while not self._stop.is_set():
            for key in self._targets:
                self.scrape(key)
            self._stop.wait(self._interval)

    def _total(self):
        with self._lock:
            return sum(self._base[k] + self._last[k] for k in self._targets)

    def __enter__(self):
        for key in self._targets:
            self.scrape(key)
        self._start = self._total()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
        for key in self._targets:
            self.scrape(key)

    def moved(self):
        """What the processes counted since the block began."""
        return self._total() - self._start
