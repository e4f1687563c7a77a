"""The default reproduction: five rows that isolate each part, over several seeds, six metrics,
BLEU-vs-steps.

Rows (InfoDiffusion's Table 1 + ablation, at toy scale on the built-in data set), each
trained at the same budget once per seed:
  diffuseq          DiffuSeq's sqrt schedule, no self-conditioning (the baseline)
  linear            the information schedule's base ᾱ = 1 - t/T (λ = 0), no self-conditioning
  linear_selfcond   λ = 0 + self-conditioning
  info              the information schedule (λ > 0), no self-conditioning
  infodiffusion     information schedule + self-conditioning (the paper's method)

linear → info isolates the information term, linear → linear_selfcond self-conditioning,
diffuseq → linear the base schedule. Every (row, seed) writes its own ``<row>.seed<N>.json``
and is skipped when that file already holds the same settings, so the seeds can be run as
separate parts (``--seeds 0``, ``--seeds 1``, ...); every call then aggregates all files
present into the table (mean ± the 95% Student-t half-width over seeds) and ``summary.json``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np

from infodiffusion.config import InfoDiffusionConfig, SampleConfig
from shared_utils.intervals import mean_interval
from shared_utils.tracking import get_logger

logger = get_logger(__name__)

ROWS = {
    "diffuseq": ("DiffuSeq (sqrt)", {"diffusion.schedule": "sqrt", "model.self_conditioning": False}),
    "linear": ("linear λ = 0", {"diffusion.schedule": "linear", "model.self_conditioning": False}),
    "linear_selfcond": (
        "linear λ = 0 + self-cond.",
        {"diffusion.schedule": "linear", "model.self_conditioning": True},
    ),
    "info": ("info schedule", {"diffusion.schedule": "info", "model.self_conditioning": False}),
    "infodiffusion": (
        "InfoDiffusion (info + self-cond.)",
        {"diffusion.schedule": "info", "model.self_conditioning": True},
    ),
}
SEEDS = (0, 1, 2)
# metric -> (table header, which way is better)
METRICS = {
    "bleu": ("BLEU ↑", "max"),
    "rouge_l": ("ROUGE-L ↑", "max"),
    "bertscore": ("BERTScore ↑", "max"),
    "dist_1": ("Dist-1 ↑", "max"),
    "self_bleu": ("Self-BLEU ↓", "min"),
    "div_4": ("Div-4 ↑", "max"),
    "steps_to_95pct": ("steps to 95% BLEU ↓", "min"),
}


def row_config(base: InfoDiffusionConfig, row: str, seed: int, runs_dir: Path) -> InfoDiffusionConfig:
    from shared_utils.config import flatten_config, load_config

    overrides = {**ROWS[row][1], "seed": seed, "output_dir": str(runs_dir / row / f"seed{seed}")}
    return load_config(InfoDiffusionConfig, None, {**flatten_config(base), **overrides})


def result_path(results_dir: Path, row: str, seed: int) -> Path:
    return results_dir / f"{row}.seed{seed}.json"


def _with_defaults(config: dict) -> dict:
    """``config`` (a saved config dict) with every key it lacks at its default, so that a part
    written before a config key was added (with that key's default behaviour) still counts as
    run with the same settings; a dict that is not a valid config is returned as it is."""
    from shared_utils.config import config_to_dict, load_config
    from shared_utils.errors import ConfigError

    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    try:
        return config_to_dict(load_config(InfoDiffusionConfig, None, flat))
    except (ConfigError, TypeError, ValueError):
        return config


def _settings(config: dict, drop: tuple[str, ...] = ("output_dir",)) -> dict:
    """A config as JSON would hold it (missing keys at their defaults), without the keys that do
    not change what is measured."""
    return {k: v for k, v in json.loads(json.dumps(_with_defaults(config))).items() if k not in drop}


def part_done(cfg: InfoDiffusionConfig, path: Path) -> bool:
    """Whether ``path`` already holds this (row, seed) with the same settings (``output_dir`` aside)."""
    from shared_utils.config import config_to_dict

    if not path.is_file():
        return False
    return _settings(json.loads(path.read_text()).get("config") or {}) == _settings(config_to_dict(cfg))


TRAINING_SECTIONS = ("seed", "model", "data", "train")


def trained_summary(cfg: InfoDiffusionConfig) -> dict | None:
    """The training summary of ``cfg.output_dir`` if it was trained with the same training settings
    (everything but the sampling/evaluation options), else None."""
    import json

    import yaml

    from shared_utils.config import config_to_dict

    out = Path(cfg.output_dir)
    if not ((out / "ema" / "model.safetensors").is_file() and (out / "train_summary.json").is_file()):
        return None
    saved, now = yaml.safe_load((out / "config.yaml").read_text()), config_to_dict(cfg)
    for key in ("diffusion", *TRAINING_SECTIONS):
        a, b = saved.get(key), now.get(key)
        if key == "diffusion":
            a, b = ({k: v for k, v in d.items() if k != "sample_schedule"} for d in (a, b))
        if a != b:
            return None
    return json.loads((out / "train_summary.json").read_text())


def run_row(cfg: InfoDiffusionConfig, row: str, results_dir: Path, scorer, reuse: bool = False) -> dict:
    """Train (or, with ``reuse``, re-use) one (row, seed), sample, score, trace one DDPM
    trajectory per source and write ``<row>.seed<N>.json`` (with the full config)."""
    from infodiffusion.evaluate import bleu_curve, normaliser, sample_run, score_records, summarise_curve, write_samples
    from infodiffusion.trainer import train
    from shared_utils.config import config_to_dict
    from shared_utils.results import write_results

    start = time.time()
    summary = trained_summary(cfg) if reuse else None
    reused = summary is not None
    if not reused:
        summary = train(cfg)
    records = sample_run(cfg, cfg.output_dir)
    write_samples(records, Path(cfg.output_dir) / "samples.jsonl")
    metrics = score_records(records, cfg, scorer)
    curve_cfg = SampleConfig(**{**config_to_dict(cfg.sample), "method": "ddpm"})
    traced = sample_run(cfg, cfg.output_dir, n_candidates=1, sample_cfg=curve_cfg, record=True)
    curve = summarise_curve(bleu_curve(traced, normaliser(cfg)), cfg.diffusion.steps)
    metrics["steps_to_95pct"] = curve["steps_to_95pct"]
    metrics["ddpm_final_bleu"] = curve["bleu_by_step"][-1]
    write_results(
        result_path(results_dir, row, cfg.seed),
        metrics,
        config=cfg,
        wall_time_s=time.time() - start,
        extra={
            "row": row,
            "seed": cfg.seed,
            "label": ROWS[row][0],
            "reused_training": reused,
            "train": {k: v for k, v in summary.items() if k != "loss_history"},
            "loss_history": summary["loss_history"],
            "curve": curve,
            "data": f"{cfg.data.dataset}: train on '{cfg.data.train_split}', "
            f"evaluate on '{cfg.data.eval_split}' (first {cfg.data.max_eval})",
        },
    )
    return metrics


def _load_parts(results_dir: Path) -> list[dict]:
    """Every ``*.seed*.json`` in ``results_dir`` that is a finished part (valid JSON with a row,
    seed, config, metrics and curve); others (a part another process is still writing, a file
    from elsewhere) are skipped with a warning naming them."""
    parts = []
    for file in sorted(results_dir.glob("*.seed*.json")):
        try:
            record = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            logger.warning("%s: skipped, not a finished part (%s)", file.name, type(err).__name__)
            continue
        missing = [k for k in ("row", "seed", "config", "metrics", "curve", "train") if k not in record]
        if not isinstance(record, dict) or missing:
            logger.warning("%s: skipped, not a finished part (no %s)", file.name, ", ".join(missing or ["dict"]))
            continue
        record["_file"] = file.name
        parts.append(record)
    return parts


def expected_settings(base: InfoDiffusionConfig, runs_dir: Path) -> dict[str, dict]:
    """Per row, the settings (seed and output_dir aside) its parts must have been run with under ``base``."""
    from shared_utils.config import config_to_dict

    return {
        row: _settings(config_to_dict(row_config(copy.deepcopy(base), row, 0, runs_dir)), ("output_dir", "seed"))
        for row in ROWS
    }


def aggregate(results_dir: Path, expected: dict[str, dict] | None = None) -> list[dict]:
    """One entry per row with results: its seeds, each metric's mean and 95% half-width over
    seeds, mean training steps/s, and the mean BLEU-vs-steps curve (with its per-step
    half-width). Files that are not finished parts are skipped with a warning. With
    ``expected`` (row -> settings, see :func:`expected_settings`), parts run with other settings
    (stale files, or another part's run with other options) are skipped with a warning naming
    them, so that parts run in parallel never fail each other's aggregation; without it, parts of
    one row trained with other settings (seed and output_dir aside) are refused, naming the files."""
    from shared_utils.errors import ConfigError

    by_row: dict[str, list[dict]] = {}
    for record in _load_parts(results_dir):
        by_row.setdefault(record.get("row"), []).append(record)
    entries = []
    for row in ROWS:
        parts = sorted(by_row.get(row, []), key=lambda r: r["seed"])
        if expected is not None and row in expected:
            wanted = _settings(expected[row], ("output_dir", "seed"))
            keep = [p for p in parts if _settings(p["config"], ("output_dir", "seed")) == wanted]
            stale = [p["_file"] for p in parts if p not in keep]
            if stale:
                logger.warning("%s: skipped, run with other settings than this call's", ", ".join(stale))
            parts = keep
        if not parts:
            continue
        settings = [_settings(p["config"], ("output_dir", "seed")) for p in parts]
        odd = [p["_file"] for p, s in zip(parts, settings) if s != settings[0]]
        if odd:
            raise ConfigError(
                f"{', '.join(odd)}: trained with other settings than {parts[0]['_file']}; "
                "remove the stale files or rerun those seeds"
            )
        metrics = {}
        for key in METRICS:
            mean, half = mean_interval([p["metrics"][key] for p in parts if key in p["metrics"]] or [np.nan])
            metrics[key] = {"mean": float(mean), "ci95": None if half is None else float(half)}
        curve, curve_half = mean_interval([p["curve"]["bleu_by_step"] for p in parts])
        entries.append(
            {
                "row": row,
                "label": ROWS[row][0],
                "seeds": [p["seed"] for p in parts],
                "metrics": metrics,
                "steps_per_s": float(np.mean([p["train"]["steps_per_s"] for p in parts])),
                "curve": {
                    "bleu_by_step": [round(float(v), 5) for v in curve],
                    "ci95": None if curve_half is None else [round(float(v), 5) for v in curve_half],
                    "reverse_steps": parts[0]["curve"]["reverse_steps"],
                },
                "config": parts[0]["config"],
                "data": parts[0]["data"],
                "git_commit": sorted({p["git_commit"] for p in parts}, key=str),
            }
        )
    return entries


def _cell(stat: dict, digits: int) -> str:
    if stat["ci95"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"


def render_table(entries: list[dict]) -> str:
    """Markdown table: mean ± 95% half-width per metric, the best mean in bold."""
    headers = ["Model", "seeds", *(h for h, _ in METRICS.values()), "train steps/s"]
    best = {}
    for key, (_, rule) in METRICS.items():
        means = [e["metrics"][key]["mean"] for e in entries if not math.isnan(e["metrics"][key]["mean"])]
        best[key] = (max if rule == "max" else min)(means) if means else None
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    for e in entries:
        cells = [e["label"], str(len(e["seeds"]))]
        for key in METRICS:
            stat = e["metrics"][key]
            cell = "–" if math.isnan(stat["mean"]) else _cell(stat, 0 if key == "steps_to_95pct" else 4)
            cells.append(f"**{cell}**" if stat["mean"] == best[key] else cell)
        cells.append(f"{e['steps_per_s']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(entries: list[dict], path: Path) -> None:
    from shared_utils.atomic import headless_pyplot, save_figure

    plt = headless_pyplot()

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for e in entries:
        curve = np.asarray(e["curve"]["bleu_by_step"])
        steps = np.arange(1, len(curve) + 1)
        s95 = e["metrics"]["steps_to_95pct"]
        (line,) = ax.plot(steps, curve, label=f"{e['label']} (95% at {_cell(s95, 0)})")
        if e["curve"]["ci95"] is not None:
            half = np.asarray(e["curve"]["ci95"])
            ax.fill_between(steps, curve - half, curve + half, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(f"reverse steps taken (DDPM, T = {entries[0]['curve']['reverse_steps']})")
    ax.set_ylabel("BLEU of the current x̂₀ (mean over seeds, 95% band)")
    ax.set_title("BLEU along the reverse process")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def write_report(results_dir: Path, readme: Path | None, expected: dict[str, dict] | None = None) -> str:
    """Aggregate every part in ``results_dir`` into ``summary.json``, ``table.md`` and the figure
    (and the README's marked table when ``readme`` is given)."""
    from shared_utils.atomic import atomic_write_json
    from shared_utils.errors import ConfigError
    from shared_utils.results import atomic_write_text, replace_marked_section

    entries = aggregate(results_dir, expected)
    if not entries:
        raise ConfigError(f"--results: no <row>.seed<N>.json files in {results_dir} to aggregate")
    table = render_table(entries)
    cfg = entries[0]["config"]
    note = (
        f"\n\nData: {entries[0]['data']}. Each cell: mean ± half-width of the 95% Student-t interval over "
        f"the seeds. Quality metrics on the MBR pick of {cfg['eval']['mbr_quality']} candidates "
        f"({cfg['sample']['method']}, {cfg['sample']['steps']} steps), diversity over {cfg['eval']['mbr_diversity']}; "
        f"{cfg['train']['steps']} training steps of batch {cfg['train']['batch_size']} per row and seed; "
        f"steps to 95% BLEU from one DDPM trajectory per test source (candidate 0) of "
        f"T = {entries[0]['curve']['reverse_steps']} steps, per seed. `train steps/s`: mean over seeds, "
        f"on a shared machine. Generated by `make reproduce-infodiffusion` from `results/infodiffusion/*.seed*.json` "
        f"(summary in `summary.json`).\n"
    )
    atomic_write_json(results_dir / "summary.json", {"rows": entries})
    atomic_write_text(results_dir / "table.md", table + note)
    plot_curves(entries, results_dir / "bleu_vs_steps.png")
    if readme is not None:
        replace_marked_section(
            readme, "results", table + note + "\n![BLEU vs reverse steps](../results/infodiffusion/bleu_vs_steps.png)\n"
        )
    return table


def reproduce(
    base: InfoDiffusionConfig,
    results_dir: Path,
    runs_dir: Path,
    readme: Path | None,
    rows: list[str] | None = None,
    reuse: bool = False,
    seeds: tuple[int, ...] = SEEDS,
) -> str:
    """Run every (row, seed) not already in ``results_dir`` with the same settings, then
    aggregate all parts there. ``seeds`` empty: aggregate only."""
    from infodiffusion.metrics import BertScorer
    from shared_utils.errors import ConfigError

    unknown = sorted(set(rows or ()) - set(ROWS))
    if unknown:
        raise ConfigError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    if readme is not None and not readme.is_file():
        raise ConfigError(f"--readme: no such file {readme}")
    results_dir.mkdir(parents=True, exist_ok=True)
    todo = [
        (row, cfg)
        for seed in seeds
        for row in rows or list(ROWS)
        if not part_done(
            cfg := row_config(copy.deepcopy(base), row, seed, runs_dir), result_path(results_dir, row, seed)
        )
    ]
    if todo:
        scorer = BertScorer(base.eval.bertscore_model, base.eval.bertscore_layer) if base.eval.bertscore_model else None
        for row, cfg in todo:
            run_row(cfg, row, results_dir, scorer, reuse)
    return write_report(results_dir, readme, expected_settings(base, runs_dir))
