"""Accelerator construction: devices, precision, gradient accumulation, tracker."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tracking import configure_wandb_mode, get_logger

if TYPE_CHECKING:  # pragma: no cover
    from accelerate import Accelerator

_PRECISIONS = ("auto", "no", "fp16", "bf16")


@dataclass
class AcceleratorConfig:
    """What every package's training loop needs from ``accelerate``."""

    mixed_precision: str = field(
        default="auto",
        metadata={"help": "auto (bf16 where the hardware has it, else fp32), no, fp16 or bf16"},
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    tracker: str | None = field(default="wandb", metadata={"help": "wandb or none"})
    project_name: str = field(default="llm-papers", metadata={"help": "tracker project"})
    cpu: bool = field(default=False, metadata={"help": "force the CPU even when a GPU is present"})


def apply_threads(num_threads: int) -> None:
    """``torch.set_num_threads(num_threads)`` when positive; 0 keeps torch's own choice.

    On a small shared CPU one thread per process is often faster than two contending ones.
    """
    if num_threads > 0:
        import torch

        torch.set_num_threads(num_threads)


def has_gpu() -> bool:
    """CUDA (or Apple MPS) is usable."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def resolve_mixed_precision(requested: str, cpu: bool = False) -> str:
    """Map ``auto`` to ``bf16`` on CUDA devices that support it and to ``no`` elsewhere."""
    import torch

    if requested not in _PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {_PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return requested
    if not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def build_accelerator(
    config: AcceleratorConfig | None = None,
    run_name: str | None = None,
    tracker_config: dict[str, Any] | None = None,
    log: bool = True,
) -> Accelerator:
    """Build an :class:`accelerate.Accelerator` and start its tracker.

    The tracker is wandb unless ``config.tracker`` is ``None``/``"none"`` or
    ``WANDB_MODE=disabled``; its mode follows :func:`configure_wandb_mode`.
    """
    from accelerate import Accelerator

    config = config or AcceleratorConfig()
    # Without a GPU, ask for the CPU explicitly: only then do processes started by torchrun /
    # `accelerate launch --multi_gpu` join one gloo process group instead of running alone.
    cpu = config.cpu or not has_gpu()
    tracker = None if config.tracker in (None, "none", "") else config.tracker
    if tracker == "wandb":
        mode = configure_wandb_mode()
        if mode == "disabled":
            tracker = None
        else:
            try:
                import wandb  # noqa: F401
            except ImportError:
                get_logger(__name__).warning("wandb is not installed: tracking is off")
                tracker = None
    accelerator = Accelerator(
        mixed_precision=resolve_mixed_precision(config.mixed_precision, cpu),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=tracker,
        cpu=cpu,
    )
    if tracker is not None:
        init_kwargs = {"wandb": {"name": run_name}} if run_name else {}
        accelerator.init_trackers(config.project_name, config=tracker_config or {}, init_kwargs=init_kwargs)
    if log:
        get_logger(__name__).info(describe_accelerator(accelerator))
    return accelerator


def describe_accelerator(accelerator: Accelerator) -> str:
    """One line: device, process count, precision."""
    return (
        f"device={accelerator.device} processes={accelerator.num_processes} "
        f"precision={accelerator.mixed_precision} "
        f"grad_accum={accelerator.gradient_accumulation_steps}"
    )


def save_state_atomically(
    accelerator: Accelerator, folder: str | Path, write_extra: Callable[[Path], None] | None = None
) -> Path:
    """``accelerator.save_state`` into ``<folder>.tmp``, then rename it to ``folder``.

    ``write_extra(tmp)`` runs on the main process before the rename, for files that belong
    with the checkpoint (step counters, EMA weights). A crash never leaves a half-written
    ``folder``: an interrupted ``.tmp`` is removed by the next save.
    """
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        if write_extra is not None:
            write_extra(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    accelerator.wait_for_everyone()
    return folder
