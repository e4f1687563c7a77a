"""The training loop (one for every method), on ``accelerate``.

It works unchanged on a CPU, under ``accelerate launch``/``torchrun`` with several processes,
and logs to wandb through the accelerator. The loss is :func:`semantic_peft.reweighting.knowledge_loss`
(plain per-fact cross-entropy unless re-weighting or the auxiliary term is on). The drift
trajectory is read off the training forward passes themselves (no extra pass): in each epoch
every fact's distance is recorded when its batch is visited, before that step's update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semantic_peft.adapters import forward
from semantic_peft.config import ReweightConfig, TrainConfig
from semantic_peft.data import Encoded, Fact, encode_pairs
from semantic_peft.reweighting import knowledge_loss, weight_statistics
from semantic_peft.semantic import example_distances, input_embedding


@dataclass
class TrainHistory:
    losses: list[float] = field(default_factory=list)  # one per optimiser step
    trajectory: list[torch.Tensor] = field(default_factory=list)  # per epoch: each fact's distance when visited
    weight_stats: list[dict[str, float]] = field(default_factory=list)  # per step, when re-weighting
    steps: int = 0


def fact_loader(
    tokenizer: Any, facts: list[Fact], batch_size: int, seed: int, append_eos: bool = False, shuffle: bool = True
) -> DataLoader:
    """Batches of encoded facts; the shuffle order is fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    rows = [(i, f.prompt, f.target) for i, f in enumerate(facts)]

    def collate(batch: list[tuple[int, str, str]]):
        enc = encode_pairs(tokenizer, [(prompt, target) for _, prompt, target in batch], append_eos)
        return {
            "input_ids": enc.input_ids,
            "attention_mask": enc.attention_mask,
            "labels": enc.labels,
            "prompt_lengths": enc.prompt_lengths,
            "index": torch.tensor([i for i, _, _ in batch]),
        }

    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)


def train(
    model: torch.nn.Module,
    tokenizer: Any,
    facts: list[Fact],
    train_config: TrainConfig,
    reweight: ReweightConfig | None,
    accelerator: Any,
    seed: int = 0,
    append_eos: bool = False,
    desc: str = "train",
    after_epoch: Callable[[], None] | None = None,
) -> TrainHistory:
    """Train ``model``'s trainable parameters on ``facts``; returns losses and the drift trajectory.

    ``after_epoch`` is called after every epoch (the experiment measures its probe sets there).

    ``model`` may be a peft model or a plain one (full fine-tuning). The caller keeps its
    reference; the accelerator-prepared wrapper is used only inside.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters")
    optimizer = torch.optim.AdamW(parameters, lr=train_config.lr, weight_decay=train_config.weight_decay)
    loader = fact_loader(tokenizer, facts, train_config.batch_size, seed, append_eos)
    prepared, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    history = TrainHistory()
    embedding = input_embedding(model)
    total = train_config.epochs * len(loader)
    progress = tqdm(total=total, desc=desc, disable=not accelerator.is_local_main_process, leave=False)
    prepared.train()
    for epoch in range(train_config.epochs):
        visited = torch.full((len(facts),), float("nan"))
        for batch in loader:
            with accelerator.accumulate(prepared):
                enc = Encoded(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["prompt_lengths"], [])
                logits, _ = forward(prepared, enc)
                loss, parts = knowledge_loss(logits, enc.labels, embedding, reweight)
                accelerator.backward(loss)
                if accelerator.sync_gradients and train_config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(parameters, train_config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            if train_config.track_distance:
                distance = parts.get("distance")
                if distance is None:
                    distance = example_distances(logits.detach(), enc.labels, embedding.detach())
                index, distance = accelerator.gather(batch["index"]), accelerator.gather(distance.detach())
                visited[index.cpu()] = distance.float().cpu()
            history.losses.append(float(loss.detach()))
            history.steps += 1
            log = {"loss": history.losses[-1], "ce": float(parts["ce"].mean()), "epoch": epoch}
            if "distance" in parts:
                log["batch_distance"] = float(parts["distance"].mean())
            if "weights" in parts:
                history.weight_stats.append(weight_statistics(parts["weights"]))
                log.update({f"weight_{k}": v for k, v in history.weight_stats[-1].items()})
            accelerator.log(log, step=history.steps)
            progress.update(1)
            progress.set_postfix(loss=f"{history.losses[-1]:.3f}", epoch=epoch)
        if train_config.track_distance:
            history.trajectory.append(visited)
            accelerator.log({"train_distance_mean": float(visited.nanmean())}, step=history.steps)
        if after_epoch is not None:
            after_epoch()
    progress.close()
    model.eval()
    return history
