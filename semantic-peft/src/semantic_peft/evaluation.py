"""Evaluation as knowledge-editing work does it.

* **Token accuracy** (teacher-forced): the fraction of target tokens that are the argmax of the
  model's next-token distribution given the true prefix.
* **Exact match**: greedy decoding of ``len(target)`` tokens reproduces the target exactly.
  Greedy decoding reproduces the target iff every teacher-forced argmax is right, so it is
  computed from the teacher-forced pass (:func:`greedy_decode` checks the identity in the tests).
* Measured on the training prompts (memorisation), paraphrases (generalisation) and the
  locality probes, *neighbourhood* (the fact's template, another subject) and *unrelated*
  (other templates), reported apart. Locality compares with the unedited model's greedy
  continuation of ``locality_tokens`` tokens, teacher-forced on the edited model: **token
  agreement** is the fraction of those tokens that are still the argmax given the prompt and
  the base model's preceding tokens (the token-level locality of knowledge-editing work, e.g.
  EasyEdit); **strict locality** counts a probe only if all of them agree, which is exactly
  "the greedy continuation is unchanged" (the exact-match identity above). The probes'
  answers give their token accuracy.
"""

from __future__ import annotations

from typing import Any

import torch

from semantic_peft.adapters import forward
from semantic_peft.data import PROBE_KINDS, Encoded, Fact, encode_pairs, paraphrase_pairs, probe_pairs
from semantic_peft.semantic import fact_pass


def teacher_forced(model: torch.nn.Module, enc: Encoded, batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: token accuracy over the target tokens and exact match (all tokens right)."""
    result = fact_pass(model, enc, batch_size)
    return result["accuracy"], result["exact"]


@torch.no_grad()
def greedy_decode(
    model: torch.nn.Module, tokenizer: Any, prompts: list[str], max_new_tokens: int, batch_size: int = 32
) -> list[list[int]]:
    """Greedy continuation token ids of each prompt (right-padded batches, no KV cache)."""
    was_training = model.training
    model.eval()
    device = model.get_input_embeddings().weight.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    results: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        encoded = [tokenizer(p)["input_ids"] for p in prompts[start : start + batch_size]]
        lengths = torch.tensor([len(e) for e in encoded])
        ids = torch.full((len(encoded), int(lengths.max()) + max_new_tokens), pad, dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e)
        rows = torch.arange(len(encoded))
        for step in range(max_new_tokens):
            current = lengths + step
            width = int(current.max())
            mask = (torch.arange(width)[None] < current[:, None]).long()
            batch = Encoded(ids[:, :width].to(device), mask.to(device), torch.zeros_like(mask), current, [])
            logits = forward(model, batch)[0]
            ids[rows, current] = logits[rows.to(device), (current - 1).to(device)].argmax(-1).cpu()
        results.extend(ids[i, lengths[i] : lengths[i] + max_new_tokens].tolist() for i in range(len(encoded)))
    model.train(was_training)
    return results


def base_reference(
    model: torch.nn.Module, tokenizer: Any, facts: list[Fact], tokens: int = 3, batch_size: int = 32
) -> dict[str, list[list[int]]]:
    """The base model's greedy continuations of each kind of locality probe (the reference)."""
    reference = {}
    for kind in PROBE_KINDS:
        prompts = [p for p, _ in probe_pairs(facts, kind)]
        if prompts:
            reference[kind] = greedy_decode(model, tokenizer, prompts, tokens, batch_size)
    return reference


def locality(
    model: torch.nn.Module, tokenizer: Any, prompts: list[str], reference: list[list[int]], batch_size: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per probe: token agreement with the base model's continuation ``reference`` and whether
    every token agrees (= the greedy continuation is unchanged); one teacher-forced pass."""
    return teacher_forced(model, encode_pairs(tokenizer, list(zip(prompts, reference))), batch_size)


def evaluate(
    model: torch.nn.Module,
    tokenizer: Any,
    facts: list[Fact],
    locality_reference: dict[str, list[list[int]]] | None,
    max_paraphrases: int = 2,
    batch_size: int = 32,
    fact_results: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Metrics (``*_acc``, ``*_em``; ``locality`` (strict) and ``locality_token`` over all probes,
    ``locality_<kind>`` and ``locality_<kind>_token`` per probe kind) and the per-fact vectors
    used for bucketing. The reference (:func:`base_reference`) fixes how many tokens are compared.

    ``fact_results``: a :func:`~semantic_peft.semantic.fact_pass` over ``facts`` already made
    (it is reused instead of a second pass over the training prompts).
    """
    if fact_results is None:
        fact_results = fact_pass(model, encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts]), batch_size)
    train_acc, train_em = fact_results["accuracy"], fact_results["exact"]
    metrics: dict[str, Any] = {"train_acc": float(train_acc.mean()), "train_em": float(train_em.mean())}
    per_fact = {"train_acc": train_acc, "train_em": train_em}
    pairs, owners = paraphrase_pairs(facts, max_paraphrases)
    if pairs:
        para_acc, para_em = teacher_forced(model, encode_pairs(tokenizer, pairs), batch_size)
        metrics.update(para_acc=float(para_acc.mean()), para_em=float(para_em.mean()))
        owner = torch.tensor(owners)
        per_fact["para_acc"] = torch.zeros(len(facts)).index_add(0, owner, para_acc) / torch.zeros(
            len(facts)
        ).index_add(0, owner, torch.ones_like(para_acc)).clamp_min(1)
    agreement, unchanged = [], []
    for kind in PROBE_KINDS:
        pairs = probe_pairs(facts, kind)
        if not pairs:
            continue
        metrics[f"{kind}_acc"] = float(teacher_forced(model, encode_pairs(tokenizer, pairs), batch_size)[0].mean())
        if locality_reference is not None and kind in locality_reference:
            agree, same = locality(model, tokenizer, [p for p, _ in pairs], locality_reference[kind], batch_size)
            metrics[f"locality_{kind}"], metrics[f"locality_{kind}_token"] = float(same.mean()), float(agree.mean())
            agreement.append(agree)
            unchanged.append(same)
    if agreement:
        metrics["locality"], metrics["locality_token"] = (
            float(torch.cat(unchanged).mean()),
            float(torch.cat(agreement).mean()),
        )
        metrics["locality_probes"] = sum(len(a) for a in agreement)
    return {"metrics": metrics, "per_fact": per_fact}
