"""The training loop, on ``accelerate``: gradient accumulation, mixed precision, wandb, checkpoints
every N steps (the newest ``train.keep_last`` kept) with exact resume (student, projectors, loss
weights, optimizer, scheduler, RNG and data position) into a run of the same config only, and an
atomic export of the student alone with ``save_pretrained``."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from distill_hetero.config import RESUME_IGNORED, RunConfig
from distill_hetero.cross_tokenizer import CrossTokenizerData
from distill_hetero.data import BatchSchedule, Example, collate
from distill_hetero.distiller import Distiller, TeacherCache, teacher_forward
from distill_hetero.extraction import hidden_width, num_layers
from distill_hetero.mapping import resolve_mapping
from distill_hetero.models import build_student
from distill_hetero.vocab import check_vocabularies
from shared_utils.atomic import atomic_folder
from shared_utils.checkpoints import CheckpointManager
from shared_utils.config import config_to_dict
from shared_utils.device import build_accelerator
from shared_utils.errors import ConfigError
from shared_utils.results import atomic_write_json
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

log = get_logger(__name__)
STATE_FILE = "trainer_state.json"


@dataclass
class TrainResult:
    distiller: Distiller
    history: list[dict]
    mapping: list[tuple[int, int]]
    accelerator: object


def lr_lambda(warmup: int, total: int):
    """Linear warm-up to the peak, then cosine decay to 10% of it."""

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return fn


def save_checkpoint(manager: CheckpointManager, accelerator, step: int, history: list[dict]) -> Path:
    """``accelerator.save_state`` plus the step and loss history, written atomically; old ones rotated out."""
    return manager.save(
        accelerator, step, lambda tmp: atomic_write_json(tmp / STATE_FILE, {"step": step, "history": history})
    )


def resume_point(cfg: RunConfig, manager: CheckpointManager) -> Path | None:
    """The checkpoint to resume from (None: start fresh). Refuses (:class:`ResumeMismatch`, naming the
    differing keys) when the run was started with another config, unless ``train.resume_force``."""
    checkpoint = manager.latest() if cfg.train.resume else None
    if checkpoint is None:
        return None
    manager.check_resume(cfg, ignore=RESUME_IGNORED, force=cfg.train.resume_force)
    log.info("%s: resuming from %s (%s may differ from its config)", cfg.name, checkpoint, ", ".join(RESUME_IGNORED))
    return checkpoint


def train(
    cfg: RunConfig,
    teacher,
    tokenizer,
    examples: list[Example],
    teacher_cache: TeacherCache | None = None,
    accelerator=None,
    stop_after: int | None = None,
    progress: bool = True,
    cross: CrossTokenizerData | None = None,
) -> TrainResult:
    """Distil ``teacher`` into a fresh student on ``examples`` for ``cfg.train.steps`` optimizer steps.

    ``teacher_cache`` replaces the live teacher forward; ``stop_after`` ends the loop early (as if
    interrupted) after that many steps, which the resume tests use. With ``student.tokenizer`` set,
    ``examples`` are in the student's tokenisation and ``cross`` holds the teacher's and the alignment.
    """
    if bool(cfg.student.tokenizer) != (cross is not None):
        raise ConfigError("student.tokenizer set: train() needs the cross-tokenizer data (and only then)")
    manager = CheckpointManager(cfg.output_dir, cfg.train.keep_last)
    checkpoint = resume_point(cfg, manager)
    accelerator = accelerator or build_accelerator(
        cfg.accelerator, run_name=cfg.name, tracker_config=config_to_dict(cfg), log=progress
    )
    seed_everything(cfg.seed)
    student_tokenizer = cross.student_tokenizer if cross else tokenizer
    student = build_student(cfg.student, tokenizer, teacher, cross.student_tokenizer if cross else None)
    vocab = check_vocabularies(
        student_tokenizer,
        student_tokenizer,
        None if cross else teacher.get_input_embeddings().weight.shape[0],
        student.get_input_embeddings().weight.shape[0],
    )
    teacher_vocab = len(tokenizer) if cross else vocab
    mapping = resolve_mapping(cfg.mapping, num_layers(student), num_layers(teacher)) if cfg.loss.intermediate else []
    distiller = Distiller(student, cfg.loss, mapping, hidden_width(teacher), vocab, cross_tokenizer=cross is not None)
    out_dir = Path(cfg.output_dir)
    if accelerator.is_main_process:
        if mapping:
            log.info("%s: layer mapping (student, teacher) = %s", cfg.name, mapping)
        atomic_write_json(out_dir / "mapping.json", {"rule": cfg.mapping.rule, "pairs": mapping})
        manager.record_config(cfg)

    weight_params = list(distiller.weighting.parameters())
    weight_ids = {id(p) for p in weight_params}
    groups = [{"params": [p for p in distiller.parameters() if id(p) not in weight_ids], "lr": cfg.train.lr}]
    if weight_params:
        groups.append({"params": weight_params, "lr": cfg.train.weight_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.train.warmup_steps, cfg.train.steps))
    distiller, optimizer = accelerator.prepare(distiller, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    teacher.to(accelerator.device)
    core = accelerator.unwrap_model(distiller)

    start, history = 0, []
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / STATE_FILE).read_text())
        start, history = state["step"], state["history"]
        log.info("%s: resumed at step %d", cfg.name, start)

    accum = accelerator.gradient_accumulation_steps
    schedule = BatchSchedule(len(examples), cfg.train.batch_size, accelerator.num_processes, accum, cfg.seed)
    pad_id = student_tokenizer.pad_token_id
    end = cfg.train.steps if stop_after is None else min(cfg.train.steps, stop_after)
    bar = tqdm(range(start, end), desc=cfg.name, disable=not (progress and accelerator.is_main_process))
    distiller.train()
    for step in bar:
        step_start, cpu_start = time.perf_counter(), time.process_time()
        totals, parts_sum, tokens = [], {}, 0
        for micro in range(accum):
            idx = schedule.indices(step, micro, accelerator.process_index)
            chunk = [examples[i] for i in idx]
            batch, t_batch = collate(chunk, pad_id), None
            if cross is not None:
                teacher_chunk, extra = cross.batch(chunk, batch["input_ids"].shape[1])
                t_batch = collate(teacher_chunk, cross.teacher_pad_id)
                batch.update(extra)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            t_batch = batch if t_batch is None else {k: v.to(accelerator.device) for k, v in t_batch.items()}
            tokens += int(batch["attention_mask"].sum())
            with accelerator.accumulate(distiller):
                t_out = None
                if core.needs_teacher:
                    t_out = (
                        teacher_cache(t_batch)
                        if teacher_cache is not None
                        else teacher_forward(teacher, t_batch, core.teacher_layers, teacher_vocab)
                    )
                total, parts = distiller(batch, t_out)
                accelerator.backward(total)
                if accelerator.sync_gradients and cfg.train.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(distiller.parameters(), cfg.train.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            totals.append(total.detach())
            for name, value in parts.items():
                parts_sum[name] = parts_sum.get(name, 0.0) + value.detach() / accum
        entry = {
            "step": step + 1,
            "loss": float(accelerator.reduce(torch.stack(totals).mean(), "mean")),
            "lr": scheduler.get_last_lr()[0],
            "tokens": tokens * accelerator.num_processes,
            "step_time_s": time.perf_counter() - step_start,
            "step_cpu_s": time.process_time() - cpu_start,  # this process's CPU time: less sensitive to load
        }
        scheduler.step()
        step_losses = {n: float(accelerator.reduce(v, "mean")) for n, v in parts_sum.items()}
        core.weighting.observe(step_losses)
        entry.update({f"loss/{n}": v for n, v in step_losses.items()})
        entry.update({f"weight/{n}": w for n, w in core.weighting.current().items()})  # the ratios after this step
        history.append(entry)
        if (step + 1) % cfg.train.log_every == 0:
            accelerator.log({k: v for k, v in entry.items() if k != "step"}, step=step + 1)
            bar.set_postfix(loss=f"{entry['loss']:.3f}")
        if cfg.train.checkpoint_every and (step + 1) % cfg.train.checkpoint_every == 0:
            save_checkpoint(manager, accelerator, step + 1, history)
    return TrainResult(core, history, mapping, accelerator)


def export_student(result: TrainResult, tokenizer, path: str | Path) -> Path:
    """Save the student alone (no projectors, no loss weights); loads with ``AutoModelForCausalLM``.

    Written to a temporary sibling folder and swapped in, so a crash leaves the previous export."""
    path = Path(path)
    if result.accelerator.is_main_process:
        with atomic_folder(path) as tmp:
            result.distiller.student.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    result.accelerator.wait_for_everyone()
    return path
