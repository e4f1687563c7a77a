"""Training checkpoints: atomic saves, keep-last-k rotation, and resume only into the same run.

A run folder holds ``checkpoints/step_<N>/`` (``accelerator.save_state`` plus the package's
own files) and ``run_config.json``, the flattened resolved config the run was started with.
Resuming compares that file with the new config and refuses, naming every differing key,
unless the user forces it (e.g. to extend ``train.steps``).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write_json
from .config import diff_configs, flatten_config
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from accelerate import Accelerator

RUN_CONFIG = "run_config.json"
_STEP = re.compile(r"^step_(\d+)$")


class ResumeMismatch(ConfigError):
    """``resume`` asked to continue a run that was started with another config."""


def check_resume_config(
    saved: dict[str, Any], new: dict[str, Any], ignore: Iterable[str] = (), where: str = ""
) -> None:
    """Raise :class:`ResumeMismatch` naming each key whose value differs (``ignore`` excepted)."""
    skipped = set(ignore)
    diffs = [d for d in diff_configs(saved, new) if d[0] not in skipped]
    if diffs:
        listed = "; ".join(f"{key}: {old!r} -> {value!r}" for key, old, value in diffs)
        raise ResumeMismatch(
            f"cannot resume {where or 'the run'}: its config differs in {len(diffs)} key(s): {listed}. "
            "Use a new output folder, or force the resume (--train.resume_force true / force=True)"
        )


class CheckpointManager:
    """Checkpoints of one run under ``<run_dir>/checkpoints``; the newest ``keep_last`` are kept."""

    def __init__(self, run_dir: str | Path, keep_last: int = 2) -> None:
        if keep_last < 1:
            raise ConfigError(f"keep_last must be at least 1, got {keep_last}")
        self.run_dir = Path(run_dir)
        self.root = self.run_dir / "checkpoints"
        self.keep_last = keep_last

    def steps(self) -> list[int]:
        """Steps of the complete checkpoints, oldest first (``.tmp`` folders are not complete)."""
        if not self.root.is_dir():
            return []
        found = (_STEP.match(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, step: int) -> Path:
        return self.root / f"step_{step}"

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, accelerator: Accelerator, step: int, write_extra: Callable[[Path], None] | None = None) -> Path:
        """Save atomically (see :func:`shared_utils.device.save_state_atomically`), then rotate."""
        from .device import save_state_atomically

        folder = save_state_atomically(accelerator, self.path(step), write_extra)
        if accelerator.is_main_process:
            for old in self.steps()[: -self.keep_last]:
                shutil.rmtree(self.path(old), ignore_errors=True)
        accelerator.wait_for_everyone()
        return folder

    def record_config(self, config: Any) -> None:
        """Write the run's flattened config (the reference a later resume is checked against)."""
        atomic_write_json(self.run_dir / RUN_CONFIG, flatten_config(config))

    def check_resume(self, config: Any, ignore: Iterable[str] = (), force: bool = False) -> None:
        """Refuse to resume into this run with another config unless ``force``."""
        saved_file = self.run_dir / RUN_CONFIG
        if force or not saved_file.is_file():
            return
        saved = json.loads(saved_file.read_text())
        check_resume_config(saved, flatten_config(config), ignore, where=str(self.run_dir))
