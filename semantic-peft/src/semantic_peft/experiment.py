"""One experiment: measure the base model, optionally filter, train with the configured method
and loss, then measure drift, interference and accuracy. Used by ``semantic-peft train`` and
by the reproduction (which measures the base model once and shares it between rows)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from semantic_peft.adapters import adapted_module_names, is_peft, save_model, wrap_model
from semantic_peft.config import ExperimentConfig, TrainConfig
from semantic_peft.data import Fact, drift_probe_pairs, encode_pairs, load_facts
from semantic_peft.evaluation import base_reference, evaluate
from semantic_peft.filtering import FilterReport, filter_facts
from semantic_peft.semantic import (
    bucket_by_distance,
    drift_curves,
    drift_summary,
    fact_pass,
    input_embedding,
    interference_summary,
    target_embeddings,
)
from semantic_peft.training import train
from shared_utils.config import config_to_dict, dump_config
from shared_utils.device import apply_threads, build_accelerator
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

logger = get_logger(__name__)


def load_model(name: str) -> tuple[torch.nn.Module, Any]:
    from shared_utils.models import load_causal_lm

    return load_causal_lm(name)


def facts_for(config: ExperimentConfig) -> list[Fact]:
    d = config.data
    return load_facts(d.source, d.format, d.split, d.max_facts, d.builtin_per_relation, d.builtin_seed, d.skip_invalid)


@dataclass
class BaseMeasurements:
    """Everything measured on the untouched base model, for all facts."""

    distance: torch.Tensor  # (N,) target semantic distance
    hidden: torch.Tensor  # (N, H) hidden state at the last prompt position
    locality_reference: dict[str, list[list[int]]]  # greedy continuations of each kind of locality probe
    metrics: dict[str, Any]  # evaluation of the base model
    target_units: torch.Tensor  # (N, H) unit-norm target embeddings (for filtering)


def measure_base(
    model: torch.nn.Module, tokenizer: Any, facts: list[Fact], config: ExperimentConfig
) -> BaseMeasurements:
    bs = config.eval.batch_size
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts], config.data.append_eos)
    reference = base_reference(model, tokenizer, facts, config.eval.locality_tokens, bs)
    passed = fact_pass(model, enc, bs, layer=config.analysis.feature_layer)
    return BaseMeasurements(
        distance=passed["distance"],
        hidden=passed["hidden"],
        locality_reference=reference,
        metrics=evaluate(
            model,
            tokenizer,
            facts,
            reference,
            config.data.max_paraphrases,
            bs,
            fact_results=passed,
        )["metrics"],
        target_units=target_embeddings(tokenizer, input_embedding(model), [f.target for f in facts]),
    )


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The base model back from a temporary adapter (LoRA/IA3 layers removed)."""
    if not is_peft(model):
        return model
    if model.peft_config[model.active_adapter].is_prompt_learning:
        return model.get_base_model()
    return model.unload()


def alone_vs_joint(
    base: torch.nn.Module, tokenizer: Any, facts: list[Fact], config: ExperimentConfig, accelerator: Any
) -> tuple[torch.nn.Module, dict[int, float]]:
    """Learn each of ``analysis.alone_facts`` facts (spread over the list) alone with a fresh
    adapter, with the same epochs and learning rate as the joint run, so each fact gets the same
    number of updates on itself. Returns the unchanged base model and ``{index: exact match}``."""
    k = min(config.analysis.alone_facts, len(facts))
    chosen = sorted({round(i * (len(facts) - 1) / max(k - 1, 1)) for i in range(k)})
    single = TrainConfig(**{**config_to_dict(config.train), "batch_size": 1, "track_distance": False})
    alone: dict[int, float] = {}
    for index in chosen:
        seed_everything(config.seed)
        model = wrap_model(base, config.peft)
        train(
            model,
            tokenizer,
            [facts[index]],
            single,
            config.reweight,
            accelerator,
            config.seed,
            config.data.append_eos,
            desc=f"alone {index}",
        )
        alone[index] = evaluate(model, tokenizer, [facts[index]], None, 0, batch_size=1)["metrics"]["train_em"]
        base = _unwrap(model)
    return base, alone


def run_experiment(
    config: ExperimentConfig,
    model: torch.nn.Module | None = None,
    tokenizer: Any = None,
    facts: list[Fact] | None = None,
    base: BaseMeasurements | None = None,
    figure_path: str | Path | None = None,
) -> dict[str, Any]:
    """Run ``config`` end to end.

    Returns ``{"metrics", "details", "wall_time_s", "train_time_s", "model"}``; ``model`` is the
    trained model (a peft model unless ``peft.method == "full"``), everything else is JSON-able.
    ``metrics`` hold no timings, so a run repeated with the same config gives the same metrics.
    """
    start = time.time()
    apply_threads(config.num_threads)
    seed_everything(config.seed)
    facts = facts if facts is not None else facts_for(config)  # a data error stops the run before the model loads
    if model is None:
        model, tokenizer = load_model(config.model)
    accelerator = build_accelerator(config.accelerator, run_name=config.name, tracker_config=config_to_dict(config))
    model.to(accelerator.device)
    eval_bs = config.eval.batch_size
    if base is None:
        base = measure_base(model, tokenizer, facts, config)
        logger.info("base model measured in %.1fs", time.time() - start)

    kept = list(range(len(facts)))
    report: FilterReport | None = None
    if config.filter.enabled:
        report = filter_facts(base.distance, base.target_units, config.filter)
        kept = report.kept
        logger.info("filtering kept %d of %d facts (%s)", len(kept), len(facts), report.as_dict()["dropped_by_reason"])
    kept_t = torch.tensor(kept, dtype=torch.long)
    train_facts = [facts[i] for i in kept]

    alone: dict[int, float] = {}
    if config.analysis.alone_facts > 0:
        model, alone = alone_vs_joint(model, tokenizer, train_facts, config, accelerator)

    drift_sets = {}
    if config.eval.drift_probes:
        pairs = drift_probe_pairs(train_facts, facts, config.data.max_paraphrases)
        drift_sets = {name: encode_pairs(tokenizer, p) for name, p in pairs.items()}
    probe_trajectory = {name: [fact_pass(model, enc, eval_bs)["distance"]] for name, enc in drift_sets.items()}

    seed_everything(config.seed)
    model = wrap_model(model, config.peft)
    model.to(accelerator.device)

    def measure_probes() -> None:
        for name, enc in drift_sets.items():
            probe_trajectory[name].append(fact_pass(model, enc, eval_bs)["distance"])

    train_start = time.time()
    history = train(
        model,
        tokenizer,
        train_facts,
        config.train,
        config.reweight,
        accelerator,
        config.seed,
        config.data.append_eos,
        desc=config.name,
        after_epoch=measure_probes,
    )
    train_time = time.time() - train_start
    logger.info("trained %d steps in %.1fs", history.steps, train_time)

    all_enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts], config.data.append_eos)
    passed = fact_pass(model, all_enc, eval_bs, layer=config.analysis.feature_layer)
    final_distance = passed["distance"]
    features = passed["hidden"][kept_t] - base.hidden[kept_t]
    evaluation = evaluate(
        model,
        tokenizer,
        facts,
        base.locality_reference,
        config.data.max_paraphrases,
        eval_bs,
        fact_results=passed,
    )
    per_fact = evaluation["per_fact"]
    logger.info("evaluated in %.1fs", time.time() - train_start - train_time)
    trajectory = torch.stack([base.distance[kept_t], *history.trajectory, final_distance[kept_t]])
    drift = {"train": trajectory, **{name: torch.stack(t) for name, t in probe_trajectory.items()}}

    metrics: dict[str, Any] = {
        **evaluation["metrics"],
        "trained_facts": len(kept),
        "train_em_trained": float(per_fact["train_em"][kept_t].mean()),
        "train_acc_trained": float(per_fact["train_acc"][kept_t].mean()),
        **drift_summary(trajectory),
        **{f"{name}_{k}": v for name, t in drift.items() if name != "train" for k, v in drift_summary(t).items()},
        **interference_summary(features, [f.relation for f in train_facts]),
        "final_loss": history.losses[-1] if history.losses else None,
        "optimizer_steps": history.steps,
    }
    if "para_acc" in per_fact:
        metrics["para_acc_trained"] = float(per_fact["para_acc"][kept_t].mean())
    if alone:
        metrics["alone_em"] = sum(alone.values()) / len(alone)
        metrics["joint_em_same_facts"] = sum(float(per_fact["train_em"][kept[j]]) for j in alone) / len(alone)

    relations = [f.relation for f in train_facts]
    details: dict[str, Any] = {
        "base_metrics": base.metrics,
        "buckets_by_initial_distance": {
            "train_em": bucket_by_distance(
                base.distance[kept_t], per_fact["train_em"][kept_t], config.analysis.distance_buckets
            ),
            "distance_change": bucket_by_distance(
                base.distance[kept_t], (final_distance - base.distance)[kept_t], config.analysis.distance_buckets
            ),
        },
        "per_relation": _per_relation(facts, kept, per_fact, base.distance, final_distance),
        "distance_trajectory_mean": trajectory.nanmean(1).tolist(),
        "drift": {name: drift_curves(t) for name, t in drift.items()},
        "per_fact": {
            "fact": [f.fact_id for f in facts],
            "train_em": per_fact["train_em"].tolist(),
            "distance_base": base.distance.tolist(),
            "distance_final": final_distance.tolist(),
        },
        "loss_curve": history.losses,
    }
    if history.weight_stats:
        details["weight_stats"] = history.weight_stats
        metrics["weight_ess_fraction_mean"] = sum(w["ess_fraction"] for w in history.weight_stats) / len(
            history.weight_stats
        )
        metrics["weight_max"] = max(w["max_weight"] for w in history.weight_stats)
    if report is not None:
        details["filter"] = report.as_dict([f.fact_id or str(i) for i, f in enumerate(facts)])
    if alone:
        details["alone_vs_joint"] = [
            {"fact": train_facts[j].fact_id, "alone_em": alone[j], "joint_em": float(per_fact["train_em"][kept[j]])}
            for j in alone
        ]
    if is_peft(model):
        wrapped = adapted_module_names(model)
        details["adapted_modules"] = {"count": len(wrapped), "names": sorted({n.rsplit(".", 1)[-1] for n in wrapped})}
    out_dir = Path(config.output_dir) / config.name
    if config.save_model and accelerator.is_main_process:
        save_model(
            accelerator.unwrap_model(model),
            out_dir / ("adapter" if is_peft(model) else "model"),
            tokenizer,
            base_model=config.model,
        )
        dump_config(config, out_dir / "config.yaml")
    if config.analysis.figures and accelerator.is_main_process:
        from semantic_peft.figures import run_figure

        run_figure(
            figure_path or out_dir / "figure.png",
            f"{config.name} ({config.peft.method})",
            base.distance[kept_t],
            final_distance[kept_t],
            trajectory,
            features,
            relations,
        )
        path = Path(figure_path or out_dir / "figure.png")
        if history.weight_stats:
            from semantic_peft.figures import weight_figure

            weight_figure(path.with_name(path.stem + "_weights.png"), config.name, history.weight_stats)
        if len(drift) > 1:
            from semantic_peft.figures import drift_figure

            drift_figure(path.with_name(path.stem + "_drift.png"), config.name, {config.name: details["drift"]})
    accelerator.end_training()
    return {
        "metrics": metrics,
        "details": details,
        "wall_time_s": time.time() - start,
        "train_time_s": train_time,
        "model": model,
    }


def _per_relation(
    facts: list[Fact], kept: list[int], per_fact: dict[str, torch.Tensor], base: torch.Tensor, final: torch.Tensor
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for relation in sorted({f.relation or "" for f in facts}):
        idx = torch.tensor([i for i in kept if (facts[i].relation or "") == relation], dtype=torch.long)
        if len(idx) == 0:
            continue
        out[relation] = {
            "n": len(idx),
            "train_em": float(per_fact["train_em"][idx].mean()),
            "distance_base": float(base[idx].mean()),
            "distance_final": float(final[idx].mean()),
        }
        if "para_acc" in per_fact:
            out[relation]["para_acc"] = float(per_fact["para_acc"][idx].mean())
    return out
