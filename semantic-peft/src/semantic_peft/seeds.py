"""Seeds as parts of the reproduction: every seed's rows live in ``<results>/seed_<n>/``, and
the tables report each metric as the mean over the seeds with a 95% t-interval.

Interval: ``mean ± t(0.975, n-1) · s / sqrt(n)`` with ``s`` the sample standard deviation over
the ``n`` seeds (no interval for one seed).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from shared_utils.intervals import mean_interval
from shared_utils.results import load_results


def seed_folder(results_dir: str | Path, seed: int) -> Path:
    return Path(results_dir) / f"seed_{seed}"


def seed_folders(results_dir: str | Path) -> list[Path]:
    """The ``seed_<n>`` folders of ``results_dir`` in seed order; ``[results_dir]`` if it has none
    (a folder of one run's JSON files)."""
    folders = [p for p in Path(results_dir).glob("seed_*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(folders, key=lambda p: int(p.name[5:])) or [Path(results_dir)]


def data_label(rows: list[dict[str, Any]]) -> str:
    """What the aggregated ``rows`` were measured on, for the tables' notes: ``"200 built-in facts"``
    or ``"200 facts from `shared:knowledge-editing/zsre_mend_eval_1000.json`"`` (the rows'
    ``data.source`` and fact count; every source named when rows differ)."""
    groups: dict[str, set[Any]] = {}
    for row in rows:
        groups.setdefault(row.get("data_source") or "builtin", set()).add(row.get("facts"))
    parts = []
    for source, counts in groups.items():
        n = "/".join(str(c) for c in sorted(counts, key=str) if c is not None)
        n = f"{n} " if n else ""
        parts.append(f"{n}built-in facts" if source == "builtin" else f"{n}facts from `{source}`")
    return " and ".join(parts) if parts else "unknown data"


def _mean_lists(lists: list[list[float]]) -> list[float]:
    return [statistics.fmean(column) for column in zip(*lists)]


def aggregate(results_dir: str | Path) -> list[dict[str, Any]]:
    """One record per row file (``00_base.json``, ``01_lora.json``...) found in any seed folder:
    ``label``, ``seeds``, ``metrics`` (means), ``interval`` (half-widths), ``values`` (per seed),
    ``train_time_s`` (mean) and ``details`` (the first seed's, with bucket, per-relation and drift
    curves averaged over seeds)."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for folder in seed_folders(results_dir):
        for record in load_results(folder):
            record["_seed_folder"] = folder.name
            by_file.setdefault(record["_file"], []).append(record)
    rows = []
    for file, records in sorted(by_file.items()):
        keys = [k for k, v in records[0]["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        values = {k: [r["metrics"][k] for r in records if r["metrics"].get(k) is not None] for k in keys}
        stats = {k: mean_interval(v) for k, v in values.items() if v}
        row = {
            "_file": file,
            "label": records[0].get("label", file),
            "facts": records[0].get("facts"),
            "data_source": ((records[0].get("config") or {}).get("data") or {}).get("source"),
            "seeds": [r["_seed_folder"] for r in records],
            "git_commit": sorted({str(r.get("git_commit")) for r in records}),
            "device": records[-1].get("device"),
            "metrics": {k: s[0] for k, s in stats.items()},
            "interval": {k: s[1] for k, s in stats.items()},
            "values": values,
        }
        times = [r["train_time_s"] for r in records if r.get("train_time_s") is not None]
        row["train_time_s"] = statistics.fmean(times) if times else None
        if "details" in records[0]:
            row["details"] = _mean_details([r["details"] for r in records])
        rows.append(row)
    return rows


def _mean_details(details: list[dict[str, Any]]) -> dict[str, Any]:
    first = details[0]
    out = {k: first[k] for k in ("buckets_by_initial_distance", "per_relation", "drift") if k in first}
    out["buckets_by_initial_distance"] = {
        name: [
            {**b, "value": statistics.fmean(d["buckets_by_initial_distance"][name][i]["value"] for d in details)}
            for i, b in enumerate(buckets)
        ]
        for name, buckets in first["buckets_by_initial_distance"].items()
    }
    out["per_relation"] = {
        rel: {**v, "train_em": statistics.fmean(d["per_relation"][rel]["train_em"] for d in details)}
        for rel, v in first["per_relation"].items()
    }
    if "drift" in first:
        out["drift"] = {
            name: {
                "n": curve["n"],
                "mean": _mean_lists([d["drift"][name]["mean"] for d in details]),
                "pushed_away": _mean_lists([d["drift"][name]["pushed_away"] for d in details]),
            }
            for name, curve in first["drift"].items()
        }
    if "alone_vs_joint" in first:
        out["alone_vs_joint"] = [row for d in details for row in d.get("alone_vs_joint", [])]
    return out
