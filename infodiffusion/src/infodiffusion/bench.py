"""Speed of the information schedule against DiffuSeq's sqrt schedule on the same model.

Per-step costs are measured in interleaved rounds (sqrt, info, sqrt, info, ...) in one
process so that load from other programs hits both alike; ratios are what to read.
Steps to 95 % of the final BLEU come from trained runs (``--runs`` of ``reproduce``) when
present, else from two short runs trained here.
"""

from __future__ import annotations

import copy
import itertools
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
    cfg: InfoDiffusionConfig,
    train_steps: int = 30,
    sample_n: int = 64,
    runs: Path = Path("runs/infodiffusion"),
    with_curves: bool = True,
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
    ref = time_against_reference(cfg, train_steps, sample_n)
    lines += reference_lines(cfg, ref)
    s95, source = steps_to_95(cfg, runs) if with_curves else ({}, "")
    for row, (k, final) in s95.items():
        lines.append(
            f"reverse steps to 95% of final BLEU  {row:14s} {k:4d} / {cfg.diffusion.steps} "
            f"(final BLEU {final:.4f}; {source})"
        )
    print("\n".join(lines))
    return {"train_steps_per_s": tr, "sample_samples_per_s": sa, "steps_to_95pct": s95, "reference": ref}


# ---------------------------------------------------------------------------------------------
# A DiffuSeq-equivalent reference step (Gong et al. 2023; DiffuSeq's ``training_losses_seq2seq``
# and ``p_sample`` with ``denoised_fn_round``), written here from that description, not copied:
# training projects x_start and the model's x̂₀ onto the full vocabulary at every position and
# takes a cross-entropy at all B × L positions twice (``decoder_nll`` in the loss, ``nll``
# logged); sampling rounds x̂₀ to the nearest of all V embeddings at every position, each step.


def reference_training_loss(model: DiffusionTransformer, diffusion, ids: torch.Tensor, mask: torch.Tensor, t):
    """DiffuSeq's loss for one batch (sqrt schedule, no self-conditioning), per sequence [B]."""
    import torch.nn.functional as F

    from infodiffusion.diffusion import q_sample

    sched, everywhere = diffusion.schedule, torch.ones_like(mask)
    x_mean = model.embed(ids)
    x_start = q_sample(x_mean, sched.alpha_bar(torch.ones_like(t)), torch.randn_like(x_mean), everywhere)
    x_t = q_sample(x_start, sched.alpha_bar(t), torch.randn_like(x_start), mask)
    out = model(x_t, t, mask, None)
    mse = torch.where(t == 1, ((out - x_mean) ** 2).mean((1, 2)), ((out - x_start) ** 2).mean((1, 2)))
    prior = ((sched.alpha_bar(torch.full_like(t, sched.steps)).sqrt().unsqueeze(-1) * x_start) ** 2).mean((1, 2))
    vocab = model.word_embedding.weight.shape[0]
    decoder_nll = F.cross_entropy(model.logits(x_start).view(-1, vocab), ids.view(-1), reduction="none")
    nll = F.cross_entropy(model.logits(out).view(-1, vocab), ids.view(-1), reduction="none").view(ids.shape)
    _logged = (nll * mask).sum(-1) / mask.sum(-1)  # DiffuSeq's terms["nll"]: computed, not in the loss
    return mse + decoder_nll.view(ids.shape).mean(-1) + prior


@torch.no_grad()
def reference_sample(model: DiffusionTransformer, diffusion, ids: torch.Tensor, mask: torch.Tensor, steps: int):
    """DiffuSeq's respaced reverse process with clamping at every position over the full vocabulary."""
    import numpy as np

    from infodiffusion.diffusion import q_posterior

    sched = diffusion.schedule
    grid = [*sorted({round(float(x)) for x in np.linspace(sched.steps, 1, steps)}, reverse=True), 0]
    m3 = mask.bool().unsqueeze(-1)
    x_src = model.embed(ids)
    x = torch.where(m3, torch.randn_like(x_src), x_src)
    weight = model.word_embedding.weight
    for t, s in itertools.pairwise(grid):
        tt = torch.full((len(ids),), t, dtype=torch.long)
        x0 = model(x, tt, mask, None)
        flat = x0.reshape(-1, x0.shape[-1])  # get_efficient_knn: ||E||² + ||x||² - 2 x·E, top-1
        dist = (weight**2).sum(-1).view(1, -1) + (flat**2).sum(-1).view(-1, 1) - 2 * flat @ weight.t()
        x0 = torch.where(m3, model.embed(dist.topk(1, largest=False).indices.view(ids.shape)), x_src)
        if s == 0:
            x = x0
            break
        post = q_posterior(x0, x, sched.alpha_bar(tt), sched.alpha_bar(torch.full_like(tt, s)))
        x = torch.where(m3, post.mean + (0.5 * post.log_variance).exp() * torch.randn_like(x), x_src)
    return model.logits(x).argmax(-1)


def time_against_reference(cfg: InfoDiffusionConfig, steps: int, n: int, rounds: int = 2) -> dict:
    """Ours / reference speed at the full tokenizer vocabulary (where DiffuSeq pays its cost):
    training steps/s (ours: the DiffuSeq row's computation, sqrt without self-conditioning, and
    ours as configured) and DDIM samples/s at ``sample.steps`` with clamping on, interleaved."""
    full = copy.deepcopy(cfg)
    full.data.restrict_vocab = False
    artifacts = prepare_artifacts(full)
    sqrt_cfg = copy.deepcopy(full)
    sqrt_cfg.diffusion.schedule, sqrt_cfg.model.self_conditioning = "sqrt", False
    torch.manual_seed(cfg.seed)
    vocab, L = len(artifacts.vocab), full.data.seq_len
    plain = DiffusionTransformer(sqrt_cfg.model, vocab, L)
    configured = DiffusionTransformer(full.model, vocab, L)
    d_sqrt, d_cfg = build_diffusion(sqrt_cfg, artifacts.info), build_diffusion(full, artifacts.info)
    b = cfg.train.batch_size
    gen = torch.Generator().manual_seed(cfg.seed)
    sampler = TimestepSampler("uniform", full.diffusion.steps)

    def batch():
        idx = torch.randint(0, len(artifacts.train_ids), (b,), generator=gen)
        return artifacts.train_ids[idx], artifacts.train_mask[idx], sampler.sample(b, gen)[0]

    def train_step(model, loss_fn):
        ids, mask, t = batch()
        loss_fn(model, ids, mask, t).mean().backward()
        model.zero_grad()

    jobs = {
        "reference": lambda: train_step(plain, lambda m, i, k, t: reference_training_loss(m, d_sqrt, i, k, t)),
        "ours_sqrt": lambda: train_step(plain, lambda m, i, k, t: d_sqrt.training_losses(m, i, k, t)["loss"]),
        "ours_configured": lambda: train_step(
            configured,
            lambda m, i, k, t: d_cfg.training_losses(m, i, k, t, self_cond=full.model.self_conditioning)["loss"],
        ),
    }
    ids, mask = artifacts.train_ids[:n], artifacts.train_mask[:n]
    scfg = SampleConfig(method="ddim", steps=cfg.sample.steps, clamp=True, batch_size=n)
    sjobs = {
        "reference": lambda: reference_sample(plain.eval(), d_sqrt, ids, mask, cfg.sample.steps),
        "ours_sqrt": lambda: generate(plain, d_sqrt, ids, mask, scfg, cfg.seed, 1, progress=False),
        "ours_configured": lambda: generate(configured, d_cfg, ids, mask, scfg, cfg.seed, 1, progress=False),
    }
    tr, sa = dict.fromkeys(jobs, 0.0), dict.fromkeys(jobs, 0.0)
    for r in range(rounds + 1):
        for k in jobs:
            plain.train(), configured.train()
            start = time.perf_counter()
            for _ in range(steps):
                jobs[k]()
            tr[k] += (time.perf_counter() - start) if r else 0.0
            start = time.perf_counter()
            sjobs[k]()
            sa[k] += (time.perf_counter() - start) if r else 0.0
    train_rate = {k: rounds * steps / v for k, v in tr.items()}
    sample_rate = {k: rounds * n / v for k, v in sa.items()}
    return {"vocab": vocab, "train_steps_per_s": train_rate, "sample_samples_per_s": sample_rate}


def reference_lines(cfg: InfoDiffusionConfig, res: dict) -> list[str]:
    tr, sa = res["train_steps_per_s"], res["sample_samples_per_s"]
    lines = [f"against the DiffuSeq-equivalent reference step, full vocabulary {res['vocab']}:"]
    for name, rates, what in (("training", tr, "steps/s"), ("sampling", sa, "samples/s")):
        lines.append(
            f"  {name:9s} {what:9s} reference {rates['reference']:.3f}   ours (sqrt, no self-cond) "
            f"{rates['ours_sqrt']:.3f} = {rates['ours_sqrt'] / rates['reference']:.2f}x   ours as configured "
            f"({cfg.diffusion.schedule}, self-cond {cfg.model.self_conditioning}) {rates['ours_configured']:.3f} "
            f"= {rates['ours_configured'] / rates['reference']:.2f}x"
        )
    lines[-1] += f"   (DDIM {cfg.sample.steps} steps, clamping on; reference: respaced DDPM, same steps)"
    return lines
