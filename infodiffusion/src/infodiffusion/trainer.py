"""Training loop on ``accelerate``: DDP, gradient accumulation, mixed precision, wandb,
atomic checkpoints with EMA weights and exact resume.

A run folder (``output_dir``) holds ``checkpoints/step_N/`` (the newest ``train.keep_last``;
each with loadable ``model/`` and ``ema/`` folders, so ``sample`` works on a run stopped
early), ``run_config.json`` (what a resume is checked against) and, once finished,
``model/``, ``ema/`` and ``train_summary.json``.

The batch of optimizer step s is a pure function of (seed, s): sample positions
s·B ... (s+1)·B - 1 of an endless sequence of seeded epoch permutations, split into
micro-batches per accumulation step and per process. Together with the RNG states saved by
``accelerator.save_state`` this makes a resumed run continue bit-for-bit.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.diffusion import TextDiffusion, TimestepSampler
from infodiffusion.model import DiffusionTransformer, init_from_encoder
from infodiffusion.run import RunArtifacts, prepare_artifacts
from shared_utils.atomic import atomic_folder, atomic_write_json
from shared_utils.checkpoints import CheckpointManager
from shared_utils.config import flatten_config
from shared_utils.errors import ConfigError
from shared_utils.tracking import get_logger

logger = get_logger(__name__)

# Keys that may change when a run is resumed: the total step count (to extend a run), where
# it is written and how often it logs/checkpoints, and everything that only sampling or
# evaluation reads. Any other difference from the checkpoint's run refuses the resume.
RESUME_MAY_CHANGE = (
    "output_dir",
    "train.steps",
    "train.resume",
    "train.resume_force",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_last",
    "train.tracker",
    "diffusion.sample_schedule",
)


class EMA:
    """Exponential moving average of the parameters: θ̄ ← d·θ̄ + (1 - d)·θ."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict) -> None:
        self.shadow = {k: v.clone().float() for k, v in state.items()}


@dataclass
class Progress:
    step: int = 0

    def state_dict(self) -> dict:
        return {"step": torch.tensor(self.step)}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


def batch_indices(step: int, n_items: int, batch_size: int, seed: int) -> torch.Tensor:
    """Dataset indices of optimizer step ``step`` (global batch, epochs reshuffled by seed)."""
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    epochs, offsets = positions // n_items, positions % n_items
    out = torch.empty_like(positions)
    for epoch in epochs.unique().tolist():
        perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        sel = epochs == epoch
        out[sel] = perm[offsets[sel]]
    return out


def lr_lambda(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def resume_ignored(cfg: InfoDiffusionConfig) -> list[str]:
    """The dotted config keys a resume does not compare (see ``RESUME_MAY_CHANGE``)."""
    return [k for k in flatten_config(cfg) if k in RESUME_MAY_CHANGE or k.startswith(("sample.", "eval."))]


def check_resume(cfg: InfoDiffusionConfig) -> None:
    """Refuse ``train.resume`` into a run made with another config, unless ``train.resume_force``.

    The checkpoint ``<run>/checkpoints/step_N`` is compared with ``<run>/run_config.json``.
    """
    folder = Path(cfg.train.resume)
    if not folder.is_dir():
        raise ConfigError(f"train.resume: no checkpoint folder {folder}")
    ignored = resume_ignored(cfg)
    CheckpointManager(folder.parent.parent).check_resume(cfg, ignore=ignored, force=cfg.train.resume_force)
    logger.info("resuming from %s; not compared with its run's config: %s", folder, ", ".join(ignored))


def clear_other_runs_checkpoints(checkpoints: CheckpointManager, resume: str) -> None:
    """Remove checkpoints in the output folder left by an earlier run (kept when resuming from one of them)."""
    if resume and Path(resume).resolve().parent == checkpoints.root.resolve():
        return
    old = checkpoints.steps()
    if old:
        logger.warning("%s: a new run starts here; removing the old run's checkpoints %s", checkpoints.root, old)
        for step in old:
            shutil.rmtree(checkpoints.path(step))


def write_weights(folder: Path, model: DiffusionTransformer, ema: EMA) -> None:
    """``<folder>/model`` and ``<folder>/ema``: loadable with ``DiffusionTransformer.from_pretrained``."""
    model.save_pretrained(folder / "model")
    model.save_pretrained(folder / "ema", ema.state_dict())


def train(cfg: InfoDiffusionConfig, artifacts: RunArtifacts | None = None) -> dict:
    """Train one model; writes ``<output_dir>/{model,ema,checkpoints,train_summary.json}``."""
    from shared_utils.device import AcceleratorConfig, build_accelerator
    from shared_utils.seeding import seed_everything

    tc = cfg.train
    out = Path(cfg.output_dir)
    if tc.resume:
        check_resume(cfg)
    os.environ.setdefault("WANDB_DIR", str(out))
    accelerator = build_accelerator(
        AcceleratorConfig(
            mixed_precision=tc.mixed_precision,
            gradient_accumulation_steps=tc.grad_accum,
            tracker=tc.tracker,
            cpu=not torch.cuda.is_available(),
        ),
        run_name=out.name,
        tracker_config=flatten_config(cfg),
    )
    world = accelerator.num_processes
    if tc.batch_size % (world * tc.grad_accum):
        raise ConfigError(
            f"train.batch_size={tc.batch_size} must be divisible by processes ({world}) x "
            f"train.grad_accum ({tc.grad_accum})"
        )
    micro = tc.batch_size // (world * tc.grad_accum)
    checkpoints = CheckpointManager(out, keep_last=tc.keep_last)
    if accelerator.is_main_process:
        clear_other_runs_checkpoints(checkpoints, tc.resume)
        checkpoints.record_config(cfg)

    seed_everything(cfg.seed)
    if artifacts is None:
        artifacts = prepare_artifacts(cfg, out if accelerator.is_main_process else None)
    ids_all, mask_all = artifacts.train_ids, artifacts.train_mask
    model = DiffusionTransformer(cfg.model, len(artifacts.vocab), cfg.data.seq_len)
    if cfg.model.init_from and not tc.resume:
        init_from_encoder(model, cfg.model.init_from, artifacts.vocab.full_ids)
    diffusion: TextDiffusion = artifacts.diffusion
    groups = model.param_groups(tc.lr, tc.pretrained_lr_scale)
    optimizer = torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tc.warmup_steps, tc.steps))
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)
    ema = EMA(core, tc.ema_decay)
    sampler = TimestepSampler(tc.timestep_sampler, diffusion.steps)
    progress = Progress()
    for obj in (scheduler, ema, sampler, progress):
        accelerator.register_for_checkpointing(obj)
    seed_everything(cfg.seed * 1000 + 1 + accelerator.process_index)
    if tc.resume:
        accelerator.load_state(tc.resume)
    start_step = progress.step
    device = accelerator.device
    model.train()
    bar = tqdm(total=tc.steps, initial=progress.step, disable=not accelerator.is_local_main_process, desc="train")
    start, history = time.time(), []
    while progress.step < tc.steps:
        idx = batch_indices(progress.step, len(ids_all), tc.batch_size, cfg.seed)
        terms_sum = {}
        for a in range(tc.grad_accum):
            lo = (a * world + accelerator.process_index) * micro
            ids = ids_all[idx[lo : lo + micro]].to(device)
            mask = mask_all[idx[lo : lo + micro]].to(device)
            t, weights = sampler.sample(len(ids))
            t, weights = t.to(device), weights.to(device)
            if not tc.importance_weights:
                weights = torch.ones_like(weights)
            use_sc = cfg.model.self_conditioning and bool(torch.rand(()) < tc.self_cond_prob)
            with accelerator.accumulate(model), accelerator.autocast():
                terms = diffusion.training_losses(model, ids, mask, t, self_cond=use_sc)
                loss = (terms["loss"] * weights).mean()
                accelerator.backward(loss)
                if accelerator.sync_gradients and tc.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                optimizer.zero_grad()
            all_t, all_loss = accelerator.gather((t, terms["loss"].detach().float()))
            sampler.update(all_t.cpu(), all_loss.cpu())
            for k, v in terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + float(v.detach().mean()) / tc.grad_accum
        scheduler.step()
        ema.update(core)
        progress.step += 1
        bar.update(1)
        if progress.step % tc.log_every == 0 or progress.step == tc.steps:
            history.append({"step": progress.step, **terms_sum})
            accelerator.log(terms_sum, step=progress.step)
            bar.set_postfix(loss=f"{terms_sum['loss']:.3f}")
        if tc.checkpoint_every and progress.step % tc.checkpoint_every == 0 and progress.step < tc.steps:
            checkpoints.save(accelerator, progress.step, lambda tmp: write_weights(tmp, core, ema))
    bar.close()
    elapsed = time.time() - start
    checkpoints.save(accelerator, progress.step, lambda tmp: write_weights(tmp, core, ema))
    summary = {
        "steps": progress.step,
        "world_size": world,
        "micro_batch": micro,
        "train_time_s": elapsed,
        "steps_per_s": (progress.step - start_step) / max(elapsed, 1e-9),
        "loss_history": history,
    }
    if accelerator.is_main_process:
        # each folder is swapped in whole; the summary (the step they hold) is written last
        with atomic_folder(out / "model") as tmp:
            core.save_pretrained(tmp)
        with atomic_folder(out / "ema") as tmp:
            core.save_pretrained(tmp, ema.state_dict())
        atomic_write_json(out / "train_summary.json", summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
