"""Seeded, batched, multi-process generation of N candidates per source.

Candidate j of source i always uses the seed ``seed · 1_000_003 + i · N + j`` and its own
``torch.Generator`` for every noise draw, so a candidate does not depend on the batch it
lands in or on the number of processes. Jobs (i, j) are dealt to processes round-robin;
the results are gathered so each candidate is written exactly once.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from infodiffusion.config import SampleConfig
from infodiffusion.diffusion import TextDiffusion
from infodiffusion.model import DiffusionTransformer


def candidate_seed(seed: int, source: int, candidate: int, n_candidates: int) -> int:
    return seed * 1_000_003 + source * n_candidates + candidate


class SeededNoise:
    """``noise(shape)`` -> one N(0, I) row per generator, stacked."""

    def __init__(self, seeds: list[int]):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]

    def __call__(self, shape: torch.Size) -> torch.Tensor:
        return torch.stack([torch.randn(shape[1:], generator=g) for g in self.generators])


def source_ids(ids: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """Keep the source; target positions are zeroed (they are generated)."""
    return torch.where(target_mask.bool(), torch.zeros_like(ids), ids)


@torch.no_grad()
def generate(
    model: DiffusionTransformer,
    diffusion: TextDiffusion,
    ids: torch.Tensor,
    target_mask: torch.Tensor,
    cfg: SampleConfig,
    seed: int,
    n_candidates: int,
    rank: int = 0,
    world: int = 1,
    record: bool = False,
    progress: bool = True,
) -> list[dict]:
    """This process's share of the jobs: dicts with source, candidate, seed, ids (and trajectory)."""
    model.eval()
    device = next(model.parameters()).device
    jobs = [(i, j) for i in range(len(ids)) for j in range(n_candidates)][rank::world]
    results = []
    batches = range(0, len(jobs), cfg.batch_size)
    for start in tqdm(batches, disable=not progress, desc="sample"):
        chunk = jobs[start : start + cfg.batch_size]
        rows = torch.tensor([i for i, _ in chunk])
        seeds = [candidate_seed(seed, i, j, n_candidates) for i, j in chunk]
        mask = target_mask[rows].to(device)
        out = diffusion.sample(
            model,
            source_ids(ids[rows], target_mask[rows]).to(device),
            mask,
            SeededNoise(seeds),
            method=cfg.method,
            steps=cfg.steps,
            clamp=cfg.clamp,
            record=record,
        )
        for k, (i, j) in enumerate(chunk):
            item = {"source": i, "candidate": j, "seed": seeds[k], "ids": out["ids"][k].cpu()}
            if record:
                item["trajectory"] = torch.stack([step[k] for step in out["trajectory"]])
            results.append(item)
    return results


def generate_distributed(
    accelerator,
    model,
    diffusion,
    ids,
    target_mask,
    cfg: SampleConfig,
    seed: int,
    n_candidates: int,
    record: bool = False,
) -> list[dict]:
    """All processes generate their share; every process gets the full, de-duplicated, sorted list."""
    from accelerate.utils import gather_object

    mine = generate(
        model,
        diffusion,
        ids,
        target_mask,
        cfg,
        seed,
        n_candidates,
        accelerator.process_index,
        accelerator.num_processes,
        record,
        progress=accelerator.is_local_main_process,
    )
    everything = gather_object(mine) if accelerator.num_processes > 1 else mine
    unique = {(r["source"], r["candidate"]): r for r in everything}
    if len(unique) != len(everything):
        raise RuntimeError(f"{len(everything) - len(unique)} candidates were generated twice")
    return [unique[k] for k in sorted(unique)]
