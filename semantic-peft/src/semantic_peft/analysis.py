"""``semantic-peft analyze``: the semantic measurements on their own, for the base model and,
given a saved adapter, for the adapted model (the same object, adapter disabled vs enabled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from semantic_peft.adapters import load_adapter
from semantic_peft.config import ExperimentConfig
from semantic_peft.data import encode_pairs
from semantic_peft.experiment import facts_for, load_model
from semantic_peft.filtering import filter_facts
from semantic_peft.semantic import (
    bucket_by_distance,
    drift_summary,
    input_embedding,
    interference_summary,
    knowledge_features,
    measure_distances,
    target_embeddings,
)
from shared_utils.device import apply_threads


def analyze(config: ExperimentConfig, adapter: str | None = None) -> dict[str, Any]:
    apply_threads(config.num_threads)
    facts = facts_for(config)
    model, tokenizer = load_model(config.model)
    bs = config.eval.batch_size
    if adapter is not None:
        model = load_adapter(model, adapter)
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts], config.data.append_eos)
    base = measure_distances(model, enc, bs, adapter=False)
    relations = [f.relation for f in facts]
    per_relation = {
        r: float(base[[i for i, x in enumerate(relations) if x == r]].mean())
        for r in sorted({r for r in relations if r})
    }
    units = target_embeddings(tokenizer, input_embedding(model), [f.target for f in facts])
    report = filter_facts(base, units, config.filter)
    result: dict[str, Any] = {
        "facts": len(facts),
        "metrics": {
            "distance_base_mean": float(base.mean()),
            "distance_base_std": float(base.std()),
            "filter_kept": len(report.kept),
        },
        "distance_base_by_relation": per_relation,
        "filter_preview": report.as_dict([f.fact_id or str(i) for i, f in enumerate(facts)]),
        "hardest_facts": [
            {"fact": facts[i].fact_id, "prompt": facts[i].prompt, "target": facts[i].target, "distance": float(base[i])}
            for i in base.argsort(descending=True)[:10].tolist()
        ],
    }
    final = features = None
    if adapter is not None:
        final = measure_distances(model, enc, bs, adapter=True)
        features = knowledge_features(model, enc, config.analysis.feature_layer, bs)
        result["adapter"] = adapter
        result["metrics"].update(drift_summary(torch.stack([base, final])))
        result["metrics"].update(interference_summary(features, relations))
        result["distance_change_by_initial_distance"] = bucket_by_distance(
            base, final - base, config.analysis.distance_buckets
        )
    if config.analysis.figures:
        from semantic_peft.figures import run_figure

        path = Path(config.output_dir) / "analysis" / "analysis.png"
        run_figure(
            path,
            f"analysis of {config.model}" + (f" + {adapter}" if adapter else ""),
            base,
            final if final is not None else base,
            None,
            features,
            relations,
        )
        result["figure"] = str(path)
    return result
