"""The default reproduction: four rows at equal training budget, six metrics, BLEU-vs-steps.

Rows (InfoDiffusion's Table 1 + ablation, at toy scale on the built-in data set):
  diffuseq          sqrt schedule, no self-conditioning (the DiffuSeq baseline)
  infodiffusion     information schedule + self-conditioning
  info_no_selfcond  information schedule, no self-conditioning
  info_no_schedule  DiffuSeq's sqrt schedule + self-conditioning
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

from infodiffusion.config import InfoDiffusionConfig, SampleConfig

ROWS = {
    "diffuseq": ("DiffuSeq (sqrt)", {"diffusion.schedule": "sqrt", "model.self_conditioning": False}),
    "infodiffusion": ("InfoDiffusion", {"diffusion.schedule": "info", "model.self_conditioning": True}),
    "info_no_selfcond": (
        "InfoDiffusion w/o self-cond.",
        {"diffusion.schedule": "info", "model.self_conditioning": False},
    ),
    "info_no_schedule": (
        "InfoDiffusion w/o info schedule",
        {"diffusion.schedule": "sqrt", "model.self_conditioning": True},
    ),
}
COLUMNS = {
    "label": "Model",
    "metrics.bleu": "BLEU ↑",
    "metrics.rouge_l": "ROUGE-L ↑",
    "metrics.bertscore": "BERTScore ↑",
    "metrics.dist_1": "Dist-1 ↑",
    "metrics.self_bleu": "Self-BLEU ↓",
    "metrics.div_4": "Div-4 ↑",
    "metrics.steps_to_95pct": "steps to 95% BLEU ↓",
    "train.steps_per_s": "train steps/s",
}
BOLD = {
    "metrics.bleu": "max",
    "metrics.rouge_l": "max",
    "metrics.bertscore": "max",
    "metrics.dist_1": "max",
    "metrics.self_bleu": "min",
    "metrics.div_4": "max",
    "metrics.steps_to_95pct": "min",
}


def row_config(base: InfoDiffusionConfig, row: str, runs_dir: Path) -> InfoDiffusionConfig:
    from shared_utils.config import flatten_config, load_config

    overrides = {**ROWS[row][1], "output_dir": str(runs_dir / row)}
    return load_config(InfoDiffusionConfig, None, {**flatten_config(base), **overrides})


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
    from infodiffusion.evaluate import bleu_curve, normaliser, sample_run, score_records, summarise_curve, write_samples
    from infodiffusion.trainer import train
    from shared_utils.config import config_to_dict, dump_config
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
    dump_config(cfg, results_dir / f"{row}.config.yaml")
    write_results(
        results_dir / f"{row}.json",
        metrics,
        config=cfg,
        wall_time_s=time.time() - start,
        extra={
            "row": row,
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


def plot_curves(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shared_utils.atomic import save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in rows:
        curve = r["curve"]["bleu_by_step"]
        ax.plot(range(1, len(curve) + 1), curve, label=f"{r['label']} (95% at {r['curve']['steps_to_95pct']})")
    ax.set_xlabel(f"reverse steps taken (DDPM, T = {rows[0]['curve']['reverse_steps']})")
    ax.set_ylabel("BLEU of the current x̂₀")
    ax.set_title("BLEU along the reverse process")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def render_table(results_dir: Path) -> str:
    from shared_utils.results import load_results, render_markdown_table

    by_row = {r["row"]: r for r in load_results(results_dir, "*.json") if "row" in r}
    rows = [by_row[k] for k in ROWS if k in by_row]
    return render_markdown_table(rows, COLUMNS, digits=4, bold_best=BOLD), rows


def write_report(results_dir: Path, readme: Path | None) -> str:
    from shared_utils.results import atomic_write_text, replace_marked_section

    table, rows = render_table(results_dir)
    first = rows[0]
    note = (
        f"\n\nData: {first['data']}. Quality metrics on the MBR pick of "
        f"{first['config']['eval']['mbr_quality']} candidates "
        f"({first['config']['sample']['method']}, {first['config']['sample']['steps']} steps), "
        f"diversity over {first['config']['eval']['mbr_diversity']}; "
        f"{first['config']['train']['steps']} training steps per row; "
        f"steps to 95% BLEU from one DDPM trajectory of T = {first['curve']['reverse_steps']} steps "
        f"(candidate 0). Generated by `make reproduce-infodiffusion` from `results/infodiffusion/*.json`.\n"
    )
    atomic_write_text(results_dir / "table.md", table + note)
    plot_curves(rows, results_dir / "bleu_vs_steps.png")
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
) -> str:
    from infodiffusion.metrics import BertScorer
    from shared_utils.errors import ConfigError

    unknown = sorted(set(rows or ()) - set(ROWS))
    if unknown:
        raise ConfigError(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    if readme is not None and not readme.is_file():
        raise ConfigError(f"--readme: no such file {readme}")
    results_dir.mkdir(parents=True, exist_ok=True)
    scorer = BertScorer(base.eval.bertscore_model, base.eval.bertscore_layer) if base.eval.bertscore_model else None
    for row in rows or list(ROWS):
        run_row(row_config(copy.deepcopy(base), row, runs_dir), row, results_dir, scorer, reuse)
    return write_report(results_dir, readme)
