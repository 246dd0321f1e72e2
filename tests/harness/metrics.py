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
