"""The default reproduction: LoRA, LoRA + filtering, LoRA + re-weighting, LoRA + both and full
fine-tuning on the built-in facts, written to the ``--results`` folder (``make
reproduce-semantic-peft``: ``results/semantic-peft/``).

Rows come from a YAML file (the shipped ``reproduce``; ``paper/reproduce`` for the 7B-scale
settings): a base config file, per row a name, a label and overrides, and optionally named
``parts`` (lists of row names) so that one seed of the protocol runs as several shorter
commands (``--part core``, ``--part methods``). The base model is measured once per run and
shared by its rows; each row starts from freshly loaded weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from semantic_peft.config import ExperimentConfig
from semantic_peft.experiment import facts_for, load_model, measure_base, run_experiment
from semantic_peft.seeds import aggregate, data_label, seed_folder
from shared_utils.cli import one_line
from shared_utils.config import ConfigError, dump_config, flatten_config, load_config, resolve_config_path
from shared_utils.device import apply_threads
from shared_utils.results import (
    atomic_write_json,
    atomic_write_text,
    git_commit,
    replace_marked_section,
    write_results,
)
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

logger = get_logger(__name__)
PACKAGE = "semantic_peft"

# (metric, header, best) of the two generated tables; best = "max"/"min" bolds the best mean
ACCURACY_COLUMNS = [
    ("trained_facts", "Facts trained", None),
    ("train_em_trained", "EM (trained facts)", "max"),
    ("train_em", "EM (all facts)", "max"),
    ("train_acc", "Token acc (all)", "max"),
    ("para_em", "Paraphrase EM", "max"),
    ("para_acc", "Paraphrase acc", "max"),
    ("locality_neighbourhood_token", "Neighbourhood token agr.", "max"),
    ("locality_neighbourhood", "Neighbourhood unchanged", "max"),
    ("locality_unrelated_token", "Unrelated token agr.", "max"),
    ("locality_unrelated", "Unrelated unchanged", "max"),
]
DRIFT_COLUMNS = [
    ("distance_base_mean", "d train base", None),
    ("distance_final_mean", "d train final", "min"),
    ("pushed_away_fraction", "Pushed away (train)", "min"),
    ("paraphrase_distance_final_mean", "d para final", "min"),
    ("paraphrase_pushed_away_fraction", "Pushed away (para)", "min"),
    ("neighbourhood_drift_mean", "Δd neighbourhood", None),
    ("neighbourhood_pushed_away_fraction", "Pushed away (neighb.)", None),
    ("unrelated_drift_mean", "Δd unrelated", None),
    ("unrelated_pushed_away_fraction", "Pushed away (unrel.)", None),
    ("feature_cos_mean", "Feature cos", None),
]


def read_parts(path: str | Path) -> dict[str, list[str]]:
    """The named parts of a reproduction YAML (``{}`` when it has none); every part must name
    existing rows, and together the parts must cover every row exactly once."""
    path = resolve_config_path(PACKAGE, path)
    _, rows = read_rows(path)
    parts = (yaml.safe_load(path.read_text()) or {}).get("parts") or {}
    if not isinstance(parts, dict) or not all(isinstance(v, list) for v in parts.values()):
        raise ConfigError(f"{path}: 'parts' must map part names to lists of row names")
    listed = [name for names in parts.values() for name in names]
    if parts and sorted(listed) != sorted(row["name"] for row in rows):
        raise ConfigError(f"{path}: 'parts' must name every row exactly once (they name {', '.join(listed)})")
    return parts


def part_rows(path: str | Path, part: str) -> list[str]:
    """The row names of ``part`` in the reproduction YAML ``path``; an unknown part names the known ones."""
    parts = read_parts(path)
    if part not in parts:
        raise ConfigError(f"--part: no part named {part!r} in {path} (parts: {', '.join(parts) or 'none'})")
    return parts[part]


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
    section: str = "results",
) -> list[dict]:
    """Run every row for one seed (``--seed``, default 0) into ``<results_dir>/seed_<seed>/``:
    one results JSON per row (as soon as the row finishes) plus the base model's, figures and
    the resolved configs. A row whose JSON there already comes from the current commit is
    skipped, so an interrupted part resumes. Then the tables are regenerated over all seeds
    (:func:`write_table`), the README's too if ``readme`` is given (into its ``section`` markers).
    Returns the aggregated rows."""
    base_config, selected = row_configs(rows_path, overrides, only)
    out = seed_folder(results_dir, base_config.seed)
    commit = git_commit()
    done = {
        f.stem
        for f in out.glob("*.json")
        if commit is not None and json.loads(f.read_text()).get("git_commit") == commit
    }
    todo = [item for item in selected if item[0] not in done]
    if len(todo) < len(selected):
        logger.info("seed %d: rows already done at %s: %s", base_config.seed, commit, sorted(done))
    if todo:
        _run_rows(base_config, todo, out)
    return write_table(results_dir, readme, section)


def display_path(path: str | Path) -> str:
    """``path`` as the tables name it: relative to the current folder when it lies inside it (so a
    run into an absolute folder of a clone reads ``results/semantic-peft/zsre``), else as given."""
    path = Path(path)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _run_rows(
    base_config: ExperimentConfig, selected: list[tuple[str, dict[str, Any], ExperimentConfig]], out: Path
) -> None:
    apply_threads(base_config.num_threads)
    seed_everything(base_config.seed)
    facts = facts_for(base_config)
    model, tokenizer = load_model(base_config.model)
    start = time.time()
    base = measure_base(model, tokenizer, facts, base_config)
    dump_config(base_config, out / "config_base.yaml")
    base_metrics = {
        **base.metrics,
        "distance_base_mean": float(base.distance.mean()),
        "distance_final_mean": float(base.distance.mean()),
    }
    write_results(
        out / "00_base.json",
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
        logger.info("row %d/%d: %s (seed %d)", n + 1, len(selected), row.get("label", row["name"]), config.seed)
        if model is None:  # every row after the first starts from freshly loaded base weights
            model, tokenizer = load_model(config.model)
        result = run_experiment(
            config, model, tokenizer, facts, base, figure_path=out / "figures" / f"{row['name']}.png"
        )
        model = None  # trained weights are not reused
        dump_config(config, out / "configs" / f"{row['name']}.yaml")
        write_results(
            out / f"{stem}.json",
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


def write_table(results_dir: str | Path, readme: str | Path | None = None, section: str = "results") -> list[dict]:
    """``table.md``, ``summary.json`` and ``figures/drift_all.png`` (and the README's marked
    section) from the results JSON of every seed folder (:func:`semantic_peft.seeds.aggregate`),
    then the claims table and the cross-method figure (:func:`semantic_peft.claims.write_claims`).

    ``section`` names the README markers: ``results`` (tables) and ``claims`` for the built-in
    facts; any other name ``NAME`` writes the tables between ``<!-- NAME:start/end -->`` and the
    claims between ``<!-- NAME-claims:start/end -->``, so a real-data folder
    (``--readme-section zsre``) never overwrites the built-in table. The notes name the data
    (:func:`semantic_peft.seeds.data_label`) and the results folder."""
    results_dir = Path(results_dir)
    rows = aggregate(results_dir)
    if not rows:
        raise FileNotFoundError(f"no results JSON in {results_dir} or its seed_* folders")
    seeds = max(len(r["seeds"]) for r in rows)
    commits = ", ".join(sorted({c for r in rows for c in r["git_commit"]}))
    interval = "mean ± 95% t-interval half-width over " if seeds > 1 else ""
    text = (
        _table(
            rows,
            [("label", "Method", None), *ACCURACY_COLUMNS, ("train_time_s", "Train s", None), ("seeds", "Seeds", None)],
        )
        + "\nDistance drift (d = target semantic distance, mean; Δd = final - base; pushed away = "
        "final d > base d) on the training prompts, the trained facts' paraphrases and the answers of the "
        "neighbourhood and unrelated probes:\n\n"
        + _table(rows, [("label", "Method", None), *DRIFT_COLUMNS])
        + f"\n{data_label(rows)}; {interval}{seeds} seed(s) "
        f"({', '.join(max((r['seeds'] for r in rows), key=len))}; each row's count under Seeds, no ± = one seed); "
        "EM = greedy exact match; token agr. = "
        "fraction of the base model's 3 greedy tokens still predicted (teacher-forced on them); unchanged = "
        f"all 3 equal. Device: {rows[-1].get('device')}; commit(s) {commits} (per row in its JSON). "
        f"Generated by `semantic-peft reproduce` from `{display_path(results_dir)}/seed_*/*.json`.\n"
        + _detail_tables(rows)
    )
    atomic_write_text(results_dir / "table.md", text)
    atomic_write_json(results_dir / "summary.json", [{k: v for k, v in r.items() if k != "details"} for r in rows])
    drifts = {r["label"]: r["details"]["drift"] for r in rows if "drift" in r.get("details", {})}
    if drifts:
        from semantic_peft.figures import drift_figure

        drift_figure(results_dir / "figures" / "drift_all.png", f"all methods, mean of {seeds} seed(s)", drifts)
    if readme is not None and Path(readme).is_file():
        replace_marked_section(readme, section, text)
    from semantic_peft.claims import write_claims

    write_claims(results_dir, rows, readme, "claims" if section == "results" else f"{section}-claims")
    return rows


def _table(rows: list[dict], columns: list[tuple[str, str, str | None]]) -> str:
    """A markdown table of aggregated rows: ``mean ± half-width`` cells, the best mean of the
    trained rows (not the base model's) in bold."""
    best = {}
    for key, _, rule in columns:
        means = [r["metrics"][key] for r in rows if rule and "trained_facts" in r["metrics"] and key in r["metrics"]]
        if means:
            best[key] = max(means) if rule == "max" else min(means)
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = []
        for key, _, _ in columns:
            if key == "label":
                cells.append(str(row["label"]))
            elif key == "seeds":
                cells.append(str(len(row["seeds"])))
            elif key == "train_time_s":
                cells.append("–" if row["train_time_s"] is None else f"{row['train_time_s']:.0f}")
            elif key not in row["metrics"]:
                cells.append("–")
            else:
                mean, half = row["metrics"][key], row["interval"].get(key)
                cell = f"{mean:.0f}" if key == "trained_facts" else f"{mean:.3f}" + (f" ± {half:.3f}" if half else "")
                cells.append(f"**{cell}**" if best.get(key) == mean else cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _detail_tables(records: list[dict]) -> str:
    """Exact match by base-distance quartile and per relation (means over seeds), from each row's ``details``."""
    trained = [r for r in records if "details" in r]
    if not trained:
        return ""
    buckets = trained[0]["details"]["buckets_by_initial_distance"]["train_em"]
    ranges = ", ".join(f"Q{i + 1} {b['distance_low']:.2f}-{b['distance_high']:.2f}" for i, b in enumerate(buckets))
    lines = [
        "",
        "Exact match on each row's trained facts (mean over seeds), by quartile of their base semantic distance "
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
                f"Interference ({r['label']}): {len(r['details']['alone_vs_joint'])} (fact, seed) pairs learned alone "
                f"(fresh adapter each) reach exact match {m['alone_em']:.3f}; the same facts learned jointly "
                f"reach {m['joint_em_same_facts']:.3f}. Mean pairwise cosine of knowledge features "
                f"{m['feature_cos_mean']:.3f} (same relation {m.get('feature_cos_same_relation', 0):.3f}, "
                f"other relations {m.get('feature_cos_other_relation', 0):.3f}).",
            ]
    return "\n".join(lines) + "\n"
