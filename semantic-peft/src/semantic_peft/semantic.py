"""Semantic measurements: target semantic distance, drift and interference.

Definitions (the paper gives only the outline; these are this package's choices):

* **Target semantic distance** of a fact. For every target token ``y_t`` (predicted from
  position ``t-1``) let ``p_t = softmax(z_{t-1})`` over the vocabulary and ``E`` the input
  embedding matrix (V x H). The expected answer embedding is ``\\hat e_t = E^T p_t`` and

      d_t = 1 - cos(E[y_t], \\hat e_t),        d(fact) = mean_t d_t  over the target tokens.

  ``d`` lies in [0, 2]; 0 means the model's expected output points exactly at the target.
  It is measured with the adapter disabled (peft ``disable_adapter``: the base model) and
  enabled, on the same model object.
* **Drift**: the distance of every fact after each epoch. A fact is *pushed away* when its
  final distance exceeds its base distance. On the training prompts cross-entropy pulls the
  distance down, so drift is also followed on the facts' paraphrases and on the answers of
  the unrelated and neighbourhood probes (after every epoch), where nothing pulls.
* **Knowledge feature** of a fact: the change of the hidden state (layer ``feature_layer``)
  at the last prompt position (the one predicting the first target token) caused by the
  adapter: ``h_on - h_off``. **Interference**: cosines between the facts' features.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from semantic_peft.adapters import adapter_disabled, forward, is_peft
from semantic_peft.data import Encoded, encode_pairs, target_token_ids


def token_distances(
    logits: torch.Tensor, labels: torch.Tensor, embedding: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``d_t`` for every supervised token and the row (example) it belongs to.

    ``logits`` (B, T, V) are aligned with ``labels`` (B, T); label ``-100`` is not a target.
    Differentiable in ``logits``.
    """
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != -100
    rows = mask.nonzero(as_tuple=True)[0]
    probs = torch.softmax(logits[:, :-1][mask].float(), dim=-1)  # (N, V)
    expected = probs @ embedding.float()  # (N, H)
    target = embedding[shifted_labels[mask]].float()
    return 1.0 - torch.nn.functional.cosine_similarity(expected, target, dim=-1), rows


def example_distances(logits: torch.Tensor, labels: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """``d(fact)`` per row of the batch: the mean of its tokens' ``d_t``. Differentiable."""
    distances, rows = token_distances(logits, labels, embedding)
    batch = labels.shape[0]
    total = torch.zeros(batch, device=distances.device).index_add(0, rows, distances)
    count = torch.zeros(batch, device=distances.device).index_add(0, rows, torch.ones_like(distances))
    return total / count.clamp_min(1)


def input_embedding(model: torch.nn.Module) -> torch.Tensor:
    return model.get_input_embeddings().weight


def _batches(enc: Encoded, batch_size: int):
    for start in range(0, len(enc), batch_size):
        end = start + batch_size
        yield Encoded(
            enc.input_ids[start:end],
            enc.attention_mask[start:end],
            enc.labels[start:end],
            enc.prompt_lengths[start:end],
            enc.target_ids[start:end],
        )


@torch.no_grad()
def fact_pass(
    model: torch.nn.Module, enc: Encoded, batch_size: int = 32, adapter: bool = True, layer: int | None = None
) -> dict[str, torch.Tensor]:
    """One teacher-forced pass over ``enc``: per row the distance ``d``, the token accuracy and
    exact match of the target (see :mod:`semantic_peft.evaluation`) and, if ``layer`` is given,
    the hidden state at the last prompt position. ``adapter=False`` uses the base model (peft only).
    """
    was_training = model.training
    model.eval()
    device = input_embedding(model).device
    out: dict[str, list[torch.Tensor]] = {"distance": [], "accuracy": [], "exact": [], "hidden": []}
    context = adapter_disabled(model) if (not adapter and is_peft(model)) else contextlib.nullcontext()
    with context:
        embedding = input_embedding(model)
        for batch in _batches(enc, batch_size):
            batch = batch.to(device)
            logits, hidden = forward(model, batch, hidden_states=layer is not None)
            out["distance"].append(example_distances(logits, batch.labels, embedding).cpu())
            predictions = logits.argmax(-1).cpu()
            for row, target in enumerate(batch.target_ids):
                begin = int(batch.prompt_lengths[row])
                hits = predictions[row, begin - 1 : begin - 1 + len(target)] == torch.tensor(target)
                out["accuracy"].append(hits.float().mean().reshape(1))
                out["exact"].append(hits.all().float().reshape(1))
            if layer is not None:
                rows = torch.arange(len(batch), device=device)
                out["hidden"].append(hidden[layer][rows, batch.prompt_lengths - 1].float().cpu())
    model.train(was_training)
    return {key: torch.cat(value) for key, value in out.items() if value}


def measure_distances(model: torch.nn.Module, enc: Encoded, batch_size: int = 32, adapter: bool = True) -> torch.Tensor:
    """Distances of all rows of ``enc``; ``adapter=False`` measures the base model (peft only)."""
    return fact_pass(model, enc, batch_size, adapter)["distance"]


def prompt_end_hidden(
    model: torch.nn.Module, enc: Encoded, layer: int = -1, batch_size: int = 32, adapter: bool = True
) -> torch.Tensor:
    """Hidden state (layer ``layer``) at each row's last prompt position, (N, H)."""
    return fact_pass(model, enc, batch_size, adapter, layer)["hidden"]


def knowledge_features(
    model: torch.nn.Module, enc: Encoded, layer: int = -1, batch_size: int = 32, base_hidden: torch.Tensor | None = None
) -> torch.Tensor:
    """``h_on - h_off`` per fact. For full fine-tuning pass ``base_hidden`` measured before training."""
    tuned = prompt_end_hidden(model, enc, layer, batch_size, adapter=True)
    if base_hidden is None:
        base_hidden = prompt_end_hidden(model, enc, layer, batch_size, adapter=False)
    return tuned - base_hidden


def target_embeddings(tokenizer: Any, embedding: torch.Tensor, targets: list[str]) -> torch.Tensor:
    """Unit-norm mean input embedding of each target's tokens, (N, H)."""
    rows = [embedding[target_token_ids(tokenizer, t)].float().mean(0) for t in targets]
    return torch.nn.functional.normalize(torch.stack(rows).detach().cpu(), dim=-1)


def drift_summary(trajectory: torch.Tensor) -> dict[str, float]:
    """``trajectory`` (checkpoints, facts), row 0 = base distances, last row = final."""
    initial, final = trajectory[0], trajectory[-1]
    return {
        "distance_base_mean": float(initial.mean()),
        "distance_final_mean": float(final.mean()),
        "drift_mean": float((final - initial).mean()),
        "pushed_away_fraction": float((final > initial).float().mean()),
    }


def drift_curves(trajectory: torch.Tensor) -> dict[str, Any]:
    """Per checkpoint of ``trajectory`` (checkpoints, items; row 0 = base): the mean distance and
    the fraction of items farther from their target than at the base (pushed away so far)."""
    initial = trajectory[0]
    return {
        "n": int(trajectory.shape[1]),
        "mean": trajectory.nanmean(1).tolist(),
        "pushed_away": (trajectory > initial).float().mean(1).tolist(),
    }


def bucket_by_distance(initial: torch.Tensor, values: torch.Tensor, buckets: int = 4) -> list[dict[str, float]]:
    """Mean of ``values`` in quantile buckets of ``initial`` distance (lowest distances first)."""
    order = torch.argsort(initial)
    out = []
    for chunk in torch.tensor_split(order, buckets):
        if len(chunk) == 0:
            continue
        out.append(
            {
                "distance_low": float(initial[chunk].min()),
                "distance_high": float(initial[chunk].max()),
                "n": len(chunk),
                "value": float(values[chunk].float().mean()),
            }
        )
    return out


def interference_summary(features: torch.Tensor, groups: list[str | None] | None = None) -> dict[str, float]:
    """Pairwise cosines of knowledge features: mean over pairs, mean |cos|, within/across groups."""
    unit = torch.nn.functional.normalize(features.float(), dim=-1)
    cosines = unit @ unit.T
    n = len(unit)
    off = ~torch.eye(n, dtype=torch.bool)
    summary = {"feature_cos_mean": float(cosines[off].mean()), "feature_abs_cos_mean": float(cosines[off].abs().mean())}
    if groups is not None:
        same = torch.tensor([[a == b for b in groups] for a in groups]) & off
        if same.any():
            summary["feature_cos_same_relation"] = float(cosines[same].mean())
        if (off & ~same).any():
            summary["feature_cos_other_relation"] = float(cosines[off & ~same].mean())
    return summary


def encode_facts(tokenizer: Any, facts: list, append_eos: bool = False) -> Encoded:
    return encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts], append_eos)
