"""Interference as a curve: exact match against the number of facts learned jointly, with the
knowledge features of a fixed core of facts learned alone beside them (``semantic-peft
interference``).

Per seed: the facts are put in a seeded random order; for every size ``N`` a fresh adapter learns
the first ``N`` facts jointly (the configured epochs, batch size and learning rate); the first
``core`` facts are in every set with ``N >= core`` and are also learned each alone (a fresh adapter,
batch 1, the same epochs: :func:`semantic_peft.experiment.alone_vs_joint`'s protocol). Measured per
``N``: exact match on the ``N`` facts and on the core; the core facts' knowledge features (hidden
state at the last prompt token, adapter on minus base) as their norm relative to the same fact's
alone feature and their cosine with it; the mean pairwise cosine of all ``N`` features. Each seed
is written to ``<results>/seed_<seed>.json``; :func:`write_curve` aggregates every seed file into
``curve.md`` and ``curve.png`` (mean and 95% t-interval over seeds).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from semantic_peft.adapters import wrap_model
from semantic_peft.config import ExperimentConfig, TrainConfig
from semantic_peft.data import Fact, encode_pairs
from semantic_peft.evaluation import evaluate
from semantic_peft.experiment import _unwrap, facts_for, load_model
from semantic_peft.semantic import fact_pass, interference_summary
from semantic_peft.training import train
from shared_utils.config import config_to_dict
from shared_utils.device import apply_threads, build_accelerator
from shared_utils.intervals import mean_interval
from shared_utils.results import atomic_write_json, atomic_write_text, git_commit, load_results
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

logger = get_logger(__name__)
CURVE_METRICS = [
    ("em", "EM (all N facts)"),
    ("em_core", "EM (core facts)"),
    ("feature_norm_ratio_core", "core feature norm / alone"),
    ("feature_cos_alone_core", "cos(core feature, alone)"),
    ("feature_cos_mean", "mean pairwise feature cos"),
]


def _hidden(model: torch.nn.Module, tokenizer: Any, facts: list[Fact], config: ExperimentConfig) -> torch.Tensor:
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts], config.data.append_eos)
    return fact_pass(model, enc, config.eval.batch_size, layer=config.analysis.feature_layer)["hidden"]


def _learn(model, tokenizer, facts, train_config: TrainConfig, config: ExperimentConfig, accelerator, desc: str):
    """A fresh adapter on ``model`` trained on ``facts``; returns (peft model, steps, per-fact EM, features)."""
    seed_everything(config.seed)
    model = wrap_model(model, config.peft)
    model.to(accelerator.device)
    history = train(
        model, tokenizer, facts, train_config, None, accelerator, config.seed, config.data.append_eos, desc=desc
    )
    em = evaluate(model, tokenizer, facts, None, 0, config.eval.batch_size)["per_fact"]["train_em"].float()
    return model, history.steps, em, _hidden(model, tokenizer, facts, config)


def interference_curve(
    config: ExperimentConfig,
    sizes: list[int],
    core: int = 5,
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """One seed of the curve (module docstring). Re-weighting and filtering are not applied."""
    if config.peft.method == "full":
        raise ValueError("the interference curve needs a peft method (the base model must stay unchanged), not full")
    apply_threads(config.num_threads)
    facts = facts_for(config)
    sizes = sorted({n for n in sizes if 1 <= n <= len(facts)})
    if not sizes:
        raise ValueError(f"no size between 1 and the {len(facts)} facts")
    order = torch.randperm(len(facts), generator=torch.Generator().manual_seed(config.seed)).tolist()
    facts = [facts[i] for i in order]
    core = min(core, sizes[-1])
    if model is None:
        model, tokenizer = load_model(config.model)
    accelerator = build_accelerator(config.accelerator, run_name=f"{config.name}-interference")
    model.to(accelerator.device)
    start = time.time()
    base_hidden = _hidden(model, tokenizer, facts[: sizes[-1]], config)

    single = TrainConfig(**{**config_to_dict(config.train), "batch_size": 1, "track_distance": False})
    alone_em, alone_features = [], []
    for i in range(core):
        model, _, em, hidden = _learn(model, tokenizer, [facts[i]], single, config, accelerator, f"alone {i}")
        alone_em.append(float(em[0]))
        alone_features.append(hidden[0] - base_hidden[i])
        model = _unwrap(model)
    alone_features = torch.stack(alone_features)

    joint_config = TrainConfig(**{**config_to_dict(config.train), "track_distance": False})
    points = []
    for n in sizes:
        model, steps, em, hidden = _learn(model, tokenizer, facts[:n], joint_config, config, accelerator, f"joint {n}")
        model = _unwrap(model)
        features = hidden - base_hidden[:n]
        k = min(core, n)
        norms = features[:k].norm(dim=-1) / alone_features[:k].norm(dim=-1).clamp_min(1e-12)
        cos = torch.nn.functional.cosine_similarity(features[:k], alone_features[:k], dim=-1)
        point = {
            "n": n,
            "steps": steps,
            "em": float(em.mean()),
            "em_core": float(em[:k].mean()),
            "core_facts": k,
            "feature_norm_ratio_core": float(norms.mean()),
            "feature_cos_alone_core": float(cos.mean()),
            "feature_norm_mean": float(features.norm(dim=-1).mean()),
        }
        if n > 1:
            point.update(interference_summary(features, [f.relation for f in facts[:n]]))
        points.append(point)
        logger.info(
            "interference N=%d: EM %.3f, core EM %.3f (%.0fs)", n, point["em"], point["em_core"], time.time() - start
        )
    return {
        "seed": config.seed,
        "sizes": sizes,
        "core": [f.fact_id for f in facts[:core]],
        "alone": {"em_core": sum(alone_em) / core, "em": alone_em},
        "points": points,
        "wall_time_s": time.time() - start,
    }


def run_and_write(config: ExperimentConfig, sizes: list[int], core: int, results_dir: str | Path) -> Path:
    """One seed into ``<results_dir>/seed_<seed>.json`` (with commit and config), then :func:`write_curve`."""
    results_dir = Path(results_dir)
    curve = interference_curve(config, sizes, core)
    path = atomic_write_json(
        results_dir / f"seed_{config.seed}.json",
        {**curve, "git_commit": git_commit(), "config": config_to_dict(config)},
    )
    write_curve(results_dir)
    return path


def aggregate_curve(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size present in every record: mean and 95% t half-width over seeds of each curve metric,
    and the alone core EM (size 0 stands for "alone")."""
    sizes = sorted(set.intersection(*(set(r["sizes"]) for r in records)))
    rows = [{"n": "alone", "seeds": len(records), **_stats({"em_core": [r["alone"]["em_core"] for r in records]})}]
    for n in sizes:
        points = [next(p for p in r["points"] if p["n"] == n) for r in records]
        keys = [k for k, _ in CURVE_METRICS if all(k in p for p in points)]
        rows.append({"n": n, "seeds": len(records), **_stats({k: [p[k] for p in points] for k in keys})})
    return rows


def _stats(values: dict[str, list[float]]) -> dict[str, Any]:
    out = {}
    for key, v in values.items():
        mean, half = mean_interval(v)
        out[key] = float(mean)
        out[f"{key}_half"] = None if half is None else float(half)
    return out


def write_curve(results_dir: str | Path) -> list[dict[str, Any]]:
    """``curve.md`` and ``curve.png`` from every ``seed_*.json`` of ``results_dir``."""
    results_dir = Path(results_dir)
    records = load_results(results_dir, "seed_*.json")
    if not records:
        raise FileNotFoundError(f"no seed_*.json in {results_dir}")
    rows = aggregate_curve(records)

    def cell(row, key):
        if key not in row:
            return "–"
        half = row.get(f"{key}_half")
        return f"{row[key]:.3f}" + (f" ± {half:.3f}" if half is not None else "")

    lines = [
        "| N learned jointly | " + " | ".join(h for _, h in CURVE_METRICS) + " |",
        "| --- |" + " --- |" * len(CURVE_METRICS),
    ]
    for row in rows:
        lines.append(f"| {row['n']} | " + " | ".join(cell(row, k) for k, _ in CURVE_METRICS) + " |")
    core = len(records[0]["core"])
    commits = ", ".join(sorted({str(r.get("git_commit")) for r in records}))
    text = "\n".join(lines) + (
        f"\n\n{len(records)} seed(s) ({', '.join(str(r['seed']) for r in records)}), mean ± 95% t-interval; "
        f"core = the first {core} facts of each seed's random order, also learned each alone (batch 1, same "
        f"epochs and lr); feature = hidden state at the last prompt token, adapter on minus base. Commit(s) {commits}. "
        "Generated by `semantic-peft interference` (`semantic_peft.interference.write_curve`).\n"
    )
    atomic_write_text(results_dir / "curve.md", text)
    _figure(results_dir / "curve.png", rows)
    return rows


def _figure(path: Path, rows: list[dict[str, Any]]) -> Path:
    from shared_utils.atomic import headless_pyplot, save_figure

    plt = headless_pyplot()
    alone, points = rows[0], rows[1:]
    ns = [r["n"] for r in points]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in CURVE_METRICS[:2]:
        halves = [r.get(f"{key}_half") or 0 for r in points]
        axes[0].errorbar(ns, [r[key] for r in points], yerr=halves, marker="o", label=label, capsize=3)
    axes[0].axhline(alone["em_core"], ls="--", color="grey", label="core facts learned alone")
    axes[0].set(xscale="log", xlabel="facts learned jointly (N)", ylabel="exact match", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    for key, label in CURVE_METRICS[2:]:
        have = [r for r in points if key in r]
        if have:
            halves = [r.get(f"{key}_half") or 0 for r in have]
            axes[1].errorbar(
                [r["n"] for r in have], [r[key] for r in have], yerr=halves, marker="o", label=label, capsize=3
            )
    axes[1].set(xscale="log", xlabel="facts learned jointly (N)", ylabel="knowledge feature")
    axes[1].legend(fontsize=7)
    fig.suptitle("interference: learning more facts at once")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110, bbox_inches="tight")
