"""Editing checkpoints: stop a lifelong run after some batches and resume it in a later process.

A ZsRE T = 1000 run edits 50 batches and then scores 1000 edits; on a CPU one method takes longer
than one sitting. With ``stop_after_batches: N`` an invocation edits at most N batches of each
method, saves ``<output_dir>/checkpoints/<method>.pt`` and writes no row for it; the same command
run again resumes there. An invocation that has used its N batches stops before the final scoring
even when no batch is left, so the scoring of the final model can be a part of its own.

A checkpoint holds the whole editor (the edited model with its adaptor, side memory or codebook,
the editor's generators and per-batch history), the loop's bookkeeping (next batch, edits made,
training seconds, curve so far) and the python / numpy / torch random states, so a resumed run
gives the numbers of an uninterrupted one (tested). It is refused when the experiment's config
differs (every key but those in ``IGNORED``, named in the error) or the batch plan differs. It is
a pickle (``torch.save`` of Python objects): load only checkpoints this package wrote. It is
deleted once the method's row is written.

Preparing the evaluation sets (the unedited model's locality answers, continuations and perplexity
for every edit; at T = 998 more than 6 CPU minutes) is the same for every part, so a run with
``stop_after_batches`` keeps them in ``checkpoints/eval_sets.pt`` with the batch plans, and later
parts of the same experiment load them instead; a part with another config is refused before it
prepares anything.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lemoe.data import EditRequest
from shared_utils.atomic import atomic_file
from shared_utils.config import diff_configs, flatten_config
from shared_utils.errors import ConfigError
from shared_utils.tracking import get_logger

log = get_logger("lemoe")

# options that may change between the parts of one experiment: which methods a part runs, how far
# it goes, where it writes (a folder may be written in a clone and copied) and its table is copied to,
# and what it shows or logs while running
IGNORED = (
    "methods",
    "output_dir",
    "stop_after_batches",
    "readme",
    "readme_section",
    "save_adaptor",
    "lemoe.train.progress",
    "accelerator.tracker",
    "accelerator.project_name",
)


def _ignored(key: str) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in IGNORED)


def checkpoint_path(output_dir: str | Path, method: str) -> Path:
    return Path(output_dir) / "checkpoints" / f"{method}.pt"


def experiment_key(config: Any) -> dict[str, Any]:
    """The flattened config without the ``IGNORED`` keys: equal for every part of one experiment."""
    return {k: v for k, v in flatten_config(config).items() if not _ignored(k)}


def same_experiment(saved_config: dict[str, Any] | None, config: Any) -> bool:
    """Whether a row written with ``saved_config`` belongs to the experiment ``config`` describes: equal on
    every option both have (one added to the package after the row was written does not split it)."""
    if saved_config is None:
        return False
    saved, now = experiment_key(saved_config), experiment_key(config)
    return all(saved[key] == now[key] for key in saved.keys() & now.keys())


def plan_fingerprint(batches: list[list[EditRequest]]) -> list[list[str]]:
    """The batch plan as prompts, to check that a resumed run edits the same requests in the same order."""
    return [[r.prompt for r in batch] for batch in batches]


def _rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _refuse_other_config(path: Path, saved: dict[str, Any], config: Any) -> None:
    diffs = diff_configs(saved, experiment_key(config))
    if diffs:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in diffs)
        raise ConfigError(f"cannot resume from {path}: the config differs in {listed} (delete the file to start over)")


def save(path: Path, state: dict[str, Any], config: Any, batches: list[list[EditRequest]]) -> Path:
    """Write ``state`` (editor, loop bookkeeping) with the config, plan and random states, atomically.

    The editor's ``autocast`` (a method of the run's accelerator, not picklable) is left out and
    set again by the resuming run."""
    editor = state["editor"]
    autocast, editor.autocast = editor.autocast, nullcontext
    try:
        payload = {
            **state,
            "config": experiment_key(config),
            "plan": plan_fingerprint(batches),
            "rng": _rng_states(),
        }
        with atomic_file(path) as tmp:
            torch.save(payload, tmp)
    finally:
        editor.autocast = autocast
    return path


def load(path: Path, config: Any, batches: list[list[EditRequest]]) -> dict[str, Any] | None:
    """The state saved at ``path`` (None when there is none), with the random states restored.

    Raises ConfigError naming every config key that differs, or saying that the batch plan differs.
    Tensors come back on the device they were saved from."""
    if not path.is_file():
        return None
    payload = torch.load(path, weights_only=False)
    _refuse_other_config(path, payload.pop("config"), config)
    if payload.pop("plan") != plan_fingerprint(batches):
        raise ConfigError(
            f"cannot resume from {path}: its batch plan differs from this run's (delete it to start over)"
        )
    _set_rng_states(payload.pop("rng"))
    return payload


def prepared_runs(output_dir: str | Path, config: Any, build: Callable[[], list[tuple]]) -> list[tuple]:
    """The runs' (index, eval sets, batch plans) of ``experiment.prepare_run``: loaded from
    ``checkpoints/eval_sets.pt`` when an earlier part of the same experiment saved them, else built
    by ``build()`` and saved; ConfigError naming the keys when they were saved for another config.
    The index (request object → position) is rebuilt from the sets' requests, which the plans share
    (one pickle keeps their identity)."""
    path = Path(output_dir) / "checkpoints" / "eval_sets.pt"
    if path.is_file():
        payload = torch.load(path, weights_only=False)
        _refuse_other_config(path, payload["config"], config)
        log.info("evaluation sets and batch plans from %s", path)
        return [({id(r): i for i, r in enumerate(sets.requests)}, sets, plans) for sets, plans in payload["runs"]]
    runs = build()
    with atomic_file(path) as tmp:
        torch.save({"config": experiment_key(config), "runs": [(sets, plans) for _, sets, plans in runs]}, tmp)
    return runs
