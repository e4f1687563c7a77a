"""``semantic-peft bench``: in one run, the optimiser-step time of re-weighted LoRA relative to
plain LoRA (same model, same batches, steps interleaved so machine load hits both alike), and
the cost of the filtering pass relative to one training epoch.

The epoch time is the median plain-LoRA step time times the number of steps in an epoch
(``ceil(facts / batch_size)``); the filtering pass is everything filtering needs: the base
distance of every fact, the target embeddings and the subset choice.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

import torch

from semantic_peft.adapters import forward, wrap_model
from semantic_peft.config import ExperimentConfig, ReweightConfig
from semantic_peft.data import Encoded, encode_pairs
from semantic_peft.experiment import facts_for, load_model
from semantic_peft.filtering import filter_facts
from semantic_peft.reweighting import knowledge_loss
from semantic_peft.semantic import input_embedding, measure_distances, target_embeddings
from shared_utils.device import apply_threads
from shared_utils.seeding import seed_everything


def _step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Encoded, reweight: ReweightConfig | None
) -> float:
    start = time.perf_counter()
    logits, _ = forward(model, batch)
    loss, _ = knowledge_loss(logits, batch.labels, input_embedding(model), reweight)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - start


def run_bench(config: ExperimentConfig, steps: int = 6) -> dict[str, Any]:
    apply_threads(config.num_threads)
    seed_everything(config.seed)
    facts = facts_for(config)
    model, tokenizer = load_model(config.model)
    bs = config.train.batch_size

    filter_start = time.perf_counter()
    enc = encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts], config.data.append_eos)
    distances = measure_distances(model, enc, config.eval.batch_size)
    units = target_embeddings(tokenizer, input_embedding(model), [f.target for f in facts])
    filter_facts(distances, units, config.filter)
    filter_s = time.perf_counter() - filter_start

    model = wrap_model(model, config.peft)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.train.lr)
    reweight = ReweightConfig(**{**vars(config.reweight), "enabled": True})
    batches = [
        encode_pairs(tokenizer, [(f.prompt, f.target) for f in facts[i : i + bs]], config.data.append_eos)
        for i in range(0, min(len(facts), bs * steps), bs)
    ]
    plain, weighted = [], []
    for i in range(steps + 1):  # the first pair warms up
        batch = batches[i % len(batches)]
        p, w = _step(model, optimizer, batch, None), _step(model, optimizer, batch, reweight)
        if i > 0:
            plain.append(p)
            weighted.append(w)
    plain_s, weighted_s = statistics.median(plain), statistics.median(weighted)
    epoch_s = plain_s * math.ceil(len(facts) / bs)
    return {
        "model": config.model,
        "method": config.peft.method,
        "facts": len(facts),
        "batch_size": bs,
        "timed_steps": steps,
        "reweight_scheme": reweight.scheme,
        "plain_step_s": plain_s,
        "reweighted_step_s": weighted_s,
        "reweighted_over_plain": weighted_s / plain_s,
        "target_ratio": 1.10,
        "filtering_pass_s": filter_s,
        "epoch_s_estimate": epoch_s,
        "filtering_over_epoch": filter_s / epoch_s,
        "threads": torch.get_num_threads(),
    }
