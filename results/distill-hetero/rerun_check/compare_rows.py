"""Compare a rerun's results JSONs with the committed ones, number by number.

    python compare_rows.py COMMITTED_DIR RERUN_DIR [ROW ...]

For each row file present in both folders: every leaf (metrics, loss history, per-example outputs and
scores, mapping, cache mass, config) is compared for exact equality, except the fields that record
where and when a run happened (commit, time stamps, wall/step/CPU times, device, output paths).
Prints, per row, the number of compared leaves, the number that differ, the first differing field
(upstream first: teacher cache, training history, metrics, per-example outputs, other fields, config)
with both values and, for numbers, the absolute difference; exit code 1 when anything differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROVENANCE = {"git_commit", "written_at", "wall_time_s", "train_time_s", "step_time_s", "step_cpu_s", "device", "_file"}


def leaves(value, path=""):
    """``(dotted path, leaf)`` pairs of a JSON value, dict keys sorted, provenance fields left out."""
    if isinstance(value, dict):
        for key in sorted(value):
            if key not in PROVENANCE:
                yield from leaves(value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path, value


# upstream first: the teacher cache feeds the training history, which sets the metrics and outputs
ORDER = ("teacher_cache_sha256", "teacher_cache_covered_mass", "mapping", "history", "metrics", "examples")


def _rank(key: str) -> int:
    top = key.split(".")[0].split("[")[0]
    return ORDER.index(top) if top in ORDER else len(ORDER) + (top == "config")


def compare(committed: dict, rerun: dict) -> tuple[int, list[tuple[str, object, object]]]:
    a, b = dict(leaves(committed)), dict(leaves(rerun))
    keys = sorted(list(a) + [k for k in b if k not in a], key=_rank)  # stable: JSON order within a section
    diffs = [(k, a.get(k, "<missing>"), b.get(k, "<missing>")) for k in keys]
    return len(keys), [(k, x, y) for k, x, y in diffs if x != y or type(x) is not type(y)]


def main(argv: list[str]) -> int:
    committed_dir, rerun_dir, *rows = argv
    names = rows or sorted(p.stem for p in Path(rerun_dir).glob("*.json") if (Path(committed_dir) / p.name).exists())
    failed = False
    for name in names:
        committed = json.loads((Path(committed_dir) / f"{name}.json").read_text())
        rerun = json.loads((Path(rerun_dir) / f"{name}.json").read_text())
        total, diffs = compare(committed, rerun)
        line = f"{name}: {total} leaves compared, {len(diffs)} differ"
        if diffs:
            failed = True
            key, x, y = diffs[0]
            delta = f" (|diff| {abs(x - y):.3g})" if isinstance(x, float | int) and isinstance(y, float | int) else ""
            line += f"; first: {key}: committed {x!r} vs rerun {y!r}{delta}"
            sections = {}
            for k, _, _ in diffs:
                sections[k.split(".")[0].split("[")[0]] = sections.get(k.split(".")[0].split("[")[0], 0) + 1
            line += f"; by section {sections}"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
