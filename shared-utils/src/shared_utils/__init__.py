"""Thin common layer shared by the paper packages.

Submodules are imported lazily so that ``import shared_utils`` stays cheap (no torch):

- :mod:`shared_utils.seeding`  -- ``seed_everything``
- :mod:`shared_utils.device`   -- ``AcceleratorConfig``, ``build_accelerator``
- :mod:`shared_utils.tracking` -- ``get_logger``, ``configure_wandb_mode``
- :mod:`shared_utils.config`   -- YAML + ``--key value`` dataclass configs
- :mod:`shared_utils.results`  -- results files with provenance, markdown tables
- :mod:`shared_utils.atomic`   -- atomic file, JSON, figure and folder writes
- :mod:`shared_utils.records`  -- JSON/JSONL record files with file/line errors
- :mod:`shared_utils.checkpoints` -- keep-last-k checkpoints, resume config check
- :mod:`shared_utils.cli`      -- one-line user errors, exit code 2
- :mod:`shared_utils.errors`   -- ``UserError`` and its kinds
- :mod:`shared_utils.models`   -- hub id / local folder / embedded alias -> model
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "seed_everything": "seeding",
    "AcceleratorConfig": "device",
    "build_accelerator": "device",
    "describe_accelerator": "device",
    "save_state_atomically": "device",
    "apply_threads": "device",
    "UserError": "errors",
    "RecordError": "errors",
    "ModelNotFound": "errors",
    "read_records": "records",
    "parse_records": "records",
    "require_local": "records",
    "atomic_folder": "atomic",
    "atomic_file": "atomic",
    "save_figure": "atomic",
    "CheckpointManager": "checkpoints",
    "ResumeMismatch": "checkpoints",
    "run_cli": "cli",
    "resolve_config_path": "config",
    "flatten_config": "config",
    "check_choices": "config",
    "require_clean_checkout": "results",
    "get_logger": "tracking",
    "configure_wandb_mode": "tracking",
    "ConfigError": "errors",
    "load_config": "config",
    "parse_config_cli": "config",
    "dump_config": "config",
    "config_to_dict": "config",
    "write_results": "results",
    "atomic_write_text": "atomic",
    "atomic_write_json": "atomic",
    "load_results": "results",
    "render_markdown_table": "results",
    "replace_marked_section": "results",
    "resolve_model": "models",
    "load_causal_lm": "models",
    "load_encoder": "models",
    "EmbeddedModelMissing": "models",
    "decoder_layers": "models",
    "decoder_layers_path": "models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'shared_utils' has no attribute {name!r}")
