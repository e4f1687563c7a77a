"""The default reproduction: LoRA, LoRA + filtering, LoRA + re-weighting, LoRA + both and full
fine-tuning on the built-in facts, written to the ``--results`` folder (``make
reproduce-semantic-peft``: ``results/semantic-peft/``).

Rows come from a YAML file (the shipped ``reproduce``; ``paper/reproduce`` for the 7B-scale
settings): a base config file and, per row, a name, a label and overrides. The base
model is measured once and shared by all rows; each row starts from freshly loaded weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from semantic_peft.config import ExperimentConfig
from semantic_peft.experiment import facts_for, load_model, measure_base, run_experiment
from shared_utils.cli import one_line
from shared_utils.config import ConfigError, dump_config, flatten_config, load_config, resolve_config_path
from shared_utils.device import apply_threads
from shared_utils.results import (
    atomic_write_text,
    load_results,
    render_markdown_table,
    replace_marked_section,
    write_results,
)
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

logger = get_logger(__name__)
PACKAGE = "semantic_peft"

TABLE_COLUMNS = {
    "label": "Method",
    "metrics.trained_facts": "Facts trained",
    "metrics.train_em_trained": "EM (trained facts)",
    "metrics.train_em": "EM (all facts)",
    "metrics.train_acc": "Token acc (all)",
    "metrics.para_em": "Paraphrase EM",
    "metrics.para_acc": "Paraphrase acc",
    "metrics.locality": "Locality",
    "metrics.distance_base_mean": "d base",
    "metrics.distance_final_mean": "d final",
    "metrics.pushed_away_fraction": "Pushed away",
    "metrics.feature_cos_mean": "Feature cos",
    "train_time_s": "Train s",
}
BOLD = {
    "metrics.train_em_trained": "max",
    "metrics.train_em": "max",
    "metrics.para_em": "max",
    "metrics.para_acc": "max",
    "metrics.locality": "max",
    "metrics.pushed_away_fraction": "min",
}


def read_rows(path: str | Path) -> tuple[Path | None, list[dict[str, Any]]]:
    """``(base config path, rows)`` from a reproduction YAML, given by path or by shipped name
    (``reproduce``, ``paper/reproduce``); the base is relative to it. Errors name the bad row."""
    path = resolve_config_path(PACKAGE, path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"rows file {path} is not valid YAML: {one_line(err)}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"rows file {path} must hold a mapping with 'base' and 'rows'")
    base = spec.get("base")
    base_path = (path.parent / base).resolve() if base else None
    rows = spec.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{path}: 'rows' must be a non-empty list")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ConfigError(f"{path}: row {i} needs a 'name'")
        if not isinstance(row.get("overrides", {}), dict):
            raise ConfigError(f"{path}: row {i} ({row['name']}): 'overrides' must be a mapping")
    return base_path, rows


def row_overrides(row: dict[str, Any]) -> list[str]:
    """A row's nested ``overrides`` as ``--section.key value`` options (values in YAML flow style)."""
    options: list[str] = []
    for key, value in flatten_config(row.get("overrides", {})).items():
        options += [f"--{key}", yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()]
    return options


def row_configs(
    rows_path: str | Path, overrides: list[str] | None = None, only: list[str] | None = None
) -> tuple[ExperimentConfig, list[tuple[str, dict[str, Any], ExperimentConfig]]]:
    """The base config and ``(file stem, row, config)`` of every selected row, all resolved up
    front so that a bad option in any row stops the run before a model is loaded."""
    base_path, rows = read_rows(rows_path)
    names = [row["name"] for row in rows]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ConfigError(f"--only: no row named {', '.join(unknown)} in {rows_path} (rows: {', '.join(names)})")
    base_config = load_config(ExperimentConfig, base_path, overrides)
    selected = []
    for i, row in enumerate(rows):
        if only and row["name"] not in only:
            continue
        options = [*row_overrides(row), *(overrides or []), "--name", row["name"]]
        selected.append((f"{i + 1:02d}_{row['name']}", row, load_config(ExperimentConfig, base_path, options)))
    return base_config, selected


def reproduce(
    rows_path: str | Path,
    results_dir: str | Path,
    overrides: list[str] | None = None,
    readme: str | Path | None = None,
    only: list[str] | None = None,
) -> list[dict]:
    """Run every row, write one results JSON per row (as soon as the row finishes) plus the base
    model's, ``table.md``, figures and the resolved configs; regenerate the table in ``readme``
    if given. Returns the records."""
    results_dir = Path(results_dir)
    base_config, selected = row_configs(rows_path, overrides, only)
    apply_threads(base_config.num_threads)
    seed_everything(base_config.seed)
    facts = facts_for(base_config)
    model, tokenizer = load_model(base_config.model)
    start = time.time()
    base = measure_base(model, tokenizer, facts, base_config)
    dump_config(base_config, results_dir / "config_base.yaml")
    base_metrics = {
        **base.metrics,
        "distance_base_mean": float(base.distance.mean()),
        "distance_final_mean": float(base.distance.mean()),
    }
    write_results(
        results_dir / "00_base.json",
        base_metrics,
        base_config,
        wall_time_s=time.time() - start,
        extra={
            "label": "Base model (no training)",
            "row": "base",
            "facts": len(facts),
            "metrics_note": "untrained model; all facts",
        },
    )
    for n, (stem, row, config) in enumerate(selected):
        logger.info("row %d/%d: %s", n + 1, len(selected), row.get("label", row["name"]))
        if model is None:  # every row after the first starts from freshly loaded base weights
            model, tokenizer = load_model(config.model)
        result = run_experiment(
            config, model, tokenizer, facts, base, figure_path=results_dir / "figures" / f"{row['name']}.png"
        )
        model = None  # trained weights are not reused
        dump_config(config, results_dir / "configs" / f"{row['name']}.yaml")
        write_results(
            results_dir / f"{stem}.json",
            result["metrics"],
            config,
            wall_time_s=result["wall_time_s"],
            extra={
                "label": row.get("label", row["name"]),
                "row": row["name"],
                "facts": len(facts),
                "train_time_s": result["train_time_s"],
                "details": result["details"],
            },
        )
    return write_table(results_dir, readme)


def write_table(results_dir: str | Path, readme: str | Path | None = None) -> list[dict]:
    """``table.md`` (and the README's marked section) from the results JSON files."""
    results_dir = Path(results_dir)
    records = load_results(results_dir)
    if not records:
        raise FileNotFoundError(f"no results JSON in {results_dir}")
    table = render_markdown_table(records, TABLE_COLUMNS, digits=3, bold_best=BOLD)
    device = records[-1].get("device")
    commit = ", ".join(sorted({str(r.get("git_commit")) for r in records}))
    note = (
        f"\n{records[0].get('facts')} built-in facts; EM = greedy exact match; locality = unrelated prompts whose "
        f"greedy continuation is unchanged; d = target semantic distance (mean). Device: {device}; commit(s) "
        f"{commit} (per row in its JSON). Generated by `semantic-peft reproduce` from "
        f"`{results_dir.as_posix()}/*.json`.\n"
    )
    text = table + note + _detail_tables(records)
    atomic_write_text(results_dir / "table.md", text)
    if readme is not None and Path(readme).is_file():
        replace_marked_section(readme, "results", text)
    return records


def _detail_tables(records: list[dict]) -> str:
    """Exact match by base-distance quartile and per relation, from each row's ``details``."""
    trained = [r for r in records if "details" in r]
    if not trained:
        return ""
    buckets = trained[0]["details"]["buckets_by_initial_distance"]["train_em"]
    ranges = ", ".join(f"Q{i + 1} {b['distance_low']:.2f}-{b['distance_high']:.2f}" for i, b in enumerate(buckets))
    lines = [
        "",
        "Exact match on each row's trained facts, by quartile of their base semantic distance "
        f"(Q1 = closest to the target before training; {trained[0]['label']}: {ranges}):",
        "",
    ]
    lines.append("| Method | " + " | ".join(f"Q{i + 1}" for i in range(len(buckets))) + " |")
    lines.append("| --- |" + " --- |" * len(buckets))
    for r in trained:
        values = r["details"]["buckets_by_initial_distance"]["train_em"]
        lines.append(f"| {r['label']} | " + " | ".join(f"{b['value']:.3f}" for b in values) + " |")
    relations = list(trained[0]["details"]["per_relation"])
    lines += [
        "",
        "Exact match on the trained facts of each relation, and the relation's mean base distance:",
        "",
        "| Method | " + " | ".join(relations) + " |",
        "| --- |" + " --- |" * len(relations),
    ]
    first = trained[0]["details"]["per_relation"]
    lines.append("| d base | " + " | ".join(f"{first[k]['distance_base']:.3f}" for k in relations) + " |")
    for r in trained:
        per = r["details"]["per_relation"]
        lines.append(
            f"| {r['label']} | "
            + " | ".join(f"{per[k]['train_em']:.3f}" if k in per else "–" for k in relations)
            + " |"
        )
    for r in trained:
        if "alone_vs_joint" in r["details"]:
            m = r["metrics"]
            lines += [
                "",
                f"Interference ({r['label']}): {len(r['details']['alone_vs_joint'])} facts learned alone "
                f"(fresh adapter each) reach exact match {m['alone_em']:.3f}; the same facts learned jointly "
                f"reach {m['joint_em_same_facts']:.3f}. Mean pairwise cosine of knowledge features "
                f"{m['feature_cos_mean']:.3f} (same relation {m.get('feature_cos_same_relation', 0):.3f}, "
                f"other relations {m.get('feature_cos_other_relation', 0):.3f}).",
            ]
    return "\n".join(lines) + "\n"
