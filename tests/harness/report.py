"""Prints the compatibility table (markdown) from the outcomes the suites recorded in
tests/.work/results/*.json: one row per scenario, one column per target.

    cd tests && python -m harness.report [RESULTS_DIR]

(as a module: run as a script, the harness directory would shadow Python's own ``operator``
module with harness/operator.py)
"""
import json
import sys
from pathlib import Path

TARGETS = (("strata", "Strata"), ("kafka", "Kafka"))
CELL = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**", "skip": "skip",
        "xfail": "xfail", "xpass": "xpass"}


def load(results_dir):
    rows = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        suite = data.get("suite", path.stem)
        for r in data.get("results", []):
            rows.setdefault((suite, r["scenario"]), {})[r.get("target")] = r["outcome"]
    return rows


def table(rows):
    lines = ["| Suite | Scenario | " + " | ".join(t for _, t in TARGETS) + " |",
             "|---|---|" + "---|" * len(TARGETS)]
    for (suite, scenario), by_target in sorted(rows.items()):
        if set(by_target) == {None}:  # not parametrized by target: same outcome in every column
            by_target = {k: by_target[None] for k, _ in TARGETS}
        cells = [CELL.get(by_target.get(k), by_target.get(k) or "–") for k, _ in TARGETS]
        lines.append(f"| {suite} | `{scenario}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    default = Path(__file__).resolve().parents[1] / ".work" / "results"
    results_dir = Path(argv[1]) if len(argv) > 1 else default
    rows = load(results_dir)
    if not rows:
        print(f"no results in {results_dir}", file=sys.stderr)
        return 1
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
