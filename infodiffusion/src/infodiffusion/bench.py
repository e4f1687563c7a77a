"""Speed of the information schedule against DiffuSeq's sqrt schedule on the same model.

Per-step costs are measured in interleaved rounds (sqrt, info, sqrt, info, ...) in one
process so that load from other programs hits both alike; ratios are what to read.
Steps to 95 % of the final BLEU come from trained runs (``--runs`` of ``reproduce``) when
present, else from two short runs trained here.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch

from infodiffusion.config import InfoDiffusionConfig, SampleConfig
from infodiffusion.diffusion import TimestepSampler
from infodiffusion.model import DiffusionTransformer
from infodiffusion.run import build_diffusion, prepare_artifacts
from infodiffusion.sampling import generate

SCHEDULES = ("sqrt", "info")


def time_training(cfg: InfoDiffusionConfig, artifacts, steps: int, rounds: int = 3) -> dict[str, float]:
    """Optimizer steps/s per schedule (uniform t, self-conditioning pass as configured)."""
    torch.manual_seed(cfg.seed)
    models, diffusions, opts = {}, {}, {}
    for kind in SCHEDULES:
        c = copy.deepcopy(cfg)
        c.diffusion.schedule = kind
        models[kind] = DiffusionTransformer(c.model, len(artifacts.vocab), c.data.seq_len)
        diffusions[kind] = build_diffusion(c, artifacts.info)
        opts[kind] = torch.optim.AdamW(models[kind].parameters(), lr=c.train.lr)
    sampler = TimestepSampler("uniform", cfg.diffusion.steps)
    elapsed = dict.fromkeys(SCHEDULES, 0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    b = cfg.train.batch_size
    for r in range(rounds + 1):
        for kind in SCHEDULES:
            start = time.perf_counter()
            for s in range(steps):
                idx = torch.randint(0, len(artifacts.train_ids), (b,), generator=gen)
                t, _ = sampler.sample(b, gen)
                terms = diffusions[kind].training_losses(
                    models[kind],
                    artifacts.train_ids[idx],
                    artifacts.train_mask[idx],
                    t,
                    self_cond=cfg.model.self_conditioning and s % 2 == 0,
                )
                terms["loss"].mean().backward()
                opts[kind].step()
                opts[kind].zero_grad()
            if r:  # round 0 warms up
                elapsed[kind] += time.perf_counter() - start
    return {k: rounds * steps / v for k, v in elapsed.items()}


def time_sampling(cfg: InfoDiffusionConfig, artifacts, n: int, rounds: int = 3) -> dict[str, float]:
    """Samples/s per schedule (DDIM with ``sample.steps``, clamping as configured)."""
    torch.manual_seed(cfg.seed)
    ids, mask = artifacts.train_ids[:n], artifacts.train_mask[:n]
    model = DiffusionTransformer(cfg.model, len(artifacts.vocab), cfg.data.seq_len)
    sample_cfg = SampleConfig(method="ddim", steps=cfg.sample.steps, clamp=cfg.sample.clamp, batch_size=n)
    elapsed = dict.fromkeys(SCHEDULES, 0.0)
    for r in range(rounds + 1):
        for kind in SCHEDULES:
            c = copy.deepcopy(cfg)
            c.diffusion.schedule = kind
            diffusion = build_diffusion(c, artifacts.info)
            start = time.perf_counter()
            generate(model, diffusion, ids, mask, sample_cfg, cfg.seed, 1, progress=False)
            if r:
                elapsed[kind] += time.perf_counter() - start
    return {k: rounds * n / v for k, v in elapsed.items()}


def steps_to_95(cfg: InfoDiffusionConfig, runs: Path) -> tuple[dict[str, int], str]:
    """Reverse steps to 95 % of the final BLEU (DDPM, candidate 0) for the sqrt and info rows."""
    from infodiffusion.evaluate import bleu_curve, normaliser, sample_run, steps_to_fraction
    from infodiffusion.reproduce import row_config
    from infodiffusion.trainer import train

    source = f"trained runs in {runs}"
    tmp = None
    if not all((runs / row / "ema" / "model.safetensors").is_file() for row in ("diffuseq", "infodiffusion")):
        tmp = tempfile.TemporaryDirectory()
        runs, source = Path(tmp.name), f"two runs of {cfg.train.steps} steps trained here"
    out = {}
    for row in ("diffuseq", "infodiffusion"):
        rc = row_config(copy.deepcopy(cfg), row, runs)
        if tmp is not None:
            rc.train.tracker = "none"
            train(rc)
        curve_cfg = SampleConfig(method="ddpm", clamp=rc.sample.clamp, batch_size=rc.sample.batch_size)
        traced = sample_run(rc, rc.output_dir, n_candidates=1, sample_cfg=curve_cfg, record=True)
        curve = bleu_curve(traced, normaliser(rc))
        out[row] = (steps_to_fraction(curve), curve[-1])
    if tmp is not None:
        tmp.cleanup()
    return out, source


def run_bench(
    cfg: InfoDiffusionConfig, train_steps: int = 30, sample_n: int = 64, runs: Path = Path("runs/infodiffusion")
) -> dict:
    artifacts = prepare_artifacts(cfg)
    tr = time_training(cfg, artifacts, train_steps)
    sa = time_sampling(cfg, artifacts, sample_n)
    lines = [
        f"model: {cfg.model.num_layers} layers x {cfg.model.hidden_size}, emb {cfg.model.embedding_dim}, "
        f"vocab {len(artifacts.vocab)}, seq {cfg.data.seq_len}, T={cfg.diffusion.steps}, batch "
        f"{cfg.train.batch_size}, self-cond {cfg.model.self_conditioning}, torch threads "
        f"{torch.get_num_threads()}",
        f"training  steps/s   sqrt {tr['sqrt']:.2f}   info {tr['info']:.2f}   "
        f"per-step cost info/sqrt {tr['sqrt'] / tr['info']:.3f}x (target <= 1.10x)",
        f"sampling  samples/s sqrt {sa['sqrt']:.2f}   info {sa['info']:.2f}   "
        f"per-step cost info/sqrt {sa['sqrt'] / sa['info']:.3f}x (DDIM {cfg.sample.steps} steps, "
        f"clamp {cfg.sample.clamp})",
    ]
    s95, source = steps_to_95(cfg, runs)
    for row, (k, final) in s95.items():
        lines.append(
            f"reverse steps to 95% of final BLEU  {row:14s} {k:4d} / {cfg.diffusion.steps} "
            f"(final BLEU {final:.4f}; {source})"
        )
    print("\n".join(lines))
    return {"train_steps_per_s": tr, "sample_samples_per_s": sa, "steps_to_95pct": s95}
